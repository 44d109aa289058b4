"""Running a whole config and writing its results folder.

``DIR/results.parquet``  tidy results: one row per (run, recorded round)
``DIR/config.toml``      the resolved config (every default filled in)
``DIR/meta.json``        versions, device, git commit, wall and compile time, agent-steps/s, peak
                         memory
``DIR/regret.png/.pdf``  mean cumulative regret with 95% bands per learner setting

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import jax
import numpy as np
import pandas as pd

from envs.core import ConfigError
from experiments import config as config_lib
from experiments.runner import record_grid, simulate

PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "pandas", "matplotlib",
            "pyarrow")


# ---------------------------------------------------------------------------------------------
# Atomic files.
# ---------------------------------------------------------------------------------------------
@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renamed onto it only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def prepare_out_dir(out: Path, force: bool) -> Path:
    """Creates ``out``; refuses a folder that already holds results unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {str(out)!r} already holds files; choose another folder or "
                          f"pass --force to overwrite them")
    out.mkdir(parents=True, exist_ok=True)
    return out


# ---------------------------------------------------------------------------------------------
# Facts for meta.json.
# ---------------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES + ("banditjax",):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_description() -> dict[str, Any]:
    devices = jax.devices()
    first = devices[0]
    return {"platform": first.platform, "kind": getattr(first, "device_kind", first.platform),
            "count": len(devices), "processes": jax.process_count(),
            "cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count()}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def peak_memory_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# ---------------------------------------------------------------------------------------------
# Running.
# ---------------------------------------------------------------------------------------------
class Progress:
    """A tqdm bar over agent-steps (runs x rounds), on stderr, silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, unit="step", unit_scale=True, dynamic_ncols=True,
                            file=sys.stderr, desc="simulating")

    def describe(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description(text)

    def __call__(self, steps: int) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def tidy(group_runs: pd.DataFrame, t: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (run, recorded round): the run's labels, t and every metric."""
    runs, points = len(group_runs), len(t)
    frame = group_runs.loc[group_runs.index.repeat(points)].reset_index(drop=True)
    frame["t"] = np.tile(t, runs).astype(np.int64)
    for name, values in columns.items():
        frame[name] = np.asarray(values, np.float64).reshape(-1)
    return frame


def simulate_experiment(experiment: config_lib.Experiment, progress: bool = True,
                        devices: list | None = None) -> tuple[pd.DataFrame, dict]:
    """Runs every group; returns the tidy frame and the timing facts for meta.json."""
    run = experiment.run
    grid = record_grid(run["horizon"], run["record"])
    if devices is None and run.get("devices"):
        available = jax.devices()
        if run["devices"] > len(available):
            raise ConfigError(f"run.devices = {run['devices']}: only {len(available)} "
                              f"device(s) visible")
        devices = available[:run["devices"]]
    total = experiment.total_runs * run["horizon"]
    bar = Progress(total, progress)
    frames, timings = [], []
    start = time.perf_counter()
    try:
        for group in experiment.groups:
            bar.describe(f"{group.runs['learner'].iloc[0]} ({len(group.runs)} runs)")
            result = simulate(group.env, group.learner, run_keys=group.run_keys,
                              instance_keys=group.instance_keys, env_settings=group.env_settings,
                              hparams=group.hparams, horizon=run["horizon"], record=grid,
                              chunk=run["chunk"], batch=run["batch"], devices=devices,
                              progress=bar)
            frames.append(tidy(group.runs, result.t, result.columns))
            timings.append({"learner": group.runs["learner"].iloc[0],
                            "runs": len(group.runs),
                            "compile_seconds": round(result.compile_seconds, 4),
                            "run_seconds": round(result.run_seconds, 4),
                            "agent_steps_per_second": result.steps_per_second})
    finally:
        bar.close()
    wall = time.perf_counter() - start
    run_seconds = sum(t["run_seconds"] for t in timings)
    facts = {"wall_seconds": round(wall, 3),
             "compile_seconds": round(sum(t["compile_seconds"] for t in timings), 3),
             "run_seconds": round(run_seconds, 3),
             "agent_steps": total,
             "agent_steps_per_second": total / max(run_seconds, 1e-12),
             "groups": timings}
    return pd.concat(frames, ignore_index=True), facts


def run_experiment(experiment: config_lib.Experiment, out: Path, progress: bool = True,
                   plot: bool = True) -> tuple[pd.DataFrame, dict]:
    """Simulates and writes results.parquet, config.toml, meta.json and the figures."""
    out = Path(out)
    frame, facts = simulate_experiment(experiment, progress=progress)
    write_parquet(frame, out / "results.parquet")
    write_text(out / "config.toml", config_lib.dump_toml(experiment.config))
    meta = {"versions": versions(), "device": device_description(), "git_commit": git_commit(),
            "command": sys.argv, "peak_memory_mib": round(peak_memory_mib(), 1), **facts}
    write_text(out / "meta.json", json.dumps(meta, indent=2, default=float))
    if plot:
        from analysis.plotting import plot_results
        plot_results(frame, out, logx=experiment.plot["logx"], logy=experiment.plot["logy"])
    return frame, meta
