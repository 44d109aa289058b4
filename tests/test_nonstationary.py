"""Non-stationary K-armed bandits: the environments of envs/changing.py and the forgetting
learners of bandits/nonstationary.py.

- D-UCB and SW-UCB against the independent NumPy references of experiments/references.py
  (Garivier and Moulines 2011, written from the paper: eager discounting, the window recounted
  from the full history) on one fixed piecewise-stationary instance.
- With no change points the dynamic and static regrets coincide; D-UCB with gamma = 1 and SW-UCB
  with a window >= T are UCB1 (same index, same tie-breaking key: the same actions).
- Environment invariants over random instances (hypothesis): per-round dynamic regret >= 0,
  static regret <= dynamic regret at every round, ``changes`` counts the change points before t,
  Bernoulli means in [0, 1] and 0/1 rewards.
Everything goes through public entry points (config.build, runner.simulate, the environment's
own functions).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import randomness
from envs.core import ConfigError
from experiments import config as config_lib
from experiments import references
from experiments.runner import record_grid, simulate

# A Besson-style instance: three arms, two abrupt changes that move the best arm each time.
SEGMENT_MEANS = [[0.2, 0.5, 0.8], [0.8, 0.5, 0.2], [0.5, 0.8, 0.2]]
CHANGE_POINTS = [300, 600]
HORIZON = 900


def build(learners: list[dict], env: dict | None = None, horizon: int = HORIZON,
          seeds: int = 100) -> list:
    env = env or {"name": "piecewise", "K": 3, "means": SEGMENT_MEANS,
                  "change_points": CHANGE_POINTS}
    config = {"run": {"horizon": horizon, "seeds": seeds, "record": 8}, "env": env,
              "learner": learners}
    return config_lib.build(config).groups


def run(group, horizon: int = HORIZON):
    return simulate(group.env, group.learner, run_keys=group.run_keys,
                    instance_keys=group.instance_keys, env_settings=group.env_settings,
                    hparams=group.hparams, horizon=horizon, record=record_grid(horizon, 8))


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


# ---------------------------------------------------------------------------------------------
# Against the NumPy references.
# ---------------------------------------------------------------------------------------------
REFERENCE_CASES = [
    ("discounted_ucb", {"gamma": 0.99}, references.discounted_ucb, {"gamma": 0.99}),
    ("sliding_window_ucb", {"window": 150}, references.sliding_window_ucb, {"window": 150}),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, hparams, reference, reference_hparams", REFERENCE_CASES,
                         ids=[case[0] for case in REFERENCE_CASES])
def test_matches_numpy_reference(name, hparams, reference, reference_hparams):
    # Same algorithm, independent random streams: the two mean final dynamic regrets differ by
    # sampling error only. 4 combined standard errors (a two-sided normal test at level 6e-5, so
    # fixed seeds make a false alarm negligible). Measured (100 runs each): D-UCB JAX 126.6 +- 0.7
    # vs NumPy 126.1 +- 0.7, SW-UCB JAX 56.0 +- 0.8 vs NumPy 56.7 +- 0.9: 4 combined standard
    # errors are 3-6% of the mean, so a 40% change in either fails (checked by the second assert).
    result = run(build([{"name": name, **hparams}])[0])
    jax_mean, jax_se = mean_and_se(result.columns["regret"][:, -1])
    round_means = references.piecewise_means(SEGMENT_MEANS, CHANGE_POINTS, HORIZON)
    numpy_mean, numpy_se = mean_and_se(reference(round_means, 100, 7, **reference_hparams))
    print(f"{name}: JAX {jax_mean:.2f} +- {jax_se:.2f}, NumPy {numpy_mean:.2f} +- {numpy_se:.2f}")
    assert abs(jax_mean - numpy_mean) <= 4 * np.hypot(jax_se, numpy_se), (jax_mean, numpy_mean)
    assert jax_se < 0.1 * jax_mean     # the test has power: the standard error is small


# ---------------------------------------------------------------------------------------------
# Degenerate cases: stationary problems, no forgetting.
# ---------------------------------------------------------------------------------------------
STATIONARY = {"name": "piecewise", "K": 3, "means": [[0.3, 0.5, 0.6]]}


def test_stationary_case_static_equals_dynamic_and_no_forgetting_is_ucb1():
    # One build for three learners on a problem without change points:
    # - UCB1's static regret (best fixed arm in hindsight = the best arm) equals its dynamic
    #   regret exactly, and no change is counted;
    # - D-UCB with gamma = 1: 2 B sqrt(xi ln t / N) with B = 1, xi = 1/2 is sqrt(2 ln t / N),
    #   UCB1's c = 2; SW-UCB with tau >= T and xi = 2: B sqrt(xi ln min(t, tau) / N) is UCB1's
    #   index. Same index (up to float rounding), same tie-breaking words: the same actions, so
    #   the same regret trajectories (1e-4: float32 sums of the same terms).
    groups = build([{"name": "ucb1", "c": 2.0},
                    {"name": "discounted_ucb", "gamma": 1.0, "xi": 0.5},
                    {"name": "sliding_window_ucb", "window": 10_000, "xi": 2.0}],
                   env=STATIONARY, horizon=200, seeds=6)
    ucb1, discounted, window = (run(g, 200).columns for g in groups)
    np.testing.assert_array_equal(ucb1["static_regret"], ucb1["regret"])
    np.testing.assert_array_equal(ucb1["changes"], 0.0)
    assert ucb1["regret"][:, -1].min() > 0
    np.testing.assert_allclose(discounted["regret"], ucb1["regret"], atol=1e-4)
    np.testing.assert_allclose(window["regret"], ucb1["regret"], atol=1e-4)


def test_window_beyond_the_horizon_is_recorded_as_the_horizon():
    group = build([{"name": "sliding_window_ucb", "window": 10_000}], horizon=50, seeds=1)[0]
    assert group.runs["hp.window"].iloc[0] == 50
    assert group.learner.capacity == 50


def test_capacity_below_the_window_is_refused():
    with pytest.raises(ConfigError, match="capacity = 10: below window = 20"):
        build([{"name": "sliding_window_ucb", "window": 20, "capacity": 10}], seeds=1)


def test_defaults_follow_the_theorems_and_the_environments_changes():
    # Upsilon_T = 2 (the two given change points), T = 900, K = 3.
    names = ["discounted_ucb", "sliding_window_ucb", "exp3s", "rexp3"]
    groups = build([{"name": n} for n in names], seeds=1)
    hp = {g.learner.name: g.runs.iloc[0] for g in groups}
    assert hp["discounted_ucb"]["hp.changes"] == 2
    assert hp["discounted_ucb"]["hp.gamma"] == pytest.approx(1 - np.sqrt(2 / 900) / 4)
    assert hp["sliding_window_ucb"]["hp.window"] == int(np.ceil(2 * np.sqrt(900 * np.log(900)
                                                                            / 2)))
    assert hp["exp3s"]["hp.alpha"] == pytest.approx(1 / 900)
    assert hp["exp3s"]["hp.gamma"] == pytest.approx(
        np.sqrt(3 * (2 * np.log(3 * 900) + np.e) / ((np.e - 1) * 900)))
    batch = int(np.ceil((3 * np.log(3)) ** (1 / 3) * (900 / 2) ** (2 / 3)))
    assert hp["rexp3"]["hp.batch"] == batch
    assert hp["rexp3"]["hp.gamma"] == pytest.approx(np.sqrt(3 * np.log(3) / ((np.e - 1) * batch)))


# ---------------------------------------------------------------------------------------------
# Environment invariants.
# ---------------------------------------------------------------------------------------------
ROUNDS = 64
_ROLLOUTS: dict = {}


def rollout(env_table: dict):
    """A jitted f(instance key, run key, dynamic settings, actions) -> (per-round regret,
    per-round metrics, rewards, round means) of ``env_table``'s environment, built once per
    table shape (dynamic settings vary without a recompile)."""
    key = repr(sorted((k, v if not isinstance(v, list) else len(v)) for k, v in env_table.items()))
    if key not in _ROLLOUTS:
        group = build([{"name": "uniform"}], env=env_table, horizon=ROUNDS, seeds=1)[0]
        env = group.env

        def one(instance_key, run_key, env_settings, actions):
            params = env.sample_params(instance_key, env_settings)
            state = env.reset(run_key, params)

            def body(state, inputs):
                t, action = inputs
                means = env.round_means(state, params)
                step_key = randomness.consumer_key(run_key, t, randomness.STEP)
                state, feedback, info = env.step(step_key, state, action, params)
                return state, (info.regret, info.metrics, feedback.reward[0], means)

            rounds = jnp.arange(ROUNDS, dtype=jnp.int32)
            return jax.lax.scan(body, state, (rounds, actions))[1]

        _ROLLOUTS[key] = (env, jax.jit(one), group)
    return _ROLLOUTS[key]


def check_invariants(env, outputs, change_points=None):
    regret, metrics, rewards, means = (np.asarray(x) if not isinstance(x, dict) else
                                       {k: np.asarray(v) for k, v in x.items()}
                                       for x in outputs)
    assert np.all(regret >= -1e-7)                                   # dynamic regret grows
    sums = {"regret": np.cumsum(regret)[None]} | {
        k: np.cumsum(v)[None] for k, v in metrics.items()}
    t = np.arange(1, ROUNDS + 1, dtype=np.float64)
    columns = env.metric_columns(sums, t)
    assert np.all(np.diff(columns["regret"][0]) >= -1e-6)
    assert np.all(columns["static_regret"][0] <= columns["regret"][0] + 1e-4)
    if env.reward == "bernoulli":
        assert np.all((means >= 0) & (means <= 1))
        assert set(np.unique(rewards)) <= {0.0, 1.0}
    if change_points is not None:
        expected = [sum(p < s for p in change_points) for s in t]
        np.testing.assert_array_equal(columns["changes"][0], expected)
        # The means are constant between change points and change only at them (a redraw may
        # repeat a value, so only the first direction is checked).
        moved = np.any(np.diff(means, axis=0) != 0, axis=1)
        assert set(np.flatnonzero(moved) + 1) <= set(change_points)


def _keys(seed: int):
    key = jax.random.PRNGKey(seed)
    return jax.random.split(key, 3)


@settings(max_examples=12, deadline=None)
@given(points=st.lists(st.integers(1, ROUNDS + 10), min_size=3, max_size=3, unique=True),
       means=st.lists(st.lists(st.floats(0.0, 1.0, width=32, allow_subnormal=False), min_size=3, max_size=3),
                      min_size=4, max_size=4),
       seed=st.integers(0, 2 ** 16))
def test_piecewise_given_means_invariants(points, means, seed):
    points = sorted(points)
    table = {"name": "piecewise", "K": 3, "means": means, "change_points": points}
    instance_key, run_key, action_key = _keys(seed)
    actions = jax.random.randint(action_key, (ROUNDS,), 0, 3)
    env, one, group = rollout(table)
    settings_ = {k: jnp.asarray(v[0]) for k, v in group.env_settings.items()}
    settings_.update(means=jnp.asarray(means, jnp.float32),
                     change_points=jnp.asarray(points, jnp.float32))
    outputs = one(instance_key, run_key, settings_, actions)
    check_invariants(env, outputs, change_points=points)
    # Round means are the given rows.
    rows = np.searchsorted(points, np.arange(ROUNDS), side="right")
    np.testing.assert_allclose(np.asarray(outputs[3]), np.asarray(means, np.float32)[rows])


@settings(max_examples=8, deadline=None)
@given(hazard=st.floats(0.0, 0.3), per_arm=st.booleans(), low=st.floats(0.0, 0.5),
       seed=st.integers(0, 2 ** 16))
def test_piecewise_drawn_invariants(hazard, per_arm, low, seed):
    table = {"name": "piecewise", "K": 3, "hazard": 0.1, "per_arm": per_arm,
             "max_changes": 12}
    env, one, group = rollout(table)
    instance_key, run_key, action_key = _keys(seed)
    actions = jax.random.randint(action_key, (ROUNDS,), 0, 3)
    settings_ = {k: jnp.asarray(v[0]) for k, v in group.env_settings.items()}
    settings_.update(hazard=jnp.float32(hazard), low=jnp.float32(low))
    outputs = one(instance_key, run_key, settings_, actions)
    check_invariants(env, outputs)
    means = np.asarray(outputs[3])
    assert np.all(means >= np.float32(low) - 1e-6)
    changes = np.cumsum(np.asarray(outputs[1]["changes"]))
    moved = np.flatnonzero(np.any(np.diff(means, axis=0) != 0, axis=1)) + 1
    # Every move of a mean is at a counted change point.
    assert all(changes[m] > changes[m - 1] for m in moved)
    if hazard == 0.0:
        assert changes[-1] == 0


@settings(max_examples=8, deadline=None)
@given(drift=st.sampled_from(["sinusoidal", "random_walk"]), step=st.floats(0.0, 0.5),
       amplitude=st.floats(0.0, 1.0), seed=st.integers(0, 2 ** 16))
def test_drifting_invariants(drift, step, amplitude, seed):
    env, one, group = rollout({"name": "drifting", "K": 3, "drift": drift})
    instance_key, run_key, action_key = _keys(seed)
    actions = jax.random.randint(action_key, (ROUNDS,), 0, 3)
    settings_ = {k: jnp.asarray(v[0]) for k, v in group.env_settings.items()}
    settings_.update(step=jnp.float32(step), amplitude=jnp.float32(amplitude),
                     period=jnp.float32(20.0))
    check_invariants(env, one(instance_key, run_key, settings_, actions))


# ---------------------------------------------------------------------------------------------
# Config errors.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env, message", [
    ({"means": [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]}, "expected 1 rows"),
    ({"means": [[0.1, 0.2, 0.3], [0.3, 0.2, 1.5]], "change_points": [10]}, "in \\[0, 1\\]"),
    ({"change_points": [10, 5]}, "strictly increasing"),
    ({"change_points": [10], "hazard": 0.1}, "not both"),
    ({"means": [[0.1, 0.2, 0.3]], "per_arm": True}, "per_arm = true"),
    ({"change_points": [10], "max_changes": 3}, "max_changes = 3"),
])
def test_piecewise_config_errors_name_the_field(env, message):
    with pytest.raises(ConfigError, match=message):
        build([{"name": "ucb1"}], env={"name": "piecewise", "K": 3, **env}, seeds=1)


def test_static_regret_is_against_the_arm_best_on_average_over_the_run():
    # Arm 0 is best for 40 rounds, arm 1 for the last 24: over the 64 rounds arm 0 totals
    # 40 x 0.9 + 24 x 0.2 = 40.8 and arm 1 40 x 0.6 + 24 x 0.75 = 42.0, so k* = 1. Always
    # playing arm 2 (mean 0.1): static regret at T = 42.0 - 6.4 = 35.6; dynamic
    # = 40 x 0.8 + 24 x 0.65 = 47.6 (computed by hand, not by the code).
    means = [[0.9, 0.6, 0.1], [0.2, 0.75, 0.1]]
    env, one, group = rollout({"name": "piecewise", "K": 3, "means": means,
                               "change_points": [40]})
    settings_ = {k: jnp.asarray(v[0]) for k, v in group.env_settings.items()}
    settings_.update(means=jnp.asarray(means, jnp.float32),
                     change_points=jnp.asarray([40.0], jnp.float32))
    instance_key, run_key, _ = _keys(0)
    regret, metrics, _, _ = one(instance_key, run_key, settings_, jnp.full((ROUNDS,), 2))
    sums = {"regret": np.cumsum(np.asarray(regret))[None]} | {
        k: np.cumsum(np.asarray(v))[None] for k, v in metrics.items()}
    columns = env.metric_columns(sums, np.arange(1, ROUNDS + 1, dtype=np.float64))
    assert columns["static_regret"][0, -1] == pytest.approx(35.6, abs=1e-4)
    assert columns["regret"][0, -1] == pytest.approx(47.6, abs=1e-4)
    # Before the change the static benchmark (arm 1) is not the round's best: 0.5 a round.
    assert columns["static_regret"][0, 39] == pytest.approx(40 * 0.5, abs=1e-4)
    np.testing.assert_array_equal(columns["changes"][0], np.arange(1, ROUNDS + 1) > 40)


def test_a_list_of_means_matrices_is_a_sweep_and_hazard_sets_the_changes():
    first, second = [[0.1, 0.5, 0.9], [0.9, 0.5, 0.1]], [[0.2, 0.4, 0.6], [0.6, 0.4, 0.2]]
    groups = build([{"name": "discounted_ucb"}],
                   env={"name": "piecewise", "K": 3, "change_points": [100],
                        "means": [first, second]}, seeds=2)
    assert len(groups) == 1 and len(groups[0].runs) == 4           # one compile, two settings
    np.testing.assert_array_equal(groups[0].env_settings["means"][::2],
                                  np.asarray([first, second], np.float32))
    drawn = build([{"name": "sliding_window_ucb"}],
                  env={"name": "piecewise", "K": 3, "hazard": 0.01}, seeds=1)[0]
    assert drawn.runs["hp.changes"].iloc[0] == pytest.approx(0.01 * (HORIZON - 1))
    # ceil(h T + 4 sqrt(h T) + 4) = ceil(9 + 12 + 4) for h T = 9
    assert drawn.env.max_changes == 25


def test_change_point_figure_marks_the_given_change_points(tmp_path):
    from analysis.nonstationary import given_change_points, plot_change_points
    import pandas as pd
    t = np.arange(1, 11, dtype=float)
    frame = pd.concat([pd.DataFrame({"setting": "a", "learner": "ucb1", "env": "piecewise",
                                     "run": run, "t": t, "regret": t * (1 + run),
                                     "env.change_points": "[3, 7]"}) for run in range(3)])
    assert given_change_points(frame) == [3.0, 7.0]
    paths = plot_change_points(frame, tmp_path)
    assert [p.name for p in paths] == ["dynamic_regret.png", "dynamic_regret.pdf"]
    assert all(p.stat().st_size > 5_000 for p in paths)
