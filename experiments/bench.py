"""``banditjax bench``: agent-steps per second, compile time and memory, against NumPy.

Issues 2 (item 8) and 6, DESIGN.md "Measured facts". For each learner family (UCB1, Thompson
sampling, KL-UCB on K = 10 Bernoulli arms; LinUCB on a disjoint linear bandit, K = 10, d = 16;
NeuralUCB on the nonlinear bandit; LDB-DF on the delayed contextual dueling bandit; a family
whose learner is not registered is skipped with a message) and each number of runs:

- the JAX runner (``experiments.runner.Simulation``: one compiled chunk, scan over rounds, runs
  vmapped and sharded over the visible devices), compile time apart from run time;
- side by side in the same process, repeats interleaved (JAX, NumPy, JAX, NumPy, ...), a NumPy
  implementation of the same algorithm on the same kind of problem, vectorised over runs (a
  Python loop over rounds, arrays over runs and arms), written below: the way one writes a fast
  simulator without JAX. The mean final regret of both is reported, so a reader can see they
  are the same algorithm;
- SMPyBandits' UCB and Thompson policies (one Python object per run, the usual library design)
  when that package is installed (``pip install -e .[compare]``), skipped with a message
  otherwise;
- compile time against the size of a hyper-parameter sweep (1 to 1,000 values of UCB1's c):
  hyper-parameters are traced arrays, so it stays flat.

Medians over the repeats; agent-steps = runs x rounds. Wall time is the headline, process CPU
time (``time.process_time``, all threads) a cross-check that is less sensitive to other load on
the machine. Memory: for JAX the buffers of the compiled chunk (XLA's memory analysis:
arguments + outputs + temporaries - donated), for NumPy the peak of ``tracemalloc`` over a short
run. Results: ``bench/results.json`` and ``bench/results.md`` (device and versions in both). The
same command measures a GPU when JAX sees one (NumPy stays on the CPU).
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

# ---------------------------------------------------------------------------------------------
# NumPy references, vectorised over runs. Each returns the cumulative pseudo-regret of every run
# after ``horizon`` rounds; all draw their instances as the JAX configs below do.
# ---------------------------------------------------------------------------------------------


def _bernoulli_instances(rng: np.random.Generator, runs: int, arms: int) -> np.ndarray:
    return rng.random((runs, arms))                 # generator = "uniform": means ~ U(0, 1)


def _random_argmax(rng: np.random.Generator, index: np.ndarray) -> np.ndarray:
    """Row-wise argmax with uniform ties, as bandits.core.random_argmax (one uniform a row)."""
    is_max = index >= index.max(axis=1, keepdims=True)
    ties = np.cumsum(is_max, axis=1)
    count = ties[:, -1]
    choice = np.minimum((rng.random(len(index)) * count).astype(np.int64), count - 1)
    return np.argmax(is_max & (ties == (choice + 1)[:, None]), axis=1)


def _index_policy(index: Callable[[np.ndarray, np.ndarray, int], np.ndarray]):
    """A K-armed Bernoulli simulation around an index (counts, sums, t) -> [R, K]."""
    def simulate(runs: int, horizon: int, seed: int, arms: int = 10) -> np.ndarray:
        rng = np.random.default_rng(seed)
        means = _bernoulli_instances(rng, runs, arms)
        best = means.max(axis=1)
        counts = np.zeros((runs, arms))
        sums = np.zeros((runs, arms))
        regret = np.zeros(runs)
        rows = np.arange(runs)
        for t in range(horizon):
            arm = _random_argmax(rng, index(counts, sums, t))
            mean = means[rows, arm]
            reward = rng.random(runs) < mean
            counts[rows, arm] += 1.0
            sums[rows, arm] += reward
            regret += best - mean
        return regret
    return simulate


def _ucb1_index(counts, sums, t, c=2.0):
    n = np.maximum(counts, 1.0)
    bonus = np.sqrt(c * np.log(t + 1.0) / n)
    return np.where(counts > 0, sums / n + bonus, np.inf)


def _kl(p, q):
    eps = 1e-7
    p = np.clip(p, eps, 1 - eps)
    q = np.clip(q, eps, 1 - eps)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def _klucb_index(counts, sums, t, c=0.0, iterations=20):
    n = np.maximum(counts, 1.0)
    mean = sums / n
    log_t = math.log(t + 1.0)
    level = (log_t + c * math.log(max(log_t, 1.0))) / n
    low, high = mean.copy(), np.ones_like(mean)
    for _ in range(iterations):                      # bisection, as bandits.mab.kl_upper_bound
        mid = 0.5 * (low + high)
        inside = _kl(mean, mid) <= level
        low = np.where(inside, mid, low)
        high = np.where(inside, high, mid)
    return np.where(counts > 0, low, np.inf)


numpy_ucb1 = _index_policy(_ucb1_index)
numpy_klucb = _index_policy(_klucb_index)


def numpy_thompson(runs: int, horizon: int, seed: int, arms: int = 10) -> np.ndarray:
    """Beta-Bernoulli Thompson sampling, Beta(1, 1) prior."""
    rng = np.random.default_rng(seed)
    means = _bernoulli_instances(rng, runs, arms)
    best = means.max(axis=1)
    successes = np.zeros((runs, arms))
    failures = np.zeros((runs, arms))
    regret = np.zeros(runs)
    rows = np.arange(runs)
    for _ in range(horizon):
        arm = np.argmax(rng.beta(1.0 + successes, 1.0 + failures), axis=1)
        mean = means[rows, arm]
        reward = rng.random(runs) < mean
        successes[rows, arm] += reward
        failures[rows, arm] += ~reward
        regret += best - mean
    return regret


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def numpy_linucb(runs: int, horizon: int, seed: int, arms: int = 10, dim: int = 16,
                 alpha: float = 1.0, regulariser: float = 1.0, noise: float = 0.1
                 ) -> np.ndarray:
    """LinUCB with disjoint models (Li et al. 2010, Alg. 1), Sherman-Morrison updates of A^-1.

    The problem of the JAX config: one context on the unit sphere per round shared by all arms,
    theta_a on the unit sphere per arm, rewards <theta_a, x> + noise N(0, 1).
    """
    rng = np.random.default_rng(seed)
    theta = _unit_rows(rng.standard_normal((runs, arms, dim)))
    inverse = np.broadcast_to(np.eye(dim) / regulariser, (runs, arms, dim, dim)).copy()
    b = np.zeros((runs, arms, dim))
    counts = np.zeros((runs, arms))
    regret = np.zeros(runs)
    rows = np.arange(runs)
    for _ in range(horizon):
        x = _unit_rows(rng.standard_normal((runs, dim)))
        estimate = np.einsum("rkij,rkj->rki", inverse, b)
        projected = np.einsum("rkij,rj->rki", inverse, x)
        width = np.sqrt(np.maximum(np.einsum("rki,ri->rk", projected, x), 0.0))
        index = np.einsum("rki,ri->rk", estimate, x) + alpha * width
        arm = _random_argmax(rng, np.where(counts > 0, index, np.inf))
        expected = np.einsum("rki,ri->rk", theta, x)
        chosen = expected[rows, arm]
        reward = chosen + noise * rng.standard_normal(runs)
        u = projected[rows, arm]                                    # A_a^-1 x
        inverse[rows, arm] -= u[:, :, None] * u[:, None, :] / (1.0 + (u * x).sum(1))[:, None, None]
        b[rows, arm] += reward[:, None] * x
        counts[rows, arm] += 1.0
        regret += expected.max(axis=1) - chosen
    return regret


# ---------------------------------------------------------------------------------------------
# The families.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Family:
    name: str                     # the learner's config name
    label: str
    env: dict                     # the [env] table
    horizon: int                  # default rounds per run
    quick_horizon: int
    numpy: Callable[..., np.ndarray] | None = None
    smpy: str | None = None       # SMPyBandits policy class name


BERNOULLI = {"name": "bernoulli", "K": 10, "generator": "uniform"}
FAMILIES = {
    "ucb1": Family("ucb1", "UCB1", BERNOULLI, 1000, 100, numpy_ucb1, "UCB"),
    # Horizons: the cost of a round does not depend on t for these learners (NeuralUCB and
    # LDB-DF grow with their history buffers), so shorter runs keep the slow ones affordable.
    "thompson": Family("thompson", "Thompson (Beta)", BERNOULLI, 200, 100, numpy_thompson,
                       "Thompson"),
    "klucb": Family("klucb", "KL-UCB", BERNOULLI, 300, 100, numpy_klucb),
    "linucb": Family("linucb", "LinUCB (K=10, d=16)",
                     {"name": "linear", "K": 10, "d": 16, "model": "disjoint", "noise": 0.1},
                     100, 40, numpy_linucb),
    "neural_ucb": Family("neural_ucb", "NeuralUCB", {"name": "nonlinear"}, 30, 20),
    "ldb_df": Family("ldb_df", "LDB-DF (delayed duels)",
                     {"name": "contextual_dueling", "delay": {"dist": "geometric",
                                                             "mean": 10.0}}, 50, 20),
}
DEFAULT_RUNS = (1000, 10000)
FULL_RUNS = (1000, 10000, 100000)
QUICK_RUNS = (200,)
COMPILE_GRID = (1, 10, 100, 1000)


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


def _config(family: Family, runs: int, horizon: int, learner: dict | None = None) -> dict:
    # One problem instance per run (seeds = 1): the NumPy references draw one per run too.
    return {"run": {"horizon": horizon, "seeds": 1, "instances": runs, "record": 20,
                    "checkpoint_every": 0},
            "env": json.loads(json.dumps(family.env)),
            "learner": [learner or {"name": family.name}]}


def _prepare(config: dict):
    """(Simulation, placed inputs, sharding) for the single group of ``config``."""
    from experiments import config as config_lib
    from experiments.runner import (Simulation, _pad_runs, _place, default_chunk, record_grid,
                                    run_sharding)
    experiment = config_lib.build(config)
    if len(experiment.groups) != 1:
        raise ValueError("a bench config must make one compile group")
    group = experiment.groups[0]
    horizon = experiment.run["horizon"]
    sharding, devices = run_sharding(None)
    runs = len(group.runs)
    padded = int(math.ceil(runs / devices) * devices)
    inputs = _place(_pad_runs((group.run_keys, group.instance_keys, group.env_settings,
                               group.hparams), padded), sharding)
    sim = Simulation(group.env, group.learner, horizon, record_grid(horizon, 20),
                     default_chunk(horizon), sharding)
    return sim, inputs, runs


def _final_regret(sim, carry, runs: int) -> float:
    records = np.asarray(carry.records)[:runs]
    return float(records[:, len(sim.grid) - 1, 0].mean())


def _compiled_memory_mib(compiled: dict) -> float:
    sizes = []
    for fn in compiled.values():
        try:
            a = fn.memory_analysis()
            sizes.append(a.argument_size_in_bytes + a.output_size_in_bytes
                         + a.temp_size_in_bytes - a.alias_size_in_bytes)
        except Exception:  # noqa: BLE001  (a backend without memory analysis)
            return float("nan")
    return max(sizes) / 2 ** 20


def measure(family: Family, runs: int, horizon: int, repeats: int, numpy: bool = True,
            log: Callable[[str], None] = print) -> dict:
    """One row of the table: JAX and (interleaved) NumPy at this size."""
    import jax
    sim, inputs, runs = _prepare(_config(family, runs, horizon))
    carry, consts = sim.initial(*inputs)
    compiled, compile_seconds = sim.compile(carry, consts)
    steps = runs * horizon
    jax_wall, jax_cpu, np_wall, np_cpu, np_regret = [], [], [], [], []
    regret = float("nan")
    for repeat in range(repeats):
        carry, consts = sim.initial(*inputs)
        jax.block_until_ready(carry)
        carry, wall, cpu = _timed(lambda: jax.block_until_ready(
            sim.run_chunks(compiled, carry, consts)))
        jax_wall.append(wall)
        jax_cpu.append(cpu)
        regret = _final_regret(sim, carry, runs)
        if numpy and family.numpy is not None:
            out, wall, cpu = _timed(lambda: family.numpy(runs, horizon, repeat))
            np_wall.append(wall)
            np_cpu.append(cpu)
            np_regret.append(float(np.mean(out)))
    row = {"family": family.name, "label": family.label, "runs": runs, "horizon": horizon,
           "repeats": repeats, "compile_seconds": compile_seconds,
           "jax": {"wall_seconds": jax_wall, "cpu_seconds": jax_cpu,
                   "steps_per_second": steps / _median(jax_wall),
                   "steps_per_cpu_second": steps / _median(jax_cpu),
                   "memory_mib": _compiled_memory_mib(compiled),
                   "mean_final_regret": regret}}
    if np_wall:
        row["numpy"] = {"wall_seconds": np_wall, "cpu_seconds": np_cpu,
                        "steps_per_second": steps / _median(np_wall),
                        "steps_per_cpu_second": steps / _median(np_cpu),
                        "memory_mib": _numpy_memory_mib(family.numpy, runs, min(horizon, 20)),
                        "mean_final_regret": _median(np_regret)}
        row["ratio"] = _median(np_wall) / _median(jax_wall)
        row["ratio_cpu"] = _median(np_cpu) / _median(jax_cpu)
    log(f"  {family.label:<24} {runs:>7} runs x {horizon} rounds: JAX "
        f"{row['jax']['steps_per_second']:.3g} steps/s (compile {compile_seconds:.2f} s)"
        + (f", NumPy {row['numpy']['steps_per_second']:.3g} steps/s, ratio {row['ratio']:.2f}"
           f" (CPU time {row['ratio_cpu']:.2f})" if "numpy" in row else ", no NumPy reference"))
    return row


def tuning_comparison(family: Family, runs: int, horizon: int, repeats: int,
                      log: Callable[[str], None] = print) -> list[dict]:
    """The runner with and without its XLA:CPU tuning (experiments.runner.cpu_tuning)."""
    from experiments.runner import cpu_tuning
    rows = []
    for enabled in (False, True):
        with cpu_tuning(enabled):
            row = measure(family, runs, horizon, repeats, numpy=False, log=lambda _: None)
        row["cpu_tuning"] = enabled
        rows.append(row)
        log(f"  {family.label:<24} {runs:>7} runs, CPU tuning {'on ' if enabled else 'off'}: "
            f"{row['jax']['steps_per_second']:.3g} steps/s wall, "
            f"{row['jax']['steps_per_cpu_second']:.3g} per CPU second, final regret "
            f"{row['jax']['mean_final_regret']:.6g}")
    return rows


def compile_against_sweep(sizes: tuple[int, ...], seeds: int, horizon: int,
                          log: Callable[[str], None] = print) -> list[dict]:
    """Compile time of one UCB1 group whose c takes 1, 10, 100, ... values."""
    rows = []
    for size in sizes:
        values = np.linspace(0.5, 4.0, size).round(6).tolist()
        learner = {"name": "ucb1", "c": values if size > 1 else values[0]}
        config = _config(FAMILIES["ucb1"], 1, horizon, learner)
        config["run"].update(seeds=seeds, instances=1)
        sim, inputs, runs = _prepare(config)
        carry, consts = sim.initial(*inputs)
        _, seconds = sim.compile(carry, consts)
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
        means = _bernoulli_instances(rng, runs, 10)
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
    from experiments.experiment import versions
    device = jax.devices()[0]
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "backend": jax.default_backend(),
            "device": getattr(device, "device_kind", device.platform),
            "device_count": jax.device_count(), "cpu": platform.processor() or
            platform.machine(), "cpu_cores": os.cpu_count(), "versions": versions(),
            "load_average_start": list(os.getloadavg())}


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def markdown(report: dict) -> str:
    env = report["environment"]
    v = env["versions"]
    lines = [
        "# banditjax bench",
        "",
        f"Device: **{env['device_count']} x {env['device']}** ({env['backend']}); host CPU "
        f"{env['cpu']}, {env['cpu_cores']} cores; load average {env['load_average_start'][0]:.1f}"
        f" at the start, {env.get('load_average_end', [float('nan')])[0]:.1f} at the end.",
        f"Versions: Python {v.get('python')}, jax {v.get('jax')}, jaxlib {v.get('jaxlib')}, "
        f"numpy {v.get('numpy')}, banditjax {v.get('banditjax')}. {env['date']}.",
        "",
        "Agent-steps per second (runs x rounds / run time, median of "
        f"{report['settings']['repeats']} repeats, JAX and NumPy interleaved in one process). "
        "**Ratio** = JAX over the vectorised NumPy reference, wall time (CPU-time ratio beside "
        "it). Compile time is apart from run time. Memory: JAX = buffers of the compiled chunk "
        "(XLA memory analysis), NumPy = tracemalloc peak. Regret: mean final pseudo-regret of "
        "both implementations (same algorithm, independent random numbers).",
        "",
        "| learner | runs | rounds | JAX steps/s | NumPy steps/s | **ratio** | ratio (CPU) "
        "| compile s | JAX MiB | NumPy MiB | regret JAX / NumPy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        jax_row, np_row = row["jax"], row.get("numpy")
        lines.append(
            f"| {row['label']} | {row['runs']:,} | {row['horizon']:,} "
            f"| {_fmt(jax_row['steps_per_second'])} "
            f"| {_fmt(np_row['steps_per_second']) if np_row else '-'} "
            f"| **{_fmt(row.get('ratio'), 2)}** | {_fmt(row.get('ratio_cpu'), 2)} "
            f"| {row['compile_seconds']:.2f} | {_fmt(jax_row['memory_mib'])} "
            f"| {_fmt(np_row['memory_mib']) if np_row else '-'} "
            f"| {_fmt(jax_row['mean_final_regret'])} / "
            f"{_fmt(np_row['mean_final_regret']) if np_row else '-'} |")
    if report.get("compile_vs_sweep"):
        lines += ["", "Compile time against sweep size (UCB1, one compiled group; c is a traced "
                  "array, so the grid size does not change the program):", "",
                  "| values of c | runs | compile s |", "|---:|---:|---:|"]
        lines += [f"| {r['grid_values']:,} | {r['runs']:,} | {r['compile_seconds']:.2f} |"
                  for r in report["compile_vs_sweep"]]
    if report.get("cpu_tuning"):
        lines += ["", "The runner's XLA:CPU tuning (unrolled threefry lowering, no YNN fusions; "
                  "same random numbers), off and on:", "",
                  "| learner | runs | tuning | JAX steps/s | per CPU second | final regret |",
                  "|---|---:|---|---:|---:|---:|"]
        lines += [f"| {r['label']} | {r['runs']:,} | {'on' if r['cpu_tuning'] else 'off'} "
                  f"| {_fmt(r['jax']['steps_per_second'])} "
                  f"| {_fmt(r['jax']['steps_per_cpu_second'])} "
                  f"| {r['jax']['mean_final_regret']:.6g} |" for r in report["cpu_tuning"]]
    smpy = report.get("smpybandits", {})
    lines += ["", "SMPyBandits (one policy object per run): " + (
        smpy["skipped"] if "skipped" in smpy else ", ".join(
            f"{r['policy']} {_fmt(r['steps_per_second'])} steps/s ({r['runs']} runs x "
            f"{r['horizon']} rounds)" for r in smpy.get("rows", [])) or "not measured")]
    if report.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(report["skipped"])]
    return "\n".join(lines) + "\n"


def run_bench(runs: tuple[int, ...], learners: list[str], repeats: int,
              horizon: int | None = None, quick: bool = False, out: Path = Path("bench"),
              compile_sizes: tuple[int, ...] = COMPILE_GRID, numpy: bool = True,
              tuning: bool = False, log: Callable[[str], None] = print) -> dict:
    import bandits  # noqa: F401  (registers learners)
    from bandits.core import LEARNERS
    from experiments.experiment import write_text
    report: dict[str, Any] = {"environment": environment_facts(),
                              "settings": {"runs": list(runs), "learners": learners,
                                           "repeats": repeats, "quick": quick,
                                           "horizon": horizon},
                              "results": [], "skipped": []}
    env = report["environment"]
    log(f"banditjax bench on {env['device_count']} x {env['device']} ({env['backend']}), "
        f"load average {env['load_average_start'][0]:.1f}")
    families = []
    for name in learners:
        family = FAMILIES[name]
        if family.name not in LEARNERS.names():
            message = f"{family.label}: learner {family.name!r} is not registered"
            log("  skipped " + message)
            report["skipped"].append(message)
            continue
        families.append(family)
    for family in families:
        rounds = horizon or (family.quick_horizon if quick else family.horizon)
        for size in runs:
            report["results"].append(measure(family, size, rounds, repeats, numpy=numpy,
                                             log=log))
    if tuning and "cpu" in env["backend"]:
        log("XLA:CPU tuning of the runner, off and on:")
        report["cpu_tuning"] = []
        for family in families:
            if family.name in ("ucb1", "thompson"):       # Thompson: the small size (slow)
                size = max(runs) if family.name == "ucb1" else min(runs)
                report["cpu_tuning"] += tuning_comparison(
                    family, size, horizon or family.horizon, repeats, log=log)
    if compile_sizes:
        log("compile time against sweep size:")
        report["compile_vs_sweep"] = compile_against_sweep(
            compile_sizes, seeds=10, horizon=50 if quick else 200, log=log)
    log("SMPyBandits:")
    report["smpybandits"] = smpybandits_rows(families, runs=20 if quick else 100,
                                             horizon=100 if quick else 1000, log=log)
    env["load_average_end"] = list(os.getloadavg())
    from experiments.experiment import peak_memory_mib
    env["peak_process_memory_mib"] = round(peak_memory_mib(), 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps(report, indent=2, default=float))
    write_text(out / "results.md", markdown(report))
    log(f"\n{markdown(report)}")
    log(f"written: {out / 'results.json'}, {out / 'results.md'}")
    return report


# ---------------------------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------------------------
def _sizes(text: str) -> tuple[int, ...]:
    from envs.core import ConfigError
    try:
        sizes = tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--runs {text!r}: expected comma-separated integers, e.g. 1000,10000")
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--runs {text!r}: every size must be a positive integer")
    return sizes


def _cmd_bench(args: argparse.Namespace) -> int:
    from envs.core import ConfigError
    learners = [x.strip() for x in args.learners.split(",") if x.strip()]
    unknown = [x for x in learners if x not in FAMILIES]
    if unknown:
        raise ConfigError(f"--learners: unknown {', '.join(unknown)}; known: "
                          f"{', '.join(FAMILIES)}")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        raise ConfigError(f"--repeats {args.repeats}: must be at least 1")
    runs = _sizes(args.runs) if args.runs else (
        QUICK_RUNS if args.quick else FULL_RUNS if args.full else DEFAULT_RUNS)
    compile_sizes = () if args.no_compile_sweep else (
        COMPILE_GRID[:2] if args.quick else COMPILE_GRID)
    run_bench(runs, learners, args.repeats, horizon=args.horizon, quick=args.quick,
              out=Path(args.out), compile_sizes=compile_sizes, numpy=not args.no_numpy,
              tuning=args.cpu_tuning)
    return 0


def register_command(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench", help="agent-steps/s, compile time and memory per learner family, against "
                      "NumPy (and SMPyBandits when installed)",
        description=__doc__.split("\n\n")[0])
    bench.add_argument("--runs", help="comma-separated numbers of runs (default 1000,10000; "
                                      "--full: 1000,10000,100000)")
    bench.add_argument("--full", action="store_true", help="also 100,000 runs")
    bench.add_argument("--quick", action="store_true",
                       help="a smoke test: 200 runs, short horizons, one repeat")
    bench.add_argument("--learners", default=",".join(FAMILIES),
                       help=f"comma-separated families (default: all of {', '.join(FAMILIES)})")
    bench.add_argument("--horizon", type=int,
                       help="rounds per run for every family (default per family: UCB1 1000, "
                            "Thompson 200, KL-UCB 300, LinUCB 100, NeuralUCB 30, LDB-DF 50)")
    bench.add_argument("--repeats", type=int,
                       help="timed repeats, the median is reported (default 3; --quick: 1)")
    bench.add_argument("--out", default="bench", help="folder for results.json and results.md")
    bench.add_argument("--no-numpy", action="store_true", help="skip the NumPy references")
    bench.add_argument("--cpu-tuning", action="store_true",
                       help="also measure UCB1 and Thompson with the runner's XLA:CPU tuning "
                            "off and on (experiments.runner.cpu_tuning)")
    bench.add_argument("--no-compile-sweep", action="store_true",
                       help="skip compile time against sweep size")
    bench.set_defaults(func=_cmd_bench)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m experiments.bench")
    register_command(parser.add_subparsers(dest="command", required=True))
    arguments = parser.parse_args(["bench", *sys.argv[1:]])
    sys.exit(arguments.func(arguments))
