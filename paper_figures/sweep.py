"""Figure 5: a sweep heatmap, LinUCB final regret over alpha x regularisation.

LinUCB with disjoint models (Li, Chu, Langford and Schapire 2010, Algorithm 1) on a disjoint
linear bandit (``configs/sweep.toml``). alpha (the confidence width) and lambda (the ridge
regulariser) are dynamic settings, so the whole grid x seeds is one compiled call of the runner
(its compile count is printed in the caption). Cell: mean final regret over seeds; the best cell
is outlined.
"""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np

from analysis.metrics import final_rows
from analysis.plotting import COLUMN_WIDTH, apply_style
from paper_figures import common

NAME = "sweep"


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    frame, folder = common.results(NAME, quick, cache=cache, force=force)
    final = final_rows(frame)
    grid = final.pivot_table(index="hp.alpha", columns="hp.regulariser", values="regret",
                             aggfunc="mean").sort_index().sort_index(axis=1)
    seeds = final.groupby("setting")["run"].nunique().min()
    groups = len(json.loads((folder / "meta.json").read_text())["groups"])
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * 0.85))
    image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    ax.set_xlabel(r"regulariser $\lambda$")
    ax.set_ylabel(r"confidence width $\alpha$")
    ax.grid(False)
    values = grid.to_numpy()
    best = np.unravel_index(np.nanargmin(values), values.shape)
    ax.add_patch(plt.Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False,
                               edgecolor="white", linewidth=1.5))
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=5,
                    color="white" if values[i, j] < np.nanmedian(values) else "black")
    fig.colorbar(image, ax=ax, label=f"final regret (T={int(final['t'].max()):,})")
    ax.set_title(f"LinUCB, {values.size} settings x {seeds} seeds, "
                 f"{groups} compiled call{'s' if groups > 1 else ''}", fontsize=7)
    return common.save(fig, NAME, quick, out)
