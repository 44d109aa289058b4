"""Routing analysis: cost-quality points, the Pareto front and the area under it, traffic shares.

Definitions follow RouterBench (Hu, Bieker, Li, Jiang, Keigwin, Ranganath, Keutzer and
Upadhyay 2024, "RouterBench: A Benchmark for Multi-LLM Routing System", sec. 3):

- Every router (a learner setting, all its lambda values together) and every single arm is a
  set of points (mean cost per request, mean quality) in the cost-quality plane; a router run at
  several willingness-to-pay values lambda gives one point per lambda.
- Mixing two routers at random interpolates linearly between their points, so the attainable
  set is the convex hull of the points; paying more should never lower quality, so the front is
  the *non-decreasing convex hull* (NDCH): the upper convex hull from the cheapest point up to
  the best-quality point, flat to the right of it.
- The area under the NDCH over a cost range [c_lo, c_hi], divided by the range, is their AIQ
  ("average improvement in quality"). The front counts as 0 below a router's cheapest
  point (it cannot run that cheaply). ``log_cost=True`` integrates over log10 cost instead, the
  same vertices joined linearly in log cost (costs span orders of magnitude here; an option of
  ours, not RouterBench's; the figure reports it).
- "x% of the best model's quality at y% of its cost" (the headline of RouteLLM, Ong et al.
  2024): a router's point divided by the reference arm's quality and cost; the reference is, by
  default, the best single model at the smallest test-time budget (one call).

Results frames are the tidy frames of ``experiments.experiment``: one row per (run, recorded t)
with ``learner``, ``setting``, ``run``, ``t``, ``quality``, ``cost``, ``env.cost_weight``,
``hp.*`` and, when the environment records them, ``share.<model>@<budget>`` (or
``share.<model>``) columns.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.plotting import (COLUMN_WIDTH, PALETTE, apply_style,  # noqa: E402
                               learner_colours)

LAMBDA = "env.cost_weight"
# Learner roles (``Learner.role``): a single fixed arm is a point of the plane, not a router;
# the oracle knows every expected reward.
REFERENCE, ORACLE = "reference", "oracle"


def learner_role(name: str) -> str | None:
    """The role the learner registered as ``name`` declares (``Learner.role``), or None."""
    import bandits  # noqa: F401  (registers every learner)
    from bandits.core import LEARNERS

    return LEARNERS.get(name, "learner").declared("role") if name in LEARNERS else None


def _is_reference(learners: pd.Series) -> pd.Series:
    roles = {name: learner_role(name) for name in learners.unique()}
    return learners.map(roles).eq(REFERENCE)


# ---------------------------------------------------------------------------------------------
# Points.
# ---------------------------------------------------------------------------------------------
def router_name(setting: str) -> str:
    """The router a setting belongs to: its label without the environment part (lambda)."""
    return str(setting).split(" | ")[0]


def share_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if str(c).startswith("share.")]


def arm_names(frame: pd.DataFrame) -> list[str]:
    """Arm (or model) names in arm order, from the share columns."""
    return [c[len("share."):] for c in share_columns(frame)]


def model_of(arm: str) -> str:
    """'gpt-4@k16' -> 'gpt-4' (a model name is returned unchanged)."""
    return arm.split("@")[0]


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    last = frame.groupby("run")["t"].transform("max")
    return frame[frame["t"] == last]


def cost_quality_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean final quality and cost per (router, lambda), and per single arm.

    Columns: router, learner, kind ('router', 'oracle' or 'arm'), cost_weight, quality, cost,
    quality_se, cost_se, runs, and arm (the arm's name for single arms). A single arm's quality
    and cost do not depend on lambda, so its runs are pooled over lambda into one point.
    """
    final = final_rows(frame).copy()
    final["router"] = final["setting"].map(router_name)
    if LAMBDA not in final:
        final[LAMBDA] = np.nan
    is_arm = _is_reference(final["learner"])
    if is_arm.any() and "hp.arm" in final:
        names = arm_names(frame)
        per_arm = all("@" in n for n in names) and len(names) > 0
        final.loc[is_arm, "router"] = [
            names[i] if per_arm and i < len(names) else f"arm {i}"
            for i in final.loc[is_arm, "hp.arm"].astype(int)]
    rows = []
    keys = ["router", "learner"]
    for (router, learner, weight), part in _groups(final, is_arm, keys):
        role = learner_role(learner)
        kind = "arm" if role == REFERENCE else ("oracle" if role == ORACLE else "router")
        n = len(part)
        rows.append({"router": router, "learner": learner, "kind": kind,
                     "cost_weight": weight, "quality": part["quality"].mean(),
                     "cost": part["cost"].mean(),
                     "quality_se": part["quality"].std(ddof=1) / np.sqrt(n) if n > 1 else 0.0,
                     "cost_se": part["cost"].std(ddof=1) / np.sqrt(n) if n > 1 else 0.0,
                     "runs": n, "arm": router if kind == "arm" else None})
    return pd.DataFrame(rows)


