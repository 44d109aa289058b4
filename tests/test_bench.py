"""The benchmark suite (experiments/bench.py, ``banditjax bench``) and its NumPy references
(experiments/references.py).

The numbers themselves depend on the machine; what is tested is that the command runs, measures
JAX and the NumPy reference side by side, and writes a well-formed results.json and markdown
table with the device and the versions; that every NumPy reference is the algorithm it claims
(its regret matches the JAX learner's on the same problem); that the bench's shortcut for large
run counts builds exactly the runs the config layer builds; that the ``--gpu`` mode's plan keeps
to its time budget and to the free memory (on the CPU, tiny sizes, a controlled clock); and that
missing families and SMPyBandits are skipped with a message.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import bench, gpu_bench, references
from tests.reference import standard_error

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# The quick bench, end to end (a subprocess, as `banditjax bench` runs).
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "experiments", "bench", "--quick",
                           "--learners", "ucb1,exp3", "--runs", "64,128", "--horizon", "30",
                           "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_quick_bench_writes_json_with_every_measurement(quick_report):
    out, _ = quick_report
    report = json.loads((out / "results.json").read_text())
    env = report["environment"]
    assert env["device"] and env["backend"] in ("cpu", "gpu", "cuda", "rocm", "tpu")
    assert env["versions"]["jax"] != "not installed"
    assert len(env["load_average_start"]) == 3 and len(env["load_average_end"]) == 3
    assert [(r["family"], r["runs"], r["horizon"]) for r in report["results"]] == [
        ("ucb1", 64, 30), ("ucb1", 128, 30), ("exp3", 64, 30), ("exp3", 128, 30)]
    for row in report["results"]:
        assert row["jax"]["steps_per_second"] > 0 and row["numpy"]["steps_per_second"] > 0
        assert row["compile_seconds"] > 0 and row["jax"]["ms_per_round"] > 0
        assert math.isclose(row["ratio"], np.median(row["numpy"]["wall_seconds"])
                            / np.median(row["jax"]["wall_seconds"]))
        assert row["jax"]["memory_mib"] > 0 and row["numpy"]["memory_mib"] > 0
        # Regret after 30 rounds of K = 10 arms: positive, below 30 rounds x the largest gap.
        for side in ("jax", "numpy"):
            assert 0 < row[side]["mean_final_regret"] < 30
    assert [r["grid_values"] for r in report["compile_vs_sweep"]] == [1, 10]
    assert "skipped" in report["smpybandits"] or report["smpybandits"]["rows"]


def test_quick_bench_writes_a_markdown_table(quick_report):
    out, stdout = quick_report
    text = (out / "results.md").read_text()
    assert "Device: **" in text and "jax " in text and "load average" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| family | learner"))
    columns = lines[header].count("|")
    rows = lines[header + 2:header + 6]
    assert lines[header + 1].count("|") == columns
    assert all(row.count("|") == columns for row in rows)
    assert rows[0].startswith("| K-armed | UCB1 | 64 | 30 |")
    assert rows[3].startswith("| K-armed | EXP3 | 128 | 30 |")
    ratio = rows[0].split("|")[8].strip().strip("*")
    assert float(ratio) > 0
    assert "| values of c | runs | compile s |" in text
    assert "SMPyBandits" in text
    assert str(out / "results.md") in stdout


# ---------------------------------------------------------------------------------------------
# The NumPy references against the JAX learners, on one fixed instance.
# ---------------------------------------------------------------------------------------------
# Ten Bernoulli arms, distinct means, the best (0.9) neither first nor last.
MEANS = [0.45, 0.3, 0.6, 0.15, 0.9, 0.5, 0.7, 0.25, 0.8, 0.4]
RUNS, HORIZON = 300, 200


def jax_final_regret(family: bench.Family, env: dict, runs: int, horizon: int) -> np.ndarray:
    """Final regret of every run of the family's learner on ``env``, through the bench's setup."""
    config = bench.family_config(dataclasses.replace(family, env=env), runs, horizon)
    sim, inputs, n, sharding = bench.prepare(config)
    compiled, _ = bench.compile_chunks(sim, inputs, sharding)
    carry = sim.run_chunks(compiled, *sim.initial(*inputs))
    return np.asarray(carry.records)[:n, len(sim.grid) - 1, 0].astype(np.float64)


def assert_same_mean(jax_regret: np.ndarray, numpy_regret: np.ndarray, what: str) -> None:
    # Independent samples (JAX's and NumPy's random numbers): the difference of the two means
    # has standard error sqrt(se_jax^2 + se_numpy^2). Tolerance: 4 of those, exceeded with
    # probability ~6e-5 when both implement the same algorithm. Seeds are fixed, so the test is
    # deterministic. Measured (2-core CPU, jax 0.10.2), JAX vs NumPy mean final regret, the
    # tolerance, and how far (in combined se) a NumPy reference with one constant wrong lands:
    #   UCB1        50.55 vs 50.31, tolerance 1.05; c = 1 instead of 2: 31.7 se
    #   Thompson    21.80 vs 21.82, tolerance 2.46; prior Beta(3, 1): 7.2 se
    #   KL-UCB      22.45 vs 22.05, tolerance 1.90; c = 3 instead of 0: 14.9 se
    #   eps-greedy  20.01 vs 19.78, tolerance 3.37; epsilon 0.2 instead of 0.1: 8.5 se
    #   EXP3        59.74 vs 60.34, tolerance 2.45; gamma halved (0.13): 14.1 se
    #   LinUCB      24.08 vs 24.11, tolerance 0.82; alpha 0.5 instead of 1: 10.3 se
    se = math.hypot(standard_error(jax_regret), standard_error(numpy_regret))
    difference = abs(jax_regret.mean() - numpy_regret.mean())
    assert difference <= 4 * se, (f"{what}: JAX {jax_regret.mean():.3f} vs NumPy "
                                  f"{numpy_regret.mean():.3f}, difference {difference:.3f} > "
                                  f"4 x {se:.3f}")


@pytest.mark.parametrize("name, reference", [
    ("ucb1", references.ucb1),
    ("thompson", references.thompson),
    ("klucb", references.klucb),
    ("epsilon_greedy", lambda means, horizon, seed: references.epsilon_greedy(
        means, horizon, seed, epsilon=0.1)),
    ("exp3", references.exp3),
])
def test_k_armed_reference_matches_the_jax_learner(name, reference):
    # 300 runs x 200 rounds of the bench's learner table on the fixed instance MEANS; the NumPy
    # reference on the same instance, seed 1.
    family = bench.FAMILIES[name]
    env = {"name": "bernoulli", "K": len(MEANS), "means": MEANS}
    theirs = jax_final_regret(family, env, RUNS, HORIZON)
    ours = reference(references.instances(MEANS, RUNS), HORIZON, 1)
    assert_same_mean(theirs, ours, name)


def test_linucb_reference_matches_the_jax_learner():
    # The disjoint linear environment draws theta_a per run (it has no fixed-theta option for the
    # disjoint model), so both sides average over the same law of instances: theta_a and the
    # contexts uniform on the unit sphere, K = 10, d = 16, noise 0.1. 300 runs x 100 rounds.
    family = bench.FAMILIES["linucb"]
    theirs = jax_final_regret(family, family.env, RUNS, 100)
    ours = references.linucb(RUNS, 100, seed=1, arms=10, dim=16, noise=0.1)
    assert_same_mean(theirs, ours, "linucb")


def test_numpy_linucb_learns():
    # LinUCB on 10 disjoint arms, d = 16: regret per round falls as the estimates improve
    # (the first 100 rounds cost more than the next 100), and is far below uniform play.
    early = references.linucb(200, 100, seed=0)
    both = references.linucb(200, 200, seed=0)
    late = both - early
    assert late.mean() < early.mean()
    uniform_gap = 0.6          # E[max_a <theta_a, x> - <theta_A, x>] for a uniform arm, d = 16
    assert both.mean() < 0.5 * uniform_gap * 200


def test_references_take_one_instance_per_run():
    # Runs on an instance whose arms are all equal have zero regret; on a mix of instances the
    # regret of each run is bounded by its own horizon x gap.
    means = np.array([[0.5] * 4, [0.1, 0.9, 0.1, 0.1]])
    for reference in (references.ucb1, references.klucb, references.thompson,
                      references.epsilon_greedy, references.exp3):
        regret = reference(means, 50, 0)
        assert regret.shape == (2,) and regret[0] == 0.0 and 0 < regret[1] <= 50 * 0.8
    assert references.exp3_gamma(10, 200) == pytest.approx(
        math.sqrt(10 * math.log(10) / ((math.e - 1) * 200)))
    assert references.uniform_expected_regret([0.2, 0.4, 0.9], 10) == pytest.approx(4.0)


# ---------------------------------------------------------------------------------------------
# Setup: the widened build equals the config layer's own.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ucb1", "ldb_df", "joulani", "sliding_window_ucb"])
def test_widened_inputs_equal_the_full_build(name):
    from experiments import config as config_lib
    config = bench.family_config(bench.FAMILIES[name], 7, 20)
    _, widened = bench.group_inputs(config)
    group = config_lib.build(config).groups[0]
    full = (group.run_keys, group.instance_keys, group.env_settings, group.hparams)
    assert jax.tree_util.tree_structure(widened) == jax.tree_util.tree_structure(full)
    for a, b in zip(jax.tree_util.tree_leaves(widened), jax.tree_util.tree_leaves(full)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------------------------------------------
# --gpu: the plan, the time budget and the memory check (on the CPU, tiny sizes).
# ---------------------------------------------------------------------------------------------
def test_gpu_plan_puts_required_families_and_small_sizes_first():
    plan = gpu_bench.gpu_plan(["ucb1", "linucb"], ["exp3", "ucb1"], (100, 10))
    assert plan == [("ucb1", 10), ("linucb", 10), ("ucb1", 100), ("linucb", 100),
                    ("exp3", 10), ("exp3", 100)]
    assert gpu_bench.gpu_plan(list(bench.GPU_LEARNERS), [], gpu_bench.GPU_RUNS)[:4] == [
        (name, 10_000) for name in ("ucb1", "thompson", "linucb", "ldb_df")]


def test_estimate_scales_the_previous_size_and_decide_names_the_reason():
    previous = {"runs": 100, "setup_seconds": 0.5, "compile_seconds": 4.0,
                "jax": {"wall_seconds": [2.0, 1.0], "memory_bytes": 2.0 ** 30}}
    seconds, memory = gpu_bench.estimate(1000, previous)
    assert seconds == pytest.approx(0.5 * 10 + 1.5 * 4.0 + 2 * 1.0 * 10)
    assert memory == pytest.approx(10 * 2.0 ** 30)
    assert gpu_bench.estimate(1000, None) == (gpu_bench.FIRST_COMPILE_GUESS_SECONDS, None)
    now = [50.0]
    budget = gpu_bench.Budget(100.0, clock=lambda: now[0], start=0.0)
    assert gpu_bench.decide(seconds, memory, budget, free_bytes=20 * 2.0 ** 30) is None
    assert gpu_bench.decide(seconds, memory, budget, free_bytes=None) is None
    assert gpu_bench.decide(seconds, None, budget, free_bytes=1.0) is None
    assert gpu_bench.decide(seconds, memory, budget, 10 * 2.0 ** 30).startswith("memory: estimated")
    now[0] = 80.0
    reason = gpu_bench.decide(seconds, memory, budget, free_bytes=None)
    assert reason == "time budget: estimated 31 s, 20 s of 100 s left"


def test_measure_stops_repeating_when_the_budget_is_spent():
    logs = []
    spent = gpu_bench.Budget(1.0, clock=lambda: 5.0, start=0.0)
    row = bench.measure(bench.FAMILIES["ucb1"], 16, 10, repeats=3, numpy=False,
                        log=logs.append, budget=spent)
    assert row["repeats"] == 1 and len(row["jax"]["wall_seconds"]) == 1
    assert any("1 of 3 repeats (time budget)" in line for line in logs)


def test_gpu_mode_keeps_to_its_time_budget(tmp_path):
    # A controlled clock: every measurement "takes" 60 s of a 100 s budget. The first size runs
    # (nothing measured yet: estimated FIRST_COMPILE_GUESS_SECONDS = 20 s), the second too
    # (60 s + its estimate from the first, a few seconds, fit), the third does not (120 s).
    now = [0.0]
    logs = []

    def log(line):
        logs.append(line)
        if " runs x " in line:
            now[0] += 60.0

    report = gpu_bench.run_gpu_bench(runs=(16, 32, 64), learners=["ucb1"], extra=[], repeats=2,
                                 horizon=10, out=tmp_path,
                                 budget=gpu_bench.Budget(100.0, clock=lambda: now[0]),
                                 free_memory=lambda: 2.0 ** 40, log=log)
    assert [(r["runs"], r["repeats"]) for r in report["results"]] == [(16, 2), (32, 2)]
    assert len(report["skipped"]) == 1
    assert report["skipped"][0].startswith("UCB1, 64 runs: skipped (time budget: estimated")
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["settings"]["budget_seconds"] == 100.0 and len(saved["results"]) == 2
    assert saved["environment"]["device"] and saved["environment"]["versions"]["jax"]
    text = (tmp_path / "gpu.md").read_text()
    assert f"**{saved['environment']['device_count']} x {saved['environment']['device']}**" in text
    assert "| K-armed | UCB1 | 16 | 10 |" in text and "| K-armed | UCB1 | 32 | 10 |" in text
    assert "- UCB1, 64 runs: skipped (time budget" in text


def test_gpu_mode_skips_what_does_not_fit_in_memory(tmp_path):
    # 1 byte free: the first size is compiled (its memory is unknown until then), found too
    # large before anything is allocated, and the larger sizes are not tried. A budget of 0 s
    # skips a family without compiling it.
    report = gpu_bench.run_gpu_bench(runs=(16, 32), learners=["ucb1"], extra=[], repeats=1,
                                 horizon=10, out=tmp_path, budget=gpu_bench.Budget(30.0),
                                 free_memory=lambda: 1.0, log=lambda _: None)
    assert report["results"] == []
    assert report["skipped"][0].startswith("UCB1, 16 runs: skipped (memory: ")
    assert "the compiled program needs" in report["skipped"][0]
    assert report["skipped"][1] == "UCB1, 32 runs: skipped (a smaller size did not fit)"
    report = gpu_bench.run_gpu_bench(runs=(16,), learners=["exp3"], extra=[], horizon=10,
                                 out=tmp_path, budget=gpu_bench.Budget(0.0), log=lambda _: None)
    assert report["results"] == [] and "time budget" in report["skipped"][0]


def test_gpu_command_line_quick(tmp_path, capsys):
    from experiments.cli import main
    # The budget counts from the start of the process (here: the whole test session's).
    assert main(["bench", "--gpu", "--quick", "--learners", "ucb1", "--runs", "16",
                 "--budget", "1e9", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert [(r["family"], r["runs"], r["horizon"]) for r in report["results"]] == [
        ("ucb1", 16, bench.FAMILIES["ucb1"].quick_horizon)]
    assert report["settings"]["extra"] == [] and report["settings"]["budget_seconds"] == 1e9
    assert (tmp_path / "gpu.md").exists() and not (tmp_path / "results.json").exists()
    assert "written:" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Skips and flags.
# ---------------------------------------------------------------------------------------------
def test_unregistered_family_is_skipped_with_a_message(tmp_path, monkeypatch):
    fake = bench.Family("not_a_learner", "Nothing", bench.BERNOULLI, 10, 10)
    monkeypatch.setitem(bench.FAMILIES, "not_a_learner", fake)
    logs = []
    report = bench.run_bench((8,), ["not_a_learner"], repeats=1, quick=True, out=tmp_path,
                             compile_sizes=(), log=logs.append)
    assert report["results"] == []
    assert report["skipped"] == ["Nothing: learner 'not_a_learner' is not registered"]
    assert any("skipped Nothing" in line for line in logs)
    assert "Skipped: Nothing" in (tmp_path / "results.md").read_text()


def test_every_family_builds():
    # Every family's config is valid (the whole bench would otherwise fail half-way through).
    for family in bench.FAMILIES.values():
        group, inputs = bench.group_inputs(bench.family_config(family, 3,
                                                               family.quick_horizon))
        assert np.asarray(inputs[0]).shape == (3, 2), family.name


def test_bench_flags_are_checked():
    from envs.core import ConfigError
    with pytest.raises(ConfigError, match="--runs '10,x'"):
        bench.parse_sizes("10,x")
    with pytest.raises(ConfigError, match="--runs '1.5'"):
        bench.parse_sizes("1.5")
    with pytest.raises(ConfigError, match="positive"):
        bench.parse_sizes("0")
    assert bench.parse_sizes("1_000,10000") == (1000, 10000)
    assert bench.parse_sizes("1e4,1e6") == (10_000, 1_000_000)
    with pytest.raises(ConfigError, match="--learners: unknown nope"):
        bench.parse_names("ucb1,nope", "--learners")
