"""Regret bounds: theory curves, and empirical checks of a results folder against them.

Theory (each a function of the instance and the round/horizon t, float64, NumPy):
- ``lai_robbins_constant``: Lai and Robbins (1985), "Asymptotically efficient adaptive allocation
  rules", Theorem 2 (one-parameter families; the Bernoulli and Gaussian forms as in Lattimore
  and Szepesvari 2020, Theorem 16.2 / eq. 16.3): every consistent policy has
  liminf R_T / ln T >= C = sum over sub-optimal arms a of gap_a / KL(nu_a, nu*), with
  KL = kl(mu_a, mu*) (Bernoulli) or gap_a^2 / (2 sigma^2) (Gaussian, C = sum 2 sigma^2 / gap_a).
- ``ucb1_bound``: Auer, Cesa-Bianchi and Fischer (2002), "Finite-time analysis of the
  multiarmed bandit problem", Theorem 1 (UCB1 with c = 2, rewards in [0, 1]):
  E[R_n] <= 8 sum_{a: gap_a > 0} ln n / gap_a + (1 + pi^2 / 3) sum_a gap_a, for every n.
- ``exp3_bound``: Auer, Cesa-Bianchi, Freund and Schapire (2002b), "The nonstochastic multiarmed
  bandit problem", Theorem 3.1: for gamma in (0, 1], G_max - E[G_Exp3] <= (e - 1) gamma G_max
  + K ln K / gamma; with G_max <= t this holds at every round t for a fixed gamma, and with
  Corollary 3.2's gamma = min(1, sqrt(K ln K / ((e - 1) T))) it is 2 sqrt(e - 1) sqrt(T K ln K)
  at t = T. Pseudo-regret <= expected regret, so it bounds the runner's ``regret`` column.
- ``minimax_lower_bound``: Auer et al. (2002b), Theorem 5.1: for every policy there is a K-armed
  instance with E[R_T] >= min(sqrt(K T), T) / 20 (a worst-case bound: an easy instance may lie
  below it).
- ``oful_radius`` / ``oful_bound``: Abbasi-Yadkori, Pal and Szepesvari (2011), "Improved
  algorithms for linear stochastic bandits", Theorem 2 (the confidence radius
  sqrt(beta_t) = R sqrt(d ln((1 + t L^2 / lambda) / delta)) + sqrt(lambda) S, with the
  determinant bound of their Lemma 10) and Theorem 3 (with probability >= 1 - delta,
  R_T <= 4 sqrt(T d ln(lambda + T L / d)) (sqrt(lambda) S + R sqrt(2 ln(1/delta)
  + d ln(1 + T L / (lambda d))))), for ||x|| <= L, ||theta|| <= S, R-sub-Gaussian noise.
- ``delay_additive_term``: Joulani, Gyorgy and Szepesvari (2013), "Online learning under delayed
  feedback", Table 1 / Theorem 6: in stochastic bandits, delays add (up to a constant) the term
  E[tau] * sum_a gap_a to the regret of the non-delayed algorithm (not multiplicatively). We
  use the constant 1: for delayed UCB1 runs the upper curve is UCB1's bound plus this term
  (a documented heuristic constant, not a proven one), and ``delay_effect`` reports the measured
  extra regret beside it.

Empirical checks (``check_setting``, per learner setting of a results frame):
- regret exponent: least-squares slope of log(mean regret) against log t over the last decade of
  recorded rounds (t >= t_max / 10), with a percentile bootstrap interval over runs (the runs of
  a setting are resampled with replacement; ``BOOTSTRAP_SEED`` fixes the resampling);
- logarithmic constant: least-squares slope of mean regret against ln t over the same window,
  divided by the Lai-Robbins constant (averaged over the runs' instances), with its interval;
- bound validity: the fraction of recorded rounds where the upper 95% confidence limit of the
  mean regret lies under a finite-time upper bound (UCB1 with c = 2, EXP3, OFUL) and where the
  mean lies above a lower bound (the Lai-Robbins line C ln t, an asymptotic bound, so a fraction
  below 1 at small t is no contradiction);
- delayed runs (``delay_effect``): final regret with delay minus without (a setting of the same
  learner with mean delay 0 in the same folder), against the mean delay and the additive term.

Instance means: ``instance_means`` gives every run's arm means (and noise sigma). For
``generator = 'fixed'`` they are read from the ``env.means`` column; for random generators they
are re-sampled exactly as the runner did, from the folder's ``config.toml``: the config is built
again (``experiments.config.build``, which derives the same instance keys with ``derive_keys``)
and ``env.sample_params(instance_key, settings)`` is called for every run. Nothing is simulated.

``banditjax bounds DIR`` prints the table per learner setting, writes ``DIR/bounds.csv`` and draws
``DIR/bounds.png/.pdf`` (regret / ln t with the Lai-Robbins constant, and log-log regret with the
finite-time bounds overlaid).
"""
from __future__ import annotations

