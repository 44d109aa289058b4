"""Regret bounds: empirical checks of a results frame against the theory its classes declare.

Which theory applies is declared next to the code it is about (docs/design.md, "Layout"): an
environment declares its ``reward_family`` (a stochastic K-armed bandit with one-parameter arm
laws) and how its arm means are read (``known_arm_means``, ``arm_means``); a learner declares its
``theory`` (``bandits.theory.Theory``: the regret rate and, where a theorem gives one, the
finite-time upper bound). The formulas are in ``envs.theory`` (Lai and Robbins 1985, Theorem 2;
the minimax lower bound of Auer et al. 2002b, Theorem 5.1; Joulani et al. 2013's delay term)
and ``bandits.theory`` (UCB1: Auer, Cesa-Bianchi and Fischer 2002, Theorem 1; EXP3: Auer et al.
2002b, Theorem 3.1 and Corollary 3.2; OFUL: Abbasi-Yadkori, Pal and Szepesvari 2011, Theorems 2
and 3) and re-exported here. Nothing here names a learner or an environment.

Theory exponent per declared rate: logarithmic (on an environment with a ``reward_family``) the
local log-log slope of ln t over the fit window (it tends to 0 slowly); the others as
``bandits.theory.RATE_EXPONENTS`` says (sqrt: 1/2, linear: 1).
With delays, UCB1's declared upper curve adds Joulani, Gyorgy and Szepesvari (2013)'s additive
term E[tau] sum_a gap_a (constant 1, a documented heuristic constant, not a proven one), and
``delay_effect`` reports the measured extra regret beside it.

Empirical checks (``check_setting``, per learner setting of a results frame), with the fits of
``analysis.fits``:
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

Instance means: ``instance_means`` gives every run's arm means (and noise sigma): from the
settings where the environment's ``known_arm_means`` fixes them ('fixed' generators), otherwise
from the ``resampled`` frame that ``experiments.bounds_command`` builds by re-sampling every run's
instance exactly as the runner did (the config is built again and ``env.sample_params`` is
called with the same instance keys; nothing is simulated). This module never imports
``experiments``: it depends on results frames and declared metadata only.

``banditjax bounds DIR`` (experiments/bounds_command.py) prints the table per learner setting,
writes ``DIR/bounds.csv`` and draws ``DIR/bounds.png/.pdf`` (``analysis.bound_plots``: regret /
ln t with the Lai-Robbins constant, and log-log regret with the finite-time bounds overlaid).
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from analysis.fits import (BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, fraction_above,  # noqa: F401
                           fraction_under, last_decade, least_squares_slopes, log_constant,
                           mean_and_upper, regret_exponent)
from analysis.metrics import Z95, format_table
from bandits.theory import (RATE_EXPONENTS, Problem, exp3_bound, exp3_gamma,  # noqa: F401
                            oful_bound, oful_radius, ucb1_bound)
from envs.core import Environment
from envs.theory import (bernoulli_kl, delay_additive_term, gaps,  # noqa: F401
                         lai_robbins_constant, lai_robbins_curve, minimax_lower_bound)


# ---------------------------------------------------------------------------------------------
# Theory (the formulas live beside the declarations that choose them).
# ---------------------------------------------------------------------------------------------
def mean_delay(dist: str, law: Mapping[str, Any], window: float = math.inf,
               horizon: int = 10 ** 6) -> float:
    """E[min(D, W + 1, horizon)] of a delay law (``envs.delay.mean_delay``)."""
    from envs.delay import mean_delay as delay_law_mean

    return delay_law_mean(dist, law, window, horizon)


# ---------------------------------------------------------------------------------------------
# Instances of a results folder.
# ---------------------------------------------------------------------------------------------
def environment_class(name: str) -> type | None:
    """The registered environment class of a results frame's ``env`` column (None if unknown)."""
    import envs  # noqa: F401  (registers every environment)
    from envs.core import ENVS

    return ENVS.get(name, "env") if name in ENVS else None


def learner_class(name: str) -> type | None:
    """The registered learner class called ``name`` (None if unknown, e.g. a free label)."""
    import bandits  # noqa: F401  (registers every learner)
    from bandits.core import LEARNERS

    return LEARNERS.get(name, "learner") if name in LEARNERS else None


def _decode(value: Any) -> Any:
    """A results column value as the config gave it (vectors are stored as JSON lists)."""
    if isinstance(value, str) and value.startswith("["):
        return json.loads(value)
    return value


def prefixed(row: pd.Series, prefix: str) -> dict[str, Any]:
    """The ``prefix<name>`` columns of a row that hold a value, as {name: value}."""
    return {str(k)[len(prefix):]: _decode(v) for k, v in row.items()
            if str(k).startswith(prefix) and not _missing(v)}


