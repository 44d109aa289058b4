"""The shared figure style, the regret plot and the sensitivity plot.

Style: serif fonts sized for a two-column paper (8-9 pt), the Okabe-Ito colour-blind-safe
palette (Okabe and Ito 2008, "Color Universal Design"), one colour per learner that is the same
in every figure (the ``colour`` a learner class declares, else a palette colour no other learner
of the figure has, by order of appearance), the settings of one learner in shades of its colour
(dark to light in sweep order) and line styles, and 95% confidence bands.

Readable by default (docs/design.md, "Results"):
- the regret axis is logarithmic when the final means of the settings drawn span more than a
  decade (``wants_logy``), so a baseline with 100x the regret of the good learners does
  not squash them into the bottom of the axis; ``logy`` / ``logx`` (``[plot]`` in the config,
  ``--logy`` / ``--no-logy`` on the command line) override it;
- the settings of a single-arm learner (``role = 'reference'``, e.g. one per (model, budget)
  arm) are summarised: the best one drawn and named, the others faint and grey under one legend
  entry;
- when environment settings are swept, one panel per environment setting (curves are only
  comparable on the same problem), one legend for all.

What ``banditjax plot`` draws is declared by the environment and the learners (docs/design.md,
"Layout"): one figure per ``Metric`` with ``figure=True`` (``envs.core.Environment.metrics``, a
wrapper's added, then the learners' ``bandits.core.Learner.metrics``, drawn for the learners that
report them), then the environment's ``figures``, "module:function" names of
function(frame, out_dir) -> paths, and a sensitivity plot (``plot_sensitivity``) when the results
sweep exactly one numeric axis.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402

from analysis.metrics import (declared_metrics, learner_role, mean_band,  # noqa: E402
                              registered_names, rows_at, swept_columns, with_arm_labels)
from analysis.sensitivity import (axis_name, format_value, reference_rows,  # noqa: E402
                                  sensitivity_axis, sensitivity_points, x_scale)

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



class FaintArms:
    """The single-arm settings other than the best one, drawn faint and grey under one legend
    entry ("other single arms (n)"), so a sweep over fixed arms does not fill the legend."""

    def __init__(self, count: int):
        self.label = f"other single arms ({count})"

    def draw(self, ax, x, y) -> None:
        ax.plot(x, y, color="0.75", linewidth=0.6, zorder=1, label=self.label)
        self.label = "_nolegend_"

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


def shades(colour: str, count: int) -> list[str]:
    """``count`` distinct shades of ``colour``, dark to light (the colour itself for one): mixed
    towards black and white, mostly towards black for a light colour, so none fades out."""
    if count <= 1:
        return [colour]
    rgb = np.asarray(to_rgb(colour))
    luminance = float(rgb @ np.array([0.2126, 0.7152, 0.0722]))
    low, high = (-0.6, 0.1) if luminance > 0.55 else (-0.3, 0.45)
    out = []
    for position in np.linspace(low, high, count):    # < 0: towards black, > 0: white
        target = np.zeros(3) if position < 0 else np.ones(3)
        out.append(to_hex(rgb + abs(position) * (target - rgb)))
    return out


def setting_styles(frame: pd.DataFrame) -> dict[str, tuple[str, object]]:
    """(colour, line style) per setting: its learner's colour, in distinct shades (dark to light,
    in order of appearance) and line styles when the learner has several settings."""
    pairs = frame[["setting", "learner"]].drop_duplicates()
    colours = learner_colours(list(dict.fromkeys(pairs["learner"])))
    styles = {}
    for learner, part in pairs.groupby("learner", sort=False):
        for i, (setting, shade) in enumerate(zip(part["setting"],
                                                 shades(colours[learner], len(part)))):
            styles[setting] = (shade, LINE_STYLES[i % len(LINE_STYLES)])
    return styles


def wants_logy(frame: pd.DataFrame, metric: str = "regret") -> bool:
    """True when the final means of ``metric`` over the settings span more than a decade
    (max / min > 10, all positive): then a linear axis hides the better settings."""
    final = rows_at(frame).groupby("setting")[metric].mean()
    final = final[np.isfinite(final)]
    return bool(len(final) > 1 and (final > 0).all() and final.max() > 10 * final.min())


def reference_settings(frame: pd.DataFrame) -> set[str]:
    """Settings of single-arm learners (``role = 'reference'``) that are summarised in figures."""
    pairs = frame.drop_duplicates("setting")
    names = registered_names(pairs)
    roles = {name: learner_role(name) for name in names.unique()}
    chosen = pairs["setting"][names.map(roles).eq("reference").to_numpy()]
    return set(chosen) if len(chosen) > 1 else set()


def plot_curves(ax, frame: pd.DataFrame, metric: str = "regret", logx: bool = False,
                logy: bool = False, styles: dict | None = None,
                summarise: set[str] = frozenset()) -> None:
    """Mean of ``metric`` against t per setting, with 95% bands. Settings in ``summarise``
    (single arms) are drawn faintly in grey but for the best (lowest final mean), which is
    drawn dark grey and labelled 'best single arm: <setting>'."""
    band = mean_band(frame, metric)
    styles = styles or setting_styles(frame)
    final = band[band["t"] == band.groupby("setting")["t"].transform("max")]
    summarised = final[final["setting"].isin(summarise)]
    best = (summarised.loc[summarised["mean"].idxmin(), "setting"] if len(summarised)
            else None)
    faint = FaintArms(len(summarised) - 1)
    for setting, part in band.groupby("setting", sort=False):
        if setting in summarise and setting != best:
            faint.draw(ax, part["t"], part["mean"])
            continue
        if setting == best:
            colour, style, label = "0.3", "-", f"best single arm: {setting.split(' | ')[0]}"
        else:
            (colour, style), label = styles[setting], setting
        ax.plot(part["t"], part["mean"], color=colour, linestyle=style, label=label, zorder=3)
        if setting == best:
            ax.annotate(setting.split(" | ")[0], (part["t"].iloc[-1], part["mean"].iloc[-1]),
                        fontsize=5, color=colour, xytext=(-2, 3), textcoords="offset points",
                        ha="right")
        ax.fill_between(part["t"], part["lower"], part["upper"], color=colour, alpha=0.18,
                        linewidth=0, zorder=2)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
        _log_floor(ax, band)
        readable_log_ticks(ax)
    ax.set_xlabel("round $t$")


def readable_log_ticks(ax) -> None:
    """A log y axis spanning under three decades gets ticks at 1, 2 and 5 times powers of ten,
    written as plain numbers (the default would label one or two powers of ten only)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = ax.get_ylim()
    if low > 0 and high / low < 1e3:
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def _log_floor(ax, band: pd.DataFrame) -> None:
    """On a log axis, start at the smallest positive mean, but at most four decades below the
    largest (near-zero means of the first rounds would otherwise take most of the axis)."""
    positive = band["mean"][band["mean"] > 0]
    if len(positive):
        ax.set_ylim(bottom=max(positive.min(), positive.max() / 1e4) / 1.5)


