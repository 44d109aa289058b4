"""How many runs fit in one compiled call: per-run state size, a memory budget, the batch size.

The runner (``experiments/runner.py``) keeps every run of a batch on the devices at once: the
carry (environment state, learner state, metric sums and records) and the constants (instance
parameters, hyper-parameters, round key), each with the run axis first. Without ``[run] batch``
every run of a group goes into one call, so a sweep whose state does not fit (disjoint LinUCB,
K = 10, d = 32, double-float32 inverses: 80 KiB a run, 41 GB at 500,000 runs) would only be
found out by the allocator or the OOM killer. The pieces here let the runner refuse or split it
before anything is allocated:

- ``state_bytes_per_run(init_fn, *one_run_args)``: bytes of one run's pytree from
  ``jax.eval_shape`` (shapes and dtypes only, nothing traced is executed or allocated);
  ``one_run_shapes`` turns the batched inputs into the shapes of one run's.
- ``memory_budget(device)``: the bytes one device may use; ``budget_for(devices)`` the budget of
  a batch sharded over several (CPU devices share the host's memory, accelerators each have
  their own).
- ``choose_batch(...)``: the runs per compiled call, or a one-line ``ConfigError`` when even one
  run per device cannot fit or the user's ``[run] batch`` does not.
- ``describe(...)``: the line the runner prints about it.

The compiled chunk donates the carry (``donate_argnums``), so the state is not held twice; the
``overhead`` factor (3 by default) covers the temporaries of one compiled round (the new state
being built, gathered rows, index arrays). It is a rule of thumb, not a measurement of every
learner: ``BANDITJAX_MEMORY_BUDGET`` is the way to claim more or less.

Sizes in ``BANDITJAX_MEMORY_BUDGET``: a number of bytes, or a number with a unit: kB, MB, GB, TB
(powers of 1000), KiB, MiB, GiB, TiB or K, M, G, T (powers of 1024), case-insensitive, e.g.
"8GB", "512MiB", "1.5 GiB"; or a percentage ("40%") of what the default takes a fraction of
(the host's available memory on CPU, the device's free memory on accelerators).
"""
from __future__ import annotations

import math
import os
import re
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from envs.core import ConfigError

BUDGET_VARIABLE = "BANDITJAX_MEMORY_BUDGET"
HOST_FRACTION = 0.6           # of MemAvailable: the rest is for results, Python, XLA, others
DEFAULT_OVERHEAD = 3.0        # bytes held while a round runs, per byte of carried state

_UNITS = {"": 1, "b": 1,
          "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40,
          "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*|%)\s*$", re.IGNORECASE)


class Budget(NamedTuple):
    """Bytes that may be used (None: unknown, no limit applied) and where the number comes from,
    a phrase such as "60% of available host memory"."""

    bytes: int | None
    description: str


# ---------------------------------------------------------------------------------------------
# Size of one run's state.
# ---------------------------------------------------------------------------------------------
def tree_bytes(tree: Any) -> int:
    """Sum of size x itemsize over the leaves of a pytree of arrays or ShapeDtypeStructs."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        shape = getattr(leaf, "shape", np.shape(leaf))
        dtype = getattr(leaf, "dtype", None)
        dtype = np.result_type(leaf) if dtype is None else dtype
        total += math.prod(shape) * int(dtype.itemsize)    # typed PRNG keys report their data's
    return int(total)


def state_bytes_per_run(init_fn: Callable[..., Any], *one_run_args: Any) -> int:
    """Bytes of the pytree ``init_fn(*one_run_args)`` returns, for ONE run (no run axis).

    ``init_fn`` maps one run's inputs to its state, e.g. the runner's per-run initialisation
    (carry and constants); the arguments may be arrays or ``jax.ShapeDtypeStruct`` (see
    ``one_run_shapes``). Only shapes are evaluated (``jax.eval_shape``): nothing is allocated,
    so a state of terabytes is measured as easily as one of bytes.
    """
    return tree_bytes(jax.eval_shape(init_fn, *one_run_args))


def one_run_shapes(*batched: Any) -> tuple:
    """The ShapeDtypeStructs of one run of inputs whose leaves have the run axis first."""
    def strip(x):
        dtype = getattr(x, "dtype", None)
        return jax.ShapeDtypeStruct(tuple(np.shape(x)[1:]),
                                    np.result_type(x) if dtype is None else dtype)

    return tuple(jax.tree_util.tree_map(strip, tree) for tree in batched)


# ---------------------------------------------------------------------------------------------
# Budgets.
# ---------------------------------------------------------------------------------------------
def parse_size(text: str, reference: int | None = None, name: str = BUDGET_VARIABLE) -> int:
    """Bytes from "8GB", "512MiB", "1.5 GiB", "1000000" or "40%" (of ``reference``).

    Raises ConfigError naming ``name``, the value and what is allowed.
    """
    allowed = ("a size such as 8GB, 512MiB, 1.5GiB or 1000000 (bytes), or a percentage such as "
               "40%")
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or (unit not in _UNITS and unit != "%"):
        raise ConfigError(f"{name} = {text!r}: expected {allowed}")
    number = float(match.group(1))
    if not math.isfinite(number):
        raise ConfigError(f"{name} = {text!r}: expected {allowed}")
    if unit == "%":
        if not 0 < number <= 100:
            raise ConfigError(f"{name} = {text!r}: a percentage must be in (0, 100]")
        if reference is None:
            raise ConfigError(f"{name} = {text!r}: a percentage needs a known amount of memory "
                              f"and this device reports none; give a size such as 8GB")
        value = int(reference * number / 100)
    else:
        value = int(number * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"{name} = {text!r}: the budget must be positive; expected {allowed}")
    return value


def host_available_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """Memory available to new allocations without swapping: MemAvailable of /proc/meminfo,
    else the OS's count of free pages (os.sysconf); capped by a cgroup (container) limit."""
    available = None
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024     # reported in kB (KiB)
                    break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    headroom = cgroup_headroom_bytes()
    if headroom is not None:
        available = headroom if available is None else min(available, headroom)
    return available


