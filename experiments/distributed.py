"""Several processes (hosts) running one experiment, with JAX's own distributed runtime.

docs/design.md, "The runner": several hosts join with ``jax.distributed.initialize()``; the run axis is then
sharded over the devices of every process (``jax.devices()`` lists them all) and each process
computes the runs its own devices hold. No number depends on the process count: keys are derived
per run.

Launch (one command per process, same config, same ``--out`` on a filesystem every process sees):

    banditjax run CONFIG --out DIR --coordinator HOST:PORT --num-processes N --process-id I

or leave the flags out and set ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID`` (``BANDITJAX_*`` of the same names also work); on SLURM, Open MPI and cloud TPU
pods ``jax.distributed.initialize()`` finds them by itself (``--distributed auto``). Each process
writes its own shard of results (``DIR/shards/``); process 0 waits for every shard, merges them
into ``DIR/results.parquet`` and writes ``config.toml``, ``meta.json`` and the figures.
"""
from __future__ import annotations

import os
from typing import Any

from envs.core import ConfigError

ENV_NAMES = {"coordinator": ("BANDITJAX_COORDINATOR_ADDRESS", "JAX_COORDINATOR_ADDRESS"),
             "num_processes": ("BANDITJAX_NUM_PROCESSES", "JAX_NUM_PROCESSES"),
             "process_id": ("BANDITJAX_PROCESS_ID", "JAX_PROCESS_ID")}


def _from_env(name: str) -> str | None:
    for variable in ENV_NAMES[name]:
        if os.environ.get(variable):
            return os.environ[variable]
    return None


def launch_settings(coordinator: str | None = None, num_processes: int | None = None,
                    process_id: int | None = None, auto: bool = False) -> dict[str, Any] | None:
    """The arguments for ``jax.distributed.initialize``, from flags then environment variables.

    None when nothing asks for several processes. Raises ConfigError for an incomplete or
    inconsistent set.
    """
    coordinator = coordinator or _from_env("coordinator")
    num = num_processes if num_processes is not None else _from_env("num_processes")
    pid = process_id if process_id is not None else _from_env("process_id")
    if coordinator is None and num is None and pid is None:
        return {} if auto else None
    try:
        num = None if num is None else int(num)
        pid = None if pid is None else int(pid)
    except ValueError:
        raise ConfigError(f"--num-processes {num!r} / --process-id {pid!r}: expected integers")
    missing = [flag for flag, value in (("--coordinator", coordinator),
                                        ("--num-processes", num), ("--process-id", pid))
               if value is None]
    if missing and not auto:
        raise ConfigError(f"a multi-process run needs --coordinator, --num-processes and "
                          f"--process-id (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, "
                          f"JAX_PROCESS_ID); missing: {', '.join(missing)}")
    if num is not None and num < 1:
        raise ConfigError(f"--num-processes {num}: must be at least 1")
    if num is not None and pid is not None and not 0 <= pid < num:
        raise ConfigError(f"--process-id {pid}: must be in [0, {num - 1}] for {num} processes")
    settings = {"coordinator_address": coordinator, "num_processes": num, "process_id": pid}
    return {k: v for k, v in settings.items() if v is not None}


def initialize(settings: dict[str, Any] | None) -> None:
    """Joins the distributed runtime (must run before anything else touches JAX)."""
    if settings is None:
        return
    import jax
    if settings.get("num_processes") == 1:
        return
    jax.distributed.initialize(**settings)


def process_index() -> int:
    import jax
    return jax.process_index()


def process_count() -> int:
    import jax
    return jax.process_count()


def barrier(name: str) -> None:
    """Waits until every process has reached the barrier of this name (no-op for one process)."""
    import jax
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)
