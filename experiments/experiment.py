"""Running a whole config and writing its results folder.

``DIR/results.parquet``  tidy results: one row per (run, recorded round)
``DIR/config.toml``      the resolved config (every default filled in)
``DIR/meta.json``        versions, device, git commit, wall and compile time, agent-steps/s, peak
                         memory
``DIR/regret.png/.pdf``  mean cumulative regret with 95% bands per learner setting
``DIR/checkpoint``       while running: the whole state, to continue with ``--resume``
                         (``experiments/checkpoint.py``); deleted when the results are written

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
from experiments import checkpoint as checkpoint_lib
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
        if any(out.glob("checkpoint*")):
            raise ConfigError(f"--out {str(out)!r} already holds files, among them the "
                              f"checkpoint of an interrupted run: pass --resume to continue it "
                              f"(same config, --set and --import options), --force to start "
                              f"again and lose it, or choose another folder")
        raise ConfigError(f"--out {str(out)!r} already holds files; choose another folder or "
                          f"pass --force to overwrite them")
    out.mkdir(parents=True, exist_ok=True)
    return out


def prepare_resume(out: Path) -> Path:
    """--resume: ``out`` must hold a checkpoint, or nothing yet (then the run starts afresh)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a folder")
    if out.exists() and not any(out.glob("checkpoint*")):
        if (out / "results.parquet").exists():
            raise ConfigError(f"--resume: {str(out)!r} holds finished results and no "
                              f"checkpoint, so there is nothing to resume (pass --force instead "
                              f"of --resume to run again)")
        if any(out.iterdir()):
            raise ConfigError(f"--resume: {str(out)!r} holds no checkpoint; choose another "
                              f"folder, or pass --force instead of --resume")
    if not out.exists() or not any(out.glob("checkpoint*")):
        print(f"note: no checkpoint in {str(out)!r}; starting from the first round",
              file=sys.stderr)
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
def format_duration(seconds: float) -> str:
    """``2 h 05 min``, ``7 min 30 s``, ``12 s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


# A run whose remaining time, measured after ESTIMATE_AFTER seconds of simulation, exceeds
# LONG_RUN seconds is announced with its estimate (the bar's ETA says the same as it goes).
ESTIMATE_AFTER = 10.0
LONG_RUN = 600.0


class Progress:
    """One tqdm bar over the whole experiment's agent-steps (runs x rounds, every group), on
    stderr with its ETA, silent when disabled; once ESTIMATE_AFTER seconds of simulation are
    measured, a run with more than LONG_RUN seconds to go gets a note with its estimate."""

    def __init__(self, total: int, enabled: bool, long_run_hint: str = ""):
        self.bar = None
        self.total, self.done, self.calls = total, 0, 0
        self.enabled = enabled
        self.long_run_hint = long_run_hint
        self.started: tuple[float, int] | None = None     # (time, steps) after the first chunk
        self.estimated = False
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
        self.done += steps
        self.calls += 1
        now = time.perf_counter()
        if self.calls == 1 or self.estimated:     # the first call: steps done before a resume
            return
        if self.started is None:                  # compile time is behind the first chunk
            self.started = (now, self.done)
            return
        elapsed = now - self.started[0]
        if elapsed >= ESTIMATE_AFTER:
            self.estimated = True
            rate = (self.done - self.started[1]) / elapsed
            left = (self.total - self.done) / max(rate, 1e-12)
            if left >= LONG_RUN and self.enabled:
                self.note(f"about {format_duration(left)} to go at {rate:.3g} agent-steps/s"
                          + self.long_run_hint)

    def note(self, text: str) -> None:
        """A line above the bar (on stderr even when the bar is off)."""
        if self.bar is not None:
            self.bar.write("note: " + text, file=sys.stderr)
        else:
            print("note: " + text, file=sys.stderr)

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


def _use_devices(run: dict, devices: list | None) -> list | None:
    """The devices to shard runs over: ``devices``, else the first run.devices, else all."""
    if devices is not None or not run.get("devices"):
        return devices
    if jax.process_count() > 1:
        raise ConfigError(f"run.devices = {run['devices']}: not available in a multi-process "
                          f"run, which shards over every device of every process")
    available = jax.devices()
    if run["devices"] > len(available):
        raise ConfigError(f"run.devices = {run['devices']}: only {len(available)} "
                          f"device(s) visible")
    return available[:run["devices"]]


def _steps_done(experiment: config_lib.Experiment,
                resume: checkpoint_lib.ExperimentState | None) -> int:
    """Agent-steps a resumed experiment has behind it (for the progress bar)."""
    if resume is None:
        return 0
    horizon = experiment.run["horizon"]
    steps = sum(len(g.runs) for g in experiment.groups[:resume.group]) * horizon
    if resume.progress is not None and resume.group < len(experiment.groups):
        runs = len(experiment.groups[resume.group].runs)
        batch = resume.progress.batch_size or experiment.run["batch"] or runs
        steps += sum(len(r) for r, _ in resume.progress.finished) * horizon
        steps += resume.progress.rounds * min(batch, runs - resume.progress.batch * batch)
    return steps


def checkpoint_interval(run: dict) -> tuple[int, float]:
    """(chunks, seconds) between checkpoints: run.checkpoint_every and run.checkpoint_minutes
    (wall clock, one process only: several processes must stop at the same round)."""
    every = int(run.get("checkpoint_every") or 0)
    minutes = float(run.get("checkpoint_minutes") or 0.0)
    return every, minutes * 60.0 if jax.process_count() == 1 else 0.0


def warnings_before(experiment: config_lib.Experiment) -> list[str]:
    """What would make a run mislead or surprise, said before it starts: too few recorded
    rounds (the curves are straight lines between them) and a very large run."""
    run = experiment.run
    out = []
    points = len(record_grid(run["horizon"], run["record"]))
    if points < MIN_RECORDED and run["horizon"] >= MIN_RECORDED:
        out.append(f"run.record = {run['record']}: only {points} recorded round(s) of "
                   f"{run['horizon']}, so the curves are straight lines between them and "
                   f"`banditjax bounds` has little to fit; use record >= {MIN_RECORDED} "
                   f"(default 50; it costs no simulation time)")
    steps = experiment.total_runs * run["horizon"]
    if steps >= LARGE_RUN_STEPS:
        out.append(f"{steps:.3g} agent-steps ({experiment.total_runs} runs x {run['horizon']} "
                   f"rounds): at 10^7 to 10^8 agent-steps/s (a CPU; more on a GPU) that is "
                   f"{format_duration(steps / 1e8)} to {format_duration(steps / 1e7)}; the "
                   f"time left is estimated after the first chunks")
    return out


# Fewer recorded rounds than this draw misleading curves; at least this many agent-steps is a
# long run on any device (announced before it starts).
MIN_RECORDED = 10
LARGE_RUN_STEPS = 10 ** 11


def simulate_experiment(experiment: config_lib.Experiment, progress: bool = True,
                        devices: list | None = None, checkpoint: Path | None = None,
                        resume: checkpoint_lib.ExperimentState | None = None
                        ) -> tuple[pd.DataFrame, dict]:
    """Runs every group; returns the tidy frame and the timing facts for meta.json.

    checkpoint: write the whole state there every run.checkpoint_every chunks and at every group
    boundary; resume: a state read back from such a file (groups done are not run again). With
    several processes the frame holds the runs of this process.
    """
    run = experiment.run
    grid = record_grid(run["horizon"], run["record"])
    devices = _use_devices(run, devices)
    every, seconds = checkpoint_interval(run)
    fingerprint, relevant = checkpoint_lib.fingerprint_config(experiment.config)
    done = list(resume.done) if resume is not None else []
    first = resume.group if resume is not None else 0
    total = experiment.total_runs * run["horizon"]
    hint = ""
    if checkpoint is not None:
        hint = (f"; a checkpoint is saved every {run['checkpoint_minutes']:g} min"
                if seconds else f"; a checkpoint is saved every {every} chunks")
        hint += " (Ctrl-C, then the same command with --resume, continues it)"
    bar = Progress(total, progress and jax.process_index() == 0, long_run_hint=hint)
    bar(_steps_done(experiment, resume))

    def save(group: int, state) -> None:
        if checkpoint is not None:
            checkpoint_lib.save(checkpoint, checkpoint_lib.ExperimentState(
                fingerprint=fingerprint, config=relevant, done=done, group=group,
                progress=state))

    start = time.perf_counter()
    try:
        for index, group in enumerate(experiment.groups):
            if index < first:
                continue
            bar.describe(f"{group.runs['learner'].iloc[0]} ({len(group.runs)} runs)")
            result = simulate(group.env, group.learner, run_keys=group.run_keys,
                              instance_keys=group.instance_keys, env_settings=group.env_settings,
                              hparams=group.hparams, horizon=run["horizon"], record=grid,
                              chunk=run["chunk"], batch=run["batch"], devices=devices,
                              progress=bar,
                              resume=resume.progress if resume is not None and index == first
                              else None,
                              checkpoint_every=every if checkpoint is not None else 0,
                              checkpoint_seconds=seconds if checkpoint is not None else 0.0,
                              on_checkpoint=lambda state, index=index: save(index, state),
                              on_plan=lambda line: bar.note(line))
            timing = {"learner": group.runs["learner"].iloc[0], "runs": len(group.runs),
                      "compile_seconds": round(result.compile_seconds, 4),
                      "run_seconds": round(result.run_seconds, 4),
                      "agent_steps_per_second": result.steps_per_second}
            done.append(checkpoint_lib.GroupResult(runs=result.runs, t=result.t,
                                                   columns=result.columns, timing=timing))
            if (every or seconds) and index + 1 < len(experiment.groups):
                save(index + 1, None)
    finally:
        bar.close()
    wall = time.perf_counter() - start
    frames = [tidy(group.runs.iloc[result.runs], result.t, result.columns)
              for group, result in zip(experiment.groups, done)]
    timings = [result.timing for result in done]
    run_seconds = sum(t["run_seconds"] for t in timings)
    facts = {"wall_seconds": round(wall, 3),
             "compile_seconds": round(sum(t["compile_seconds"] for t in timings), 3),
             "run_seconds": round(run_seconds, 3),
             "agent_steps": total,
             "agent_steps_per_second": total / max(run_seconds, 1e-12),
             "resumed": resume is not None,
             "groups": timings}
    return pd.concat(frames, ignore_index=True), facts


def memory_facts() -> dict[str, Any]:
    """Peak host memory of this process, and peak device memory where the backend reports it."""
    facts: dict[str, Any] = {"peak_memory_mib": round(peak_memory_mib(), 1)}
    device_peaks = []
    for device in jax.local_devices():
        try:
            stats = device.memory_stats() or {}
        except Exception:  # noqa: BLE001  (backends without memory statistics)
            stats = {}
        if "peak_bytes_in_use" in stats:
            device_peaks.append(round(stats["peak_bytes_in_use"] / 2 ** 20, 1))
    if device_peaks:
        facts["peak_device_memory_mib"] = device_peaks
    return facts


def run_meta(facts: dict, command: list[str] | None) -> dict:
    """meta.json: versions, device, git commit, the command, peak memory and the timings."""
    return {"versions": versions(), "device": device_description(), "git_commit": git_commit(),
            "command": command, **memory_facts(), **facts}


def _merge_process_shards(frame: pd.DataFrame, facts: dict, out: Path) -> tuple[pd.DataFrame,
                                                                                dict] | None:
    """Several processes: each writes its shard; process 0 merges them (None elsewhere)."""
    from experiments import distributed
    index, count = jax.process_index(), jax.process_count()
    shards = out / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    write_parquet(frame, shards / f"results.process{index}.parquet")
    write_text(shards / f"meta.process{index}.json",
               json.dumps({"process": index, **memory_facts(), **facts}, default=float))
    distributed.barrier("banditjax-results-written")
    if index != 0:
        return None
    parts = [pd.read_parquet(shards / f"results.process{i}.parquet") for i in range(count)]
    merged = pd.concat(parts, ignore_index=True).sort_values(["run", "t"], kind="stable")
    metas = [json.loads((shards / f"meta.process{i}.json").read_text()) for i in range(count)]
    facts = dict(facts, processes=[{k: m[k] for k in ("process", "peak_memory_mib",
                                                       "run_seconds", "wall_seconds")}
                                   for m in metas])
    facts["run_seconds"] = max(m["run_seconds"] for m in metas)
    facts["agent_steps_per_second"] = facts["agent_steps"] / max(facts["run_seconds"], 1e-12)
    for i in range(count):
        (shards / f"results.process{i}.parquet").unlink()
        (shards / f"meta.process{i}.json").unlink()
    shards.rmdir()
    return merged.reset_index(drop=True), facts


def run_experiment(experiment: config_lib.Experiment, out: Path, progress: bool = True,
                   plot: bool = True, resume: bool = False
                   ) -> tuple[pd.DataFrame | None, dict | None]:
    """Simulates and writes results.parquet, config.toml, meta.json and the figures.

    Checkpoints go to DIR/checkpoint every run.checkpoint_every chunks (0: never) and are deleted
    once the results are written; resume=True continues from one (ConfigError when it belongs to
    another config). With several processes, process 0 writes the files and gets the frame and
    meta; the others get (None, None).
    """
    out = Path(out)
    path = checkpoint_lib.checkpoint_path(out, jax.process_index(), jax.process_count())
    state = None
    if resume and path.exists():
        state = checkpoint_lib.load(path, experiment.config)
    elif not resume:
        checkpoint_lib.remove(path)                 # a stale checkpoint of an earlier run
    use_checkpoints = any(checkpoint_interval(experiment.run))
    frame, facts = simulate_experiment(experiment, progress=progress,
                                       checkpoint=path if use_checkpoints else None,
                                       resume=state)
    if jax.process_count() > 1:
        merged = _merge_process_shards(frame, facts, out)
        if merged is None:
            checkpoint_lib.remove(path)
            return None, None
        frame, facts = merged
    write_parquet(frame, out / "results.parquet")
    write_text(out / "config.toml", config_lib.dump_toml(experiment.config))
    meta = run_meta(facts, command=sys.argv)
    write_text(out / "meta.json", json.dumps(meta, indent=2, default=float))
    checkpoint_lib.remove(path)
    if plot:
        from analysis.plotting import plot_results
        plot_results(frame, out, logx=experiment.plot["logx"], logy=experiment.plot["logy"])
    return frame, meta
