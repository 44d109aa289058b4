"""Figure 7 and the README's showdown table: the Wheel bandit of Riquelme, Tucker and Snoek
(2018, sec. 5, table 3), cumulative regret normalised to the uniform policy.

Runs ``experiments/configs/showdown.toml`` (the paper's five deltas; linear, neural and baseline
learners) and normalises every learner's final cumulative regret to the learner declaring role
'baseline' (the uniform policy) in the same delta, with 95% delta-method intervals
(``analysis.showdown.normalised_regret``). Writes the figure (normalised regret against delta,
log scale, one line per learner) and ``showdown.md``, the Markdown table the README shows.
``--quick`` runs a small version (two deltas, two learners) for the test suite.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from analysis.plotting import COLUMN_WIDTH, apply_style, learner_colours
from analysis.showdown import markdown_table, normalised_regret
from paper_figures import common

NAME = "showdown"
CONFIG = common.ROOT.parent / "experiments" / "configs" / "showdown.toml"
QUICK = {"run": {"horizon": 60, "seeds": 2, "record": 4}, "env": {"delta": [0.5, 0.95]},
         "learner": [{"name": "uniform"}, {"name": "linucb"}]}


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    config = tomllib.loads(CONFIG.read_text())
    if quick:
        config = common.merge(config, QUICK)
    frame, _ = common.results(NAME, quick, config=config, cache=cache, force=force)
    table = normalised_regret(frame)
    out = Path(out or common.OUT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    horizon, runs = int(frame["t"].max()), int(table["runs"].min())
    caption = (f"Wheel bandit, cumulative regret at T = {horizon:,} normalised to the uniform "
               f"policy (mean of {runs} runs per cell; 95% intervals)\n\n")
    (out / f"{NAME}.md").write_text(caption + markdown_table(table) + "\n")

    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.3, COLUMN_WIDTH * 0.9))
    colours = learner_colours(list(dict.fromkeys(table["learner"])))
    for setting, part in table.groupby("setting", sort=False):
        x = np.array([float(e.split("=")[1]) for e in part["environment"]])
        order = np.argsort(x)
        y = part["normalised"].to_numpy()[order]
        low = np.maximum(part["lower"].to_numpy()[order], 1e-4)
        high = part["upper"].to_numpy()[order]
        colour = colours[part["learner"].iloc[0]]
        ax.plot(x[order], y, marker="o", markersize=3, color=colour, label=setting)
        ax.fill_between(x[order], low, high, color=colour, alpha=0.18, linewidth=0)
    ax.set_yscale("log")
    ax.set_xlabel(r"$\delta$ (exploration parameter)")
    ax.set_ylabel("cumulative regret / uniform's")
    ax.set_title(f"Wheel bandit, T={horizon:,}, {runs} runs, 95% intervals", fontsize=7)
    ax.legend(loc="lower left", fontsize=5, ncol=2)
    return common.save(fig, NAME, quick, out) + [out / f"{NAME}.md"]
