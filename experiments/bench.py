"""``banditjax bench``: agent-steps per second, compile time and memory of every learner family,
against NumPy where a NumPy reference exists.

One row per learner family and number of runs (default 1,000 and 10,000):

- the JAX runner (``experiments.runner.Simulation``: one compiled chunk, a scan over rounds, runs
  vmapped and sharded over the visible devices), compile time apart from run time;
- side by side in the same process, repeats interleaved (JAX, NumPy, JAX, NumPy, ...), the NumPy
  reference of the same algorithm on the same kind of problem (``experiments/references.py``:
  UCB1, Thompson sampling, KL-UCB, epsilon-greedy, EXP3, LinUCB), vectorised over runs: the way
  one writes a fast simulator without JAX. The mean final regret of both is reported, so a reader
  can see they are the same algorithm;
- SMPyBandits' UCB and Thompson policies (one Python object per run, the usual library design)
  when that package is installed (``pip install -e .[compare]``), skipped with a message
  otherwise;
- compile time against the size of a hyper-parameter sweep (1 to 1,000 values of UCB1's c):
  hyper-parameters are traced arrays, so it stays flat.

The families (``FAMILIES``): K-armed (UCB1, Thompson, KL-UCB, epsilon-greedy, EXP3 on K = 10
Bernoulli arms with means ~ U(0, 1) per run), linear (LinUCB, disjoint, K = 10, d = 16), GLM
(UCB-GLM on the logistic environment), neural (NeuralUCB on the nonlinear environment), dueling
(RUCB on the K-armed dueling environment), LDB-DF (on the contextual dueling environment with
geometric delays), delayed (Joulani et al.'s QPM-D around UCB1, geometric delays), routing
(budgeted LinUCB on the routing environment), non-stationary (SW-UCB, a ring buffer of static
size, and GLR-klUCB, a bounded change-point test, on K = 10 piecewise-stationary Bernoulli arms;
no NumPy reference) and dataset (LinUCB on the packaged routing table through the dataset
environment, permutation sampling). A family whose learner is not registered is skipped with a
message. Horizons are per family, so that the default command takes about 10 minutes on a 2-core
CPU: the cost of a round is flat in t for the K-armed, linear, dueling, delayed, routing,
non-stationary and dataset learners, and grows with the history buffer (whose capacity is the
horizon) for GLM, neural and LDB-DF, which get short horizons; every row states the cost of a
round.

Medians over the repeats; agent-steps = runs x rounds. Wall time is the headline, process CPU
time (``time.process_time``, all threads) a cross-check that is less sensitive to other load on
the machine. Memory: for JAX the buffers of the compiled chunk (XLA's memory analysis: arguments
+ outputs + temporaries - donated), for NumPy the peak of ``tracemalloc`` over a short run.
Results: ``bench/results.json`` and ``bench/results.md`` (device, versions and the load average
at the start and the end in both).

``--gpu`` measures the accelerator instead (``bench/gpu.json``, ``bench/gpu.md``): UCB1,
Thompson, LinUCB and LDB-DF at 10^4, 10^5 and 10^6 runs, then more families while time remains,
inside a time budget (``--budget``, default 200 s: no measurement starts whose estimated end is
past it) and skipping, with a message, a size whose estimated device memory exceeds the free
memory. It needs only what the package itself imports (no matplotlib, no SciPy) and no install:
``PYTHONPATH=. python3 -m experiments bench --gpu`` (``make bench-gpu``); its planning and report
are in ``experiments/gpu_bench.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

from experiments import references


# ---------------------------------------------------------------------------------------------
# The families.
# ---------------------------------------------------------------------------------------------
def _on_uniform_instances(reference: Callable[..., np.ndarray], arms: int = 10, **settings):
    """(runs, horizon, seed) -> final regret of a K-armed reference on the bench's problem.

    The problem of the ``BERNOULLI`` config: K Bernoulli arms, means ~ U(0, 1), one instance per
    run (drawn by NumPy here, by the environment there: the same law, independent draws).
    """
    def simulate(runs: int, horizon: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return reference(references.uniform_instances(rng, runs, arms), horizon, rng, **settings)
    simulate.__name__ = f"{reference.__name__}_on_uniform_instances"
    return simulate


def _linucb_reference(runs: int, horizon: int, seed: int) -> np.ndarray:
    return references.linucb(runs, horizon, seed, arms=10, dim=16, noise=0.1)


@dataclasses.dataclass(frozen=True)
class Family:
    name: str                     # --learners name
    label: str
    env: dict                     # the [env] table
    horizon: int                  # default rounds per run
    quick_horizon: int
    learner: dict | None = None   # the [[learner]] table (default: {"name": name})
    kind: str = ""                # the learner family, for the table
    numpy: Callable[[int, int, int], np.ndarray] | None = None   # (runs, horizon, seed)
    smpy: str | None = None       # SMPyBandits policy class name
    gpu_horizon: int | None = None   # rounds per run with --gpu (default: horizon)

    @property
    def learner_table(self) -> dict:
        return dict(self.learner or {"name": self.name})


BERNOULLI = {"name": "bernoulli", "K": 10, "generator": "uniform"}
# The dataset environment on the packaged 200-row routing table (6 models, costs; README, "Real
# data"), each pass in a per-run random order: a table's row gather and permutation per round.
ROUTING_TABLE = {"name": "dataset", "sampling": "permutation", "cost_weight": 0.1,
                 "path": str(Path(__file__).resolve().parent / "configs" / "data"
                             / "routing_table.csv")}
GEOMETRIC_DELAY = {"dist": "geometric", "mean": 10.0}
# Piecewise-stationary: K = 10 uniform means redrawn at change points of hazard rate 0.002 (about
# 4 changes in 2,000 rounds); SW-UCB's window follows (Garivier and Moulines 2011, Theorem 2).
PIECEWISE = {"name": "piecewise", "K": 10, "generator": "uniform", "hazard": 0.002}

# Horizons: the default command (1,000 and 10,000 runs, 3 repeats, NumPy interleaved) should take
# about 10 minutes on the 2-core CPU: about 7 minutes of rounds plus 24 compilations, estimated
# from the time of one round of 10,000 runs, measured there over 20 rounds (load average about 4,
# jax 0.10.2), JAX / NumPy in ms: UCB1 1.2 / 1.8, Thompson 76 / 7.5, KL-UCB 15 / 19,
# epsilon-greedy 2.8 / 4.4, EXP3 0.86 / 1.9, LinUCB 51 / 89, UCB-GLM 49, NeuralUCB 181, RUCB 14,
# LDB-DF 72, QPM-D 7.9, routing 102 (dataset: not measured; its LinUCB, K = 6 and d = 9, is
# smaller than the linear family's, hence the same horizon). The slow ones get short horizons.
# UCB-GLM, NeuralUCB and LDB-DF refit on a history buffer whose capacity is the horizon, so their
# rounds cost more the longer the run.
FAMILIES = {f.name: f for f in [
    Family("ucb1", "UCB1", BERNOULLI, 2000, 100, kind="K-armed",
           numpy=_on_uniform_instances(references.ucb1), smpy="UCB"),
    Family("thompson", "Thompson (Beta)", BERNOULLI, 200, 50, kind="K-armed",
           numpy=_on_uniform_instances(references.thompson), smpy="Thompson"),
    Family("klucb", "KL-UCB", BERNOULLI, 300, 50, kind="K-armed",
           numpy=_on_uniform_instances(references.klucb)),
    Family("epsilon_greedy", "epsilon-greedy (0.1)", BERNOULLI, 2000, 100, kind="K-armed",
           learner={"name": "epsilon_greedy", "epsilon": 0.1, "schedule": "fixed"},
           numpy=_on_uniform_instances(references.epsilon_greedy, epsilon=0.1)),
    Family("exp3", "EXP3", BERNOULLI, 2000, 100, kind="K-armed",
           numpy=_on_uniform_instances(references.exp3)),
    Family("linucb", "LinUCB (K=10, d=16)",
           {"name": "linear", "K": 10, "d": 16, "model": "disjoint", "noise": 0.1},
           200, 40, kind="linear", numpy=_linucb_reference),
    Family("glm_ucb", "UCB-GLM (logistic)", {"name": "logistic"}, 50, 20, kind="GLM"),
    Family("neural_ucb", "NeuralUCB", {"name": "nonlinear"}, 30, 20, kind="neural"),
    Family("rucb", "RUCB (K=10 duels)", {"name": "dueling", "K": 10}, 600, 50,
           kind="dueling"),
    Family("ldb_df", "LDB-DF (delayed duels)",
           {"name": "contextual_dueling", "delay": GEOMETRIC_DELAY}, 50, 20, kind="LDB-DF"),
    Family("joulani", "QPM-D + UCB1 (delayed)", {**BERNOULLI, "delay": GEOMETRIC_DELAY},
           600, 50, learner={"name": "joulani", "base": "ucb1"}, kind="delayed"),
    Family("routing", "budgeted LinUCB (routing)", {"name": "routing"}, 200, 50,
           learner={"name": "budgeted_linucb", "alpha": 0.5, "budget": 0.1}, kind="routing"),
    Family("sliding_window_ucb", "SW-UCB (piecewise, K=10)", PIECEWISE, 2000, 100,
           kind="non-stationary"),
    Family("dataset", "LinUCB (routing table)", ROUTING_TABLE, 200, 50,
           learner={"name": "linucb", "alpha": 0.5}, kind="dataset"),
    # alpha: the theorem's default, sqrt(K U ln T / T), is 0.5-0.9 at these horizons (most
    # rounds explore); 0.1 keeps the index in play. The cost of a round is the same either way.
    Family("glr_klucb", "GLR-klUCB (piecewise, K=10)", {**PIECEWISE, "hazard": 0.005}, 300,
           50,
           learner={"name": "glr_klucb", "alpha": 0.1}, kind="non-stationary"),
]}
# The families of ``banditjax bench --gpu`` (experiments/gpu_bench.py).
GPU_LEARNERS = ("ucb1", "thompson", "linucb", "ldb_df")      # always tried
GPU_EXTRA = ("klucb", "epsilon_greedy", "exp3", "rucb", "joulani")   # while time remains
DEFAULT_RUNS = (1000, 10000)
FULL_RUNS = (1000, 10000, 100000)
QUICK_RUNS = (200,)
COMPILE_GRID = (1, 10, 100, 1000)



# ---------------------------------------------------------------------------------------------
# Building and compiling one measurement.
# ---------------------------------------------------------------------------------------------
def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _numpy_memory_mib(fn: Callable[..., np.ndarray], runs: int, rounds: int) -> float:
    """Peak traced allocation of a short run (the state does not grow with the rounds)."""
    tracemalloc.start()
    try:
        fn(runs, rounds, 0)
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


def family_config(family: Family, runs: int, horizon: int,
                  learner: dict | None = None) -> dict:
    """The config of ``family`` (or of ``learner`` on its environment) at ``runs`` runs: one
    problem instance per run (seeds = 1), as the NumPy references draw one per run too."""
    return {"run": {"horizon": horizon, "seeds": 1, "instances": runs, "record": 20,
                    "checkpoint_every": 0},
            "env": json.loads(json.dumps(family.env)),
            "learner": [learner or family.learner_table]}


def group_inputs(config: dict):
    """(group, (run_keys, instance_keys, env_settings, hparams)) of the config's one group.

    A config without sweeps and with seeds = 1 is built for one instance and widened to all of
    them: the same keys (``config.derive_keys`` of seed 0 and instance i) and the same settings as
    the full build, without its per-run Python loop (17 s for 10^6 runs on the 2-core CPU).
    """
    from experiments import config as config_lib
    run = config["run"]
    widen = run.get("seeds", 1) == 1 and run.get("instances", 1) > 1
    small = dict(config, run=dict(run, instances=1)) if widen else config
    experiment = config_lib.build(small)
    if len(experiment.groups) != 1:
        raise ValueError("a bench config must make one compile group")
    group = experiment.groups[0]
    inputs = (group.run_keys, group.instance_keys, group.env_settings, group.hparams)
    if widen and len(group.runs) == 1:
        import jax
        n = int(run["instances"])
        run_keys, instance_keys = config_lib.derive_keys(
            experiment.run["seed"], np.zeros(n, np.int64), np.arange(n, dtype=np.int64))
        tile = lambda x: np.repeat(np.asarray(x)[:1], n, axis=0)  # noqa: E731
        inputs = (run_keys, instance_keys, jax.tree_util.tree_map(tile, group.env_settings),
                  jax.tree_util.tree_map(tile, group.hparams))
    elif widen:
        raise ValueError("a bench config with seeds = 1 must make one run per instance")
    return group, inputs


def prepare(config: dict):
    """(Simulation, placed inputs, runs, sharding) for the single group of ``config``."""
    from experiments.runner import (Simulation, default_chunk, pad_runs, place_runs,
                                    record_grid, run_sharding)
    group, inputs = group_inputs(config)
    horizon = int(config["run"]["horizon"])
    sharding, devices = run_sharding(None)
    runs = int(np.asarray(inputs[0]).shape[0])
    padded = int(math.ceil(runs / devices) * devices)
    placed = place_runs(pad_runs(inputs, padded), sharding)
    sim = Simulation(group.env, group.learner, horizon,
                     record_grid(horizon, config["run"].get("record", 20)),
                     default_chunk(horizon), sharding)
    return sim, placed, runs, sharding


def compile_chunks(sim, inputs, sharding) -> tuple[dict, float]:
    """Compiles the chunk for the shapes of ``sim.initial(*inputs)`` without allocating them.

    So the memory the run needs is known (``_compiled_memory``) before any of it is allocated.
    """
    import jax
    abstract = jax.eval_shape(sim.initial, *inputs)
    abstract = jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding,
                                       weak_type=getattr(s, "weak_type", False)), abstract)
    return sim.compile(*abstract)


def _final_regret(sim, carry, runs: int) -> float:
    records = np.asarray(carry.records)[:runs]
    return float(records[:, len(sim.grid) - 1, 0].mean())


def _compiled_memory(compiled: dict) -> float:
    """Bytes of the buffers of the largest compiled chunk (NaN where the backend does not say)."""
    sizes = []
    for fn in compiled.values():
        try:
            a = fn.memory_analysis()
            sizes.append(a.argument_size_in_bytes + a.output_size_in_bytes
                         + a.temp_size_in_bytes - a.alias_size_in_bytes)
        except Exception:  # noqa: BLE001  (a backend without memory analysis)
            return float("nan")
    return float(max(sizes))


class OverMemory(Exception):
    """The compiled program needs more device memory than is free."""


def measure(family: Family, runs: int, horizon: int, repeats: int, numpy: bool = True,
            log: Callable[[str], None] = print, budget: Any = None,
            free_bytes: float | None = None) -> dict:
    """One row of the table: JAX and (interleaved) NumPy at this size.

    ``budget``: stop repeating (after the first repeat) when the next one would end past it.
    ``free_bytes``: raise ``OverMemory`` after compiling if the program needs more than 90% of it.
    """
    import jax
    (sim, inputs, runs, sharding), setup_seconds, _ = _timed(
        lambda: prepare(family_config(family, runs, horizon)))
    compiled, compile_seconds = compile_chunks(sim, inputs, sharding)
    memory = _compiled_memory(compiled)
    if free_bytes is not None and memory > 0.9 * free_bytes:
        raise OverMemory(f"{family.label}, {runs:,} runs: the compiled program needs "
                         f"{memory / 2 ** 30:.1f} GiB, {free_bytes / 2 ** 30:.1f} GiB are free")
    steps = runs * horizon
    jax_wall, jax_cpu, np_wall, np_cpu, np_regret = [], [], [], [], []
    regret = float("nan")
    for repeat in range(repeats):
        if (repeat and budget is not None
                and budget.elapsed() + jax_wall[-1] > budget.seconds):
            log(f"  {family.label}, {runs:,} runs: {repeat} of {repeats} repeats (time budget)")
            break
        carry, consts = sim.initial(*inputs)
        jax.block_until_ready(carry)
        carry, wall, cpu = _timed(lambda: jax.block_until_ready(
            sim.run_chunks(compiled, carry, consts)))
        jax_wall.append(wall)
        jax_cpu.append(cpu)
        regret = _final_regret(sim, carry, runs)
        del carry, consts
        if numpy and family.numpy is not None:
            out, wall, cpu = _timed(lambda: family.numpy(runs, horizon, repeat))
            np_wall.append(wall)
            np_cpu.append(cpu)
            np_regret.append(float(np.mean(out)))
    row = {"family": family.name, "label": family.label, "kind": family.kind, "runs": runs,
           "horizon": horizon, "repeats": len(jax_wall), "setup_seconds": setup_seconds,
           "compile_seconds": compile_seconds,
           "jax": {"wall_seconds": jax_wall, "cpu_seconds": jax_cpu,
                   "steps_per_second": steps / _median(jax_wall),
                   "steps_per_cpu_second": steps / _median(jax_cpu),
                   "ms_per_round": 1e3 * _median(jax_wall) / horizon,
                   "memory_bytes": memory, "memory_mib": memory / 2 ** 20,
                   "mean_final_regret": regret}}
    if np_wall:
        row["numpy"] = {"reference": family.numpy.__name__,
                        "wall_seconds": np_wall, "cpu_seconds": np_cpu,
                        "steps_per_second": steps / _median(np_wall),
                        "steps_per_cpu_second": steps / _median(np_cpu),
                        "ms_per_round": 1e3 * _median(np_wall) / horizon,
                        "memory_mib": _numpy_memory_mib(family.numpy, runs, min(horizon, 20)),
                        "mean_final_regret": _median(np_regret)}
        row["ratio"] = _median(np_wall) / _median(jax_wall)
        row["ratio_cpu"] = _median(np_cpu) / _median(jax_cpu)
    log(f"  {family.label:<26} {runs:>9,} runs x {horizon} rounds: JAX "
        f"{row['jax']['steps_per_second']:.3g} steps/s, {row['jax']['ms_per_round']:.3g} ms a "
        f"round (compile {compile_seconds:.2f} s)"
        + (f", NumPy {row['numpy']['steps_per_second']:.3g} steps/s, ratio {row['ratio']:.2f}"
           f" (CPU time {row['ratio_cpu']:.2f})" if "numpy" in row else ""))
    return row


def compile_against_sweep(sizes: tuple[int, ...], seeds: int, horizon: int,
                          log: Callable[[str], None] = print) -> list[dict]:
    """Compile time of one UCB1 group whose c takes 1, 10, 100, ... values."""
    rows = []
    for size in sizes:
        values = np.linspace(0.5, 4.0, size).round(6).tolist()
        learner = {"name": "ucb1", "c": values if size > 1 else values[0]}
        config = family_config(FAMILIES["ucb1"], 1, horizon, learner)
        config["run"].update(seeds=seeds, instances=1)
        sim, inputs, runs, sharding = prepare(config)
        _, seconds = compile_chunks(sim, inputs, sharding)
        rows.append({"grid_values": size, "runs": runs, "compile_seconds": seconds})
        log(f"  UCB1, {size:>5} values of c x {seeds} seeds = {runs:>6} runs: "
            f"compile {seconds:.2f} s")
    return rows


def smpybandits_rows(families: list[Family], runs: int, horizon: int,
                     log: Callable[[str], None] = print) -> dict:
    """SMPyBandits' UCB and Thompson, one policy object per run, on the same problems."""
    try:
        import scipy.special
        if not hasattr(scipy.special, "btdtri"):
            # SMPyBandits 0.9.7 (2019, the latest) imports btdtri, which SciPy 1.14 removed;
            # it is the inverse of the Beta CDF, betaincinv under its current name.
            scipy.special.btdtri = scipy.special.betaincinv
        from SMPyBandits import Policies  # type: ignore[import-not-found]
    except Exception as error:  # noqa: BLE001  (absent, or broken by newer NumPy or SciPy)
        message = (f"SMPyBandits not available ({type(error).__name__}: {error}); install the "
                   f"optional extra with `pip install -e .[compare]` to compare against it")
        log("  " + message)
        return {"skipped": message}
    rows = []
    for family in families:
        if family.smpy is None:
            continue
        rng = np.random.default_rng(0)
        means = references.uniform_instances(rng, runs, 10)
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        regret = np.zeros(runs)
        for r in range(runs):
            policy = getattr(Policies, family.smpy)(10)
            policy.startGame()
            best = means[r].max()
            for _ in range(horizon):
                arm = int(policy.choice())
                reward = float(rng.random() < means[r, arm])
                policy.getReward(arm, reward)
                regret[r] += best - means[r, arm]
        wall = time.perf_counter() - start_wall
        cpu = time.process_time() - start_cpu
        rows.append({"family": family.name, "policy": family.smpy, "runs": runs,
                     "horizon": horizon, "steps_per_second": runs * horizon / wall,
                     "steps_per_cpu_second": runs * horizon / cpu,
                     "mean_final_regret": float(regret.mean())})
        log(f"  SMPyBandits {family.smpy}: {rows[-1]['steps_per_second']:.3g} steps/s "
            f"({runs} runs x {horizon} rounds)")
    return {"rows": rows}