def _groups(final: pd.DataFrame, is_arm: pd.Series, keys: list[str]):
    """(router, learner, lambda) groups; single arms pooled over lambda (lambda = NaN)."""
    for key, part in final[~is_arm].groupby(keys + [LAMBDA], sort=False, dropna=False):
        yield key, part
    for key, part in final[is_arm].groupby(keys, sort=False):
        yield (*key, np.nan), part


# ---------------------------------------------------------------------------------------------
# The non-decreasing convex hull and the area under it.
# ---------------------------------------------------------------------------------------------
def pareto_front(cost, quality) -> tuple[np.ndarray, np.ndarray]:
    """The vertices (cost, quality) of the non-decreasing convex hull, by increasing cost.

    Upper convex hull (Andrew's monotone chain) of the points, from the cheapest point (the best
    quality among equally cheap ones) up to the best-quality point (the cheapest among equally
    good ones); quality strictly increases along it.
    """
    cost = np.asarray(cost, np.float64)
    quality = np.asarray(quality, np.float64)
    keep = np.isfinite(cost) & np.isfinite(quality)
    cost, quality = cost[keep], quality[keep]
    if cost.size == 0:
        return cost, quality
    order = np.lexsort((-quality, cost))              # by cost, best quality first on ties
    cost, quality = cost[order], quality[order]
    hull: list[tuple[float, float]] = []
    for c, q in zip(cost, quality):
        if hull and c == hull[-1][0]:
            continue                                   # same cost, lower quality
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], (c, q)) >= 0:
            hull.pop()                                 # not a right turn: below the chord
        hull.append((c, q))
    front = [hull[0]]
    for c, q in hull[1:]:                              # the non-decreasing part
        if q <= front[-1][1]:
            break
        front.append((c, q))
    array = np.asarray(front)
    return array[:, 0], array[:, 1]


def _cross(o, a, b) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def front_value(front_cost, front_quality, cost) -> np.ndarray:
    """The front at ``cost``: linear between vertices, flat after the last, 0 before the first."""
    front_cost = np.asarray(front_cost, np.float64)
    front_quality = np.asarray(front_quality, np.float64)
    cost = np.asarray(cost, np.float64)
    value = np.interp(cost, front_cost, front_quality)
    return np.where(cost < front_cost[0], 0.0, value)


def area_under_front(front_cost, front_quality, low: float, high: float,
                     log_cost: bool = False) -> float:
    """AIQ: the mean of the front over [low, high] (area / range); log10 cost if ``log_cost``."""
    if not high > low:
        raise ValueError(f"area_under_front: need high > low, got [{low}, {high}]")
    transform = np.log10 if log_cost else (lambda x: np.asarray(x, np.float64))
    xs = transform(np.asarray(front_cost, np.float64))
    lo, hi = float(transform(low)), float(transform(high))
    # Exact integral of a piecewise-linear function: integrate between all breakpoints.
    breaks = np.unique(np.clip(np.concatenate([[lo, hi], xs]), lo, hi))
    values = front_value(xs, front_quality, breaks)
    # The first vertex is a break point, so no interval straddles it: intervals left of it
    # are 0, the others trapezoids of a linear function.
    pieces = 0.5 * (values[:-1] + values[1:]) * np.diff(breaks)
    area = np.sum(np.where(breaks[1:] <= xs[0], 0.0, pieces))
    return float(area / (hi - lo))


