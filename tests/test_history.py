"""History-dependent bandits (envs/history.py): rotting, recovering and last-switch arms.

- Hand-computed tiny cases: a given action sequence on fixed means and rates; the means the
  environment pays (Gaussian rewards with sigma 1e-6, so a reward is its mean to 1e-5), the
  per-round regret, ``greedy_regret`` and ``static_regret`` are checked against values worked
  out by hand from the docstring's formulas.
- Invariants with hypothesis (random rates, laws, caps and action sequences, one compile per
  environment): means in [0, mu_a]; rotting's regret (against the greedy oracle) is >= 0 at
  every t; the instantaneous regret of the others is >= 0 every round (non-decreasing); an arm's
  mean never rises with its own pulls (rotting) and never falls while it rests (recovering);
  the static regret is the smallest of the per-arm fixed-policy regrets' final values' arm.
- The runner and the config layer: columns, config errors.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import envs  # noqa: F401  (registers every environment)
from envs import randomness
from envs.core import ENVS, ConfigError
from experiments import config as config_lib
from experiments.runner import record_grid, simulate
from tests.reference import cheap_jit

ROUNDS = 30


def make_env(name: str, **static):
    return ENVS.get(name, "env")(**static)


def full_settings(env, **given) -> dict:
    """Every dynamic setting of ``env`` as an array (the defaults, overridden by ``given``)."""
    out = {}
    for s in env.dynamic_settings():
        value = given.get(s.name, s.default)
        if value is not None:
            out[s.name] = jnp.asarray(value, jnp.int32 if s.kind is int else jnp.float32)
    return out


_ROLLOUTS: dict = {}


def rollout(env, settings_: dict, actions) -> dict:
    """Plays ``actions`` ([T] int) on one instance: per-round rewards, regret and metrics."""
    key = (type(env).__name__, tuple(sorted(vars(env).items(), key=str).__repr__()))
    if key not in _ROLLOUTS:
        def run(settings_, actions):
            params = env.sample_params(jax.random.PRNGKey(0), settings_)
            state = env.reset(jax.random.PRNGKey(1), params)

            def body(state, inputs):
                t, action = inputs
                step_key = randomness.consumer_key(jax.random.PRNGKey(2), t, randomness.STEP)
                state, feedback, info = env.step(step_key, state, action, params)
                return state, (feedback.reward[0], info.regret, info.metrics)

            steps = jnp.arange(actions.shape[0], dtype=jnp.int32)
            return params, jax.lax.scan(body, state, (steps, actions))[1]
        _ROLLOUTS[key] = cheap_jit(run)
    params, (rewards, regret, metrics) = _ROLLOUTS[key](settings_, jnp.asarray(actions, jnp.int32))
    metrics = {k: np.asarray(v, np.float64) for k, v in metrics.items()}
    sums = {k: np.cumsum(v)[None, :] for k, v in metrics.items()}
    sums["regret"] = np.cumsum(np.asarray(regret, np.float64))[None, :]
    columns = env.metric_columns(sums, np.arange(1, len(actions) + 1, dtype=np.float64))
    return {"params": params, "rewards": np.asarray(rewards, np.float64),
            "regret": np.asarray(regret, np.float64), "metrics": metrics,
            "columns": {k: v[0] for k, v in columns.items()}}


def exact(name: str, **static):
    """An environment with Gaussian rewards of sigma 1e-6 (a reward is its mean)."""
    return make_env(name, K=2, generator="fixed", reward="gaussian", **static)


# ---------------------------------------------------------------------------------------------
# Hand-computed tiny cases.
# ---------------------------------------------------------------------------------------------
def test_rotting_hand_computed():
    """mu = (0.8, 0.5), rates (1, 0), polynomial: arm 0 pays 0.8 / (1 + n). Actions 0, 0, 1, 0:
    the learner gets 0.8, 0.4, 0.5, 0.8 / 3; the greedy oracle 0.8, 0.5, 0.5, 0.5 (arm 0 at
    0.4 < 0.5 after one pull). Fixed arms: arm 0 totals 0.8 (1 + 1/2 + 1/3 + 1/4), arm 1 2.0, so
    a* = 1 and the static regret is 2.0 - (1.7 + 0.8 / 3)."""
    env = exact("rotting", decay="polynomial")
    out = rollout(env, full_settings(env, means=[0.8, 0.5], rates=[1.0, 0.0], sigma=1e-6),
                  [0, 0, 1, 0])
    np.testing.assert_allclose(out["rewards"], [0.8, 0.4, 0.5, 0.8 / 3], atol=1e-5)
    np.testing.assert_allclose(out["regret"], [0.0, 0.1, 0.0, 0.5 - 0.8 / 3], atol=1e-6)
    np.testing.assert_allclose(out["columns"]["static_regret"][-1], 2.0 - 1.7 - 0.8 / 3,
                               atol=1e-6)
    assert "greedy_regret" not in out["columns"]     # regret is the greedy policy regret

    env = exact("rotting", decay="exponential")
    out = rollout(env, full_settings(env, means=[0.8, 0.5], rates=[math.log(2), 0.0],
                                     sigma=1e-6), [0, 0, 1, 0])
    np.testing.assert_allclose(out["rewards"], [0.8, 0.4, 0.5, 0.2], atol=1e-5)


def test_recovering_hand_computed():
    """mu = (1, 0.6), rates (ln 2, 1e3), z_max = 3, exponential: arm 0 pays 1 - 2^-z, arm 1 pays
    0.6 once z >= 1. Actions 0, 0, 1, 1, 0: z_0 = 3, 1, (1), (2), 3 -> 0.875, 0.5, ..., 0.875;
    arm 1 pays 0.6 twice. Round means (0.875, 0.6), (0.5, 0.6), (0.5, 0.6), (0.75, 0.6),
    (0.875, 0.6) give instantaneous regrets 0, 0.1, 0, 0.15, 0. The greedy oracle plays
    0 (0.875), 1 (0.6), 0 (z = 2: 0.75), 1 (0.6), 0 (0.75); fixed arm 0 gets 0.875 then 0.5,
    fixed arm 1 0.6 every round (a* = 1: 3.0 against 2.875)."""
    env = exact("recovering", recovery="exponential")
    out = rollout(env, full_settings(env, means=[1.0, 0.6], rates=[math.log(2), 1e3],
                                     max_delay=3, sigma=1e-6), [0, 0, 1, 1, 0])
    np.testing.assert_allclose(out["rewards"], [0.875, 0.5, 0.6, 0.6, 0.875], atol=1e-5)
    np.testing.assert_allclose(out["regret"], [0.0, 0.1, 0.0, 0.15, 0.0], atol=1e-6)
    learner_total = 0.875 + 0.5 + 0.6 + 0.6 + 0.875
    np.testing.assert_allclose(out["columns"]["greedy_regret"][-1],
                               0.875 + 0.6 + 0.75 + 0.6 + 0.75 - learner_total, atol=1e-6)
    np.testing.assert_allclose(out["columns"]["static_regret"][-1], 3.0 - learner_total,
                               atol=1e-6)

    env = exact("recovering", recovery="linear")
    out = rollout(env, full_settings(env, means=[1.0, 0.6], rates=[0.25, 1.0], max_delay=3,
                                     sigma=1e-6), [0, 0, 1, 1, 0])
    np.testing.assert_allclose(out["rewards"], [0.75, 0.25, 0.6, 0.6, 0.75], atol=1e-5)


def test_last_switch_hand_computed():
    """mu = (1, 0.5), satiation rates (ln 2, 0), amplitude 1, period 4, tau_max 3: an idle arm
    pays mu (1 + cos(pi |tau| / 2)) / 2 (0.5 at |tau| = 1 or 3, 0 at 2), a streak of tau pays
    mu 2^-tau. Actions 0, 0, 0, 1, 0: tau_0 = -3, 1, 2, 3, -1 pays 0.5, 0.5, 0.25, then arm 1 at
    tau = -3 pays 0.25 and arm 0 at tau = -1 pays 0.5. Round means: (0.5, 0.25), (0.5, 0.25),
    (0.25, 0.25), (0.125, 0.25), (0.5, 0.25): instantaneous regrets 0, 0, 0, 0, 0 -- the
    learner played a best arm each round."""
    env = exact("last_switch")
    out = rollout(env, full_settings(env, means=[1.0, 0.5], rates=[math.log(2), 0.0],
                                     amplitude=1.0, period=4.0, tau_max=3, sigma=1e-6),
                  [0, 0, 0, 1, 0])
    np.testing.assert_allclose(out["rewards"], [0.5, 0.5, 0.25, 0.25, 0.5], atol=1e-5)
    np.testing.assert_allclose(out["regret"], 0.0, atol=1e-6)
    # Always arm 1 instead: rounds pay 0.25 (idle 3) then 0.5 (streak, rate 0): 0.25 + 4 * 0.5,
    # while arm 0 pays 0.25 in round 3 and 0.5 in round 4 at best: the regret of round 3 is 0.
    out = rollout(env, full_settings(env, means=[1.0, 0.5], rates=[math.log(2), 0.0],
                                     amplitude=1.0, period=4.0, tau_max=3, sigma=1e-6),
                  [1, 1, 1, 1, 1])
    np.testing.assert_allclose(out["rewards"], [0.25, 0.5, 0.5, 0.5, 0.5], atol=1e-5)
    # Arm 0 is never played: it stays at tau = -3 (capped) and pays 0.5 every round.
    np.testing.assert_allclose(out["regret"], [0.25, 0.0, 0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out["columns"]["static_regret"], 0.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Invariants (hypothesis).
# ---------------------------------------------------------------------------------------------
K = 3
rate = st.floats(0.0, 2.0, allow_nan=False)
mean = st.floats(0.0, 1.0, allow_nan=False)
actions_strategy = st.lists(st.integers(0, K - 1), min_size=ROUNDS, max_size=ROUNDS)


def check_common(out, base):
    rewards = out["rewards"]
    assert np.all(np.isfinite(out["regret"]))
    for name, column in out["columns"].items():
        assert np.all(np.isfinite(column)), name
    # Every paid mean is in [0, max_a mu_a] (sigma 1e-6: a reward is its mean).
    assert np.all(rewards >= -1e-5) and np.all(rewards <= max(base) + 1e-5)
    # static_regret is the fixed-arm column whose final value is largest.
    finals = [np.sum(out["metrics"][f"regret_vs_arm_{a}"]) for a in range(K)]
    np.testing.assert_allclose(out["columns"]["static_regret"][-1], max(finals), rtol=1e-6,
                               atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(base=st.lists(mean, min_size=K, max_size=K), rates=st.lists(rate, min_size=K, max_size=K),
       actions=actions_strategy, law=st.sampled_from(["polynomial", "exponential"]))
def test_rotting_invariants(base, rates, actions, law):
    env = make_env("rotting", K=K, generator="fixed", reward="gaussian", decay=law)
    out = rollout(env, full_settings(env, means=base, rates=rates, sigma=1e-6), actions)
    check_common(out, base)
    # Policy regret against the greedy oracle: >= 0 at every t (module docstring).
    assert np.all(np.cumsum(out["regret"]) >= -1e-5)
    # An arm's mean never rises with its own pulls.
    for a in range(K):
        paid = out["rewards"][np.asarray(actions) == a]
        assert np.all(np.diff(paid) <= 1e-5)


@settings(max_examples=25, deadline=None)
@given(base=st.lists(mean, min_size=K, max_size=K), rates=st.lists(rate, min_size=K, max_size=K),
       actions=actions_strategy, law=st.sampled_from(["exponential", "linear"]),
       cap=st.integers(1, 8))
def test_recovering_invariants(base, rates, actions, law, cap):
    env = make_env("recovering", K=K, generator="fixed", reward="gaussian", recovery=law)
    out = rollout(env, full_settings(env, means=base, rates=rates, max_delay=cap, sigma=1e-6),
                  actions)
    check_common(out, base)
    assert np.all(out["regret"] >= -1e-6)        # instantaneous: non-decreasing sum
    # The mean an arm pays grows with its rest (z, capped): compare two pulls of the same arm.
    actions = np.asarray(actions)
    for a in range(K):
        rounds = np.flatnonzero(actions == a)
        rests = np.diff(rounds)
        for i in range(1, len(rounds) - 1):
            if rests[i] >= rests[i - 1]:
                assert out["rewards"][rounds[i + 1]] >= out["rewards"][rounds[i]] - 1e-5


@settings(max_examples=25, deadline=None)
@given(base=st.lists(mean, min_size=K, max_size=K), rates=st.lists(rate, min_size=K, max_size=K),
       actions=actions_strategy, amplitude=st.floats(0.0, 1.0), period=st.floats(0.5, 20.0),
       cap=st.integers(1, 8))
def test_last_switch_invariants(base, rates, actions, amplitude, period, cap):
    env = make_env("last_switch", K=K, generator="fixed", reward="gaussian")
    out = rollout(env, full_settings(env, means=base, rates=rates, amplitude=amplitude,
                                     period=period, tau_max=cap, sigma=1e-6), actions)
    check_common(out, base)
    assert np.all(out["regret"] >= -1e-6)
    # Along a streak an arm's payoff never rises (satiation).
    actions = np.asarray(actions)
    for t in range(2, ROUNDS):
        if actions[t] == actions[t - 1] == actions[t - 2]:
            assert out["rewards"][t] <= out["rewards"][t - 1] + 1e-5


# ---------------------------------------------------------------------------------------------
# Runner, columns and config.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,columns", [
    ("rotting", {"regret", "static_regret"}),
    ("recovering", {"regret", "static_regret", "greedy_regret"}),
    ("last_switch", {"regret", "static_regret", "greedy_regret"})])
def test_runner_columns(name, columns):
    """Through config.build and simulate: the declared columns, no hidden per-arm columns, and
    Bernoulli rewards; UCB1 keeps rotting regret >= 0 (its cumulative value)."""
    config = {"run": {"horizon": 60, "seeds": 3, "record": 6},
              "env": {"name": name, "K": 3}, "learner": [{"name": "ucb1"}]}
    group = config_lib.build(config).groups[0]
    result = simulate(group.env, group.learner, run_keys=group.run_keys,
                      instance_keys=group.instance_keys, env_settings=group.env_settings,
                      hparams=group.hparams, horizon=60, record=record_grid(60, 6))
    assert set(result.columns) == columns
    assert {m.name for m in group.env.metrics} == columns
    assert np.all(result.columns["regret"] >= -1e-5)
    assert np.ptp(result.columns["regret"][:, -1]) > 0


def test_config_errors():
    base = {"run": {"horizon": 10, "seeds": 1}, "learner": [{"name": "ucb1"}]}
    with pytest.raises(ConfigError, match="env.rates has 2 values but K = 3"):
        config_lib.build({**base, "env": {"name": "rotting", "K": 3, "rates": [0.1, 0.2]}})
    with pytest.raises(ConfigError, match="env.rate_low = 0.5 is above rate_high = 0.1"):
        config_lib.build({**base, "env": {"name": "recovering", "rate_low": 0.5,
                                          "rate_high": 0.1}})
    with pytest.raises(ConfigError, match="env.amplitude = 2.0"):
        config_lib.build({**base, "env": {"name": "last_switch", "amplitude": 2.0}})
    with pytest.raises(ConfigError, match="env.decay = 'linear'"):
        config_lib.build({**base, "env": {"name": "rotting", "decay": "linear"}})
