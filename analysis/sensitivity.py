"""Sensitivity plots: a final metric against one swept hyper-parameter or environment setting.

The plot SMPyBandits users draw by hand for a sweep such as ``ucb1.c = [0.25, 0.5, 1, 2, 4]``
(docs/design.md, "Results"): for every value of the swept axis, the mean over runs of the metric
at the last recorded round (or at the last recorded round <= ``at``) with its normal-
approximation 95% interval, mean +- 1.959964 sd / sqrt(n) (the runs of a setting are
independent), one line per learner (and per value of any other swept axis). Learners without
the axis (a baseline compared with the sweep) are drawn as a flat dashed line at their value.
The x axis is logarithmic when the values are positive and span a decade (max / min >= 10),
as sweeps over scales usually are; the y axis when the means span more than a decade.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.metrics import Z95, declared_metrics, rows_at, swept_columns  # noqa: E402
from analysis.plotting import (COLUMN_WIDTH, apply_style, axis_name,  # noqa: E402
                               learner_colours, save_figure, shades)


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
    """True when the values are positive and span a decade (max / min >= 10)."""
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    return bool(len(values) > 1 and (values > 0).all() and values.max() >= 10 * values.min())


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
            present, other].map(_format)
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


def _format(value) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def plot_sensitivity(frame: pd.DataFrame, column: str, path: Path, at: int | None = None,
                     metric: str = "regret", logx: bool | None = None,
                     logy: bool | None = None) -> list[Path]:
    """``path`` (PNG) and a PDF beside it: ``metric`` at the last round (or ``at``) against
    ``column``, mean and 95% band per line. ``logx`` / ``logy`` None: decided from the data."""
    return save_figure(sensitivity_figure(frame, column, at, metric, logx, logy), path)


def sensitivity_figure(frame: pd.DataFrame, column: str, at: int | None = None,
                       metric: str = "regret", logx: bool | None = None,
                       logy: bool | None = None):
    """The figure of ``plot_sensitivity``."""
    points = sensitivity_points(frame, column, metric, at)
    swept = points[points["value"].notna()]
    flat = points[points["value"].isna()]
    if logx is None:
        logx = wants_logx(swept["value"].unique())
    if logy is None:
        means = points["mean"].to_numpy()
        logy = bool((means > 0).all() and means.max() > 10 * means.min())
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.4, COLUMN_WIDTH * 1.0))
    colours = learner_colours(list(dict.fromkeys(points["learner"])))
    lines = points[["line", "learner"]].drop_duplicates()
    shade = {}
    for learner, part in lines.groupby("learner", sort=False):
        shade.update(zip(part["line"], shades(colours[learner], len(part))))
    for line, part in swept.groupby("line", sort=False):
        ax.plot(part["value"], part["mean"], color=shade[line], marker="o", markersize=3,
                label=line)
        ax.fill_between(part["value"], part["lower"], part["upper"], color=shade[line],
                        alpha=0.18, linewidth=0)
    for row in flat.itertuples(index=False):
        ax.axhline(row.mean, color=shade[row.line], linestyle="--", linewidth=0.9,
                   label=f"{row.line} (no {axis_name(column)})")
        ax.axhspan(row.lower, row.upper, color=shade[row.line], alpha=0.1, linewidth=0)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    values = sorted(swept["value"].unique())
    if len(values) <= 12:
        ax.set_xticks(values, [_format(v) for v in values])
        if logx:
            ax.minorticks_off()
    labels = {m.name: m.label for m in declared_metrics(frame)}
    t = points["t"].max()
    kind = "hyper-parameter" if column.startswith("hp.") else "environment setting"
    ax.set_xlabel(f"{axis_name(column)} ({kind})")
    ax.set_ylabel(f"{labels.get(metric, metric)} at t = {t}")
    runs = points["runs"].min()
    ax.set_title(f"{frame['env'].iloc[0]}: {metric} at t = {t} against {axis_name(column)}; "
                 f"mean over {runs} runs, 95% bands", fontsize=8)
    ax.legend(fontsize=6, loc="best")
    return fig
