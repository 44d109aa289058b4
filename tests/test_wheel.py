"""The Wheel bandit (envs/wheel.py; Riquelme, Tucker and Snoek 2018, sec. 5) and the shared
context layouts (envs/contexts.py).

- Means: for fixed contexts (on both sides of the circle, in every quadrant), the expected reward
  of every arm, read from the environment's own step with the noise set to 0, equals the paper's
  definition written out independently below (``paper_means``); the regret is the gap to the
  best arm.
- Degenerate deltas: delta = 0 puts every context outside the circle (a quadrant arm always pays
  mu_3, so always playing the safe arm costs mu_3 - mu_1 per round exactly); delta = 1 leaves no
  context outside (the safe arm is always best: regret exactly 0).
- Contexts are uniform in the disc: P(||X|| < r) = r^2.
- Uniform play's regret matches the closed form at delta = 0.5 (statistical, fixed seeds).
- Layouts: 'replicated' rows equal the context plus bias; 'block' puts it in arm a's block;
  disjoint LinUCB has the same regret in both.
- Settings: out-of-range delta and noise, an unknown layout are one-line ConfigErrors.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import randomness
from envs.core import ConfigError
from envs.wheel import WheelState
from experiments import config as config_lib
from experiments.runner import record_grid, simulate

PAPER = {"safe_mean": 1.2, "small_mean": 1.0, "large_mean": 50.0}


def paper_means(x: float, y: float, delta: float, mu1=1.2, mu2=1.0, mu3=50.0) -> np.ndarray:
    """The paper's definition, arm order of the authors' sampler (quadrants, then the safe arm)."""
    means = np.array([mu2, mu2, mu2, mu2, mu1])
    if np.hypot(x, y) >= delta:
        if x > 0:
            means[0 if y > 0 else 1] = mu3
        else:
            means[2 if y > 0 else 3] = mu3
    return means


def build(env: dict, learner: dict | None = None, horizon: int = 10, seeds: int = 1):
    config = {"run": {"horizon": horizon, "seeds": seeds, "record": 4},
              "env": {"name": "wheel", **env}, "learner": [learner or {"name": "uniform"}]}
    return config_lib.build(config).groups[0]


def run_group(group, horizon: int) -> dict:
    result = simulate(group.env, group.learner, run_keys=group.run_keys,
                      instance_keys=group.instance_keys, env_settings=group.env_settings,
                      hparams=group.hparams, horizon=horizon, record=record_grid(horizon, 4))
    return result.columns


def one_run_params(group):
    settings = jax.tree_util.tree_map(lambda v: jnp.asarray(v)[0], group.env_settings)
    return group.env.sample_params(jnp.asarray(group.instance_keys[0]), settings)


CONTEXTS = [(0.1, 0.2), (-0.3, 0.1), (0.6, -0.7), (-0.8, -0.1), (0.0, 0.9), (0.9, 0.0),
            (-0.4, -0.5), (0.05, -0.05), (-0.7, 0.7), (0.3, 0.3)]


@pytest.mark.parametrize("delta", [0.5, 0.9])
def test_means_and_regret_follow_the_paper_for_fixed_contexts(delta):
    group = build({"delta": delta, "noise": 0.0, "large_noise": 0.0})
    env, params = group.env, one_run_params(group)
    step = jax.jit(lambda state, action: env.step(jnp.asarray(randomness.consumer_key(
        jnp.asarray([1, 2], jnp.uint32), 0, 2)), state, action, params))
    for x, y in CONTEXTS:
        expected = paper_means(x, y, delta)
        state = WheelState(t=jnp.int32(0), context=jnp.asarray([x, y], jnp.float32))
        for arm in range(5):
            _, feedback, info = step(state, jnp.int32(arm))
            # noise 0: the reward is the arm's mean (float32 round-off only).
            assert float(feedback.reward[0]) == pytest.approx(expected[arm], abs=1e-5), (x, y, arm)
            assert float(info.regret) == pytest.approx(expected.max() - expected[arm], abs=1e-4)


def test_delta_zero_every_context_is_outside_and_one_none_is():
    horizon = 200
    safe = {"name": "fixed_arm", "arm": 4}
    # delta = 0: the safe arm loses mu_3 - mu_1 = 48.8 every round (float32 sums).
    outside = run_group(build({"delta": 0.0}, safe, horizon, seeds=2), horizon)["regret"]
    np.testing.assert_allclose(outside[:, -1], (50.0 - 1.2) * horizon, rtol=1e-5)
    # delta = 1: ||X|| = sqrt(u) < 1 always, so the safe arm is always best.
    inside = run_group(build({"delta": 1.0}, safe, horizon, seeds=2), horizon)["regret"]
    np.testing.assert_array_equal(inside, 0.0)
    # delta = 0 with a quadrant arm: it is best in its quadrant (1/4 of the contexts) and loses
    # mu_3 - mu_2 elsewhere; 3 seeds x 400 rounds, binomial standard error of the fraction
    # sqrt(3/16 / 1200) = 0.0125, so 4 standard errors is 0.05 of the 0.75.
    quadrant = run_group(build({"delta": 0.0}, {"name": "fixed_arm", "arm": 0}, 400, seeds=3),
                         400)["regret"]
    fraction = quadrant[:, -1].sum() / (49.0 * 400 * 3)
    assert abs(fraction - 0.75) < 0.05


def test_contexts_are_uniform_in_the_disc():
    group = build({"bias": False})
    env = group.env
    keys = jax.vmap(lambda i: randomness.consumer_key(jnp.asarray([7, 9], jnp.uint32), i, 0))(
        jnp.arange(20000))
    x = np.asarray(jax.jit(jax.vmap(env.draw_context))(keys))
    radius = np.hypot(x[:, 0], x[:, 1])
    assert radius.max() < 1.0
    # P(||X|| < r) = r^2; 20,000 draws: standard error <= 0.0036, tolerance 4 of them.
    for r in (0.3, 0.5, 0.7, 0.9):
        assert abs(np.mean(radius < r) - r * r) < 0.0144
    # The angle is uniform: every quadrant holds a quarter (same tolerance).
    quadrants = (x[:, 0] > 0).astype(int) * 2 + (x[:, 1] > 0)
    assert np.all(np.abs(np.bincount(quadrants, minlength=4) / len(x) - 0.25) < 0.0144)


def test_uniform_play_regret_matches_the_closed_form():
    delta, horizon, seeds = 0.5, 1000, 8
    regret = run_group(build({"delta": delta}, None, horizon, seeds), horizon)["regret"][:, -1]
    # Per round: outside (prob 1 - delta^2) mu_3 - mean of the five arms, inside mu_1 - mean.
    outer = 50.0 - (50.0 + 3 * 1.0 + 1.2) / 5
    inner = 1.2 - (4 * 1.0 + 1.2) / 5
    expected = horizon * ((1 - delta ** 2) * outer + delta ** 2 * inner)   # 29410
    # The per-run standard deviation is about sqrt(T) * 20 = 630; over 8 seeds the standard
    # error of the mean is about 230 (0.8%); 4 standard errors (about 3%) tolerates chance and
    # catches a wrong region probability (delta instead of delta^2 would give 19,660).
    standard_error = regret.std(ddof=1) / np.sqrt(seeds)
    assert abs(regret.mean() - expected) < 4 * standard_error + 1e-3 * expected


def test_layouts_replicated_and_blocks():
    context = jnp.asarray([0.3, -0.4], jnp.float32)
    state = WheelState(t=jnp.int32(0), context=context)
    replicated = build({}).env
    assert replicated.spec.feature_dim == 3
    features = np.asarray(replicated.features(state))
    np.testing.assert_allclose(features, np.tile([0.3, -0.4, 1.0], (5, 1)), rtol=1e-6)
    blocks = build({"arm_features": "block", "bias": False}).env
    assert blocks.spec.feature_dim == 10
    features = np.asarray(blocks.features(state))
    expected = np.zeros((5, 10), np.float32)
    for arm in range(5):
        expected[arm, 2 * arm:2 * arm + 2] = [0.3, -0.4]
    np.testing.assert_allclose(features, expected, rtol=1e-6)


def test_disjoint_linucb_sees_the_same_problem_in_both_layouts():
    # A disjoint ridge regression on arm a's block (zeros elsewhere) is the regression on the
    # context itself: LinUCB's regret is the same in both layouts, run by run (float32 sums).
    horizon = 300
    regret = [run_group(build({"delta": 0.5, "arm_features": layout}, {"name": "linucb"},
                              horizon, 2), horizon)["regret"]
              for layout in ("replicated", "block")]
    np.testing.assert_allclose(regret[0], regret[1], rtol=1e-4)
    assert np.all(regret[0][:, -1] < 0.5 * 29.4 * horizon)   # and it learns (uniform: 29.4/round)


@pytest.mark.parametrize("env, field", [
    ({"delta": 1.5}, "env.delta"),
    ({"delta": -0.1}, "env.delta"),
    ({"noise": -1.0}, "env.noise"),
    ({"large_noise": -0.5}, "env.large_noise"),
    ({"arm_features": "onehot"}, "env.arm_features"),
    ({"K": 4}, "K"),
])
def test_bad_settings_are_one_line_config_errors(env, field):
    with pytest.raises(ConfigError) as error:
        build(env)
    message = str(error.value)
    assert field in message and "\n" not in message
