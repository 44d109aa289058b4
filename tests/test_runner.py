"""The runner (experiments/runner.py): record grid, chunking, batching, padding, keys.

docs/design.md: a run's numbers do not depend on batch size, chunk size or device count, metrics are
recorded on a log-spaced grid that ends at the horizon, and padded runs never reach the results.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.core import ConfigError
from experiments import config as config_lib
from experiments.runner import _pad_runs, default_chunk, record_grid, simulate
from tests.reference import run_alone


# ---------------------------------------------------------------------------------------------
# The record grid.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("horizon, points", [(1, 1), (1, 50), (2, 1), (7, 3), (10, 50),
                                             (100, 5), (1000, 30), (5000, 40), (10**6, 50)])
def test_record_grid_is_sorted_unique_and_ends_at_the_horizon(horizon, points):
    grid = record_grid(horizon, points)
    assert grid.dtype == np.int32
    assert grid[-1] == horizon
    assert grid[0] >= 1
    assert np.all(np.diff(grid) > 0)                 # strictly increasing: unique and sorted
    assert len(grid) <= min(points, horizon) + 1     # "about points", plus the horizon


def test_record_grid_is_log_spaced():
    grid = record_grid(10**6, 61).astype(np.float64)     # 10 points per decade
    # Where rounding to integers no longer merges points, consecutive ratios are all
    # 10^(6/60) = 1.259 (up to rounding of the smaller value).
    large = grid[grid >= 100]
    ratios = large[1:] / large[:-1]
    np.testing.assert_allclose(ratios, 10 ** (6 / 60), rtol=0.01)
    # Every decade above the first holds the same number of points.
    per_decade = [np.sum((grid >= 10**k) & (grid < 10**(k + 1))) for k in range(1, 6)]
    assert max(per_decade) - min(per_decade) <= 1
    # The first points are the first rounds: nothing is lost at the start.
    np.testing.assert_array_equal(record_grid(10**6, 61)[:3], [1, 2, 3])


@pytest.mark.parametrize("horizon", [1, 50, 100, 1000, 5000, 9973, 10**5, 10**6])
def test_default_chunk_is_a_valid_chunk(horizon):
    chunk = default_chunk(horizon)
    assert 1 <= chunk <= horizon
    assert chunk >= min(100, horizon)
    if horizon in (1000, 5000, 10**5, 10**6):                # have divisors near 1% of T
        assert horizon % chunk == 0


# ---------------------------------------------------------------------------------------------
# One learner (EXP3: it samples its arm from a distribution every round, so any key mix-up
# shows, and learns through the default masked fold of update_one) on a 4-armed Bernoulli
# bandit with uniformly drawn means.
# ---------------------------------------------------------------------------------------------
HORIZON = 60
RUNS = 5            # 5 runs: batches of 2 need one padded run
RECORD = 12
GRID = record_grid(HORIZON, RECORD)


@pytest.fixture(scope="module")
def group():
    config = {"run": {"horizon": HORIZON, "seeds": 5, "instances": 1, "record": RECORD},
              "env": {"name": "bernoulli", "K": 4, "generator": "uniform"},
              "learner": [{"name": "exp3", "gamma": 0.3}]}
    groups = config_lib.build(config).groups
    assert len(groups) == 1 and len(groups[0].runs) == RUNS
    return groups[0]


def run(group, **kwargs):
    return simulate(group.env, group.learner, run_keys=group.run_keys,
                    instance_keys=group.instance_keys, env_settings=group.env_settings,
                    hparams=group.hparams, horizon=HORIZON, record=GRID, **kwargs)


@pytest.fixture(scope="module")
def reference_result(group):
    """Every run in one batch and one chunk."""
    return run(group, chunk=HORIZON)


def test_result_shape_and_grid(reference_result):
    np.testing.assert_array_equal(reference_result.t, GRID)
    assert reference_result.columns["regret"].shape == (RUNS, len(GRID))
    assert reference_result.agent_steps == RUNS * HORIZON
    regret = reference_result.columns["regret"]
    assert np.all(regret >= 0) and np.all(np.diff(regret, axis=1) >= 0)


def test_batch_and_chunk_do_not_change_results_and_padding_is_dropped(group, reference_result):
    # batch = 2 on 5 runs: three calls, the last one padded with a copy of its first run;
    # chunk = 7 does not divide 60 (chunks of 7 and a last one of 4 rounds).
    steps = []
    result = run(group, chunk=7, batch=2, progress=steps.append)
    assert result.columns["regret"].shape == (RUNS, len(GRID))      # padded run dropped
    np.testing.assert_array_equal(result.columns["regret"], reference_result.columns["regret"])
    assert sum(steps) == RUNS * HORIZON                               # padding not counted


def test_memory_budget_splits_runs_into_batches_with_the_same_results(group, reference_result,
                                                                    monkeypatch):
    # A budget of 3 runs' state (x 3 for temporaries): the runner splits the 5 runs into
    # batches on its own, says so, and computes the same numbers.
    from experiments.runner import Simulation
    per_run = Simulation(group.env, group.learner, HORIZON, GRID, HORIZON).bytes_per_run(
        group.run_keys, group.instance_keys, group.env_settings, group.hparams)
    monkeypatch.setenv("BANDITJAX_MEMORY_BUDGET", str(int(per_run * 3 * 3.5)))
    lines = []
    result = run(group, chunk=HORIZON, on_plan=lines.append)
    assert len(lines) == 1 and lines[0].startswith("2 batches of 3 runs"), lines
    np.testing.assert_array_equal(result.columns["regret"], reference_result.columns["regret"])
    # Less than one run's state x 3: refused before anything is compiled, in one line.
    monkeypatch.setenv("BANDITJAX_MEMORY_BUDGET", str(per_run))
    with pytest.raises(ConfigError, match=r"one run needs .* but the budget is"):
        run(group, chunk=HORIZON)


def test_learners_see_the_round_unbatched_in_act_and_update(group):
    # Learners branch on the round (a refit every n rounds: lax.cond on obs.t). Under vmap such a
    # cond stays a real conditional only while obs.t is not batched, so the runner must hand the
    # same scalar t to every run, in act and in update (checked at trace time).
    seen = []

    def batched(x):
        return "Batch" in type(x).__name__          # jax's BatchTracer (a vmapped value)

    class Recording(type(group.learner)):
        def act(self, key, state, obs, hparams):
            seen.append(("act", batched(obs.t)))
            return super().act(key, state, obs, hparams)

        def update(self, state, obs, action, feedback, hparams):
            seen.append(("update", batched(obs.t)))
            return super().update(state, obs, action, feedback, hparams)

    learner = Recording(group.learner.spec, HORIZON)
    simulate(group.env, learner, run_keys=group.run_keys, instance_keys=group.instance_keys,
             env_settings=group.env_settings, hparams=group.hparams, horizon=HORIZON,
             record=GRID, chunk=HORIZON)
    assert {stage for stage, _ in seen} == {"act", "update"}
    assert not any(flag for _, flag in seen), seen


def test_vmapped_runs_equal_unbatched_scans(group, reference_result):
    # Each run on its own, with no vmap at all: a plain lax.scan over the rounds of the
    # runner's own per-run functions (tests/reference.py). Recording every round here also
    # checks that the runner stores at grid point t the regret summed over rounds 1..t.
    one_run = run_alone(group.env, group.learner, HORIZON)
    for i in range(RUNS):
        pick = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[i], tree)  # noqa
        cumulative = np.asarray(one_run(pick(group.run_keys), pick(group.instance_keys),
                                        pick(group.env_settings), pick(group.hparams)))
        np.testing.assert_array_equal(cumulative[GRID - 1],
                                      reference_result.columns["regret"][i])


def test_runs_differ_and_instances_are_shared_by_seeds(group, reference_result):
    # Seeds 0..4 on instance 0: the instance keys are equal, the run keys all differ.
    assert len({tuple(k) for k in group.instance_keys}) == 1
    assert len({tuple(k) for k in group.run_keys}) == RUNS
    assert len({tuple(r) for r in reference_result.columns["regret"]}) == RUNS


def test_pad_runs_repeats_the_first_run():
    tree = {"a": np.arange(3), "b": np.arange(6).reshape(3, 2)}
    padded = _pad_runs(tree, 5)
    np.testing.assert_array_equal(padded["a"], [0, 1, 2, 0, 0])
    np.testing.assert_array_equal(padded["b"][3:], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(_pad_runs(tree, 3)["a"], tree["a"])     # nothing to pad


def test_run_keys_depend_only_on_seed_and_instance():
    seeds, instances = np.array([0, 1, 2, 0]), np.array([0, 0, 1, 1])
    run_keys, instance_keys = config_lib.derive_keys(7, seeds, instances)
    again, _ = config_lib.derive_keys(7, seeds[::-1].copy(), instances[::-1].copy())
    np.testing.assert_array_equal(run_keys, again[::-1])       # order does not matter
    assert len({tuple(k) for k in run_keys}) == 4
    np.testing.assert_array_equal(instance_keys[0], instance_keys[1])
    assert not np.array_equal(instance_keys[0], instance_keys[2])
    other_master, _ = config_lib.derive_keys(8, seeds, instances)
    assert not np.array_equal(run_keys, other_master)


@pytest.mark.slow
def test_results_do_not_depend_on_device_count(tmp_path):
    # Two host "devices" need a fresh process (XLA reads the flag at start-up). The run axis is
    # sharded over 1 and over 2 devices; the numbers must be identical.
    script = textwrap.dedent(f"""
        import json, sys
        import jax, numpy as np
        from envs.core import ConfigError
        from experiments import config as config_lib
        from experiments.runner import record_grid, simulate
        config = {{"run": {{"horizon": 40, "seeds": 5, "record": 8}},
                  "env": {{"name": "bernoulli", "K": 3, "generator": "uniform"}},
                  "learner": [{{"name": "thompson"}}]}}
        g = config_lib.build(config).groups[0]
        out = {{}}
        for n in (1, 2):
            r = simulate(g.env, g.learner, run_keys=g.run_keys, instance_keys=g.instance_keys,
                         env_settings=g.env_settings, hparams=g.hparams, horizon=40,
                         record=record_grid(40, 8), devices=jax.devices()[:n])
            out[n] = r.columns["regret"].tolist()
        print(json.dumps({{"devices": len(jax.devices()), "out": out}}))
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    np.testing.assert_array_equal(result["out"]["1"], result["out"]["2"])
    assert math.isfinite(np.sum(result["out"]["1"]))


