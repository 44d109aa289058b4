"""What every figure script shares: configs, cached runs, the output files.

Each figure reads ``paper_figures/configs/<name>.toml``, a normal ``banditjax run`` config with an
optional ``[quick]`` table of overrides (same layout: ``[quick.run]``, ``[quick.env]``) that
``--quick`` applies for the test suite. The config is built with ``experiments.config.build``
and run with ``experiments.experiment.run_experiment`` into
``paper_figures/cache/<name>[-quick]-<hash>/``, where the hash is the SHA-256 of the resolved
config (``dump_toml`` of ``Experiment.config``): an unchanged config reuses the results on disk,
any change (a horizon, a seed, a learner) runs again. Figures go to ``paper_figures/out/<name>.pdf``
and ``.png``; the full (not quick) run also writes a small PNG copy ``docs/fig_<name>.png`` for the
README.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

ROOT = Path(__file__).resolve().parent
CONFIG_DIR = ROOT / "configs"
OUT_DIR = Path(os.environ.get("BANDITJAX_FIGURES_OUT", ROOT / "out"))
CACHE_DIR = Path(os.environ.get("BANDITJAX_FIGURES_CACHE", ROOT / "cache"))
DOCS_DIR = ROOT.parent / "docs"
DOCS_DPI = 110


def merge(base: dict, overrides: Mapping) -> dict:
    """A copy of ``base`` with the tables of ``overrides`` merged in recursively."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(name: str, quick: bool = False) -> dict:
    """The figure's config as a dict, with its ``[quick]`` overrides applied when ``quick``."""
    config = tomllib.loads((CONFIG_DIR / f"{name}.toml").read_text())
    overrides = config.pop("quick", {})
    return merge(config, overrides) if quick else config


def config_hash(resolved: Mapping) -> str:
    """12 hex digits of the SHA-256 of a resolved config (its TOML text), without its [plot]
    table (drawing options do not change results)."""
    from experiments.config import dump_toml
    results_part = {k: v for k, v in resolved.items() if k != "plot"}
    return hashlib.sha256(dump_toml(results_part).encode()).hexdigest()[:12]


def results(name: str, quick: bool = False, config: dict | None = None,
            cache: Path | None = None, force: bool = False,
            progress: bool = False) -> tuple[pd.DataFrame, Path]:
    """(results frame, folder) of a figure's config: reused from the cache when unchanged."""
    from experiments import config as config_lib
    from experiments.experiment import run_experiment

    if config is None:
        config = load_config(name, quick)
    experiment = config_lib.build(config)
    folder = Path(cache or CACHE_DIR) / (f"{name}{'-quick' if quick else ''}-"
                                         f"{config_hash(experiment.config)}")
    parquet = folder / "results.parquet"
    if parquet.exists() and not force:
        return pd.read_parquet(parquet), folder
    folder.mkdir(parents=True, exist_ok=True)
    frame, _ = run_experiment(experiment, folder, progress=progress, plot=False)
    return frame, folder


def cached_json(name: str, key: Mapping, compute, cache: Path | None = None,
                force: bool = False) -> Any:
    """compute() cached as JSON under a hash of ``key`` (for figures that are not runner runs)."""
    from experiments.experiment import write_text

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(cache or CACHE_DIR) / f"{name}-{digest}.json"
    if path.exists() and not force:
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(value, indent=1))
    return value


def save(fig, name: str, quick: bool = False, out: Path | None = None) -> list[Path]:
    """Writes ``out/<name>.pdf`` and ``.png`` (and ``docs/fig_<name>.png`` for a full run)."""
    import matplotlib.pyplot as plt

    out = Path(out or OUT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    for path in paths:
        fig.savefig(path)
    if not quick and out.resolve() == OUT_DIR.resolve():
        DOCS_DIR.mkdir(exist_ok=True)
        fig.savefig(DOCS_DIR / f"fig_{name}.png", dpi=DOCS_DPI)
        paths.append(DOCS_DIR / f"fig_{name}.png")
    plt.close(fig)
    return paths


def bounds_check_table(cache: Path | None = None, quick: bool = False,
                       samples: int = 1000) -> pd.DataFrame:
    """The bounds table of the standard instances (checked by tests/test_bounds.py, slow):

    ``classic.toml`` (five Bernoulli arms; UCB1, KL-UCB, Thompson, MOSS, EXP3) and
    ``exponents_linear.toml`` (the linear learners). One row per learner setting.
    """
    from experiments.bounds_command import add_learner_names, bounds_table

    tables = []
    for name in ("classic", "exponents_linear"):
        frame, folder = results(name, quick, cache=cache)
        frame = add_learner_names(frame, folder)
        table = bounds_table(frame, folder, samples=samples)
        table.insert(0, "config", name)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)