# ---------------------------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------------------------
def environment_facts() -> dict:
    import jax
    from experiments.experiment import git_commit, versions
    device = jax.devices()[0]
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "backend": jax.default_backend(),
            "device": getattr(device, "device_kind", device.platform),
            "device_count": jax.device_count(), "cpu": platform.processor() or
            platform.machine(), "cpu_cores": os.cpu_count(), "versions": versions(),
            "git_commit": git_commit(), "load_average_start": list(os.getloadavg())}


def finish_environment(env: dict) -> None:
    from experiments.experiment import peak_memory_mib
    env["load_average_end"] = list(os.getloadavg())
    env["peak_process_memory_mib"] = round(peak_memory_mib(), 1)


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def report_header(report: dict, title: str) -> list[str]:
    env = report["environment"]
    v = env["versions"]
    return [
        f"# {title}",
        "",
        f"Device: **{env['device_count']} x {env['device']}** ({env['backend']}); host CPU "
        f"{env['cpu']}, {env['cpu_cores']} cores; load average {env['load_average_start'][0]:.1f}"
        f" at the start, {env.get('load_average_end', [float('nan')])[0]:.1f} at the end.",
        f"Versions: Python {v.get('python')}, jax {v.get('jax')}, jaxlib {v.get('jaxlib')}, "
        f"numpy {v.get('numpy')}, banditjax {v.get('banditjax')}"
        + (f", commit {env['git_commit'][:10]}" if env.get("git_commit") else "")
        + f". {env['date']}.",
    ]