# ---------------------------------------------------------------------------------------------
# The protocol boundary: the runner checks, while tracing, what crosses it (chex asserts).
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, message", [
    (lambda action: jnp.stack([action, action]), "wrong action shape"),
    (lambda action: action.astype(jnp.float32), "non-integer action"),
])
def test_a_learner_breaking_the_action_protocol_is_named_while_tracing(group, bad, message):
    learner_cls = type(group.learner)

    class Broken(learner_cls):
        def act(self, key, state, obs, hparams):
            return bad(super().act(key, state, obs, hparams))

    broken = Broken(group.env.spec, HORIZON)
    with pytest.raises(AssertionError, match=f"learner 'exp3': act returned a {message}"):
        simulate(group.env, broken, run_keys=group.run_keys, instance_keys=group.instance_keys,
                 env_settings=group.env_settings, hparams=group.hparams, horizon=HORIZON,
                 record=GRID)


# ---------------------------------------------------------------------------------------------
# Compiler options: the runner's own, with the same numbers as without them.
# ---------------------------------------------------------------------------------------------
def test_compiler_options_are_the_runners_own_and_change_no_number():
    from experiments.runner import CPU_COMPILER_OPTIONS, Simulation, compiler_options
    assert compiler_options("gpu") is None and compiler_options("tpu") is None
    config = {"run": {"horizon": 60, "seeds": 3, "record": 5},
              "env": {"name": "linear", "K": 4, "d": 3, "model": "disjoint"},
              "learner": [{"name": "linucb"}]}
    group = config_lib.build(config).groups[0]
    inputs = (group.run_keys, group.instance_keys, group.env_settings, group.hparams)
    records = {}
    for name, options in [("none", {}), ("runner", None)]:
        sim = Simulation(group.env, group.learner, 60, record_grid(60, 5), 60, options=options)
        assert sim.options == (None if options == {} else compiler_options(jax.default_backend()))
        carry, consts = sim.initial(*inputs)
        records[name] = np.asarray(sim.run_chunks(sim.compile(carry, consts)[0], carry,
                                                   consts).records)
    np.testing.assert_array_equal(records["none"], records["runner"])
    if jax.default_backend() == "cpu":
        assert compiler_options("cpu") == CPU_COMPILER_OPTIONS
