"""Figure 6: throughput, agent-steps per second against the number of parallel runs.

JAX: the normal runner (``experiments.config.build`` + ``simulate_experiment``) on
``configs/throughput.toml`` (UCB1, Auer et al. 2002, on ten Bernoulli arms) with ``run.seeds`` set
to each run count; the rate is agent-steps over the simulation time after compilation (the
runner's ``agent_steps_per_second``). NumPy: the same UCB1 as a loop over rounds vectorised over
runs (``experiments.references.ucb1``, the reference ``banditjax bench`` and the tests use; one
NumPy array op per step of the algorithm for all runs at once), the fastest plain-NumPy layout.
Both are timed on this machine's CPU; the figure notes the device.
"""
from __future__ import annotations

import os
import platform
import time

import matplotlib.pyplot as plt
import numpy as np

from analysis.plotting import COLUMN_WIDTH, apply_style, learner_colours
from paper_figures import common

NAME = "throughput"


def numpy_ucb1(runs: int, horizon: int, num_arms: int = 10, seed: int = 0) -> np.ndarray:
    """UCB1 (c = 2) on uniform Bernoulli instances, all runs at once; returns final regret."""
    from experiments import references
    rng = np.random.default_rng(seed)
    return references.ucb1(references.uniform_instances(rng, runs, num_arms), horizon, rng)


def measure(config: dict, settings: dict) -> dict:
    from experiments import config as config_lib
    from experiments.experiment import simulate_experiment

    reference, reference_name = numpy_ucb1, "experiments.references.ucb1"
    out = {"runs": [], "jax": [], "numpy": [], "device": platform.processor() or
           platform.machine(), "numpy_reference": reference_name}
    k = int(config["env"].get("K", 10))
    for runs in settings["runs"]:
        config_r = common.merge(config, {"run": {"seeds": int(runs)}})
        experiment = config_lib.build(config_r)
        rates = []
        for _ in range(int(settings.get("repeats", 1))):
            _, facts = simulate_experiment(experiment, progress=False)
            rates.append(facts["agent_steps_per_second"])
        horizon = int(settings["numpy_horizon"])
        numpy_rates = []
        for _ in range(int(settings.get("repeats", 1))):
            start = time.perf_counter()
            reference(int(runs), horizon, k)          # k arms, seed 0
            numpy_rates.append(runs * horizon / (time.perf_counter() - start))
        numpy_rate = max(numpy_rates)
        out["runs"].append(int(runs))
        out["jax"].append(float(max(rates)))
        out["numpy"].append(float(numpy_rate))
        out.setdefault("load_average", []).append(os.getloadavg()[0])
        print(f"throughput: {runs} runs: JAX {max(rates):.3g}/s, NumPy {numpy_rate:.3g}/s",
              flush=True)
    return out


def make(quick: bool = False, out=None, cache=None, force: bool = False) -> list:
    import jax

    config = common.load_config(NAME, quick)
    settings = config.pop("throughput")
    key = {"config": config, "throughput": settings, "jax": jax.__version__,
           "device": str(jax.devices()[0])}
    data = common.cached_json(f"{NAME}{'-quick' if quick else ''}", key,
                              lambda: measure(config, settings), cache=cache, force=force)
    apply_style()
    colours = learner_colours(["ucb1", "numpy"])
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * 0.75))
    ax.plot(data["runs"], data["jax"], "o-", color=colours["ucb1"],
            label="banditjax (JAX, jit + vmap + scan)")
    ax.plot(data["runs"], data["numpy"], "s--", color="0.35",
            label="NumPy, vectorised over runs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parallel runs")
    ax.set_ylabel("agent-steps per second")
    ax.set_title(f"UCB1, K={config['env'].get('K', 10)} Bernoulli; "
                 f"{jax.devices()[0].platform.upper()}, {os.cpu_count()} cores"
                 + (f" (load average {max(data['load_average']):.0f} while timing)"
                    if data.get("load_average") else ""), fontsize=7)
    ax.legend(loc="upper left", fontsize=6)
    return common.save(fig, NAME, quick, out)
