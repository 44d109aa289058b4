"""Sensitivity plots: a final metric against one swept hyper-parameter or environment setting.

The plot SMPyBandits users draw by hand for a sweep such as ``c = [0.25, 0.5, 1, 2, 4]``
(docs/design.md, "Results"): for every value of the swept axis, the mean over runs of the metric
at the last recorded round (or at the last recorded round <= ``at``) with its normal-
approximation 95% interval, mean +- 1.959964 sd / sqrt(n) (the runs of a setting are
independent), one line per learner (and per value of any other swept axis). Learners without
the axis (a baseline compared with the sweep) are drawn as a flat dashed line at their value.
The x axis is logarithmic when the values are positive and span a decade (max / min >= 10),
as sweeps over scales usually are (symmetric-log when a 0 is among them); the y axis when the
means span more than a decade. Single-arm learners (``role = 'reference'``) are named by the
environment's arms. The figure is ``analysis.plotting.plot_sensitivity``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.metrics import (Z95, arm_labels_of, learner_role, registered_names, rows_at,
                              swept_columns)


def axis_name(column: str) -> str:
    """'hp.c' -> 'c', 'env.delay.mean' -> 'delay.mean' (the name ``--vs`` takes)."""
    return str(column).split(".", 1)[1]


def _numeric(values: pd.Series) -> bool:
    present = values.dropna()
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").notna().all()


def numeric_axes(frame: pd.DataFrame) -> list[str]:
    """The swept ``hp.*`` / ``env.*`` columns (``swept_columns``) whose values are numbers."""
    return [c for c in swept_columns(frame) if _numeric(frame[c])]


def sensitivity_axis(frame: pd.DataFrame) -> str | None:
    """The one numeric swept axis of a frame (then ``banditjax run`` draws its sensitivity plot
    by itself), or None when there is none or more than one."""
    axes = numeric_axes(frame)
    return axes[0] if len(axes) == 1 else None


def resolve_axis(frame: pd.DataFrame, name: str) -> str:
    """The column ``--vs NAME`` means: 'c' or 'hp.c', 'K' or 'env.K', 'delay.mean' or
    'env.delay.mean'. Raises ValueError (naming the numeric swept axes) otherwise."""
    axes = numeric_axes(frame)
    candidates = [c for c in (name, f"hp.{name}", f"env.{name}") if c in axes]
    listed = ", ".join(axis_name(a) for a in axes) or "none"
    if len(candidates) > 1:
        raise ValueError(f"--vs {name}: both a hyper-parameter and an environment setting; "
                         f"write hp.{name} or env.{name}")
    if not candidates:
        raise ValueError(f"--vs {name}: not a swept numeric hyper-parameter or environment "
                         f"setting of these results; swept numeric axes: {listed}")
    return candidates[0]


def wants_logx(values) -> bool:
    """True when the values are >= 0 and the positive ones span a decade (max / min >= 10);
    a 0 among them is drawn on a symmetric-log axis (``x_scale``)."""
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    positive = values[values > 0]
    return bool(len(positive) > 1 and (values >= 0).all()
                and positive.max() >= 10 * positive.min())


def x_scale(values, logx: bool | None = None) -> str | None:
    """'log', 'symlog' (log with a 0 among the values: linear below the smallest positive
    value) or None (a linear axis); ``logx`` None decides by ``wants_logx``."""
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if logx is None:
        logx = wants_logx(values)
    if not logx:
        return None
    return "symlog" if (values <= 0).any() else "log"


def sensitivity_points(frame: pd.DataFrame, column: str, metric: str = "regret",
                       at: int | None = None) -> pd.DataFrame:
    """One row per (line, value of ``column``): line (the learner, plus any other swept axis'
    values), learner, value (NaN for a learner without the axis), mean, se, lower, upper
    (95%), runs and t (the round reported)."""
    rows = rows_at(frame, at).copy()
    others = [c for c in swept_columns(frame) if c != column]
    rows["line"] = rows["learner"].astype(str)
    for other in others:
        present = rows[other].notna() & (rows[other].astype(str) != "")
        rows.loc[present, "line"] += ", " + axis_name(other) + "=" + rows.loc[
            present, other].map(format_value)
    names = _arm_names(rows, column)
    rows.loc[names.index, "line"] = names
    rows["value"] = pd.to_numeric(rows[column], errors="coerce")
    out = []
    for (line, value), part in rows.groupby(["line", "value"], sort=False, dropna=False):
        values = part[metric].to_numpy(np.float64)
        n = len(values)
        se = values.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
        out.append({"line": line, "learner": part["learner"].iloc[0], "value": value,
                    "mean": values.mean(), "se": se, "lower": values.mean() - Z95 * se,
                    "upper": values.mean() + Z95 * se, "runs": n, "t": int(part["t"].max())})
    points = pd.DataFrame(out)
    return points.sort_values(["value"], kind="stable", na_position="last").sort_values(
        "line", key=lambda s: s.map({v: i for i, v in enumerate(dict.fromkeys(rows["line"]))}),
        kind="stable").reset_index(drop=True)


def reference_rows(frame: pd.DataFrame) -> pd.Series:
    """True for the rows of single-arm learners (``role = 'reference'``)."""
    names = registered_names(frame)
    roles = {name: learner_role(name) for name in names.unique()}
    return names.map(roles).eq("reference")


def _arm_names(rows: pd.DataFrame, column: str) -> pd.Series:
    """The environment's name of the arm of every single-arm row (``hp.arm`` not being the
    swept axis), indexed like those rows; empty when the environment names no arms."""
    if "hp.arm" not in rows or column == "hp.arm":
        return pd.Series(dtype=object)
    names = arm_labels_of(rows) or ()
    chosen = rows[reference_rows(rows).to_numpy() & rows["hp.arm"].notna().to_numpy()]
    arms = chosen["hp.arm"].astype(int)
    if not names or not arms.between(0, len(names) - 1).all():
        return pd.Series(dtype=object)
    return arms.map(lambda arm: names[arm])


def format_value(value) -> str:
    """A swept value as a label shows it: 0.25, 2, 1e-05."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)
