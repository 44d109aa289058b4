"""Figure 3: delayed dueling, regret against t, LDB-DF against baselines, in two delay regimes.

Linear contextual dueling bandit (``envs.dueling``, the logistic / Bradley-Terry preference model)
wrapped in ``envs.delay.Delayed``. Top row (``configs/delayed_dueling.toml``): geometric delays
of increasing mean that do not depend on the outcome, where what has arrived is a random subset
and ignoring the delay is consistent. Bottom row (``configs/delayed_dueling_outcome.toml``):
outcome-dependent geometric delays (wins and/or losses delayed by 200 rounds on average) with a
censoring window of 50 rounds, the case inverse-probability weighting exists for (README,
"Delayed preference feedback: LDB-DF and NDB-DF"). Learners: LDB-DF (``bandits.dueling``,
inverse-probability-weighted logistic loss with the delay law known), the same learner without
weighting (ipw = 'none', the delay-ignoring baseline) and CoLSTIM (Bengs, Saha and Hullermeier
2022), which learns from what has arrived. One panel per delay setting; mean cumulative
(average) regret with 95% bands.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from analysis.plotting import PAGE_WIDTH, apply_style, plot_curves
from paper_figures import common

NAME = "delayed_dueling"
OUTCOME = "delayed_dueling_outcome"
POSITIVE, NEGATIVE = "env.delay.mean", "env.delay.mean_negative"


def _independent_panels(frame):
    """(title, rows) per delay mean of the outcome-independent config."""
    for level in sorted(frame[POSITIVE].unique()):
        title = "no delay" if level == 0 else f"geometric delay, mean {level:g}"
        yield title, frame[frame[POSITIVE] == level]


def _outcome_panels(frame):
    """(title, rows) per (wins, losses) delay mean pair of the outcome-dependent config."""
    pairs = frame[[POSITIVE, NEGATIVE]].drop_duplicates().sort_values([POSITIVE, NEGATIVE])
    for wins, losses in pairs.itertuples(index=False):
        if wins == 0 and losses == 0:
            title = "no delay"
        else:
            delayed = [name for name, mean in (("wins", wins), ("losses", losses)) if mean > 0]
            title = " and ".join(delayed) + f" delayed (mean {max(wins, losses):g})"
        yield title, frame[(frame[POSITIVE] == wins) & (frame[NEGATIVE] == losses)]


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    frames = {"independent": common.results(NAME, quick, cache=cache, force=force)[0],
              "outcome": common.results(OUTCOME, quick, cache=cache, force=force)[0]}
    rows = [("outcome-independent delays, no censoring",
             list(_independent_panels(frames["independent"])), frames["independent"]),
            ("outcome-dependent delays, censored after 50 rounds",
             list(_outcome_panels(frames["outcome"])), frames["outcome"])]
    apply_style()
    fig = plt.figure(figsize=(PAGE_WIDTH, PAGE_WIDTH / 1.6), layout="constrained")
    for subfig, (heading, panels, frame) in zip(fig.subfigures(2, 1, hspace=0.04), rows):
        axes = subfig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, part) in zip(axes, panels):
            part = part.copy()
            part["setting"] = part["learner"]      # one curve per learner within a panel
            plot_curves(ax, part, "regret")
            ax.set_title(title, fontsize=7)
        runs = frame.groupby("setting")["run"].nunique().min()
        axes[0].set_ylabel("cumulative regret")
        axes[0].legend(loc="upper left", fontsize=5.5)
        subfig.suptitle(f"{heading}: contextual dueling, K={frame['env.K'].iloc[0]}, "
                        f"d={frame['env.d'].iloc[0]}, T={frame['t'].max()}, {runs} runs per "
                        f"curve, 95% bands", fontsize=8)
    return common.save(fig, NAME, quick, out)