def markdown(report: dict) -> str:
    lines = report_header(report, "banditjax bench") + [
        "",
        "Agent-steps per second (runs x rounds / run time, median of "
        f"{report['settings']['repeats']} repeats, JAX and NumPy interleaved in one process); "
        "ms/round: wall time of one round of all the runs. **Ratio** = JAX over the vectorised "
        "NumPy reference (experiments/references.py), wall time (CPU-time ratio beside it). "
        "Compile time is apart from run time. Memory: JAX = buffers of the compiled chunk (XLA "
        "memory analysis), NumPy = tracemalloc peak. Regret: mean final pseudo-regret of both "
        "implementations (same algorithm, same problem, independent random numbers).",
        "",
        "| family | learner | runs | rounds | JAX steps/s | JAX ms/round | NumPy steps/s "
        "| **ratio** | ratio (CPU) | compile s | JAX MiB | NumPy MiB | regret JAX / NumPy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        jax_row, np_row = row["jax"], row.get("numpy")
        lines.append(
            f"| {row.get('kind', '')} | {row['label']} | {row['runs']:,} | {row['horizon']:,} "
            f"| {fmt(jax_row['steps_per_second'])} | {fmt(jax_row['ms_per_round'])} "
            f"| {fmt(np_row['steps_per_second']) if np_row else '-'} "
            f"| **{fmt(row.get('ratio'), 2)}** | {fmt(row.get('ratio_cpu'), 2)} "
            f"| {row['compile_seconds']:.2f} | {fmt(jax_row['memory_mib'])} "
            f"| {fmt(np_row['memory_mib']) if np_row else '-'} "
            f"| {fmt(jax_row['mean_final_regret'])} / "
            f"{fmt(np_row['mean_final_regret']) if np_row else '-'} |")
    if report.get("compile_vs_sweep"):
        lines += ["", "Compile time against sweep size (UCB1, one compiled group; c is a traced "
                  "array, so the grid size does not change the program):", "",
                  "| values of c | runs | compile s |", "|---:|---:|---:|"]
        lines += [f"| {r['grid_values']:,} | {r['runs']:,} | {r['compile_seconds']:.2f} |"
                  for r in report["compile_vs_sweep"]]
    smpy = report.get("smpybandits", {})
    lines += ["", "SMPyBandits (one policy object per run): " + (
        smpy["skipped"] if "skipped" in smpy else ", ".join(
            f"{r['policy']} {fmt(r['steps_per_second'])} steps/s ({r['runs']} runs x "
            f"{r['horizon']} rounds)" for r in smpy.get("rows", [])) or "not measured")]
    if report.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(report["skipped"])]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: Path, stem: str, text: str, log: Callable[[str], None]) -> None:
    from experiments.experiment import write_text
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / f"{stem}.json", json.dumps(report, indent=2, default=float))
    write_text(out / f"{stem}.md", text)
    log(f"\n{text}")
    log(f"written: {out / f'{stem}.json'}, {out / f'{stem}.md'}")