def environment_panels(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per combination of the swept environment settings (one panel each), or
    one untitled panel when none is swept or there are more than 12 combinations."""
    columns = [c for c in swept_columns(frame) if str(c).startswith("env.")]
    if not columns:
        return [("", frame)]
    combos = frame[columns].astype(str).drop_duplicates()
    if len(combos) > 12:
        return [("", frame)]
    key = frame[columns].astype(str).agg("\x1f".join, axis=1)
    panels = []
    for values in combos.itertuples(index=False):
        title = ", ".join(f"{axis_name(c)}={format_value(v)}" for c, v in zip(columns, values))
        part = frame[key == "\x1f".join(values)].copy()
        part["setting"] = part["setting"].map(lambda s: str(s).split(" | ")[0])
        panels.append((title, part))
    return panels


def plot_regret(frame: pd.DataFrame, path: Path, logx: bool = False, logy: bool | None = None,
                metric: str = "regret", ylabel: str = "cumulative pseudo-regret") -> list[Path]:
    """The regret figure of ``banditjax run``: PNG (and PDF beside it). ``logy=None``: log
    when the final means span more than a decade (``wants_logy``)."""
    return save_figure(regret_figure(frame, logx, logy, metric, ylabel), path)


def save_figure(fig, path: Path) -> list[Path]:
    """Writes ``path`` and a PDF beside it, and closes the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return [path, path.with_suffix(".pdf")]


def regret_figure(frame: pd.DataFrame, logx: bool = False, logy: bool | None = None,
                  metric: str = "regret", ylabel: str = "cumulative pseudo-regret"):
    """The figure of ``plot_regret`` (one panel per swept environment setting)."""
    apply_style()
    frame = with_arm_labels(frame)
    panels = environment_panels(frame)
    if logy is None:
        logy = wants_logy(frame, metric)
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    width = COLUMN_WIDTH * (1.6 if columns == 1 else 1.0 * columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False, sharey=bool(logy),
                             figsize=(width, COLUMN_WIDTH * (1.1 if rows == 1 else 0.85 * rows)))
    styles = setting_styles(pd.concat([part[["setting", "learner"]] for _, part in panels]))
    handles: dict = {}
    for ax, (title, part) in zip(axes.flat, panels):
        summarise = reference_settings(part)
        plot_curves(ax, part, metric, logx=logx, logy=logy, styles=styles, summarise=summarise)
        if title:
            ax.set_title(title, fontsize=7)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            key = "best single arm" if label.startswith("best single arm") and len(panels) > 1 \
                else label
            handles.setdefault(key, handle)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    runs = frame.groupby("setting")["run"].nunique()
    heading = (f"{frame['env'].iloc[0]}: mean over {runs.min()}"
               + (f"-{runs.max()}" if runs.max() != runs.min() else "")
               + " runs, 95% bands" + (", log scale" if logy else ""))
    if len(panels) == 1:
        axes[0][0].set_title(heading)
        axes[0][0].legend(handles.values(), handles.keys(), loc="upper left",
                          ncol=1 if len(handles) <= 8 else 2)
    else:
        fig.suptitle(heading, fontsize=9)
        fig.tight_layout(rect=(0, 0, 0.78, 1))
        fig.legend(handles.values(), handles.keys(), loc="center left",
                   bbox_to_anchor=(0.78, 0.5), fontsize=6)
    return fig


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
                 logy: bool | None = None) -> list[Path]:
    """Every figure for a results folder: one per declared metric with ``figure=True``
    (``<metric>.png`` and .pdf; regret first), then the environment's declared figures, then
    ``sensitivity_<axis>.png`` when the results sweep exactly one numeric axis. A
    learner-reported metric is drawn for the settings that report it (its rows that are not
    NaN). ``logy=None``: decided per figure (``wants_logy``)."""
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for metric in declared_metrics(frame):
        if metric.figure:
            reported = frame[frame[metric.name].notna()]
            paths += plot_regret(reported, out_dir / f"{metric.name}.png", logx=logx,
                                 logy=logy, metric=metric.name, ylabel=metric.label)
    for figure in declared_figures(frame):
        paths += figure(frame, out_dir)
    axis = sensitivity_axis(frame)
    if axis is not None:
        paths += plot_sensitivity(frame, axis, out_dir / f"sensitivity_{axis_name(axis)}.png",
                                  logy=logy)
    return paths


