"""Summaries of tidy results: confidence bands over runs and final-regret tables.

A results frame has one row per (run, recorded round) with at least the columns ``setting``,
``run`` and ``t`` and one column per metric (``regret`` = cumulative pseudo-regret). Bands are
normal-approximation intervals for the mean over runs: mean +- z * sd / sqrt(n), z = 1.96 for
95% (the runs of a setting are independent: their keys differ by seed and instance).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

Z95 = 1.959963984540054


def mean_band(frame: pd.DataFrame, metric: str = "regret", by: str = "setting",
              z: float = Z95) -> pd.DataFrame:
    """Per (setting, t): mean, standard error, lower and upper band of ``metric`` over runs."""
    grouped = frame.groupby([by, "t"], sort=False)[metric]
    out = grouped.agg(mean="mean", sd="std", n="count").reset_index()
    out["se"] = out["sd"].fillna(0.0) / np.sqrt(out["n"])
    out["lower"] = out["mean"] - z * out["se"]
    out["upper"] = out["mean"] + z * out["se"]
    return out


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The last recorded round of every run."""
    last = frame.groupby("run")["t"].transform("max")
    return frame[frame["t"] == last]


def rows_at(frame: pd.DataFrame, at: int | None = None) -> pd.DataFrame:
    """Every run's row at round ``at``: the last recorded round t <= at (the final round when
    ``at`` is None). Raises ValueError when ``at`` precedes a run's first recorded round."""
    if at is None:
        return final_rows(frame)
    at = int(at)
    first = int(frame["t"].min())
    if at < first:
        raise ValueError(f"--at {at}: before the first recorded round ({first}); the recorded "
                         f"rounds run from {first} to {int(frame['t'].max())}")
    early = frame[frame["t"] <= at]
    last = early.groupby("run")["t"].transform("max")
    return early[early["t"] == last]


def swept_columns(frame: pd.DataFrame) -> list[str]:
    """The swept axes of a frame, in column order: every ``env.*`` column whose value differs
    between settings and every ``hp.*`` column whose value differs between the settings of one
    learner (a column a learner does not have is not swept for it)."""
    per_setting = frame.drop_duplicates("setting")
    out = []
    for column in per_setting.columns:
        name = str(column)
        values = per_setting[column].astype(str)
        if name.startswith("env.") and values.nunique() > 1:
            out.append(column)
        elif name.startswith("hp."):
            present = per_setting[column].notna()
            if (values[present].groupby(per_setting["learner"][present]).nunique() > 1).any():
                out.append(column)
    return out


def final_summary(frame: pd.DataFrame, metrics: tuple[str, ...] = ("regret",),
                  at: int | None = None) -> pd.DataFrame:
    """Per setting: its learner, the swept ``hp.*`` / ``env.*`` values that tell the settings
    apart (``swept_columns``), runs, horizon (the round reported: the last, or the last
    recorded round <= ``at``) and the mean and standard error of each metric there."""
    final = rows_at(frame, at)
    by_setting = final.groupby("setting", sort=False)
    pieces = {"learner": by_setting["learner"].first()}
    for column in swept_columns(frame):
        pieces[column] = by_setting[column].first()
    pieces["runs"] = by_setting["run"].nunique()
    pieces["horizon"] = by_setting["t"].max()
    for metric in metrics:
        if metric not in final:
            continue
        stats = by_setting[metric].agg(["mean", "std", "count"])
        pieces[f"{metric}_mean"] = stats["mean"]
        pieces[f"{metric}_se"] = stats["std"].fillna(0.0) / np.sqrt(stats["count"])
    return pd.DataFrame(pieces).reset_index()


def arm_label_map(frame: pd.DataFrame) -> dict[str, str]:
    """setting -> display label for the settings of single-arm learners (``role =
    'reference'``, a swept ``hp.arm``) when the environment names its arms
    (``Environment.arm_labels``, e.g. '<model>@<budget>'): '<label> (arm=17) | <env values>'
    becomes '<name of arm 17> | <env values>'. Other settings keep their label."""
    if "hp.arm" not in frame:
        return {}
    names = arm_labels_of(frame)
    if not names:
        return {}
    rows = frame.drop_duplicates("setting")
    out = {}
    registered = registered_names(rows)
    roles = {name: learner_role(name) for name in registered.unique()}
    for setting, learner, arm in zip(rows["setting"], registered, rows["hp.arm"]):
        if roles.get(learner) != "reference" or pd.isna(arm) or not 0 <= int(arm) < len(names):
            continue
        _, bar, rest = str(setting).partition(" | ")
        out[setting] = names[int(arm)] + (bar + rest)
    return out


def arm_labels_of(frame: pd.DataFrame) -> tuple[str, ...] | None:
    """The arm names the frame's environment declares for its settings
    (``Environment.arm_labels`` of the first row's ``env.*`` values), or None."""
    import envs  # noqa: F401  (registers every environment)
    from envs.core import ENVS

    env = str(frame["env"].iloc[0])
    if env not in ENVS:
        return None
    first = frame.iloc[0]
    settings = {str(c)[len("env."):]: _column(first[c]) for c in frame.columns
                if str(c).startswith("env.")}
    return ENVS.get(env, "env").arm_labels(settings)


def with_arm_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with single-arm settings named by their arm (``arm_label_map``)."""
    mapping = arm_label_map(frame)
    if not mapping:
        return frame
    out = frame.copy()
    out["setting"] = out["setting"].map(lambda s: mapping.get(s, s))
    return out


def registered_names(frame: pd.DataFrame) -> pd.Series:
    """The registry name of every row's learner: ``learner_name`` where a caller added it from
    config.toml (labels can differ from names), else the ``learner`` label."""
    return frame["learner_name"] if "learner_name" in frame else frame["learner"]


def learner_role(name: str) -> str | None:
    """The role the learner registered as ``name`` declares (``Learner.role``: 'reference' for a
    single fixed arm, 'oracle', 'baseline'), or None."""
    import bandits  # noqa: F401  (registers every learner)
    from bandits.core import LEARNERS

    return LEARNERS.get(name, "learner").declared("role") if name in LEARNERS else None


def _column(value):
    """A results column's value as the config gave it (lists are stored as JSON text)."""
    if isinstance(value, str) and value.startswith("["):
        import json
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.item() if isinstance(value, np.generic) else value


def declared_metrics(frame: pd.DataFrame) -> tuple:
    """The ``envs.core.Metric`` declarations of a frame's environment and of the wrappers whose
    ``env.<wrapper>.*`` columns it carries, then those of its learners (``Learner.metrics``,
    values they report about their own state; docs/design.md, "Results"), present in the frame.
    A learner metric's column is NaN on the rows of learners that do not report it."""
    import bandits  # noqa: F401  (registers every learner)
    import envs  # noqa: F401  (registers every environment and wrapper)
    from bandits.core import learner_metrics
    from envs.core import WRAPPERS, reported_metrics

    wrappers = [name for name in WRAPPERS.names()
                if any(str(c).startswith(f"env.{name}.") for c in frame.columns)]
    metrics = reported_metrics(str(frame["env"].iloc[0]), wrappers)
    known = {m.name for m in metrics}
    metrics += tuple(m for m in learner_metrics(list(dict.fromkeys(frame["learner"])))
                     if m.name not in known)
    return tuple(m for m in metrics if m.name in frame)


def format_table(table: pd.DataFrame) -> str:
    """A plain-text table with aligned columns (numbers to 4 significant digits)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}"
        return str(v)
    rows = [[str(c) for c in table.columns]] + [[cell(v) for v in r] for r in table.to_numpy()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
