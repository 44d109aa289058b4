"""The shared figure style and the regret plot.

Style: serif fonts sized for a two-column paper (8-9 pt), the Okabe-Ito colour-blind-safe
palette (Okabe and Ito 2008, "Color Universal Design"), one colour per learner that is the same
in every figure (the ``colour`` a learner class declares, else a palette colour no other learner
of the figure has, by order of appearance), line styles telling apart the settings of one
learner, and 95% confidence bands.

What ``banditjax plot`` draws is declared by the environment and the learners (docs/design.md,
"Layout"): one figure per ``Metric`` with ``figure=True`` (``envs.core.Environment.metrics``, a
wrapper's added, then the learners' ``bandits.core.Learner.metrics``, drawn for the learners that
report them), then the environment's ``figures``, "module:function" names of
function(frame, out_dir) -> paths.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.metrics import declared_metrics, mean_band  # noqa: E402

# Okabe-Ito without its yellow (too pale on white), then Paul Tol's "muted" scheme: 16
# colour-blind-safe colours, so the learners most often compared never share one.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
TOL_MUTED = ("#332288", "#117733", "#44AA99", "#88CCEE", "#DDCC77", "#CC6677", "#AA4499",
             "#882255", "#999933")
PALETTE = OKABE_ITO + TOL_MUTED
LINE_STYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))

PAPER_STYLE = {
    "font.family": "serif",
    "font.serif": ["DejaVu Serif", "Times New Roman", "Times"],
    "mathtext.fontset": "dejavuserif",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "legend.frameon": False,
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
}
COLUMN_WIDTH = 3.4   # inches, one column of a two-column paper
PAGE_WIDTH = 7.0


def apply_style() -> None:
    plt.rcParams.update(PAPER_STYLE)


def declared_colour(name: str) -> str | None:
    """The colour the learner registered as ``name`` declares (``Learner.colour``), or None."""
    import bandits  # noqa: F401  (registers every learner)
    from bandits.core import LEARNERS

    return LEARNERS.get(name, "learner").declared("colour") if name in LEARNERS else None


def learner_colours(learners: list[str]) -> dict[str, str]:
    """A stable colour per learner name: declared colours first, others take unused ones."""
    colours = {n: declared_colour(n) for n in learners if declared_colour(n) is not None}
    free = [c for c in PALETTE if c not in colours.values()]
    for i, name in enumerate(n for n in learners if n not in colours):
        colours[name] = free[i % len(free)] if free else PALETTE[i % len(PALETTE)]
    return colours


def setting_styles(frame: pd.DataFrame) -> dict[str, tuple[str, object]]:
    """(colour, line style) per setting: colour from its learner, style from its rank."""
    pairs = frame[["setting", "learner"]].drop_duplicates()
    colours = learner_colours(list(dict.fromkeys(pairs["learner"])))
    styles, rank = {}, {}
    for setting, learner in pairs.itertuples(index=False):
        i = rank.get(learner, 0)
        rank[learner] = i + 1
        styles[setting] = (colours[learner], LINE_STYLES[i % len(LINE_STYLES)])
    return styles


def plot_curves(ax, frame: pd.DataFrame, metric: str = "regret", logx: bool = False,
                logy: bool = False) -> None:
    """Mean of ``metric`` against t per setting, with 95% bands."""
    band = mean_band(frame, metric)
    styles = setting_styles(frame)
    for setting, part in band.groupby("setting", sort=False):
        colour, style = styles[setting]
        ax.plot(part["t"], part["mean"], color=colour, linestyle=style, label=setting)
        ax.fill_between(part["t"], part["lower"], part["upper"], color=colour, alpha=0.18,
                        linewidth=0)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("round $t$")


def plot_regret(frame: pd.DataFrame, path: Path, logx: bool = False, logy: bool = False,
                metric: str = "regret", ylabel: str = "cumulative pseudo-regret") -> list[Path]:
    """The regret figure of ``banditjax run``: PNG (and PDF beside it)."""
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.6, COLUMN_WIDTH * 1.1))
    plot_curves(ax, frame, metric, logx=logx, logy=logy)
    ax.set_ylabel(ylabel)
    n = frame["setting"].nunique()
    ax.legend(loc="upper left", ncol=1 if n <= 8 else 2)
    runs = frame.groupby("setting")["run"].nunique()
    ax.set_title(f"{frame['env'].iloc[0]}: mean over {runs.min()}"
                 + (f"-{runs.max()}" if runs.max() != runs.min() else "")
                 + " runs, 95% bands")
    path = Path(path)
    fig.savefig(path)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return [path, path.with_suffix(".pdf")]


def declared_figures(frame: pd.DataFrame) -> list:
    """The extra figure functions the frame's environment declares (``Environment.figures``)."""
    import envs  # noqa: F401  (registers every environment)
    from envs.core import ENVS

    env = str(frame["env"].iloc[0])
    names = ENVS.get(env, "env").figures if env in ENVS else ()
    functions = []
    for name in names:
        module, _, function = name.partition(":")
        functions.append(getattr(importlib.import_module(module), function))
    return functions


def plot_results(frame: pd.DataFrame, out_dir: Path, logx: bool = False,
                 logy: bool = False) -> list[Path]:
    """Every figure for a results folder: one per declared metric with ``figure=True``
    (``<metric>.png`` and .pdf; regret first), then the environment's declared figures. A
    learner-reported metric is drawn for the settings that report it (its rows that are not
    NaN)."""
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for metric in declared_metrics(frame):
        if metric.figure:
            reported = frame[frame[metric.name].notna()]
            paths += plot_regret(reported, out_dir / f"{metric.name}.png", logx=logx,
                                 logy=logy, metric=metric.name, ylabel=metric.label)
    for figure in declared_figures(frame):
        paths += figure(frame, out_dir)
    return paths
