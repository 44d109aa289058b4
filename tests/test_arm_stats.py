"""Per-arm vectors stored arm by arm (envs.core.split_arms, bandits.core.ArmStats).

The layout is a speed choice only (docs/design.md, "The round"): every operation must give the
same numbers as on [K] arrays, bit for bit, and an index computed arm by arm must pick the same
arm with the same random word as ``random_argmax`` on the whole index.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits.core import (ArmStats, DiscountedStats, argmax_of_index, random_argmax,
                          untried_first)
from envs import randomness
from envs.core import (UNROLL_ARMS, Feedback, arm_layout, arm_max, join_arms, split_arms,
                       take_arm)
from experiments import config as config_lib
from experiments.runner import (ARMS_BY_COLUMN_MIN_RUNS, arms_by_column, record_grid, simulate,
                                small_state)


def feedback_batch(rng: np.random.Generator, num_arms: int, size: int) -> Feedback:
    return Feedback(action=jnp.asarray(rng.integers(0, num_arms, size), jnp.int32),
                    features=jnp.zeros((size, 1, 0)),
                    reward=jnp.asarray(rng.random(size), jnp.float32),
                    round=jnp.arange(size, dtype=jnp.int32),
                    mask=jnp.asarray(rng.random(size) < 0.7))


def assert_same_stats(by_arm: ArmStats, arrays: ArmStats):
    assert by_arm.by_arm and not arrays.by_arm
    for name in ("counts", "sums", "squares"):
        a, b = getattr(by_arm, name), getattr(arrays, name)
        if b is None:
            assert a is None
        else:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@settings(max_examples=25, deadline=None)
@given(num_arms=st.integers(1, 12), size=st.sampled_from([1, 3, 12]), seed=st.integers(0, 99),
       weighted=st.booleans(), squares=st.booleans())
def test_statistics_by_arm_equal_the_array_ones(num_arms, size, seed, weighted, squares):
    # Adding batches (with or without weights, small and large batches: 12 > 8 takes the
    # product path), discounting, removing one item and resetting arms: same bits both ways.
    rng = np.random.default_rng(seed)
    by_arm = ArmStats.zeros(num_arms, squares=squares)
    arrays = ArmStats.zeros(num_arms, squares=squares, by_arm=False)
    for _ in range(3):
        batch = feedback_batch(rng, num_arms, size)
        weights = jnp.asarray(rng.random(size), jnp.float32) if weighted else None
        by_arm, arrays = by_arm.add(batch, weights), arrays.add(batch, weights)
        assert_same_stats(by_arm, arrays)
    factor = jnp.float32(0.93)
    by_arm, arrays = by_arm.scale(factor), arrays.scale(factor)
    assert_same_stats(by_arm, arrays)
    arm, reward = jnp.int32(rng.integers(num_arms)), jnp.float32(0.25)
    by_arm = by_arm.add_one(arm, reward, jnp.bool_(True), -1.0)
    arrays = arrays.add_one(arm, reward, jnp.bool_(True), -1.0)
    assert_same_stats(by_arm, arrays)
    reset = jnp.asarray(rng.random(num_arms) < 0.5)
    assert_same_stats(by_arm.reset_where(reset), arrays.reset_where(reset))
    for k in range(num_arms):
        np.testing.assert_array_equal(np.asarray(by_arm.arm(k).means),
                                      np.asarray(arrays.means)[k])


def test_statistics_add_exactly_what_was_observed():
    # Independent of the layout: counts and sums are the plain tallies of the valid items.
    batch = Feedback(action=jnp.asarray([2, 0, 2, 1], jnp.int32), features=jnp.zeros((4, 1, 0)),
                     reward=jnp.asarray([1.0, 0.5, 0.25, 9.0], jnp.float32),
                     round=jnp.zeros(4, jnp.int32),
                     mask=jnp.asarray([True, True, True, False]))
    stats = ArmStats.zeros(3, squares=True).add(batch)
    np.testing.assert_array_equal(np.asarray(stats.counts), [1.0, 0.0, 2.0])
    np.testing.assert_array_equal(np.asarray(stats.sums), [0.5, 0.0, 1.25])
    np.testing.assert_array_equal(np.asarray(stats.squares), [0.25, 0.0, 1.0625])


def test_many_arms_keep_arrays():
    # Above UNROLL_ARMS the statistics stay one [K] array (the reductions are jnp ones there).
    stats = ArmStats.zeros(UNROLL_ARMS + 1)
    assert not stats.by_arm and stats.counts.shape == (UNROLL_ARMS + 1,)
    assert ArmStats.zeros(UNROLL_ARMS).by_arm


def test_discounted_statistics_keep_the_layout_asked_for():
    assert DiscountedStats.zeros(4).stats.by_arm
    assert not DiscountedStats.zeros(4, by_arm=False).stats.by_arm


@pytest.mark.parametrize("num_arms", [1, 2, 7, UNROLL_ARMS, UNROLL_ARMS + 3])
def test_split_and_join_round_trip_and_shared_reductions(num_arms):
    values = jnp.asarray(np.random.default_rng(num_arms).normal(size=num_arms), jnp.float32)
    stored = split_arms(values)
    assert isinstance(stored, tuple) == (num_arms <= UNROLL_ARMS)
    np.testing.assert_array_equal(np.asarray(join_arms(stored)), np.asarray(values))
    assert float(arm_max(stored)) == float(jnp.max(values))
    for arm in range(num_arms):
        assert float(take_arm(stored, jnp.int32(arm))) == float(values[arm])


def test_join_of_a_batch_puts_the_arms_last():
    # MABParams.means of a batch of instances is [instances, K], as before the change.
    stored = jax.vmap(split_arms)(jnp.arange(12.0).reshape(4, 3))
    np.testing.assert_array_equal(np.asarray(join_arms(stored)), np.arange(12.0).reshape(4, 3))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), num_arms=st.integers(1, 9), ties=st.booleans())
def test_index_arm_by_arm_picks_the_same_arm(seed, num_arms, ties):
    # Same key, same index: the same arm, ties (untried arms at +inf, equal means) included.
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 3, num_arms).astype(np.float32)
    sums = np.minimum(rng.integers(0, 2, num_arms), counts).astype(np.float32)
    if ties:
        sums = counts * 0.5
    stats = ArmStats.of(jnp.asarray(counts), jnp.asarray(sums))
    key = randomness.consumer_key(jnp.asarray([seed, 7], jnp.uint32), jnp.int32(3), 1)

    def index(s):
        return untried_first(s.means + jnp.sqrt(1.0 / jnp.maximum(s.counts, 1.0)), s.counts)

    expected = random_argmax(key, index(stats))
    assert int(argmax_of_index(key, stats, index)) == int(expected)


def test_small_state_rule():
    # The step's answer is materialised apart from the new state only for states of at most
    # 8 numbers per run (a round counter: yes; a delay queue: no).
    assert small_state({"t": jnp.zeros((100,), jnp.int32)})
    assert small_state((jnp.zeros((5, 4)), jnp.zeros((5, 4))))
    assert not small_state({"queue": jnp.zeros((100, 64)), "t": jnp.zeros((100,))})


def test_arm_layout_context_keeps_arrays():
    with arm_layout(False):
        assert not isinstance(split_arms(jnp.zeros(5)), tuple)
        assert not ArmStats.zeros(5).by_arm
        with arm_layout(True):
            assert ArmStats.zeros(5).by_arm
        assert not ArmStats.zeros(5).by_arm
    assert ArmStats.zeros(5).by_arm


def test_layout_follows_the_runs_per_device():
    assert not arms_by_column(ARMS_BY_COLUMN_MIN_RUNS - 1)
    assert arms_by_column(ARMS_BY_COLUMN_MIN_RUNS)
    assert not arms_by_column(ARMS_BY_COLUMN_MIN_RUNS, devices=2)


@pytest.mark.parametrize("env", [{"name": "bernoulli", "K": 6},
                                 {"name": "piecewise", "K": 4, "hazard": 0.05}])
@pytest.mark.parametrize("learner", ["ucb1", "cusum_ucb", "thompson"])
def test_small_and_large_batches_give_the_same_runs(env, learner):
    # Below ARMS_BY_COLUMN_MIN_RUNS runs the state stays in [K] arrays and the step's answer is
    # not materialised; above, both change. The first runs of a large batch equal the same runs
    # done in a small batch, bit for bit.
    runs, horizon = ARMS_BY_COLUMN_MIN_RUNS + 8, 40
    assert arms_by_column(runs, len(jax.devices())) and not arms_by_column(8, len(jax.devices()))
    config = {"run": {"horizon": horizon, "seeds": 1, "instances": runs, "record": 6},
              "env": env, "learner": [{"name": learner}]}
    group = config_lib.build(config).groups[0]

    def run(count):
        return simulate(group.env, group.learner, run_keys=group.run_keys[:count],
                        instance_keys=group.instance_keys[:count],
                        env_settings={k: v[:count] for k, v in group.env_settings.items()},
                        hparams={k: v[:count] for k, v in group.hparams.items()},
                        horizon=horizon, record=record_grid(horizon, 6)).columns

    small, large = run(8), run(runs)
    assert small.keys() == large.keys()
    for name in small:
        np.testing.assert_array_equal(small[name], large[name][:8])
