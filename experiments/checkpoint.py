"""Checkpoints of a running experiment: write atomically, refuse a foreign config, resume.

docs/design.md, "The runner": between chunks the host may save the whole carried state and continue
later. A checkpoint holds everything a run needs to go on and finish with exactly the numbers an
uninterrupted run gives (keys are derived from the round index, so the next round is enough):

- the fingerprint and text of the resolved config (a checkpoint of another config is refused,
  naming the settings that differ);
- every finished group of runs: its recorded columns, run indices and timings;
- the group in progress (``runner.GroupProgress``): finished batches, and for the batch in progress
  the rounds done and the carry (environment state, learner state, metric sums, records).

One file, ``DIR/checkpoint`` (``DIR/checkpoint.process<i>of<n>`` when several processes share a
run, each holding its own runs), an ``.npz`` archive written to a temporary name, flushed and
renamed over the old one, so a crash or a SIGKILL at any instant leaves either the previous
checkpoint or the new one, never half a file. It is deleted once the results are written.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from envs.core import ConfigError
from experiments.runner import GroupProgress

FORMAT = 1
# Settings that change neither a run's numbers nor the checkpoint's layout.
IGNORED_RUN_SETTINGS = ("devices", "checkpoint_every", "checkpoint_minutes", "imports")


@dataclasses.dataclass
class GroupResult:
    """A finished group: its recorded columns for the runs this process holds, and timings."""

    runs: np.ndarray                 # [R_local] indices into the group's runs
    t: np.ndarray                    # [P]
    columns: dict[str, np.ndarray]   # name -> [R_local, P]
    timing: dict


@dataclasses.dataclass
class ExperimentState:
    """Where an experiment stands: groups done, and the group in progress."""

    fingerprint: str
    config: dict
    done: list[GroupResult]
    group: int                                # index of the group in progress
    progress: GroupProgress | None = None     # None: the group has not started


def fingerprint_config(config: Mapping) -> tuple[str, dict]:
    """(sha256, the part of the resolved config that determines the results).

    run.devices, run.checkpoint_every, run.checkpoint_minutes and run.imports (where the
    learners' code is, however the path is spelled) are left out, and so is [plot].
    """
    run = {k: v for k, v in dict(config.get("run", {})).items() if k not in IGNORED_RUN_SETTINGS}
    relevant = {"run": run, "env": config.get("env"), "learner": config.get("learner")}
    text = json.dumps(relevant, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest(), json.loads(text)


def checkpoint_path(out: Path, process: int = 0, processes: int = 1) -> Path:
    name = "checkpoint" if processes == 1 else f"checkpoint.process{process}of{processes}"
    return Path(out) / name


# ---------------------------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------------------------
def _json_array(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, default=float).encode(), dtype=np.uint8)


def save(path: Path, state: ExperimentState) -> None:
    """Writes ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    header = {"format": FORMAT, "fingerprint": state.fingerprint, "config": state.config,
              "group": state.group, "done": []}
    for i, result in enumerate(state.done):
        arrays[f"done{i}.runs"] = np.asarray(result.runs, np.int64)
        arrays[f"done{i}.t"] = np.asarray(result.t)
        names = list(result.columns)
        for j, name in enumerate(names):
            arrays[f"done{i}.col{j}"] = np.asarray(result.columns[name])
        header["done"].append({"columns": names, "timing": result.timing})
    progress = state.progress
    if progress is not None:
        header["progress"] = {"batch": progress.batch, "rounds": progress.rounds,
                              "run_seconds": progress.run_seconds,
                              "batch_size": progress.batch_size,
                              "finished": len(progress.finished),
                              "leaves": None if progress.carry is None else len(progress.carry)}
        for j, (runs, records) in enumerate(progress.finished):
            arrays[f"batch{j}.runs"] = np.asarray(runs, np.int64)
            arrays[f"batch{j}.records"] = np.asarray(records)
        if progress.carry is not None:
            arrays["carry.rows"] = np.asarray(progress.rows, np.int64)
            for j, leaf in enumerate(progress.carry):
                arrays[f"carry{j}"] = np.asarray(leaf)
    arrays["header"] = _json_array(header)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ---------------------------------------------------------------------------------------------
# Reading.
# ---------------------------------------------------------------------------------------------
def _differences(saved: Any, current: Any, where: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(saved) | set(current)):
            out += _differences(saved.get(key), current.get(key), f"{where}.{key}" if where
                                else key)
        return out
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current) \
            and all(isinstance(x, dict) for x in saved + current):
        out = []
        for i, (a, b) in enumerate(zip(saved, current)):
            out += _differences(a, b, f"{where}[{i}]")
        return out
    return [] if saved == current else [f"{where}: {saved!r} in the checkpoint, {current!r} now"]


def load(path: Path, config: Mapping) -> ExperimentState:
    """Reads a checkpoint; raises ConfigError when it belongs to another config or is unreadable."""
    path = Path(path)
    fingerprint, relevant = fingerprint_config(config)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise ConfigError(f"{path}: not a readable banditjax checkpoint ({error}); delete it "
                          f"or run without --resume") from None
    if header.get("format") != FORMAT:
        raise ConfigError(f"{path}: checkpoint format {header.get('format')!r}, this version "
                          f"reads format {FORMAT}; rerun without --resume")
    if header["fingerprint"] != fingerprint:
        diffs = _differences(header.get("config"), relevant)
        listed = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise ConfigError(f"{path} was written by a run of a different config "
                          f"(checkpoint {header['fingerprint'][:12]}, this config "
                          f"{fingerprint[:12]}): {listed or 'the settings differ'}. Resume with "
                          f"the same config and --set options, or start again with --force")
    done = []
    for i, entry in enumerate(header["done"]):
        columns = {name: arrays[f"done{i}.col{j}"] for j, name in enumerate(entry["columns"])}
        done.append(GroupResult(runs=arrays[f"done{i}.runs"], t=arrays[f"done{i}.t"],
                                columns=columns, timing=entry["timing"]))
    progress = None
    if "progress" in header:
        p = header["progress"]
        finished = [(arrays[f"batch{j}.runs"], arrays[f"batch{j}.records"])
                    for j in range(p["finished"])]
        carry = rows = None
        if p["leaves"] is not None:
            rows = arrays["carry.rows"]
            carry = [arrays[f"carry{j}"] for j in range(p["leaves"])]
        progress = GroupProgress(batch=p["batch"], rounds=p["rounds"], carry=carry, rows=rows,
                                 finished=finished, run_seconds=p["run_seconds"],
                                 batch_size=p.get("batch_size"))
    return ExperimentState(fingerprint=fingerprint, config=relevant, done=done,
                           group=header["group"], progress=progress)


def remove(path: Path) -> None:
    """Deletes a checkpoint and any temporary file a killed writer left beside it."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)
    path.unlink(missing_ok=True)
