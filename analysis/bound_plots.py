"""The figure of ``banditjax bounds DIR`` (docs/design.md, "Who uses it, for what" 1).

Two panels per results folder: the mean regret divided by ln t (log t axis) beside the
Lai-Robbins constant C (Lai and Robbins 1985, Theorem 2: regret / ln t tends to C for an
asymptotically optimal learner), and the log-log regret with the finite-time upper bound each
learner declares (dotted, in the learner's colour; e.g. Auer, Cesa-Bianchi and Fischer 2002,
Theorem 1 for UCB1) and the minimax lower bound min(sqrt(K t), t) / 20 (Auer et al. 2002b,
Theorem 5.1).
The curves and constants are those of ``analysis.bounds``; the style and colours those of
``analysis.plotting``; the 95% bands are normal intervals over runs (``analysis.fits``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.bounds import instance_means, lai_robbins_curve, regret_curves, theory_curves
from analysis.fits import mean_and_upper
from analysis.plotting import COLUMN_WIDTH, PAGE_WIDTH, apply_style, plt, setting_styles


def plot_bounds(frame: pd.DataFrame, path: Path,
                instances: pd.DataFrame | None = None) -> list[Path]:
    """Two panels: regret / ln t (log t) with the Lai-Robbins constant, and log-log regret with
    the finite-time bounds (dotted, in the learner's colour) and the minimax lower bound."""
    apply_style()
    if instances is None:
        instances = instance_means(frame)
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