import argparse
import json
import math
import tomllib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from analysis.metrics import Z95, format_table

BOOTSTRAP_SEED = 20240611
BOOTSTRAP_SAMPLES = 1000
MAB_ENVS = ("bernoulli", "gaussian")
# Learners whose regret on a stochastic K-armed instance grows like C ln t (the theory exponent is
# then the local log-log slope of ln t over the fit window, which tends to 0 slowly).
LOGARITHMIC_LEARNERS = ("ucb1", "klucb", "thompson", "gaussian_thompson", "moss", "ucb_v",
                        "successive_elimination")
# Learners with a sqrt(T) (up to logs) worst-case regret: exponent 1/2.
SQRT_LEARNERS = ("exp3", "exp3_ix", "linucb", "linucb_shared", "lints", "oful", "glm_ucb",
                 "linear_epsilon_greedy", "ldb_df", "ndb_df", "colstim", "maxinp",
                 "linear_dueling_ucb", "linear_dueling_ts", "neural_ucb", "neural_ts",
                 "neural_linear", "neural_dueling_ucb", "neural_dueling_ts")
LINEAR_ENVS = ("linear",)


# ---------------------------------------------------------------------------------------------
# Theory.
# ---------------------------------------------------------------------------------------------
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
        raise ValueError(f"family = {family!r}: expected 'bernoulli' or 'gaussian'")
    return float(np.sum(g[sub] / kl))


def lai_robbins_curve(constant: float, t: np.ndarray) -> np.ndarray:
    """The asymptotic lower-bound line C ln t."""
    return constant * np.log(np.asarray(t, np.float64))


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


def minimax_lower_bound(num_arms: int, t: np.ndarray) -> np.ndarray:
    """Auer et al. (2002b), Theorem 5.1: min(sqrt(K t), t) / 20."""
    t = np.asarray(t, np.float64)
    return np.minimum(np.sqrt(num_arms * t), t) / 20.0


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


def delay_additive_term(means: np.ndarray, delay: float) -> float:
    """Joulani et al. (2013), Table 1: delays add O(E[tau] sum_a gap_a); here the constant is 1."""
    return float(delay) * float(np.sum(gaps(means)))


def mean_delay(dist: str, law: Mapping[str, Any], window: float = math.inf,
               horizon: int = 10 ** 6) -> float:
    """E[min(D, W + 1, horizon)] = sum_{k < min(W + 1, horizon)} P(D > k) of a delay law
    (``envs.delay.delay_cdf``; float64 sum on the host)."""
    import jax.numpy as jnp

    from envs.delay import DelayLaw, delay_cdf

    last = int(min(window, horizon - 1)) if math.isfinite(window) else horizon - 1
    ks = np.arange(0, max(1, last + 1))
    cdf = np.asarray(delay_cdf(dist, DelayLaw.from_settings(dict(law)),
                               jnp.asarray(ks, jnp.float32)), np.float64)
    return float(np.sum(1.0 - cdf))


