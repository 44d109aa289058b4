"""Figure 2: regret exponents, measured against theory, per learner family (a table figure).

For every learner of ``configs/classic.toml`` (stochastic K-armed bandits) and
``configs/exponents_linear.toml`` (linear contextual bandits) the regret exponent is the
least-squares slope of log mean regret against log t over the last decade of recorded rounds,
with a 95% bootstrap interval over seeds (``analysis.fits.regret_exponent``). Theory: the
local log-log slope of C ln t over the same window for the logarithmic learners (Lai and Robbins
1985; it tends to 0 as t grows), 1/2 for EXP3 (Auer et al. 2002b, Cor. 3.2) and for the linear
learners (OFUL: Abbasi-Yadkori et al. 2011, Thm 3, d sqrt(T) up to logs). The table also gives
the log constant (slope in ln t) divided by the Lai-Robbins constant where that exists.

Caveat: the exponent is measured within runs of one horizon T. For learners tuned to the
horizon (EXP3's gamma, MOSS's index use T) the in-run slope is not the exponent of the regret as
a function of T: EXP3's theory value 1/2 is a worst-case upper rate, and on a stochastic
instance its in-run slope is far below it; MOSS's index stops exploring as the counts approach
T / K, so its in-run slope in ln t ends below the Lai-Robbins constant (the asymptotic bound is
about the regret as T grows, not the slope inside one run).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from analysis.plotting import PAGE_WIDTH, apply_style, learner_colours
from paper_figures import common

NAME = "exponents"
FAMILY = {"ucb1": "index (UCB)", "klucb": "index (KL)", "thompson": "Bayesian (TS)",
          "moss": "index (minimax)", "exp3": "adversarial", "linucb_shared": "linear (UCB)",
          "lints": "linear (TS)", "oful": "linear (UCB)"}


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    table = common.bounds_check_table(cache=cache, quick=quick,
                                      samples=200 if quick else 1000)
    table = table.reset_index(drop=True)
    apply_style()
    fig, (dots, text) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 0.3 * len(table) + 1.0),
                                     gridspec_kw={"width_ratios": [1.0, 2.4]})
    colours = learner_colours(list(table["learner"]))
    y = np.arange(len(table))[::-1]
    for yi, (_, row) in zip(y, table.iterrows()):
        colour = colours[row["learner"]]
        dots.errorbar(row["exponent"], yi, xerr=[[row["exponent"] - row["exponent_lo"]],
                                                 [row["exponent_hi"] - row["exponent"]]],
                      fmt="o", color=colour, markersize=4, capsize=2)
        if not math.isnan(row["theory_exponent"]):
            dots.plot(row["theory_exponent"], yi, marker="x", color="black", markersize=5)
    dots.set_yticks(y, table["learner"])
    dots.set_xlabel("regret exponent (log-log slope)")
    dots.set_xlim(0.0, 1.0)
    dots.set_ylim(-0.7, len(table) - 0.3)
    dots.plot([], [], "o", color="0.3", markersize=4, label="measured, 95% CI")
    dots.plot([], [], "x", color="black", label="theory")
    dots.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=6)
    cells = [[row["learner"], FAMILY.get(row["learner"], "-"), f"{int(row['horizon']):,}",
              f"{_fmt(row['exponent'])} [{_fmt(row['exponent_lo'])}, "
              f"{_fmt(row['exponent_hi'])}]", _fmt(row["theory_exponent"]),
              _fmt(row.get("log_constant_ratio", math.nan)),
              _fmt(row.get("upper_bound_holds", math.nan))]
             for _, row in table.iterrows()]
    text.axis("off")
    shown = text.table(cellText=cells, loc="center", cellLoc="center",
                       colWidths=[0.15, 0.17, 0.09, 0.2, 0.09, 0.16, 0.14],
                       colLabels=["learner", "family", "T", "exponent [95% CI]", "theory",
                                  "slope / C (L-R)", "under bound"])
    shown.auto_set_font_size(False)
    shown.set_fontsize(6)
    shown.scale(1.0, 1.2)
    text.set_title("theory: local slope of C ln t (logarithmic learners), worst-case rate 1/2 "
                   "(EXP3, linear);\nunder bound: fraction of rounds under the finite-time bound"
                   " (UCB1, EXP3, OFUL)", fontsize=6)
    fig.tight_layout()
    return common.save(fig, NAME, quick, out)
