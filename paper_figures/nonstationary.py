"""Figure 7: non-stationary bandits, dynamic regret on a piecewise-stationary problem.

Problem 2 of Besson, Kaufmann, Maillard and Seznec (2022, "Efficient change-point detection for
tackling piecewise-stationary bandits", JMLR): three Bernoulli arms, four change points
(``experiments/configs/nonstationary.toml``, the same config ``banditjax run`` takes). Mean
cumulative dynamic pseudo-regret (sum over rounds of the round's best mean minus the chosen
arm's) with 95% bands for the forgetting learners of ``bandits/nonstationary.py`` (D-UCB and
SW-UCB, Garivier and Moulines 2011; discounted Thompson sampling, Raj and Kalyani 2017; EXP3.S,
Auer et al. 2002; Rexp3, Besbes, Gur and Zeevi 2014), the change-detection learners of
``bandits/change_detection.py`` (CUSUM-UCB, M-UCB, GLR-klUCB) and the stationary baselines UCB1
and Thompson sampling; the change points are dotted (``analysis.nonstationary``).
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import matplotlib.pyplot as plt

from analysis.nonstationary import given_change_points, mark_change_points
from analysis.plotting import COLUMN_WIDTH, apply_style, plot_curves
from paper_figures import common

NAME = "nonstationary"
CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "nonstationary.toml"
# --quick (the test suite): the same problem shrunk to 300 rounds, change points every 60, and
# three learners (compile time dominates).
QUICK = {"run": {"horizon": 300, "seeds": 4, "record": 20},
         "env": {"change_points": [60, 120, 180, 240]},
         "learner": [{"name": "ucb1"}, {"name": "discounted_ucb"},
                     {"name": "sliding_window_ucb"}]}


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    config = tomllib.loads(CONFIG.read_text())
    if quick:
        config = common.merge(config, QUICK)
    frame, _ = common.results(NAME, quick, config=config, cache=cache, force=force)
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.25, COLUMN_WIDTH * 0.95))
    plot_curves(ax, frame, "regret")
    mark_change_points(ax, given_change_points(frame), float(frame["t"].max()))
    ax.set_ylabel("cumulative dynamic pseudo-regret")
    runs = frame.groupby("setting")["run"].nunique().min()
    ax.set_title(f"piecewise Bernoulli, K=3, {len(given_change_points(frame))} change points "
                 f"(dotted)\n{runs} runs, 95% bands", fontsize=7)
    ax.legend(loc="upper left", fontsize=6)
    return common.save(fig, NAME, quick, out)
