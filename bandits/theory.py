"""Learner-side regret theory: the rate a theorem gives and the finite-time upper bounds.

A learner declares its theory next to its code (``theory = Theory("logarithmic", ucb1_upper)``)
and ``banditjax bounds`` (``analysis.bounds``) reads the declaration; nothing outside the
learner's module names it (docs/design.md, "Layout"). NumPy, float64, on the host.

- ``Theory.rate``: how the regret of the learner grows with t where its theorem applies:
  'logarithmic' (C ln t on a stochastic K-armed instance), 'sqrt' (sqrt(t) up to logarithmic
  factors, worst case) or 'linear' (no learning); None: no claim.
- ``Theory.upper``: a function (problem, hparams, t) -> (name, curve) or None, the finite-time
  upper bound on the expected (pseudo-)regret at the rounds t when its assumptions hold.

Formulas:
- ``ucb1_bound``: Auer, Cesa-Bianchi and Fischer (2002), "Finite-time analysis of the
  multiarmed bandit problem", Theorem 1 (UCB1 with c = 2, rewards in [0, 1]):
  E[R_n] <= 8 sum_{a: gap_a > 0} ln n / gap_a + (1 + pi^2 / 3) sum_a gap_a, for every n.
  With delays, ``ucb1_upper`` adds Joulani et al. (2013)'s term E[tau] sum_a gap_a
  (``envs.theory.delay_additive_term``, constant 1: a heuristic constant, not a proven one).
- ``exp3_bound``: Auer, Cesa-Bianchi, Freund and Schapire (2002b), "The nonstochastic multiarmed
  bandit problem", Theorem 3.1: for gamma in (0, 1], G_max - E[G_Exp3] <= (e - 1) gamma G_max
  + K ln K / gamma; with G_max <= t this holds at every round t for a fixed gamma, and with
  Corollary 3.2's gamma = min(1, sqrt(K ln K / ((e - 1) T))) it is 2 sqrt(e - 1) sqrt(T K ln K)
  at t = T. Pseudo-regret <= expected regret, so it bounds the runner's ``regret`` column.
- ``oful_radius`` / ``oful_bound``: Abbasi-Yadkori, Pal and Szepesvari (2011), "Improved
  algorithms for linear stochastic bandits", Theorem 2 (the confidence radius
  sqrt(beta_t) = R sqrt(d ln((1 + t L^2 / lambda) / delta)) + sqrt(lambda) S, with the
  determinant bound of their Lemma 10) and Theorem 3 (with probability >= 1 - delta,
  R_T <= 4 sqrt(T d ln(lambda + T L / d)) (sqrt(lambda) S + R sqrt(2 ln(1/delta)
  + d ln(1 + T L / (lambda d))))), for ||x|| <= L, ||theta|| <= S, R-sub-Gaussian noise.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import numpy as np

from envs.theory import UNIT_INTERVAL_FAMILIES, delay_additive_term, gaps

RATES = ("logarithmic", "sqrt", "linear")
# The theory exponent (log-log slope of the regret) of the rates that fix one; 'logarithmic' has
# none: analysis fits the local slope of ln t over its window.
RATE_EXPONENTS = {"sqrt": 0.5, "linear": 1.0}


@dataclasses.dataclass(frozen=True)
class Problem:
    """What a theorem needs to know about the environment of one learner setting.

    family: the environment's ``reward_family`` (None: not a stochastic K-armed bandit).
    means: the arm means of each of the setting's instances (None when unknown).
    linear_model: the environment's ``linear_model`` (expected reward <theta, x>, sub-Gaussian
        noise).
    settings: the environment's settings (the ``env.<name>`` columns, without the prefix).
    horizon: the last recorded round.
    mean_delay: E[min(D, W + 1, T)] of the feedback delays (0 without delays).
    """

    family: str | None = None
    means: list[np.ndarray] | None = None
    linear_model: bool = False
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    horizon: int = 1
    mean_delay: float = 0.0


UpperBound = Callable[[Problem, Mapping[str, Any], np.ndarray], "tuple[str, np.ndarray] | None"]


@dataclasses.dataclass(frozen=True)
class Theory:
    """A learner's declared theory: its regret rate and, optionally, a finite-time upper bound."""

    rate: str | None = None
    upper: UpperBound | None = None

    def __post_init__(self):
        if self.rate is not None and self.rate not in RATES:
            raise ValueError(f"Theory.rate = {self.rate!r}: expected one of {RATES} or None")


