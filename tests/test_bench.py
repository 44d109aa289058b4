"""The benchmark suite (experiments/bench.py, ``banditjax bench``) in its quick mode.

The numbers themselves depend on the machine; what is tested is that the command runs, measures
JAX and the NumPy reference side by side, and writes a well-formed results.json and markdown
table with the device and the versions; that the NumPy references are the algorithms they claim
(their regret matches the JAX learners'); and that missing families and SMPyBandits are skipped
with a message.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import bench

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "experiments", "bench", "--quick",
                           "--learners", "ucb1", "--runs", "64,128", "--horizon", "30",
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
    assert [(r["family"], r["runs"], r["horizon"]) for r in report["results"]] == [
        ("ucb1", 64, 30), ("ucb1", 128, 30)]
    for row in report["results"]:
        assert row["jax"]["steps_per_second"] > 0 and row["numpy"]["steps_per_second"] > 0
        assert row["compile_seconds"] > 0
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
    assert "Device: **" in text and "jax 0." in text or "jax " in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| learner | runs"))
    columns = lines[header].count("|")
    rows = lines[header + 2:header + 4]
    assert lines[header + 1].count("|") == columns
    assert all(row.count("|") == columns for row in rows)
    assert rows[0].startswith("| UCB1 | 64 | 30 |") and rows[1].startswith("| UCB1 | 128 | 30 |")
    ratio = rows[0].split("|")[6].strip().strip("*")
    assert float(ratio) > 0
    assert "| values of c | runs | compile s |" in text
    assert "SMPyBandits" in text
    assert str(out / "results.md") in stdout


@pytest.mark.parametrize("reference, learner", [
    (bench.numpy_ucb1, "ucb1"),
    pytest.param(bench.numpy_thompson, "thompson", marks=pytest.mark.slow),
    pytest.param(bench.numpy_klucb, "klucb", marks=pytest.mark.slow)])
def test_numpy_references_match_the_jax_learners(reference, learner):
    # Same problem family (K = 10, means ~ U(0, 1) per run), independent random numbers: the mean
    # final regret over 300 runs of 200 rounds must agree within 4 standard errors of the
    # difference (seeded, so the test is deterministic; a wrong index formula is off by far more).
    runs, horizon = 300, 200
    ours = reference(runs, horizon, seed=1)
    sim, inputs, n = bench._prepare(bench._config(bench.FAMILIES[learner], runs, horizon))
    carry, consts = sim.initial(*inputs)
    compiled, _ = sim.compile(carry, consts)
    carry = sim.run_chunks(compiled, carry, consts)
    theirs = np.asarray(carry.records)[:n, len(sim.grid) - 1, 0]
    error = math.sqrt(ours.var() / runs + theirs.var() / runs)
    assert abs(ours.mean() - theirs.mean()) < 4 * error, (ours.mean(), theirs.mean(), error)


def test_numpy_linucb_learns():
    # LinUCB on 10 disjoint arms, d = 16: regret per round falls as the estimates improve
    # (the first 100 rounds cost more than the next 100), and is far below uniform play.
    early = bench.numpy_linucb(200, 100, seed=0)
    both = bench.numpy_linucb(200, 200, seed=0)
    late = both - early
    assert late.mean() < early.mean()
    uniform_gap = 0.6          # E[max_a <theta_a, x> - <theta_A, x>] for a uniform arm, d = 16
    assert both.mean() < 0.5 * uniform_gap * 200


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


def test_bench_flags_are_checked():
    from envs.core import ConfigError
    with pytest.raises(ConfigError, match="--runs '10,x'"):
        bench._sizes("10,x")
    with pytest.raises(ConfigError, match="positive"):
        bench._sizes("0")
    assert bench._sizes("1_000,10000") == (1000, 10000)