# ---------------------------------------------------------------------------------------------
# Fits and intervals.
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# Instances of a results folder.
# ---------------------------------------------------------------------------------------------
def _params_means(params: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(means [R, K], sigma [R]) from a batch of params (looking through wrappers' ``inner``)."""
    while params is not None and not hasattr(params, "means") and hasattr(params, "inner"):
        params = params.inner
    if params is None or not hasattr(params, "means"):
        return None, None
    sigma = getattr(params, "sigma", None)
    return np.asarray(params.means, np.float64), (
        None if sigma is None else np.asarray(sigma, np.float64))


def instance_means(frame: pd.DataFrame, folder: Path | None = None) -> pd.DataFrame:
    """One row per run: ``means`` (array of arm means) and ``sigma`` (Gaussian noise, else NaN).

    'fixed' instances come from the ``env.means`` column; other generators are re-sampled from
    ``folder/config.toml`` with the runner's instance keys (see the module docstring). Returns an
    empty frame when the environment has no arm means (linear, dueling, ...).
    """
    runs = frame.drop_duplicates("run").set_index("run")
    if runs["env"].iloc[0] not in MAB_ENVS:
        return pd.DataFrame(columns=["means", "sigma"])
    sigma = runs["env.sigma"].astype(float) if "env.sigma" in runs else pd.Series(
        math.nan, index=runs.index)
    if "env.generator" in runs and (runs["env.generator"] == "fixed").all():
        means = runs["env.means"].map(lambda s: np.asarray(json.loads(s), np.float64))
        return pd.DataFrame({"means": means, "sigma": sigma})
    if folder is None or not (Path(folder) / "config.toml").exists():
        raise FileNotFoundError("random instances: the results folder's config.toml is needed "
                                "to re-sample the arm means")
    return resample_instance_means(Path(folder) / "config.toml")


def resample_instance_means(config_path: Path) -> pd.DataFrame:
    """Re-samples every run's instance from a resolved config (no simulation)."""
    import jax

    from experiments import config as config_lib

    experiment = config_lib.build(tomllib.loads(Path(config_path).read_text()))
    rows = []
    for group in experiment.groups:
        params = jax.vmap(group.env.sample_params)(group.instance_keys, group.env_settings)
        means, sigma = _params_means(params)
        if means is None:
            continue
        for i, run in enumerate(group.runs["run"].to_numpy()):
            rows.append((int(run), means[i], math.nan if sigma is None else float(
                np.broadcast_to(sigma, (len(means),))[i])))
    return pd.DataFrame(rows, columns=["run", "means", "sigma"]).set_index("run")


# ---------------------------------------------------------------------------------------------
# Checks per learner setting.
# ---------------------------------------------------------------------------------------------
def regret_curves(part: pd.DataFrame, metric: str = "regret") -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """(t [P], curves [runs, P], run ids [runs]) of one setting's rows."""
    table = part.pivot_table(index="run", columns="t", values=metric, aggfunc="first")
    table = table.dropna(axis=1)
    return (table.columns.to_numpy(np.float64), table.to_numpy(np.float64),
            table.index.to_numpy())


def _hp(row: pd.Series, name: str, default: Any = None) -> Any:
    value = row.get(f"hp.{name}", default)
    return default if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _env(row: pd.Series, name: str, default: Any = None) -> Any:
    value = row.get(f"env.{name}", default)
    return default if value is None or (isinstance(value, float) and math.isnan(value)) else value


def theory_curves(row: pd.Series, t: np.ndarray, means: list[np.ndarray] | None,
                  sigmas: list[float] | None) -> dict[str, Any]:
    """The theory that applies to one setting (its first row), averaged over its instances.

    Returns keys (each optional): 'lai_robbins' (constant), 'upper' (name, curve), 'lower'
    (name, curve), 'minimax' (curve), 'exponent' (the theory's log-log slope over the fit window).
    """
    learner_name = _base_learner(row)
    env = row["env"]
    out: dict[str, Any] = {}
    horizon = int(t.max())
    mask = last_decade(t)
    if env in MAB_ENVS and means:
        family = "bernoulli" if env == "bernoulli" else "gaussian"
        constants = [lai_robbins_constant(m, family, 1.0 if s is None or math.isnan(s) else s)
                     for m, s in zip(means, sigmas or [None] * len(means))]
        constant = float(np.mean(constants))
        out["lai_robbins"] = constant
        with np.errstate(divide="ignore"):
            out["lower"] = ("Lai-Robbins C ln t", lai_robbins_curve(constant, t))
        k = len(means[0])
        out["minimax"] = minimax_lower_bound(k, t)
        if learner_name == "ucb1" and abs(float(_hp(row, "c", 2.0)) - 2.0) < 1e-9 \
                and env == "bernoulli":
            curve = np.mean([ucb1_bound(m, t) for m in means], axis=0)
            delay = setting_mean_delay(row, horizon)
            if delay > 0:
                curve = curve + np.mean([delay_additive_term(m, delay) for m in means])
                out["upper"] = ("UCB1 + E[tau] sum gaps (Joulani+ 2013)", curve)
            else:
                out["upper"] = ("UCB1 (Auer+ 2002, Thm 1)", curve)
        if learner_name == "exp3" and env == "bernoulli":
            gamma = float(_hp(row, "gamma", exp3_gamma(k, horizon)))
            out["upper"] = ("EXP3 (Auer+ 2002b, Thm 3.1)", exp3_bound(k, t, gamma))
    if env in LINEAR_ENVS and learner_name == "oful":
        d = int(_env(row, "d", 8))
        curve = oful_bound(t, d, float(_hp(row, "regulariser", 1.0)),
                           float(_hp(row, "norm_bound", 1.0)), float(_hp(row, "noise", 0.1)),
                           float(_hp(row, "delta", 0.05)))
        out["upper"] = ("OFUL (Abbasi-Yadkori+ 2011, Thm 3)", curve)
    if learner_name in LOGARITHMIC_LEARNERS and env in MAB_ENVS:
        with np.errstate(divide="ignore"):
            out["exponent"] = float(least_squares_slopes(np.log(t[mask]),
                                                         np.log(np.log(t[mask]))))
    elif learner_name in SQRT_LEARNERS:
        out["exponent"] = 0.5
    elif learner_name == "uniform":
        out["exponent"] = 1.0
    return out


def _base_learner(row: pd.Series) -> str:
    """The registry name of a setting's learner (the label may differ: read it from the config
    when the results carry a ``learner_name`` column, else use the label)."""
    return str(row.get("learner_name", row["learner"]))


def check_setting(part: pd.DataFrame, instances: pd.DataFrame | None = None,
                  samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Every check for one learner setting (the rows of one ``setting``); see the docstring."""
    t, curves, run_ids = regret_curves(part)
    first = part.iloc[0]
    means = sigmas = None
    if instances is not None and len(instances):
        chosen = instances.loc[run_ids]
        means, sigmas = list(chosen["means"]), list(chosen["sigma"])
    theory = theory_curves(first, t, means, sigmas)
    exponent, exp_lo, exp_hi = regret_exponent(t, curves, samples, seed)
    mean, upper = mean_and_upper(curves)
    row: dict[str, Any] = {"runs": curves.shape[0], "horizon": int(t.max()),
                           "final_regret": float(mean[-1]),
                           "final_regret_se": float((upper[-1] - mean[-1]) / Z95),
                           "exponent": exponent, "exponent_lo": exp_lo, "exponent_hi": exp_hi,
                           "theory_exponent": theory.get("exponent", math.nan)}
    slope, slope_lo, slope_hi = log_constant(t, curves, samples, seed)
    row.update(log_constant=slope, log_constant_lo=slope_lo, log_constant_hi=slope_hi)
    constant = theory.get("lai_robbins")
    row["lai_robbins"] = math.nan if constant is None else constant
    if constant:
        row.update(log_constant_ratio=slope / constant, log_constant_ratio_lo=slope_lo / constant,
                   log_constant_ratio_hi=slope_hi / constant)
    else:
        row.update(log_constant_ratio=math.nan, log_constant_ratio_lo=math.nan,
                   log_constant_ratio_hi=math.nan)
    if "upper" in theory:
        name, curve = theory["upper"]
        row.update(upper_bound=name, upper_bound_final=float(curve[-1]),
                   upper_bound_holds=fraction_under(upper, curve))
    else:
        row.update(upper_bound="", upper_bound_final=math.nan, upper_bound_holds=math.nan)
    if "lower" in theory:
        name, curve = theory["lower"]
        valid = t >= 2
        row.update(lower_bound=name, lower_bound_holds=fraction_above(mean[valid], curve[valid]))
    else:
        row.update(lower_bound="", lower_bound_holds=math.nan)
    return row


def setting_mean_delay(row: pd.Series, horizon: int) -> float:
    """The mean delay E[min(D, W + 1, T)] of a setting's [env.delay] law (0 without a wrapper)."""
    if _missing(row.get("env.delay.dist")):
        return 0.0
    law = {k[len("env.delay."):]: v for k, v in row.items()
           if str(k).startswith("env.delay.") and not _missing(v)}
    window = float(law.pop("window", math.inf))
    dist = law.pop("dist")
    numeric = {k: v for k, v in law.items() if isinstance(v, (int, float, np.number))
               and not isinstance(v, bool) and k not in ("capacity", "batch")}
    return mean_delay(dist, numeric, window, horizon)


def delay_effect(table: pd.DataFrame, frame: pd.DataFrame,
                 instances: pd.DataFrame | None) -> pd.DataFrame:
    """Adds mean_delay, delay_cost (final regret minus that of the same learner and hp.* at
    mean delay 0) and delay_term (Joulani et al. 2013's E[tau] sum gaps) for delayed results."""
    if "env.delay.dist" not in frame:
        return table
    runs = frame.drop_duplicates("run").set_index("run")
    horizon = int(frame["t"].max())
    delays = {setting: setting_mean_delay(part.iloc[0], horizon)
              for setting, part in runs.groupby("setting", sort=False)}
    table = table.copy()
    table["mean_delay"] = table["setting"].map(delays)
    hp_cols = [c for c in table.columns if c.startswith("hp.") and not c.startswith("hp.delay")]
    key = table[["learner"] + hp_cols].apply(lambda column: column.map(repr)).agg(
        "|".join, axis=1)
    cost, term = [], []
    for i, row in table.iterrows():
        base = table[(key == key[i]) & (table["mean_delay"] == 0)]
        cost.append(row["final_regret"] - base["final_regret"].iloc[0] if len(base) else math.nan)
        if instances is not None and len(instances):
            ids = runs.index[runs["setting"] == row["setting"]]
            term.append(float(np.mean([delay_additive_term(m, row["mean_delay"])
                                       for m in instances.loc[ids, "means"]])))
        else:
            term.append(math.nan)
    table["delay_cost"] = cost
    table["delay_term"] = term
    return table


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def bounds_table(frame: pd.DataFrame, folder: Path | None = None,
                 samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """The bounds table: one row per learner setting (columns: see the module docstring)."""
    instances = instance_means(frame, folder)
    hp_cols = [c for c in frame.columns if c.startswith("hp.")]
    env_cols = [c for c in frame.columns if c.startswith("env.")
                and frame[c].astype(str).nunique() > 1]
    rows = []
    for setting, part in frame.groupby("setting", sort=False):
        first = part.iloc[0]
        row = {"learner": first["learner"], "setting": setting}
        row.update({c: first[c] for c in hp_cols})
        row.update({c: first[c] for c in env_cols})
        row.update(check_setting(part, instances, samples, seed))
        rows.append(row)
    table = pd.DataFrame(rows)
    return delay_effect(table, frame, instances)


# ---------------------------------------------------------------------------------------------
# Figure.
# ---------------------------------------------------------------------------------------------
def plot_bounds(frame: pd.DataFrame, path: Path, folder: Path | None = None,
                instances: pd.DataFrame | None = None) -> list[Path]:
    """Two panels: regret / ln t (log t) with the Lai-Robbins constant, and log-log regret with
    the finite-time bounds (dotted, in the learner's colour) and the minimax lower bound."""
    import matplotlib.pyplot as plt

    from analysis.plotting import COLUMN_WIDTH, PAGE_WIDTH, apply_style, setting_styles

    apply_style()
    if instances is None:
        instances = instance_means(frame, folder)
    styles = setting_styles(frame)
    fig, (left, right) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, COLUMN_WIDTH * 0.95))
    drawn: set = set()
    for setting, part in frame.groupby("setting", sort=False):
        colour, style = styles[setting]
        t, curves, run_ids = regret_curves(part)
        mean, upper = mean_and_upper(curves)
        lower = 2 * mean - upper
        keep = t >= 3
        log_t = np.log(t[keep])
        left.plot(t[keep], mean[keep] / log_t, color=colour, linestyle=style, label=setting)
        left.fill_between(t[keep], lower[keep] / log_t, upper[keep] / log_t, color=colour,
                          alpha=0.18, linewidth=0)
        positive = mean > 0
        right.plot(t[positive], mean[positive], color=colour, linestyle=style, label=setting)
        right.fill_between(t[positive], np.maximum(lower[positive], 1e-12), upper[positive],
                           color=colour, alpha=0.18, linewidth=0)
        means = sigmas = None
        if len(instances):
            chosen = instances.loc[run_ids]
            means, sigmas = list(chosen["means"]), list(chosen["sigma"])
        theory = theory_curves(part.iloc[0], t, means, sigmas)
        constant = theory.get("lai_robbins")
        if constant and round(constant, 6) not in drawn:
            drawn.add(round(constant, 6))
            left.axhline(constant, color="black", linestyle="--", linewidth=0.9,
                         label=f"Lai-Robbins C = {constant:.3g}")
            right.plot(t[keep], lai_robbins_curve(constant, t[keep]), color="black",
                       linestyle="--", linewidth=0.9, label="Lai-Robbins C ln t")
        if "upper" in theory:
            name, curve = theory["upper"]
            right.plot(t, curve, color=colour, linestyle=":", linewidth=1.0, label=name)
        if "minimax" in theory and "minimax" not in drawn:
            drawn.add("minimax")
            right.plot(t, theory["minimax"], color="0.5", linestyle="-.", linewidth=0.8,
                       label=r"$\sqrt{Kt}/20$ (minimax)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("round $t$")
    left.set_ylabel(r"regret / $\ln t$")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("round $t$")
    right.set_ylabel("cumulative pseudo-regret")
    handles = {}
    for ax in (left, right):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.tight_layout(rect=(0, 0.12 + 0.02 * (len(handles) // 4), 1, 1))
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=4, fontsize=6)
    path = Path(path)
    fig.savefig(path)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return [path, path.with_suffix(".pdf")]


# ---------------------------------------------------------------------------------------------
# Command line: ``banditjax bounds DIR``.
# ---------------------------------------------------------------------------------------------
SHOWN = ("setting", "runs", "horizon", "final_regret", "exponent", "exponent_lo", "exponent_hi",
         "theory_exponent", "lai_robbins", "log_constant", "log_constant_ratio",
         "log_constant_ratio_lo", "log_constant_ratio_hi", "upper_bound_final",
         "upper_bound_holds", "lower_bound_holds", "mean_delay", "delay_cost", "delay_term")


def printable(table: pd.DataFrame) -> str:
    """The columns worth reading, without those that are empty for every setting."""
    cols = [c for c in SHOWN if c in table and not table[c].isna().all()]
    return format_table(table[cols])


def run_bounds(folder: Path, samples: int = BOOTSTRAP_SAMPLES, plot: bool = True) -> pd.DataFrame:
    """Reads DIR/results.parquet, writes DIR/bounds.csv (and bounds.png/.pdf); returns the table."""
    from envs.core import ConfigError
    from experiments.experiment import atomic_path

    folder = Path(folder)
    results = folder / "results.parquet"
    if not results.exists():
        raise ConfigError(f"{str(folder)!r} holds no results.parquet: run `banditjax run` first")
    frame = pd.read_parquet(results)
    frame = add_learner_names(frame, folder)
    table = bounds_table(frame, folder, samples)
    with atomic_path(folder / "bounds.csv") as tmp:
        table.to_csv(tmp, index=False)
    if plot:
        plot_bounds(frame, folder / "bounds.png", folder)
    return table


def add_learner_names(frame: pd.DataFrame, folder: Path | None) -> pd.DataFrame:
    """Adds ``learner_name`` (the registry name) when labels differ from it (from config.toml)."""
    if folder is None or not (Path(folder) / "config.toml").exists():
        return frame
    config = tomllib.loads((Path(folder) / "config.toml").read_text())
    names = {t.get("label", t.get("name")): t.get("name") for t in config.get("learner", [])}
    frame = frame.copy()
    frame["learner_name"] = frame["learner"].map(lambda label: names.get(label, label))
    return frame


def _cmd_bounds(args: argparse.Namespace) -> int:
    table = run_bounds(Path(args.dir), samples=args.bootstrap, plot=not args.no_plot)
    print(printable(table))
    print()
    print(f"table:  {Path(args.dir) / 'bounds.csv'}")
    if not args.no_plot:
        print(f"figure: {Path(args.dir) / 'bounds.png'}")
    return 0


def register_command(subparsers: Any) -> None:
    """Adds ``banditjax bounds DIR`` (picked up by experiments.cli)."""
    parser = subparsers.add_parser(
        "bounds", help="regret exponents, log constants and bound checks of a results folder")
    parser.add_argument("dir", help="a folder written by `banditjax run`")
    parser.add_argument("--bootstrap", type=int, default=BOOTSTRAP_SAMPLES,
                        help=f"bootstrap resamples over runs (default {BOOTSTRAP_SAMPLES})")
    parser.add_argument("--no-plot", action="store_true", help="skip bounds.png/.pdf")
    parser.set_defaults(func=_cmd_bounds)
