"""Cumulative regret normalised to the baseline policy, the summary of Riquelme, Tucker and Snoek
(2018), "Deep Bayesian Bandits Showdown", sec. 6 and tables 2-3 ("cumulative regret ...
normalised with respect to the performance of Uniform").

For every environment setting (the combination of the frame's ``env.*`` columns) and every
learner setting, with R_L the final cumulative regret of one run of the learner and R_U of one
run of the baseline (the learner whose class declares ``role = "baseline"``, ``Learner.role``:
the uniform policy) in the same environment setting:

    normalised = mean(R_L) / mean(R_U),

with a 95% interval from the delta method for a ratio of two means,

    se = normalised * sqrt(sd(R_L)^2 / (n_L mean(R_L)^2) + sd(R_U)^2 / (n_U mean(R_U)^2)),
    normalised +- 1.96 se,

which treats the two samples as independent. With common random numbers (docs/design.md,
"Random numbers": the learner and the baseline face the same contexts and noise run by run) the
two means are positively correlated, which makes this interval conservative (too wide, never
too narrow). The baseline's own row is 1 by definition (interval [1, 1]).

The frame is a tidy results frame (``analysis/metrics.py``): columns ``learner``, ``setting``
(``"<learner setting> | <environment part>"``), ``run``, ``t``, ``regret`` and ``env.*``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.metrics import Z95, final_rows
from analysis.routing import learner_role, router_name

BASELINE = "baseline"   # the ``Learner.role`` of the policy the regret is normalised to


def environment_columns(frame: pd.DataFrame) -> list[str]:
    """The ``env.*`` columns whose value differs between runs (what tells settings apart)."""
    columns = [c for c in frame.columns if str(c).startswith("env.")]
    return [c for c in columns if frame[c].astype(str).nunique() > 1]


def environment_label(row: pd.Series, columns: list[str]) -> str:
    """'delta=0.5' (the varying settings, without the 'env.' prefix); 'all' when none vary."""
    parts = [f"{c[len('env.'):]}={_format(row[c])}" for c in columns]
    return ", ".join(parts) if parts else "all"


def _format(value) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def normalised_regret(frame: pd.DataFrame, metric: str = "regret", z: float = Z95
                      ) -> pd.DataFrame:
    """Final ``metric`` per (environment setting, learner setting), divided by the baseline's.

    Columns: environment (label), learner, setting (the learner part of the setting label),
    runs, regret (mean final value), normalised, lower, upper. Raises ValueError when an
    environment setting has no baseline runs, or more than one baseline setting.
    """
    final = final_rows(frame).copy()
    env_columns = environment_columns(final)
    final["environment"] = [environment_label(row, env_columns)
                            for _, row in final[env_columns].iterrows()] if env_columns else "all"
    final["learner_setting"] = final["setting"].map(router_name)
    roles = {name: learner_role(name) for name in final["learner"].unique()}
    final["is_baseline"] = final["learner"].map(roles).eq(BASELINE)
    rows = []
    for environment, part in final.groupby("environment", sort=False):
        baseline = part[part["is_baseline"]]
        settings = baseline["learner_setting"].unique()
        if len(settings) != 1:
            found = "no" if len(settings) == 0 else f"{len(settings)}"
            raise ValueError(f"environment setting {environment!r}: {found} baseline settings "
                             f"(a learner declaring role {BASELINE!r}, e.g. the uniform "
                             f"policy); exactly one is needed to normalise")
        base_values = baseline[metric].to_numpy(np.float64)
        base_mean = base_values.mean()
        if not base_mean > 0:
            raise ValueError(f"environment setting {environment!r}: the baseline's mean final "
                             f"{metric} is {base_mean:g}; it must be positive to normalise")
        base_cv2 = _relative_variance(base_values)
        for setting, runs in part.groupby("learner_setting", sort=False):
            values = runs[metric].to_numpy(np.float64)
            mean = values.mean()
            ratio = mean / base_mean
            if runs["is_baseline"].all():
                lower = upper = 1.0
            else:
                se = abs(ratio) * math.sqrt(_relative_variance(values) + base_cv2)
                lower, upper = ratio - z * se, ratio + z * se
            rows.append({"environment": environment, "learner": runs["learner"].iloc[0],
                         "setting": setting, "runs": len(values), metric: mean,
                         "normalised": ratio, "lower": lower, "upper": upper})
    return pd.DataFrame(rows)


def _relative_variance(values: np.ndarray) -> float:
    """sd^2 / (n mean^2): the squared relative standard error of the mean (0 for one run)."""
    n = len(values)
    if n < 2 or values.mean() == 0:
        return 0.0
    return float(values.var(ddof=1) / (n * values.mean() ** 2))


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """``normalised_regret``'s output as a Markdown table: one row per learner setting, one
    column per environment setting, cells 'normalised [lower, upper]'."""
    environments = list(dict.fromkeys(table["environment"]))
    settings = list(dict.fromkeys(table["setting"]))
    cells = {(r.setting, r.environment): f"{r.normalised:.{digits}f} "
             f"[{r.lower:.{digits}f}, {r.upper:.{digits}f}]" for r in table.itertuples()}
    lines = ["| learner | " + " | ".join(environments) + " |",
             "|---|" + "---|" * len(environments)]
    for setting in settings:
        lines.append(f"| {setting} | " + " | ".join(cells.get((setting, e), "") for e in
                                                  environments) + " |")
    return "\n".join(lines)