def plot_sensitivity(frame: pd.DataFrame, column: str, path: Path, at: int | None = None,
                     metric: str = "regret", logx: bool | None = None,
                     logy: bool | None = None) -> list[Path]:
    """``path`` (PNG) and a PDF beside it: ``metric`` at the last round (or ``at``) against
    ``column``, mean and 95% band per line. ``logx`` / ``logy`` None: decided from the data."""
    return save_figure(sensitivity_figure(frame, column, at, metric, logx, logy), path)


def sensitivity_figure(frame: pd.DataFrame, column: str, at: int | None = None,
                       metric: str = "regret", logx: bool | None = None,
                       logy: bool | None = None):
    """The figure of ``plot_sensitivity``. Several single-arm lines (``role = 'reference'``) are
    drawn faint and grey under one legend entry, but the best (lowest mean over the axis),
    which is drawn dark grey and named."""
    points = sensitivity_points(frame, column, metric, at)
    swept = points[points["value"].notna()]
    flat = points[points["value"].isna()]
    scale = x_scale(swept["value"].unique(), logx)
    if logy is None:
        means = points["mean"].to_numpy()
        logy = bool((means > 0).all() and means.max() > 10 * means.min())
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.4, COLUMN_WIDTH * 1.0))
    colours = learner_colours(list(dict.fromkeys(points["learner"])))
    lines = points[["line", "learner"]].drop_duplicates()
    shade = {}
    for learner, part in lines.groupby("learner", sort=False):
        shade.update(zip(part["line"], shades(colours[learner], len(part))))
    arms = swept[reference_rows(swept).to_numpy()]
    faint = set(arms["line"]) if arms["line"].nunique() > 1 else set()
    best = arms.groupby("line")["mean"].mean().idxmin() if faint else None
    faint_arms = FaintArms(len(faint) - 1)
    for line, part in swept.groupby("line", sort=False):
        if line in faint and line != best:
            faint_arms.draw(ax, part["value"], part["mean"])
            continue
        colour, label = ("0.3", f"best single arm: {line}") if line == best else \
            (shade[line], line)
        ax.plot(part["value"], part["mean"], color=colour, marker="o", markersize=3,
                label=label, zorder=3)
        ax.fill_between(part["value"], part["lower"], part["upper"], color=colour,
                        alpha=0.18, linewidth=0, zorder=2)
    for row in flat.itertuples(index=False):
        ax.axhline(row.mean, color=shade[row.line], linestyle="--", linewidth=0.9,
                   label=f"{row.line} (no {axis_name(column)})")
        ax.axhspan(row.lower, row.upper, color=shade[row.line], alpha=0.1, linewidth=0)
    values = sorted(swept["value"].unique())
    if scale == "symlog":
        ax.set_xscale("symlog", linthresh=min(v for v in values if v > 0))
    elif scale == "log":
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
        readable_log_ticks(ax)
    if len(values) <= 12:
        ax.set_xticks(values, [format_value(v) for v in values])
        if scale is not None:
            ax.minorticks_off()
    labels = {m.name: m.label for m in declared_metrics(frame)}
    t = points["t"].max()
    kind = "hyper-parameter" if column.startswith("hp.") else "environment setting"
    ax.set_xlabel(f"{axis_name(column)} ({kind})")
    ax.set_ylabel(f"{labels.get(metric, metric)} at t = {t}")
    runs = points["runs"].min()
    ax.set_title(f"{frame['env'].iloc[0]}: {metric} at t = {t} against {axis_name(column)}; "
                 f"mean over {runs} runs, 95% bands", fontsize=8)
    entries = len(ax.get_legend_handles_labels()[1])
    if entries > 6:                                # beside the axes, not over the lines
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    else:
        ax.legend(fontsize=6, loc="best")
    return fig
