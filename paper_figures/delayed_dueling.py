"""Figure 3: delayed dueling, regret against t for several delay levels, LDB-DF against baselines.

Linear contextual dueling bandit (``envs.dueling``, the logistic / Bradley-Terry preference model)
wrapped in ``envs.delay.Delayed`` with geometric delays of increasing mean (``configs/
delayed_dueling.toml``). Learners: LDB-DF (``bandits.dueling``, inverse-probability-weighted
logistic loss with the delay law known), the same learner without weighting (ipw = 'none', the
delay-ignoring baseline) and CoLSTIM (Bengs, Saha and Hullermeier 2022), which learns from what
has arrived. One panel per delay level; mean cumulative (average) regret with 95% bands.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from analysis.plotting import PAGE_WIDTH, apply_style, plot_curves
from paper_figures import common

NAME = "delayed_dueling"


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    frame, _ = common.results(NAME, quick, cache=cache, force=force)
    levels = sorted(frame["env.delay.mean"].unique())
    apply_style()
    fig, axes = plt.subplots(1, len(levels), figsize=(PAGE_WIDTH, PAGE_WIDTH / 3.2),
                             sharey=True, squeeze=False)
    for ax, level in zip(axes[0], levels):
        part = frame[frame["env.delay.mean"] == level].copy()
        part["setting"] = part["learner"]          # one curve per learner within a panel
        plot_curves(ax, part, "regret")
        ax.set_title("no delay" if level == 0 else f"geometric delay, mean {level:g}")
    axes[0][0].set_ylabel("cumulative regret")
    axes[0][0].legend(loc="upper left", fontsize=6)
    runs = frame.groupby("setting")["run"].nunique().min()
    fig.suptitle(f"contextual dueling, K={frame['env.K'].iloc[0]}, d={frame['env.d'].iloc[0]}; "
                 f"{runs} runs per curve, 95% bands", fontsize=8)
    fig.tight_layout()
    return common.save(fig, NAME, quick, out)
