"""Slope fits and bootstrap intervals of regret curves (docs/design.md, "Who uses it, for what" 1).

Pure NumPy on ``[runs, P]`` curves at the recorded rounds ``t`` ([P]), used by the bound checks
(``analysis.bounds``) and the paper figures:
- ``regret_exponent``: the least-squares slope of log(mean regret) on log t over the last decade
  of recorded rounds (t >= t_max / 10, ``last_decade``), with a 95% percentile bootstrap
  interval over runs (Efron and Tibshirani 1993, ch. 13: runs resampled with replacement,
  ``BOOTSTRAP_SEED`` fixes the resampling);
- ``log_constant``: the least-squares slope of mean regret on ln t over the same window, with
  its interval (compared with the Lai and Robbins 1985 constant by ``analysis.bounds``);
- ``mean_and_upper``: the mean curve and its upper normal 95% confidence limit, and the
  fractions of recorded rounds under an upper bound / above a lower bound.
"""
from __future__ import annotations

import math

import numpy as np

from analysis.metrics import Z95

BOOTSTRAP_SEED = 20240611
BOOTSTRAP_SAMPLES = 1000


def last_decade(t: np.ndarray) -> np.ndarray:
    """Mask of the recorded rounds in the last decade, t >= t_max / 10 (at least 2 rounds)."""
    t = np.asarray(t, np.float64)
    mask = t >= t.max() / 10.0
    if mask.sum() < 2:
        mask = np.zeros_like(mask)
        mask[-min(2, len(t)):] = True
    return mask


def least_squares_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Slope of the least-squares line of y on x; y may be [..., P] (one slope per row)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    xc = x - x.mean()
    return (y - y.mean(axis=-1, keepdims=True)) @ xc / np.sum(xc * xc)


def bootstrap_means(curves: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """[samples, P] mean curves of runs resampled with replacement (fixed seed)."""
    curves = np.asarray(curves, np.float64)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, curves.shape[0], size=(samples, curves.shape[0]))
    return curves[index].mean(axis=1)


def _interval(estimates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    finite = estimates[np.isfinite(estimates)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


def regret_exponent(t: np.ndarray, curves: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(slope, lo, hi): log(mean regret) on log t over the last decade, 95% bootstrap interval.

    curves: [runs, P] cumulative regret at the recorded rounds t ([P]).
    """
    mask = last_decade(t)
    x = np.log(np.asarray(t, np.float64)[mask])

    def slope(mean_curves):
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(np.maximum(mean_curves[..., mask], 1e-300))
        return least_squares_slopes(x, y)

    estimate = float(slope(np.asarray(curves, np.float64).mean(axis=0)))
    lo, hi = _interval(slope(bootstrap_means(curves, samples, seed)))
    return estimate, lo, hi


def log_constant(t: np.ndarray, curves: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(slope, lo, hi): mean regret on ln t over the last decade, 95% bootstrap interval."""
    mask = last_decade(t)
    x = np.log(np.asarray(t, np.float64)[mask])
    estimate = float(least_squares_slopes(x, np.asarray(curves, np.float64).mean(0)[mask]))
    lo, hi = _interval(least_squares_slopes(x, bootstrap_means(curves, samples, seed)[:, mask]))
    return estimate, lo, hi


def mean_and_upper(curves: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Mean regret curve and its upper normal 95% confidence limit over runs."""
    curves = np.asarray(curves, np.float64)
    mean = curves.mean(axis=0)
    se = curves.std(axis=0, ddof=1) / np.sqrt(curves.shape[0]) if curves.shape[0] > 1 else 0.0
    return mean, mean + z * se


def fraction_under(upper_limit: np.ndarray, bound: np.ndarray) -> float:
    """Fraction of recorded rounds where the upper confidence limit is <= the upper bound."""
    return float(np.mean(np.asarray(upper_limit) <= np.asarray(bound)))


def fraction_above(mean: np.ndarray, bound: np.ndarray) -> float:
    """Fraction of recorded rounds where the mean is >= the lower bound."""
    return float(np.mean(np.asarray(mean) >= np.asarray(bound)))
