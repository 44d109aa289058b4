"""``banditjax bench --gpu``: the accelerator, inside a time budget and the free device memory.

The plan (``gpu_plan``): UCB1, Thompson sampling, LinUCB and LDB-DF at 10^4, 10^5 and 10^6 runs,
smallest size first, then more families while time remains. A measurement starts only when its
estimated end (from the previous size of the family: time scales with the runs) is inside the
budget and its estimated device memory fits in the free memory (``decide``); each row is
``experiments.bench.measure`` without NumPy. Writes ``bench/gpu.json`` and ``bench/gpu.md``. Only
what the package imports is needed (``PYTHONPATH=. python3 -m experiments bench --gpu``).
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable

from experiments.bench import (FAMILIES, GPU_EXTRA, GPU_LEARNERS, OverMemory, environment_facts,
                               finish_environment, fmt, measure, registered_families,
                               report_header, write_report)

GPU_RUNS = (10_000, 100_000, 1_000_000)
GPU_QUICK_RUNS = (64, 128, 256)
GPU_BUDGET_SECONDS = 200.0
FIRST_COMPILE_GUESS_SECONDS = 20.0   # estimate for a family's first size (nothing measured yet)


# ---------------------------------------------------------------------------------------------
# --gpu: the accelerator, inside a time budget and the free device memory.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Budget:
    """Seconds allowed from ``start`` (by ``clock``)."""

    seconds: float
    clock: Callable[[], float] = time.perf_counter
    start: float | None = None

    def __post_init__(self):
        if self.start is None:
            self.start = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


def process_seconds() -> float:
    """Seconds since this process started (Linux; 0 where unknown): the budget counts the
    interpreter's start and the imports too."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime:
            up = float(uptime.read().split()[0])
        return max(0.0, up - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def free_device_bytes() -> float | None:
    """Free memory of the first device: the allocator's limit minus what it holds (GPU, TPU);
    the host's available memory for a CPU device; None when neither is known."""
    import jax
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001  (a backend without memory statistics)
        stats = None
    if stats and "bytes_limit" in stats:
        return float(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def estimate(runs: int, previous: dict | None) -> tuple[float, float | None]:
    """(seconds, device bytes) that measuring ``runs`` runs should take, one repeat.

    From the same family's previous (smaller) size, scaled linearly in the runs -- pessimistic
    where the device was not yet saturated -- with compile time x 1.5; with nothing measured
    yet, ``FIRST_COMPILE_GUESS_SECONDS`` and unknown memory (then the compiled program's own
    memory analysis decides, before anything is allocated).
    """
    if previous is None:
        return FIRST_COMPILE_GUESS_SECONDS, None
    scale = runs / previous["runs"]
    run_seconds = min(previous["jax"]["wall_seconds"])
    seconds = (previous["setup_seconds"] * scale + 1.5 * previous["compile_seconds"]
               + 2 * run_seconds * scale)         # the initial state and one repeat
    memory = previous["jax"]["memory_bytes"]
    return seconds, (memory * scale if memory == memory else None)   # NaN: unknown


def decide(seconds: float, memory: float | None, budget: Budget,
           free_bytes: float | None) -> str | None:
    """Why a measurement estimated at (``seconds``, ``memory``) must be skipped, or None."""
    if budget.elapsed() + seconds > budget.seconds:
        return (f"time budget: estimated {seconds:.0f} s, {max(budget.left(), 0):.0f} s of "
                f"{budget.seconds:.0f} s left")
    if memory is not None and free_bytes is not None and memory > 0.9 * free_bytes:
        return (f"memory: estimated {memory / 2 ** 30:.1f} GiB, {free_bytes / 2 ** 30:.1f} GiB "
                f"free on the device")
    return None


def gpu_plan(learners: list[str], extra: list[str], runs: tuple[int, ...]
             ) -> list[tuple[str, int]]:
    """The (family, runs) pairs in the order they are tried: every size of the required
    families, smallest size first (so a budget that runs out costs the largest sizes), then the
    extra families the same way."""
    plan = [(name, size) for size in sorted(runs) for name in learners]
    return plan + [(name, size) for size in sorted(runs) for name in extra
                   if name not in learners]


def run_gpu_bench(runs: tuple[int, ...] = GPU_RUNS, learners: list[str] | None = None,
                  extra: list[str] | None = None, repeats: int = 3,
                  horizon: int | None = None, quick: bool = False, out: Path = Path("bench"),
                  budget: Budget | None = None,
                  free_memory: Callable[[], float | None] = free_device_bytes,
                  log: Callable[[str], None] = print) -> dict:
    """Measures each (family, runs) of ``gpu_plan`` on the default device while the budget and
    the free memory allow; writes gpu.json and gpu.md into ``out``."""
    budget = budget or Budget(GPU_BUDGET_SECONDS)
    learners = list(GPU_LEARNERS if learners is None else learners)
    extra = list(GPU_EXTRA if extra is None else extra)
    report: dict[str, Any] = {"environment": environment_facts(),
                              "settings": {"runs": list(runs), "learners": learners,
                                           "extra": extra, "repeats": repeats, "quick": quick,
                                           "horizon": horizon,
                                           "budget_seconds": budget.seconds},
                              "results": [], "skipped": []}
    env = report["environment"]
    if env["backend"] not in ("gpu", "cuda", "rocm", "tpu"):
        log(f"no accelerator visible: measuring the {env['backend']} device instead")
    log(f"banditjax bench --gpu on {env['device_count']} x {env['device']} ({env['backend']}), "
        f"budget {budget.seconds:.0f} s")
    registered = {f.name for f in registered_families(learners + [e for e in extra
                                                          if e not in learners], report, log)}
    previous: dict[str, dict] = {}
    failed: set[str] = set()
    for name, size in gpu_plan(learners, extra, runs):
        if name not in registered:
            continue
        family = FAMILIES[name]
        rounds = horizon or (family.quick_horizon if quick else
                             family.gpu_horizon or family.horizon)
        if name in failed:
            reason = "a smaller size did not fit"
        else:
            free = free_memory()
            reason = decide(*estimate(size, previous.get(name)), budget, free)
        if reason is None:
            try:
                row = measure(family, size, rounds, repeats, numpy=False, log=log,
                              budget=budget, free_bytes=free)
            except OverMemory as error:
                reason = f"memory: {error}"
                failed.add(name)
            else:
                row["free_device_bytes_before"] = free
                report["results"].append(row)
                previous[name] = row
        if reason is not None:
            message = f"{family.label}, {size:,} runs: skipped ({reason})"
            log("  " + message)
            report["skipped"].append(message)
    import jax
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001
        stats = {}
    if "peak_bytes_in_use" in stats:
        env["peak_device_memory_mib"] = round(stats["peak_bytes_in_use"] / 2 ** 20, 1)
    report["elapsed_seconds"] = budget.elapsed()
    finish_environment(env)
    write_report(report, out, "gpu", gpu_markdown(report), log)
    return report


def gpu_markdown(report: dict) -> str:
    settings = report["settings"]
    lines = report_header(report, "banditjax bench --gpu") + [
        "",
        f"Time budget {settings['budget_seconds']:.0f} s (used {report['elapsed_seconds']:.0f} s);"
        f" up to {settings['repeats']} repeats per row (median; fewer when the budget ran short)."
        + (f" Peak device memory {report['environment']['peak_device_memory_mib']:,.0f} MiB."
           if "peak_device_memory_mib" in report["environment"] else ""),
        "Agent-steps per second = runs x rounds / run time after compilation; ms/round: one "
        "round of all the runs; memory: buffers of the compiled chunk (XLA memory analysis).",
        "",
        "| family | learner | runs | rounds | steps/s | ms/round | compile s | device MiB "
        "| repeats | final regret |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        j = row["jax"]
        lines.append(f"| {row['kind']} | {row['label']} | {row['runs']:,} | {row['horizon']:,} "
                     f"| {fmt(j['steps_per_second'])} | {fmt(j['ms_per_round'])} "
                     f"| {row['compile_seconds']:.2f} | {fmt(j['memory_mib'])} "
                     f"| {row['repeats']} | {fmt(j['mean_final_regret'])} |")
    if report.get("skipped"):
        lines += ["", "Skipped:", ""] + [f"- {s}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