# ---------------------------------------------------------------------------------------------
# Formulas.
# ---------------------------------------------------------------------------------------------
def ucb1_bound(means: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Auer et al. (2002), Theorem 1: 8 sum ln t / gap_a + (1 + pi^2/3) sum gap_a (UCB1, c = 2)."""
    g = gaps(means)
    sub = g[g > 0]
    t = np.asarray(t, np.float64)
    return 8.0 * np.log(t) * np.sum(1.0 / sub) + (1.0 + math.pi ** 2 / 3.0) * np.sum(sub)


def exp3_gamma(num_arms: int, horizon: int) -> float:
    """Corollary 3.2's exploration rate with g = T: min(1, sqrt(K ln K / ((e - 1) T)))."""
    return min(1.0, math.sqrt(num_arms * math.log(num_arms) / ((math.e - 1) * horizon)))


def exp3_bound(num_arms: int, t: np.ndarray, gamma: float) -> np.ndarray:
    """Auer et al. (2002b), Theorem 3.1 at round t: (e - 1) gamma t + K ln K / gamma.

    With ``gamma = exp3_gamma(K, T)`` this equals 2 sqrt(e - 1) sqrt(T K ln K) at t = T
    (Corollary 3.2) whenever that gamma is below 1.
    """
    t = np.asarray(t, np.float64)
    return (math.e - 1) * gamma * t + num_arms * math.log(num_arms) / gamma


def oful_radius(t: np.ndarray, d: int, regulariser: float, norm_bound: float, noise: float,
                delta: float, feature_bound: float = 1.0) -> np.ndarray:
    """sqrt(beta_t) = R sqrt(d ln((1 + t L^2 / lambda) / delta)) + sqrt(lambda) S.

    Abbasi-Yadkori et al. (2011), Theorem 2, with det(V_t) <= (lambda + t L^2 / d)^d (Lemma 10).
    """
    t = np.asarray(t, np.float64)
    return (noise * np.sqrt(d * np.log((1.0 + t * feature_bound ** 2 / regulariser) / delta))
            + math.sqrt(regulariser) * norm_bound)


def oful_bound(t: np.ndarray, d: int, regulariser: float, norm_bound: float, noise: float,
               delta: float, feature_bound: float = 1.0) -> np.ndarray:
    """Abbasi-Yadkori et al. (2011), Theorem 3 (holds with probability >= 1 - delta):

    4 sqrt(t d ln(lambda + t L / d)) (sqrt(lambda) S + R sqrt(2 ln(1/delta)
    + d ln(1 + t L / (lambda d)))).
    """
    t = np.asarray(t, np.float64)
    lam, L = regulariser, feature_bound
    width = math.sqrt(lam) * norm_bound + noise * np.sqrt(
        2.0 * math.log(1.0 / delta) + d * np.log(1.0 + t * L / (lam * d)))
    return 4.0 * np.sqrt(t * d * np.log(lam + t * L / d)) * width


# ---------------------------------------------------------------------------------------------
# Upper bounds as learners declare them: (problem, hparams, t) -> (name, curve) or None.
# ---------------------------------------------------------------------------------------------
def _unit_interval_karmed(problem: Problem) -> bool:
    return problem.family in UNIT_INTERVAL_FAMILIES and bool(problem.means)


def ucb1_upper(problem: Problem, hparams: Mapping[str, Any], t: np.ndarray):
    """UCB1 with c = 2 on [0, 1] rewards (Auer et al. 2002, Thm 1), plus Joulani et al.
    (2013)'s additive term E[tau] sum gaps when feedback is delayed."""
    if not _unit_interval_karmed(problem) or abs(float(hparams.get("c", 2.0)) - 2.0) >= 1e-9:
        return None
    curve = np.mean([ucb1_bound(m, t) for m in problem.means], axis=0)
    if problem.mean_delay > 0:
        curve = curve + np.mean([delay_additive_term(m, problem.mean_delay)
                                 for m in problem.means])
        return "UCB1 + E[tau] sum gaps (Joulani+ 2013)", curve
    return "UCB1 (Auer+ 2002, Thm 1)", curve


def exp3_upper(problem: Problem, hparams: Mapping[str, Any], t: np.ndarray):
    """EXP3 on [0, 1] rewards at its gamma (Auer et al. 2002b, Thm 3.1)."""
    if not _unit_interval_karmed(problem):
        return None
    k = len(problem.means[0])
    gamma = float(hparams.get("gamma", exp3_gamma(k, problem.horizon)))
    return "EXP3 (Auer+ 2002b, Thm 3.1)", exp3_bound(k, t, gamma)


def oful_upper(problem: Problem, hparams: Mapping[str, Any], t: np.ndarray):
    """OFUL on a linear model (Abbasi-Yadkori et al. 2011, Thm 3) at its hyper-parameters."""
    if not problem.linear_model:
        return None
    curve = oful_bound(t, int(problem.settings.get("d", 8)),
                       float(hparams.get("regulariser", 1.0)),
                       float(hparams.get("norm_bound", 1.0)), float(hparams.get("noise", 0.1)),
                       float(hparams.get("delta", 0.05)))
    return "OFUL (Abbasi-Yadkori+ 2011, Thm 3)", curve