def instance_means(frame: pd.DataFrame, resampled: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run: ``means`` (array of arm means) and ``sigma`` (Gaussian noise, else NaN).

    Read from the settings where the environment's ``known_arm_means`` fixes them (a 'fixed'
    generator); otherwise ``resampled`` must hold them (``experiments.bounds_command`` re-samples
    them from the folder's config). Empty when the environment declares no ``reward_family``
    (linear, dueling, ...).
    """
    runs = frame.drop_duplicates("run").set_index("run")
    env_cls = environment_class(str(runs["env"].iloc[0]))
    if env_cls is None or env_cls.reward_family is None:
        return pd.DataFrame(columns=["means", "sigma"])
    known = [env_cls.known_arm_means(prefixed(row, "env.")) for _, row in runs.iterrows()]
    if all(k is not None for k in known):
        return pd.DataFrame({"means": [np.asarray(k[0], np.float64) for k in known],
                             "sigma": [float(k[1]) for k in known]}, index=runs.index)
    if resampled is None:
        raise FileNotFoundError("random instances: the arm means must be re-sampled from the "
                                "results folder's config.toml (banditjax bounds DIR does it)")
    return resampled


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


def problem_of(row: pd.Series, t: np.ndarray, means: list[np.ndarray] | None) -> Problem:
    """What the declared theorems need about one setting's environment (``bandits.theory``)."""
    env_cls = environment_class(str(row["env"]))
    horizon = int(t.max())
    return Problem(family=None if env_cls is None else env_cls.reward_family, means=means,
                   linear_model=bool(env_cls is not None and env_cls.linear_model),
                   settings=prefixed(row, "env."), horizon=horizon,
                   mean_delay=setting_mean_delay(row, horizon))


def theory_curves(row: pd.Series, t: np.ndarray, means: list[np.ndarray] | None,
                  sigmas: list[float] | None) -> dict[str, Any]:
    """The theory that applies to one setting (its first row), averaged over its instances.

    The environment declares its ``reward_family`` (Lai-Robbins and minimax lower bounds), the
    learner its ``theory`` (rate and upper bound, ``bandits.theory.Theory``).
    Returns keys (each optional): 'lai_robbins' (constant), 'upper' (name, curve), 'lower'
    (name, curve), 'minimax' (curve), 'exponent' (the theory's log-log slope over the fit window).
    """
    problem = problem_of(row, t, means)
    cls = learner_class(_base_learner(row))
    theory = None if cls is None else cls.declared("theory")
    out: dict[str, Any] = {}
    mask = last_decade(t)
    if problem.family is not None and means:
        constants = [lai_robbins_constant(m, problem.family,
                                          1.0 if s is None or math.isnan(s) else s)
                     for m, s in zip(means, sigmas or [None] * len(means))]
        constant = float(np.mean(constants))
        out["lai_robbins"] = constant
        with np.errstate(divide="ignore"):
            out["lower"] = ("Lai-Robbins C ln t", lai_robbins_curve(constant, t))
        out["minimax"] = minimax_lower_bound(len(means[0]), t)
    if theory is None:
        return out
    if theory.upper is not None:
        upper = theory.upper(problem, prefixed(row, "hp."), t)
        if upper is not None:
            out["upper"] = upper
    if theory.rate == "logarithmic" and problem.family is not None:
        with np.errstate(divide="ignore"):
            out["exponent"] = float(least_squares_slopes(np.log(t[mask]),
                                                         np.log(np.log(t[mask]))))
    elif theory.rate in RATE_EXPONENTS:
        out["exponent"] = RATE_EXPONENTS[theory.rate]
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


def wrappers_of(columns) -> list[tuple[str, type]]:
    """(name, class) of every registered wrapper with ``env.<name>.*`` columns in a frame."""
    import envs  # noqa: F401  (registers every wrapper)
    from envs.core import WRAPPERS

    return [(name, cls) for name, cls in WRAPPERS.items()
            if any(str(c).startswith(f"env.{name}.") for c in columns)]


def setting_mean_delay(row: pd.Series, horizon: int) -> float:
    """The mean delay E[min(D, W + 1, T)] the setting's wrappers add (``feedback_delay``; 0
    without a wrapper)."""
    return float(sum(cls.feedback_delay(prefixed(row, f"env.{name}."), horizon)
                     for name, cls in wrappers_of(row.index)))


def delay_effect(table: pd.DataFrame, frame: pd.DataFrame,
                 instances: pd.DataFrame | None) -> pd.DataFrame:
    """Adds mean_delay, delay_cost (final regret minus that of the same learner and hp.* at
    mean delay 0) and delay_term (Joulani et al. 2013's E[tau] sum gaps) when a wrapper of the
    frame declares a ``feedback_delay``."""
    if not any(cls.feedback_delay is not Environment.feedback_delay
               for _, cls in wrappers_of(frame.columns)):
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


def bounds_table(frame: pd.DataFrame, instances: pd.DataFrame | None = None,
                 samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """The bounds table: one row per learner setting (columns: see the module docstring).

    instances: every run's arm means (``instance_means``; default: read from the settings)."""
    if instances is None:
        instances = instance_means(frame)
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
# The printed table (``banditjax bounds DIR``: experiments/bounds_command.py).
# ---------------------------------------------------------------------------------------------
SHOWN = ("setting", "runs", "horizon", "final_regret", "exponent", "exponent_lo", "exponent_hi",
         "theory_exponent", "lai_robbins", "log_constant", "log_constant_ratio",
         "log_constant_ratio_lo", "log_constant_ratio_hi", "upper_bound_final",
         "upper_bound_holds", "lower_bound_holds", "mean_delay", "delay_cost", "delay_term")


def printable(table: pd.DataFrame) -> str:
    """The columns worth reading, without those that are empty for every setting."""
    cols = [c for c in SHOWN if c in table and not table[c].isna().all()]
    return format_table(table[cols])