def registered_families(names: list[str], report: dict, log: Callable[[str], None]) -> list[Family]:
    """The families of ``names`` whose learner is registered; the others skipped with a message."""
    import bandits  # noqa: F401  (registers learners)
    from bandits.core import LEARNERS
    families = []
    for name in names:
        family = FAMILIES[name]
        learner = family.learner_table["name"]
        if learner not in LEARNERS.names():
            message = f"{family.label}: learner {learner!r} is not registered"
            log("  skipped " + message)
            report["skipped"].append(message)
            continue
        families.append(family)
    return families


def run_bench(runs: tuple[int, ...], learners: list[str], repeats: int,
              horizon: int | None = None, quick: bool = False, out: Path = Path("bench"),
              compile_sizes: tuple[int, ...] = COMPILE_GRID, numpy: bool = True,
              log: Callable[[str], None] = print) -> dict:
    report: dict[str, Any] = {"environment": environment_facts(),
                              "settings": {"runs": list(runs), "learners": learners,
                                           "repeats": repeats, "quick": quick,
                                           "horizon": horizon},
                              "results": [], "skipped": []}
    env = report["environment"]
    log(f"banditjax bench on {env['device_count']} x {env['device']} ({env['backend']}), "
        f"load average {env['load_average_start'][0]:.1f}")
    families = registered_families(learners, report, log)
    for family in families:
        rounds = horizon or (family.quick_horizon if quick else family.horizon)
        for size in runs:
            report["results"].append(measure(family, size, rounds, repeats, numpy=numpy,
                                             log=log))
    if compile_sizes:
        log("compile time against sweep size:")
        report["compile_vs_sweep"] = compile_against_sweep(
            compile_sizes, seeds=10, horizon=50 if quick else 200, log=log)
    log("SMPyBandits:")
    report["smpybandits"] = smpybandits_rows(families, runs=20 if quick else 100,
                                             horizon=100 if quick else 1000, log=log)
    finish_environment(env)
    write_report(report, out, "results", markdown(report), log)
    return report


