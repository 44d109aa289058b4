"""``banditjax bounds DIR``: the regret-bound checks of a results folder (docs/design.md, "Who
uses it, for what" 1).

The checks themselves are ``analysis.bounds`` (pure: frames and declared metadata). This module
is the glue that needs the config layer: it reads the folder (``results.parquet``,
``config.toml``), maps learner labels to registry names, re-samples random instances exactly as
the runner did (``experiments.config.build`` derives the same instance keys with
``derive_keys``; then every environment's ``arm_means`` reads ``env.sample_params(instance_key,
settings)``; nothing is simulated), and writes ``bounds.csv`` and ``bounds.png/.pdf`` atomically.
"""
from __future__ import annotations

import argparse
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import bounds as bounds_lib
from analysis import fits
from envs.core import ConfigError


def add_learner_names(frame: pd.DataFrame, folder: Path | None) -> pd.DataFrame:
    """Adds ``learner_name`` (the registry name) when labels differ from it (from config.toml)."""
    if folder is None or not (Path(folder) / "config.toml").exists():
        return frame
    config = tomllib.loads((Path(folder) / "config.toml").read_text())
    names = {t.get("label", t.get("name")): t.get("name") for t in config.get("learner", [])}
    frame = frame.copy()
    frame["learner_name"] = frame["learner"].map(lambda label: names.get(label, label))
    return frame


def resample_instance_means(config_path: Path) -> pd.DataFrame:
    """Re-samples every run's instance from a resolved config (no simulation): one row per run,
    ``means`` and ``sigma`` (NaN without one), as the environment's ``arm_means`` reads them."""
    import jax

    from experiments import config as config_lib

    experiment = config_lib.build(tomllib.loads(Path(config_path).read_text()))
    rows = []
    for group in experiment.groups:
        params = jax.vmap(group.env.sample_params)(group.instance_keys, group.env_settings)
        read = group.env.arm_means(params)
        if read is None:
            continue
        means = np.asarray(read[0], np.float64)
        sigma = None if read[1] is None else np.asarray(read[1], np.float64)
        for i, run in enumerate(group.runs["run"].to_numpy()):
            rows.append((int(run), means[i], math.nan if sigma is None else float(
                np.broadcast_to(sigma, (len(means),))[i])))
    return pd.DataFrame(rows, columns=["run", "means", "sigma"]).set_index("run")


def instance_means(frame: pd.DataFrame, folder: Path | None = None) -> pd.DataFrame:
    """Every run's arm means (``analysis.bounds.instance_means``), re-sampled from
    ``folder/config.toml`` when the settings do not fix them."""
    try:
        return bounds_lib.instance_means(frame)
    except FileNotFoundError:
        if folder is None or not (Path(folder) / "config.toml").exists():
            raise FileNotFoundError("random instances: the results folder's config.toml is "
                                    "needed to re-sample the arm means") from None
        return bounds_lib.instance_means(
            frame, resample_instance_means(Path(folder) / "config.toml"))


def bounds_table(frame: pd.DataFrame, folder: Path | None = None,
                 samples: int = fits.BOOTSTRAP_SAMPLES,
                 seed: int = fits.BOOTSTRAP_SEED) -> pd.DataFrame:
    """``analysis.bounds.bounds_table`` of a results folder's frame (instances re-sampled)."""
    return bounds_lib.bounds_table(frame, instance_means(frame, folder), samples, seed)


def run_bounds(folder: Path, samples: int = fits.BOOTSTRAP_SAMPLES,
               plot: bool = True) -> pd.DataFrame:
    """Reads DIR/results.parquet, writes DIR/bounds.csv (and bounds.png/.pdf); returns the table."""
    from experiments.experiment import atomic_path

    folder = Path(folder)
    results = folder / "results.parquet"
    if not results.exists():
        raise ConfigError(f"{str(folder)!r} holds no results.parquet: run `banditjax run` first")
    frame = add_learner_names(pd.read_parquet(results), folder)
    instances = instance_means(frame, folder)
    table = bounds_lib.bounds_table(frame, instances, samples)
    with atomic_path(folder / "bounds.csv") as tmp:
        table.to_csv(tmp, index=False)
    if plot:
        from analysis.bound_plots import plot_bounds

        plot_bounds(frame, folder / "bounds.png", instances)
    return table


def _cmd_bounds(args: argparse.Namespace) -> int:
    table = run_bounds(Path(args.dir), samples=args.bootstrap, plot=not args.no_plot)
    print(bounds_lib.printable(table))
    print()
    print(f"table:  {Path(args.dir) / 'bounds.csv'}")
    if not args.no_plot:
        print(f"figure: {Path(args.dir) / 'bounds.png'}")
    return 0


def register_command(subparsers: Any) -> None:
    """Adds ``banditjax bounds DIR`` (picked up by experiments.cli)."""
    parser = subparsers.add_parser(
        "bounds", help="regret exponents, log constants and bound checks of a results folder")
    parser.add_argument("dir", help="a folder written by `banditjax run`")
    parser.add_argument("--bootstrap", type=int, default=fits.BOOTSTRAP_SAMPLES,
                        help=f"bootstrap resamples over runs (default "
                             f"{fits.BOOTSTRAP_SAMPLES})")
    parser.add_argument("--no-plot", action="store_true", help="skip bounds.png/.pdf")
    parser.set_defaults(func=_cmd_bounds)
