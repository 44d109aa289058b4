"""Figure 4: routing, the cost-quality Pareto front with each single arm, the oracle and learners.

The LLM-routing environment (``envs.routing``: arms are (model, test-time budget) pairs, the
objective quality - lambda * normalised cost) with a sweep over lambda (``configs/routing.toml``).
Points and fronts come from ``analysis.routing`` (RouterBench's definitions, Hu et al. 2024,
sec. 3): ``cost_quality_points`` (mean final quality and dollar cost per router and lambda, single
arms pooled over lambda) and ``pareto_front`` (the non-decreasing convex hull). Grey: every single
(model, budget) arm and their front; black stars: the per-request oracle, one per lambda;
colours: the learners, one point per lambda, with their own fronts.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from analysis.plotting import COLUMN_WIDTH, apply_style, learner_colours
from analysis.routing import cost_quality_points, pareto_front
from paper_figures import common

NAME = "routing"


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    frame, _ = common.results(NAME, quick, cache=cache, force=force)
    points = cost_quality_points(frame)
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.25, COLUMN_WIDTH * 0.95))
    arms = points[points["kind"] == "arm"]
    ax.scatter(arms["cost"], arms["quality"], s=10, color="0.6", label="single arms", zorder=2)
    front_cost, front_quality = pareto_front(arms["cost"], arms["quality"])
    ax.plot(front_cost, front_quality, color="0.45", linewidth=0.8,
            label="front of single arms")
    oracle = points[points["kind"] == "oracle"]
    ax.scatter(oracle["cost"], oracle["quality"], marker="*", s=30, color="black",
               label="oracle (per lambda)", zorder=4)
    routers = points[points["kind"] == "router"]
    colours = learner_colours(list(dict.fromkeys(routers["router"])))
    markers = ("o", "s", "^", "D", "v", "P")     # markers too: some learner colours are close
    for i, (router, part) in enumerate(routers.groupby("router", sort=False)):
        colour = colours[router]
        ax.scatter(part["cost"], part["quality"], s=12, color=colour, label=router, zorder=3,
                   marker=markers[i % len(markers)])
        fc, fq = pareto_front(part["cost"], part["quality"])
        ax.plot(fc, fq, color=colour, linewidth=0.9)
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per request (dollars)")
    ax.set_ylabel("mean expected quality")
    lambdas = sorted(v for v in points["cost_weight"].dropna().unique())
    ax.set_title(f"routing, lambda in {{{', '.join(f'{v:g}' for v in lambdas)}}}; "
                 f"T={int(frame['t'].max()):,}", fontsize=7)
    ax.legend(loc="lower right", fontsize=6)
    return common.save(fig, NAME, quick, out)