# ---------------------------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------------------------
def parse_sizes(text: str) -> tuple[int, ...]:
    from envs.core import ConfigError
    try:
        values = [float(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        values = [0.5]
    if not all(v.is_integer() for v in values):
        raise ConfigError(f"--runs {text!r}: expected comma-separated integers, e.g. "
                          f"1000,10000 or 1e4,1e5")
    sizes = tuple(int(v) for v in values)
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--runs {text!r}: every size must be a positive integer")
    return sizes


def parse_names(text: str, option: str) -> list[str]:
    from envs.core import ConfigError
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in FAMILIES]
    if unknown:
        raise ConfigError(f"{option}: unknown {', '.join(unknown)}; known: "
                          f"{', '.join(FAMILIES)}")
    return names


def _cmd_bench(args: argparse.Namespace) -> int:
    from envs.core import ConfigError
    from experiments.gpu_bench import (GPU_QUICK_RUNS, GPU_RUNS, Budget, process_seconds,
                                       run_gpu_bench)
    budget = (Budget(args.budget, start=time.perf_counter() - process_seconds()) if args.gpu
              else None)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        raise ConfigError(f"--repeats {args.repeats}: must be at least 1")
    if args.horizon is not None and args.horizon < 1:
        raise ConfigError(f"--horizon {args.horizon}: must be at least 1")
    if args.budget <= 0:
        raise ConfigError(f"--budget {args.budget}: must be positive (seconds)")
    if args.gpu:
        runs = parse_sizes(args.runs) if args.runs else GPU_QUICK_RUNS if args.quick else GPU_RUNS
        learners = parse_names(args.learners, "--learners") if args.learners else None
        run_gpu_bench(runs, learners, extra=[] if args.learners else None,
                      repeats=args.repeats, horizon=args.horizon, quick=args.quick,
                      out=Path(args.out), budget=budget)
        return 0
    learners = parse_names(args.learners, "--learners") if args.learners else list(FAMILIES)
    runs = parse_sizes(args.runs) if args.runs else (
        QUICK_RUNS if args.quick else FULL_RUNS if args.full else DEFAULT_RUNS)
    compile_sizes = () if args.no_compile_sweep else (
        COMPILE_GRID[:2] if args.quick else COMPILE_GRID)
    run_bench(runs, learners, args.repeats, horizon=args.horizon, quick=args.quick,
              out=Path(args.out), compile_sizes=compile_sizes, numpy=not args.no_numpy)
    return 0


def register_command(subparsers) -> None:
    from experiments.gpu_bench import GPU_BUDGET_SECONDS
    bench = subparsers.add_parser(
        "bench", help="agent-steps/s, compile time and memory per learner family, against "
                      "NumPy (and SMPyBandits when installed); --gpu: the accelerator",
        description=__doc__.split("\n\n")[0])
    horizons = ", ".join(f"{f.name} {f.horizon}" for f in FAMILIES.values())
    bench.add_argument("--runs", help="comma-separated numbers of runs (default 1000,10000; "
                                      "--full: 1000,10000,100000; --gpu: 10000,100000,1000000)")
    bench.add_argument("--full", action="store_true", help="also 100,000 runs")
    bench.add_argument("--quick", action="store_true",
                       help="a smoke test: 200 runs (--gpu: 64, 128, 256), short horizons, one "
                            "repeat, compile sweep 1 and 10 values")
    bench.add_argument("--learners",
                       help=f"comma-separated families (default: all of {', '.join(FAMILIES)}; "
                            f"--gpu: {', '.join(GPU_LEARNERS)}, then "
                            f"{', '.join(GPU_EXTRA)} while time remains)")
    bench.add_argument("--horizon", type=int,
                       help=f"rounds per run for every family (default per family: {horizons})")
    bench.add_argument("--repeats", type=int,
                       help="timed repeats, the median is reported (default 3; --quick: 1)")
    bench.add_argument("--out", default="bench",
                       help="folder for results.json and results.md (--gpu: gpu.json, gpu.md)")
    bench.add_argument("--no-numpy", action="store_true", help="skip the NumPy references")
    bench.add_argument("--no-compile-sweep", action="store_true",
                       help="skip compile time against sweep size")
    bench.add_argument("--gpu", action="store_true",
                       help="measure the accelerator: UCB1, Thompson, LinUCB, LDB-DF at 10^4, "
                            "10^5, 10^6 runs, more families while time remains, inside "
                            "--budget; a size whose estimated memory exceeds the free device "
                            "memory is skipped with a message (without a GPU: the CPU)")
    bench.add_argument("--budget", type=float, default=GPU_BUDGET_SECONDS,
                       help="--gpu: seconds from the start of the command after which no "
                            f"measurement starts (default {GPU_BUDGET_SECONDS:.0f})")
    bench.set_defaults(func=_cmd_bench)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m experiments.bench")
    register_command(parser.add_subparsers(dest="command", required=True))
    arguments = parser.parse_args(["bench", *sys.argv[1:]])
    sys.exit(arguments.func(arguments))
