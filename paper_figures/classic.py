"""Figure 1: classic stochastic bandits.

UCB1 (Auer, Cesa-Bianchi and Fischer 2002), KL-UCB (Garivier and Cappe 2011), Thompson sampling
(Agrawal and Goyal 2012), MOSS (Audibert and Bubeck 2009) and EXP3 (Auer et al. 2002b) on a
five-armed Bernoulli instance (``configs/classic.toml``): mean cumulative regret with 95% bands
against t on log-log axes, with the Lai and Robbins (1985) asymptotic lower bound C ln t.
"""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np

from analysis.bounds import lai_robbins_constant
from analysis.plotting import COLUMN_WIDTH, apply_style, plot_curves
from paper_figures import common

NAME = "classic"


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    frame, _ = common.results(NAME, quick, cache=cache, force=force)
    means = np.asarray(json.loads(frame["env.means"].iloc[0]))
    constant = lai_robbins_constant(means, "bernoulli")
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * 0.8))
    # Log-log: EXP3's regret is an order of magnitude above the others' on this instance.
    plot_curves(ax, frame, "regret", logx=True, logy=True)
    t = np.unique(frame["t"].to_numpy())
    t = t[t >= 2]
    ax.plot(t, constant * np.log(t), color="black", linestyle="--", linewidth=0.9,
            label=f"Lai-Robbins $C\\ln t$, $C$={constant:.2f}")
    ax.set_ylabel("cumulative pseudo-regret")
    ax.set_ylim(bottom=0.3)
    runs = frame.groupby("setting")["run"].nunique().min()
    ax.set_title(f"Bernoulli, $K$={len(means)}, means {', '.join(f'{m:g}' for m in means)}\n"
                 f"{runs} runs, 95% bands", fontsize=7)
    ax.legend(loc="upper left", fontsize=6)
    return common.save(fig, NAME, quick, out)
