"""Figure 8 and the README's showdown tables: cumulative regret normalised to the uniform policy,
as Riquelme, Tucker and Snoek (2018, "Deep Bayesian Bandits Showdown", tables 2 and 3) report
it, on the Wheel bandit and on classification datasets.

Runs ``experiments/configs/showdown.toml`` (the Wheel bandit at the paper's five deltas) and
``experiments/configs/showdown_datasets.toml`` (scikit-learn's bundled datasets; when
scikit-learn, an optional extra, is not installed, the same learners on the small table checked
into ``tests/data/classes.csv`` instead, and the table says so). Every learner's final cumulative
regret is divided by that of the learner declaring role 'baseline' (the uniform policy) in the
same environment setting, with 95% delta-method intervals
(``analysis.showdown.normalised_regret``). Writes the figure (left: the wheel against delta;
right: the datasets; log scale) and ``showdown.md``, the Markdown tables the README shows.
``--quick`` runs a small version (two deltas, two learners, short horizons) for the test suite.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.plotting import COLUMN_WIDTH, PAGE_WIDTH, apply_style, learner_colours
from analysis.showdown import markdown_table, normalised_regret
from paper_figures import common

NAME = "showdown"
CONFIGS = common.ROOT.parent / "experiments" / "configs"
CHECKED_IN = common.ROOT.parent / "tests" / "data" / "classes.csv"
QUICK_RUN = {"run": {"horizon": 60, "seeds": 2, "record": 4},
             "learner": [{"name": "uniform"}, {"name": "linucb"}]}


def have_presets() -> bool:
    """scikit-learn (the optional 'datasets' extra) is installed."""
    return importlib.util.find_spec("sklearn") is not None


def wheel_config(quick: bool) -> dict:
    from experiments import config as config_lib
    config = config_lib.load(CONFIGS / "showdown.toml")
    return common.merge(config, {**QUICK_RUN, "env": {"delta": [0.5, 0.95]}}) if quick else config


def datasets_config(quick: bool) -> tuple[dict, str]:
    """(config, what it runs on): the presets, or the checked-in table without scikit-learn."""
    from experiments import config as config_lib
    config = config_lib.load(CONFIGS / "showdown_datasets.toml")
    source = "scikit-learn's bundled datasets"
    if not have_presets():
        env = {k: v for k, v in config["env"].items() if k != "preset"}
        config["env"] = {**env, "path": str(CHECKED_IN), "label": "class"}
        source = (f"the checked-in table {CHECKED_IN.name} (150 rows, 4 features, 3 classes; "
                  f"scikit-learn is not installed, so the presets were not run)")
    return (common.merge(config, QUICK_RUN) if quick else config), source


def dataset_name(label: str) -> str:
    """'preset=iris' -> 'iris'; the single table of the fallback -> its file name."""
    return label.split("=", 1)[1] if label.startswith("preset=") else CHECKED_IN.name


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    wheel, _ = common.results(NAME, quick, config=wheel_config(quick), cache=cache, force=force)
    config, source = datasets_config(quick)
    data, _ = common.results(f"{NAME}_datasets", quick, config=config, cache=cache, force=force)
    wheel_table = normalised_regret(wheel)
    data_table = normalised_regret(data)
    data_table["environment"] = data_table["environment"].map(dataset_name)
    out = Path(out or common.OUT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    text = []
    for title, frame, table in (("Wheel bandit", wheel, wheel_table),
                                (f"Classification: {source}", data, data_table)):
        text.append(f"{title}: cumulative regret at T = {int(frame['t'].max()):,} normalised to "
                    f"the uniform policy, mean of {int(table['runs'].min())} runs per cell "
                    f"[95% interval]\n\n" + markdown_table(table) + "\n")
    (out / f"{NAME}.md").write_text("\n".join(text))

    apply_style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, COLUMN_WIDTH * 0.9))
    colours = learner_colours(list(dict.fromkeys(list(wheel_table["learner"])
                                                 + list(data_table["learner"]))))
    plot_wheel(left, wheel_table, colours)
    plot_datasets(right, data_table, colours)
    left.set_title(f"Wheel bandit, T={int(wheel['t'].max()):,}", fontsize=7)
    right.set_title(f"classification, T={int(data['t'].max()):,}", fontsize=7)
    left.legend(loc="lower left", fontsize=5, ncol=2)
    return common.save(fig, NAME, quick, out) + [out / f"{NAME}.md"]


def plot_wheel(ax, table: pd.DataFrame, colours: dict) -> None:
    """Normalised regret against delta, one line (and 95% band) per learner setting."""
    for setting, part in table.groupby("setting", sort=False):
        delta = np.array([float(e.split("=")[1]) for e in part["environment"]])
        order = np.argsort(delta)
        colour = colours[part["learner"].iloc[0]]
        ax.plot(delta[order], part["normalised"].to_numpy()[order], marker="o", markersize=3,
                color=colour, label=setting)
        ax.fill_between(delta[order], np.maximum(part["lower"].to_numpy()[order], 1e-3),
                        part["upper"].to_numpy()[order], color=colour, alpha=0.18, linewidth=0)
    ax.set_yscale("log")
    ax.set_xlabel(r"$\delta$ (exploration parameter)")
    ax.set_ylabel("cumulative regret / uniform's")


def plot_datasets(ax, table: pd.DataFrame, colours: dict) -> None:
    """Normalised regret per dataset, one marker (and 95% interval) per learner setting."""
    datasets = list(dict.fromkeys(table["environment"]))
    settings = list(dict.fromkeys(table["setting"]))
    width = 0.8 / max(len(settings), 1)
    for i, setting in enumerate(settings):
        part = table[table["setting"] == setting].set_index("environment").reindex(datasets)
        x = np.arange(len(datasets)) - 0.4 + (i + 0.5) * width
        y = part["normalised"].to_numpy()
        errors = np.stack([y - np.maximum(part["lower"].to_numpy(), 1e-3),
                           part["upper"].to_numpy() - y])
        ax.errorbar(x, y, yerr=errors, fmt="o", markersize=3, linewidth=0.8,
                    color=colours[part["learner"].dropna().iloc[0]], label=setting)
    ax.set_xticks(np.arange(len(datasets)), datasets)
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_yscale("log")
