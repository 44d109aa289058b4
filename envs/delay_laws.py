"""Delay laws: the distributions of feedback delays, their CDFs and sampling, and the settings
that declare them.

Shared by the delay wrapper (``envs.delay.Delayed``, which draws the delays) and by learners
that are told the law and weight what has arrived by its probability (``bandits.dueling``'s
LDB-DF / NDB-DF, the inverse-probability-weighted learners), so that neither layer imports the
other's module (docs/design.md, "Layout": ``envs`` <- ``bandits``). The model is that of
Joulani, Gyorgy and Szepesvari (2013, "Online learning under delayed feedback", sec. 2), with the
censoring window of Vernade, Cappe and Perchet (2017) and Vernade et al. (2020, sec. 2).

Delay distributions (``dist``; all on the integers 0, 1, 2, ...):
- ``fixed``: D = d.
- ``geometric``: P(D = k) = (1 - q) q^k with q = mean / (1 + mean), so E[D] = mean; mean = 0 is
  no delay.
- ``uniform``: D uniform on {lo, ..., hi}.
- ``pareto``: heavy tailed, the floor of a Lomax (Pareto type II) variable:
  P(D >= k) = (1 + k / scale)^(-alpha); infinite mean when alpha <= 1.
- ``poisson``: D ~ Poisson(mean).
``delay_cdf(dist, law, k)`` is P(D <= k) for each of them (a pure function, used by the
inverse-probability-weighted learners; ``arrival_probability`` adds the window and the outcome).

Outcome-dependent delays: every parameter p has an optional ``p_negative`` used for items whose
reward is <= 0 (dueling: the second arm won); ``p`` itself is then the positive-outcome value.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.scipy.special import gammaincc

from envs.core import Array, ConfigError, Setting

DISTRIBUTIONS = ("fixed", "geometric", "uniform", "pareto", "poisson")
LAW_PARAMETERS = ("d", "mean", "lo", "hi", "alpha", "scale")
NEGATIVE_SUFFIX = "_negative"
MAX_DELAY = 2 ** 30              # delays are clipped here (int32-safe; "never" in practice)


# ---------------------------------------------------------------------------------------------
# Distributions: parameters, CDF, sampling.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class DelayLaw:
    """Parameters of one delay distribution (float32 scalars; which are used depends on dist)."""

    d: Array = 0.0         # fixed
    mean: Array = 10.0     # geometric, poisson
    lo: Array = 0.0        # uniform
    hi: Array = 10.0       # uniform
    alpha: Array = 1.5     # pareto
    scale: Array = 10.0    # pareto

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], suffix: str = "") -> "DelayLaw":
        """From a dict of settings; ``suffix = "_negative"`` reads the negative-outcome values,
        falling back to the positive ones, then to the defaults, for missing or None entries."""
        values = {}
        for name in LAW_PARAMETERS:
            value = settings.get(name + suffix) if suffix else None
            if value is None:
                value = settings.get(name)
            if value is None:
                value = getattr(cls, name)
            values[name] = jnp.asarray(value, jnp.float32)
        return cls(**values)


@struct.dataclass
class DelayParams:
    """The delay model of one run: laws for positive and negative outcomes and the window."""

    positive: DelayLaw
    negative: DelayLaw
    window: Array          # float32; inf = never censored (the buffer still bounds it)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "DelayParams":
        window = settings.get("window")
        return cls(positive=DelayLaw.from_settings(settings),
                   negative=DelayLaw.from_settings(settings, NEGATIVE_SUFFIX),
                   window=jnp.asarray(jnp.inf if window is None else window, jnp.float32))

    def law(self, positive: Array) -> DelayLaw:
        """The law of an item with outcome ``positive`` (a bool scalar)."""
        return jax.tree_util.tree_map(lambda p, n: jnp.where(positive, p, n),
                                      self.positive, self.negative)


def check_dist(dist: str) -> None:
    if dist not in DISTRIBUTIONS:
        raise ConfigError(f"delay dist = {dist!r}: expected one of {', '.join(DISTRIBUTIONS)}")


def delay_cdf(dist: str, law: DelayLaw, k: Array) -> Array:
    """P(D <= k) for the delay distribution ``dist`` with parameters ``law``.

    Pure and jittable; ``k`` may be any real array (it is floored; k < 0 gives 0, k = inf 1).
    ``dist`` is static (a Python string), the parameters broadcast against ``k``.
    """
    check_dist(dist)
    k = jnp.asarray(k, jnp.float32)
    whole = jnp.floor(jnp.clip(k, -1.0, float(MAX_DELAY)))    # inf -> 2^30, < 0 -> -1
    if dist == "fixed":
        cdf = (whole >= jnp.round(law.d)).astype(jnp.float32)
    elif dist == "geometric":
        cdf = -jnp.expm1((whole + 1.0) * _log_q(law.mean))
    elif dist == "uniform":
        lo, hi = jnp.round(law.lo), jnp.round(law.hi)
        cdf = jnp.clip((whole - lo + 1.0) / (hi - lo + 1.0), 0.0, 1.0)
    elif dist == "pareto":
        cdf = 1.0 - jnp.power(1.0 + (whole + 1.0) / law.scale, -law.alpha)
    else:  # poisson: P(D <= k) = Q(k + 1, mean), the regularised upper incomplete gamma
        cdf = gammaincc(whole + 1.0, jnp.broadcast_to(law.mean, whole.shape))
        cdf = jnp.where(law.mean > 0, cdf, 1.0)
    cdf = jnp.where(jnp.isposinf(k), 1.0, cdf)
    return jnp.where(k < 0, 0.0, cdf).astype(jnp.float32)


def arrival_probability(dist: str, params: DelayParams, elapsed: Array, positive: Array) -> Array:
    """P(an item with outcome ``positive`` has arrived ``elapsed`` rounds after it was made).

    = P(D <= min(elapsed, W)) under the outcome's law: the weight denominator of
    inverse-probability weighting (buffer drops, a capacity effect, are not included).
    ``positive`` is a bool array broadcasting with ``elapsed``.
    """
    elapsed = jnp.minimum(jnp.asarray(elapsed, jnp.float32), params.window)
    return jnp.where(positive, delay_cdf(dist, params.positive, elapsed),
                     delay_cdf(dist, params.negative, elapsed))


def sample_delay(dist: str, key: Array, law: DelayLaw) -> Array:
    """One delay (an int32 scalar >= 0) by inversion of one uniform (Poisson: JAX's sampler)."""
    check_dist(dist)
    if dist == "poisson":
        return jnp.minimum(jax.random.poisson(key, law.mean), MAX_DELAY).astype(jnp.int32)
    u = 1.0 - jax.random.uniform(key)                          # in (0, 1]
    if dist == "fixed":
        value = jnp.round(law.d)
    elif dist == "geometric":
        value = jnp.floor(jnp.log(u) / _log_q(law.mean))       # P(D >= k) = q^k; q = 0: D = 0
    elif dist == "uniform":
        lo, hi = jnp.round(law.lo), jnp.round(law.hi)
        value = jnp.minimum(lo + jnp.floor((1.0 - u) * (hi - lo + 1.0)), hi)
    else:  # pareto (Lomax): P(D >= k) = P(u <= (1 + k / scale)^-alpha)
        value = jnp.floor(law.scale * (jnp.power(u, -1.0 / law.alpha) - 1.0))
    value = jnp.nan_to_num(jnp.maximum(value, 0.0), nan=0.0, posinf=float(MAX_DELAY))
    return jnp.minimum(value, float(MAX_DELAY)).astype(jnp.int32)


def _log_q(mean: Array) -> Array:
    """log q = log(mean / (1 + mean)) of the geometric law, accurate for long delays (-inf at 0)."""
    return -jnp.log1p(1.0 / mean)


# ---------------------------------------------------------------------------------------------
# Settings that declare a law (the wrapper's and a delay-aware learner's), and its mean.
# ---------------------------------------------------------------------------------------------
def delay_settings() -> tuple[Setting, ...]:
    """The distribution settings (dist and its parameters, with the negative-outcome variants),
    shared by the wrapper and by learners that are told the delay law (e.g. LDB-DF, known)."""
    base = (
        Setting("d", 0, "fixed: the delay in rounds", kind=int, low=0),
        Setting("mean", 10.0, "geometric and poisson: the mean delay", low=0.0),
        Setting("lo", 0, "uniform: smallest delay", kind=int, low=0),
        Setting("hi", 10, "uniform: largest delay", kind=int, low=0),
        Setting("alpha", 1.5, "pareto: tail index (P(D >= k) = (1 + k/scale)^-alpha)",
                low=0.0, low_open=True),
        Setting("scale", 10.0, "pareto: scale in rounds", low=0.0, low_open=True),
    )
    negative = tuple(dataclasses.replace(
        s, name=s.name + NEGATIVE_SUFFIX, default=None, optional=True,
        doc=s.doc + " -- for negative outcomes (reward <= 0; dueling: the second arm won); "
        "default: as for positive ones") for s in base)
    return (Setting("dist", "geometric", "delay distribution: " + ", ".join(DISTRIBUTIONS),
                    kind=str, static=True, choices=DISTRIBUTIONS),) + base + negative


def check_delay_values(values: Mapping[str, Any], where: str) -> None:
    """Cross-field checks of ``delay_settings`` values (uniform: lo <= hi for both outcomes)."""
    if values.get("dist") != "uniform":
        return
    for suffix in ("", NEGATIVE_SUFFIX):
        lo = values.get("lo" + suffix)
        hi = values.get("hi" + suffix)
        lo = values["lo"] if lo is None else lo
        hi = values["hi"] if hi is None else hi
        if lo > hi:
            raise ConfigError(f"{where}.lo{suffix} = {lo} is above hi{suffix} = {hi}: a uniform "
                              f"delay needs lo <= hi")


def mean_delay(dist: str, law: Mapping[str, Any], window: float = math.inf,
               horizon: int = 10 ** 6) -> float:
    """E[min(D, W + 1, horizon)] = sum_{k < min(W + 1, horizon)} P(D > k) of a delay law
    (``delay_cdf``; float64 sum on the host)."""
    last = int(min(window, horizon - 1)) if math.isfinite(window) else horizon - 1
    ks = np.arange(0, max(1, last + 1))
    cdf = np.asarray(delay_cdf(dist, DelayLaw.from_settings(dict(law)),
                               jnp.asarray(ks, jnp.float32)), np.float64)
    return float(np.sum(1.0 - cdf))
