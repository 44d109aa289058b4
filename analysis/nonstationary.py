"""The figure of a piecewise-stationary run: dynamic regret with its change points marked.

Dynamic regret (the ``regret`` column: sum over rounds of the round's best mean minus the chosen
arm's, Besson, Kaufmann, Maillard and Seznec 2022, JMLR, eq. (1)) per learner setting with 95%
bands (``analysis.metrics.mean_band``), and a dotted vertical line at every change point the
config gave (the ``env.change_points`` column, the JSON list of the config). Change points
drawn with a hazard rate differ from run to run and are not drawn; the title then gives the mean
number of change points (the ``changes`` column at the last round). Declared by the
environment (``figures``), drawn by ``banditjax plot``.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.metrics import final_rows  # noqa: E402
from analysis.plotting import COLUMN_WIDTH, apply_style, plot_curves  # noqa: E402

CHANGE_POINTS = "env.change_points"


def given_change_points(frame: pd.DataFrame) -> list[float]:
    """The sorted union of the change points the config gave (empty when drawn or absent)."""
    if CHANGE_POINTS not in frame:
        return []
    points: set[float] = set()
    for value in frame[CHANGE_POINTS].dropna().unique():
        parsed = json.loads(value) if isinstance(value, str) else value
        points.update(float(p) for p in parsed)
    return sorted(points)


def mark_change_points(ax, points: list[float], horizon: float) -> None:
    """A dotted grey vertical line at every change point within the horizon."""
    for point in points:
        if point <= horizon:
            ax.axvline(point, color="0.45", linestyle=":", linewidth=0.8, zorder=0)


def plot_change_points(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``dynamic_regret.png`` (and .pdf): regret against t with the change points marked."""
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.6, COLUMN_WIDTH * 1.1))
    plot_curves(ax, frame, "regret")
    points = given_change_points(frame)
    mark_change_points(ax, points, float(frame["t"].max()))
    ax.set_ylabel("cumulative dynamic pseudo-regret")
    ax.legend(loc="upper left", ncol=1 if frame["setting"].nunique() <= 8 else 2)
    title = f"{frame['env'].iloc[0]}: 95% bands"
    if points:
        title += ", change points dotted"
    elif "changes" in frame:
        title += f", {final_rows(frame)['changes'].mean():.1f} change points on average"
    ax.set_title(title)
    path = Path(out_dir) / "dynamic_regret.png"
    fig.savefig(path)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return [path, path.with_suffix(".pdf")]