def cgroup_headroom_bytes(root: str = "/sys/fs/cgroup") -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, then v1); None when unlimited."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes",
                                    "memory/memory.usage_in_bytes")):
        try:
            with open(os.path.join(root, limit_file)) as f:
                limit = f.read().strip()
            with open(os.path.join(root, usage_file)) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 2 ** 60:
            return None
        return max(int(limit) - usage, 0)
    return None


def device_free_bytes(device) -> int | None:
    """bytes_limit - bytes_in_use from ``device.memory_stats()``; None when not reported."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001  (backends without memory statistics raise)
        stats = None
    if not stats:
        return None
    limit = stats.get("bytes_limit") or stats.get("bytes_reservable_limit")
    if not limit:
        return None
    return max(int(limit) - int(stats.get("bytes_in_use", 0)), 0)


def memory_budget(device) -> Budget:
    """(bytes, description): the memory one device may use.

    GPU/TPU: its free memory, bytes_limit - bytes_in_use of ``device.memory_stats()`` (JAX's
    allocator limit, so the preallocated pool counts as available); when the backend reports
    nothing, the budget is unknown (None) and no limit is applied. CPU: ``HOST_FRACTION`` (60%)
    of the host's available memory (MemAvailable, capped by a cgroup limit). Either way
    ``BANDITJAX_MEMORY_BUDGET`` overrides it: a size, or a percentage of that same amount.
    """
    is_cpu = getattr(device, "platform", "cpu") == "cpu"
    if is_cpu:
        reference, what = host_available_bytes(), "host memory"
    else:
        reference, what = device_free_bytes(device), f"free memory of {device}"
    override = os.environ.get(BUDGET_VARIABLE)
    if override is not None and override.strip():
        return Budget(parse_size(override, reference),
                      f"{what}, {BUDGET_VARIABLE}={override.strip()}")
    if reference is None:
        return Budget(None, f"unknown: the {what} is not reported")
    if is_cpu:
        return Budget(int(HOST_FRACTION * reference),
                      f"{HOST_FRACTION:.0%} of available host memory")
    return Budget(reference, what)


def budget_for(devices: Sequence) -> Budget:
    """The budget of a batch sharded evenly over ``devices``.

    CPU devices (``--xla_force_host_platform_device_count``) share the host's memory: one host
    budget. Accelerators each hold 1/n of the batch: n times the smallest free memory.
    """
    devices = list(devices)
    if not devices or all(getattr(d, "platform", "cpu") == "cpu" for d in devices):
        return memory_budget(devices[0] if devices else jax.devices("cpu")[0])
    budgets = [memory_budget(d) for d in devices]
    if len(budgets) == 1:
        return budgets[0]
    if any(b.bytes is None for b in budgets):
        return Budget(None, "unknown: a device reports no memory statistics")
    smallest = min(budgets, key=lambda b: b.bytes)
    return Budget(len(budgets) * smallest.bytes,
                  f"{len(budgets)} devices x {format_bytes(smallest.bytes)} "
                  f"({smallest.description})")


# ---------------------------------------------------------------------------------------------
# Batch size.
# ---------------------------------------------------------------------------------------------
def format_bytes(n: float) -> str:
    """1023 B, 336 KiB, 14.2 GiB: three significant figures, powers of 1024."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(n)} B"
            return f"{n:.1f} {unit}" if abs(n) < 100 else f"{n:.0f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _device_count(devices) -> int:
    count = devices if isinstance(devices, (int, np.integer)) else len(devices)
    if count < 1:
        raise ValueError(f"devices: need at least one, got {count}")
    return int(count)