def fronts(points: pd.DataFrame, log_cost: bool = False) -> pd.DataFrame:
    """Per router (and 'single arms' pooled, and 'all'): its front and AIQ over the common range.

    The common cost range is [min, max] of every point's cost.
    """
    low, high = points["cost"].min(), points["cost"].max()
    rows = []
    groups = [(r, p) for r, p in points[points["kind"] != "arm"].groupby("router", sort=False)]
    arms = points[points["kind"] == "arm"]
    if len(arms):
        groups.append(("single arms", arms))
    for router, part in groups:
        fc, fq = pareto_front(part["cost"], part["quality"])
        aiq = area_under_front(fc, fq, low, high, log_cost) if high > low else float(fq.max())
        rows.append({"router": router, "front_cost": fc, "front_quality": fq, "aiq": aiq,
                     "best_quality": float(fq.max())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Traffic share and the headline.
# ---------------------------------------------------------------------------------------------
def traffic_share(frame: pd.DataFrame, by_model: bool = True) -> pd.DataFrame:
    """Final traffic share per (router, lambda): one column per model (or arm), rows sum to 1."""
    columns = share_columns(frame)
    if not columns:
        raise ValueError("no share.* columns: run the routing environment with shares = "
                         "'arm' or 'model'")
    final = final_rows(frame).copy()
    final = final[~_is_reference(final["learner"])]
    final["router"] = final["setting"].map(router_name)
    share = final.groupby(["router", LAMBDA], sort=False)[columns].mean()
    share.columns = [c[len("share."):] for c in columns]
    if by_model:
        share = share.T.groupby(lambda arm: model_of(arm), sort=False).sum().T
    return share.reset_index().rename(columns={LAMBDA: "cost_weight"})


def reference_arm(points: pd.DataFrame) -> pd.Series:
    """The best single model at the smallest budget (one call), else the best single arm."""
    arms = points[points["kind"] == "arm"]
    if arms.empty:
        raise ValueError("no single-arm points: run a learner with role 'reference' (a fixed "
                         "arm) to get a reference")
    budgets = arms["router"].str.extract(r"@[kb]([0-9.]+)$")[0].astype(float)
    if budgets.notna().all():
        arms = arms[budgets == budgets.min()]
    return arms.loc[arms["quality"].idxmax()]


def fraction_of_reference(points: pd.DataFrame, reference: pd.Series | None = None
                          ) -> pd.DataFrame:
    """Every point with quality_fraction = q / q_ref and cost_fraction = c / c_ref."""
    reference = reference_arm(points) if reference is None else reference
    out = points.copy()
    out["quality_fraction"] = out["quality"] / reference["quality"]
    out["cost_fraction"] = out["cost"] / reference["cost"]
    return out


def headlines(points: pd.DataFrame, threshold: float = 0.95,
              reference: pd.Series | None = None) -> list[str]:
    """Per router: the cheapest lambda reaching ``threshold`` of the reference's quality
    (else its best-quality lambda), as "x% of <ref>'s quality at y% of its cost"."""
    reference = reference_arm(points) if reference is None else reference
    table = fraction_of_reference(points, reference)
    lines = []
    for router, part in table[table["kind"] != "arm"].groupby("router", sort=False):
        good = part[part["quality_fraction"] >= threshold]
        row = good.loc[good["cost"].idxmin()] if len(good) else part.loc[
            part["quality"].idxmax()]
        lines.append(f"{router} (cost_weight={row['cost_weight']:g}): "
                     f"{100 * row['quality_fraction']:.0f}% of {reference['router']}'s quality "
                     f"at {100 * row['cost_fraction']:.0f}% of its cost")
    return lines


# ---------------------------------------------------------------------------------------------
# Figures.
# ---------------------------------------------------------------------------------------------
def plot_routing(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """pareto.png (cost-quality plane, fronts, AIQ in the legend) and share.png (traffic per
    model and budget), each with a PDF beside it; nothing for a frame without quality and cost
    columns (an environment that reports no costs)."""
    if not {"quality", "cost"} <= set(frame.columns):
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    apply_style()
    points = cost_quality_points(frame)
    paths = _plot_pareto(points, out_dir / "pareto.png")
    if share_columns(frame):
        paths += _plot_share(frame, out_dir / "share.png")
    return paths


def _save(fig, path: Path) -> list[Path]:
    fig.savefig(path)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return [path, path.with_suffix(".pdf")]


def _plot_pareto(points: pd.DataFrame, path: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.7, COLUMN_WIDTH * 1.2))
    table = fronts(points, log_cost=False)            # RouterBench's AIQ (linear cost)
    aiq = dict(zip(table["router"], table["aiq"]))
    arms = points[points["kind"] == "arm"]
    if len(arms):
        ax.scatter(arms["cost"], arms["quality"], s=12, color="0.55", zorder=2,
                   label=f"single arms (AIQ {aiq['single arms']:.3f})")
        for row in arms.itertuples():
            ax.annotate(row.router, (row.cost, row.quality), fontsize=4.5, color="0.35",
                        xytext=(2, -5), textcoords="offset points")
        fc, fq = pareto_front(arms["cost"], arms["quality"])
        ax.plot(fc, fq, color="0.55", linestyle=":", linewidth=0.9, zorder=1)
    routers = points[points["kind"] != "arm"]
    colours = learner_colours(list(dict.fromkeys(routers["learner"])))
    used: dict[str, int] = {}
    for router, part in routers.groupby("router", sort=False):
        learner = part["learner"].iloc[0]
        colour = colours[learner]
        rank = used.get(colour, 0)
        used[colour] = rank + 1
        if rank:
            colour = PALETTE[(PALETTE.index(colour) + 7 * rank) % len(PALETTE)]
        part = part.sort_values("cost")
        ax.errorbar(part["cost"], part["quality"], xerr=part["cost_se"],
                    yerr=part["quality_se"], color=colour, marker="o", markersize=3,
                    linewidth=0.6, linestyle="--", elinewidth=0.5, capsize=0, zorder=3,
                    label=f"{router} (AIQ {aiq[router]:.3f})")
        fc, fq = pareto_front(part["cost"], part["quality"])
        ax.plot(fc, fq, color=colour, linewidth=1.3, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per request (dollars, log scale)")
    ax.set_ylabel("mean quality")
    ax.set_title("points: one per lambda; lines: non-decreasing convex hulls")
    ax.legend(loc="lower right", fontsize=5.5)
    return _save(fig, path)


def _plot_share(frame: pd.DataFrame, path: Path) -> list[Path]:
    """Stacked traffic share per router and lambda: one colour per model, and with per-arm
    shares one shade per budget within it (lighter = smaller budget)."""
    share = traffic_share(frame, by_model=False)
    arms = [c for c in share.columns if c not in ("router", "cost_weight")]
    models = list(dict.fromkeys(model_of(a) for a in arms))
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    rank = {}
    for arm in arms:
        siblings = [a for a in arms if model_of(a) == model_of(arm)]
        rank[arm] = (siblings.index(arm), len(siblings))
    routers = list(dict.fromkeys(share["router"]))
    fig, axes = plt.subplots(1, len(routers), sharey=True, squeeze=False,
                             figsize=(max(COLUMN_WIDTH, 1.5 * len(routers)), COLUMN_WIDTH))
    for ax, router in zip(axes[0], routers):
        part = share[share["router"] == router].sort_values("cost_weight")
        x = np.arange(len(part))
        bottom = np.zeros(len(part))
        for arm in arms:
            j, n = rank[arm]
            shade = 1.0 if n == 1 else 0.35 + 0.65 * j / (n - 1)
            ax.bar(x, part[arm], bottom=bottom, color=colours[model_of(arm)], alpha=shade,
                   width=0.8, linewidth=0)
            bottom += part[arm].to_numpy()
        ax.set_xticks(x, [f"{w:g}" for w in part["cost_weight"]], rotation=60)
        ax.set_title(router, fontsize=7)
        ax.set_xlabel("lambda")
    axes[0][0].set_ylabel("traffic share")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[m]) for m in models]
    note = " (lighter: smaller test-time budget)" if len(arms) > len(models) else ""
    fig.legend(handles, models, loc="upper center", ncol=min(len(models), 6), fontsize=6,
               bbox_to_anchor=(0.5, 1.08), title="model" + note, title_fontsize=6)
    return _save(fig, path)

