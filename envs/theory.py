"""Problem-side regret theory: quantities fixed by a stochastic K-armed instance, not by a learner.

NumPy, float64, on the host; environments declare which of these apply to them
(``Environment.reward_family``, ``Environment.known_arm_means``) and ``analysis.bounds`` reads the
declarations (docs/design.md, "Layout": analysis depends on declared metadata, never on names).

- ``lai_robbins_constant``: Lai and Robbins (1985), "Asymptotically efficient adaptive allocation
  rules", Theorem 2 (one-parameter families; the Bernoulli and Gaussian forms as in Lattimore
  and Szepesvari 2020, Theorem 16.2 / eq. 16.3): every consistent policy has
  liminf R_T / ln T >= C = sum over sub-optimal arms a of gap_a / KL(nu_a, nu*), with
  KL = kl(mu_a, mu*) (Bernoulli) or gap_a^2 / (2 sigma^2) (Gaussian, C = sum 2 sigma^2 / gap_a).
- ``minimax_lower_bound``: Auer, Cesa-Bianchi, Freund and Schapire (2002b), "The nonstochastic
  multiarmed bandit problem", Theorem 5.1: for every policy there is a K-armed instance with
  E[R_T] >= min(sqrt(K T), T) / 20 (a worst-case bound: an easy instance may lie below it).
- ``delay_additive_term``: Joulani, Gyorgy and Szepesvari (2013), "Online learning under delayed
  feedback", Table 1 / Theorem 6: in stochastic bandits, delays add (up to a constant) the term
  E[tau] * sum_a gap_a to the regret of the non-delayed algorithm. We use the constant 1 (a
  documented heuristic constant, not a proven one).
"""
from __future__ import annotations

import numpy as np

# The one-parameter families ``lai_robbins_constant`` knows (``Environment.reward_family``).
REWARD_FAMILIES = ("bernoulli", "gaussian")
# Families whose rewards lie in [0, 1] (the finite-time bounds of UCB1 and EXP3 assume it).
UNIT_INTERVAL_FAMILIES = ("bernoulli",)


def bernoulli_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """kl(p, q) = p ln(p/q) + (1-p) ln((1-p)/(1-q)), float64 (0 ln 0 = 0; inf at q = 0 or 1)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.where(p > 0, p * np.log(p / q), 0.0)
        second = np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - q)), 0.0)
    return first + second


def gaps(means: np.ndarray) -> np.ndarray:
    """mu* - mu_a for every arm (0 for the best ones)."""
    means = np.asarray(means, np.float64)
    return means.max() - means


def lai_robbins_constant(means: np.ndarray, family: str = "bernoulli",
                         sigma: float = 1.0) -> float:
    """C = sum over sub-optimal arms of gap_a / KL(nu_a, nu*) (Lai and Robbins 1985, Thm 2).

    family 'bernoulli': KL = kl(mu_a, mu*); 'gaussian' (known variance sigma^2):
    KL = gap_a^2 / (2 sigma^2). The regret of a consistent policy is at least (C + o(1)) ln T.
    """
    means = np.asarray(means, np.float64)
    g = gaps(means)
    sub = g > 0
    if not np.any(sub):
        return 0.0
    if family == "bernoulli":
        kl = bernoulli_kl(means[sub], means.max())
    elif family == "gaussian":
        kl = g[sub] ** 2 / (2.0 * float(sigma) ** 2)
    else:
        raise ValueError(f"family = {family!r}: expected one of {REWARD_FAMILIES}")
    return float(np.sum(g[sub] / kl))


def lai_robbins_curve(constant: float, t: np.ndarray) -> np.ndarray:
    """The asymptotic lower-bound line C ln t."""
    return constant * np.log(np.asarray(t, np.float64))


def minimax_lower_bound(num_arms: int, t: np.ndarray) -> np.ndarray:
    """Auer et al. (2002b), Theorem 5.1: min(sqrt(K t), t) / 20."""
    t = np.asarray(t, np.float64)
    return np.minimum(np.sqrt(num_arms * t), t) / 20.0


def delay_additive_term(means: np.ndarray, delay: float) -> float:
    """Joulani et al. (2013), Table 1: delays add O(E[tau] sum_a gap_a); here the constant is 1."""
    return float(delay) * float(np.sum(gaps(means)))