def _padded(batch: int, n: int) -> int:
    """Runs per call once padded to a multiple of the device count (as the runner does)."""
    return int(math.ceil(batch / n) * n)


def choose_batch(runs: int, bytes_per_run: int, devices, budget_bytes: int | Budget | None,
                 overhead: float = DEFAULT_OVERHEAD, requested: int | None = None,
                 budget_description: str = "memory budget", balance: bool = True) -> int:
    """Runs per compiled call: the value to pass as the runner's ``batch``.

    devices: the devices (or their number) the run axis is sharded over; every call pads its runs
    to a multiple of their number n and each device holds 1/n of them. budget_bytes: what the
    whole batch may use (None: unknown, no limit), or a ``Budget`` (``budget_for``), whose
    description then replaces ``budget_description`` in messages. A batch of b runs needs
    ceil(b / n) n x bytes_per_run x overhead bytes.

    - ``requested`` (the user's ``[run] batch``): used as given (capped at ``runs``), but refused
      when it does not fit.
    - Otherwise ``runs`` when every run fits at once; else the largest multiple of n that fits,
      spread evenly (``balance``): with c = ceil(runs / largest) calls, ceil(runs / c) rounded up
      to a multiple of n, which takes as many calls and pads the last one less (the runner pads
      every call to the batch size).

    Raises ConfigError, one line naming the sizes, when one run per device cannot fit or the
    requested batch does not.
    """
    if isinstance(budget_bytes, tuple):
        budget_bytes, budget_description = budget_bytes
    runs, n = int(runs), _device_count(devices)
    if runs < 1:
        raise ValueError(f"runs: need at least one, got {runs}")
    if overhead < 1:
        raise ValueError(f"overhead: must be >= 1 (the state itself), got {overhead}")
    per_run = float(bytes_per_run) * overhead
    if requested is not None:
        requested = int(requested)
        if requested < 1:
            raise ConfigError(f"run.batch = {requested}: must be a positive number of runs")
    if budget_bytes is None or per_run == 0:
        return min(requested, runs) if requested is not None else runs
    budget = int(budget_bytes)
    need = f"{format_bytes(bytes_per_run)} x {overhead:g} for temporaries"
    where = (f"{format_bytes(budget)}" if n == 1 else
             f"{format_bytes(budget)} for {n} devices, {format_bytes(budget / n)} each")
    hint = f"{budget_description}; set {BUDGET_VARIABLE} to change it"
    per_device = budget // n
    fit = int(per_device // per_run) * n          # largest multiple of n that fits
    if fit == 0:
        raise ConfigError(f"one run needs {format_bytes(per_run)} (state {need}) but the budget "
                          f"is {where} ({hint})")
    if requested is not None:
        batch = min(requested, runs)
        if _padded(batch, n) > fit:
            raise ConfigError(
                f"run.batch = {requested:,} needs {format_bytes(_padded(batch, n) * per_run)} "
                f"({_padded(batch, n):,} runs x state {need}) but the budget is {where} "
                f"({hint}); at most {fit:,} runs fit")
        return batch
    if _padded(runs, n) <= fit:
        return runs
    if not balance:
        return fit
    calls = math.ceil(runs / fit)
    return _padded(math.ceil(runs / calls), n)


def describe(batch: int, runs: int, bytes_per_run: int, budget: Budget | tuple) -> str:
    """The runner's line, e.g. "4 batches of 125,000 runs (336 KiB per run, budget 14.2 GiB,
    60% of available host memory)"."""
    budget_bytes, description = budget
    limit = ("no known limit" if budget_bytes is None else
             f"budget {format_bytes(budget_bytes)}, {description}")
    detail = f"({format_bytes(bytes_per_run)} per run, {limit})"
    if batch >= runs:
        return f"all {runs:,} runs in one batch {detail}"
    calls = math.ceil(runs / batch)
    return f"{calls:,} batches of {batch:,} runs {detail}"
