"""Delayed feedback: envs/delay.py (the ``delay`` wrapper, delay laws) and bandits/delayed.py.

- Delay laws: samples match ``delay_cdf`` (chi-square goodness of fit, every distribution, fixed
  keys), and ``delay_cdf`` matches closed forms / SciPy written independently here.
- Wrapper: zero delay reproduces the plain environment's regret trajectories exactly; the delays
  observed through the wrapper (outcome-dependent ones included) fit the configured laws; every
  item arrives exactly D rounds after it was made and never earlier; censored items never
  arrive; buffer-full drops are counted (items are conserved: sent = arrived + censored +
  dropped + pending); ``received`` / ``mean_delay`` columns on a hand-checked case; pair actions
  (dueling) and the inner environment's metrics pass through; positives-only disclosure.
- Learners: masked-out feedback never changes a learner's state; QPM-D's bookkeeping (rewards
  are fed to the base, queued or counted as overflow, nothing else); OTFLinUCB's windowed ridge
  statistics and bias term against NumPy; joulani(ucb1) under delays stays within a stated
  factor of ucb1 without delays.
- Config: ``[env.delay]`` through experiments.config.build, a list value as a sweep axis,
  joulani's base hyper-parameters passed through, errors naming the field.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from scipy import stats

from bandits.core import LEARNERS
from bandits.delayed import Joulani, OTFLinUCB
from envs.core import (ConfigError, EnvSpec, Environment, Feedback, Observation, StepInfo,
                       immediate_feedback)
from envs.delay import (DELAY_STREAM, Delayed, DelayLaw, DelayParams, arrival_probability,
                        default_batch, delay_cdf, sample_delay)
from envs.linear import LinearBandit
from envs.mab import BernoulliBandit
from experiments import config as config_lib
from experiments.experiment import simulate_experiment
from experiments.runner import record_grid, simulate

MEANS = np.array([0.3, 0.5, 0.6, 0.7], np.float32)
P_MIN = 1e-3   # goodness-of-fit threshold: with fixed keys a correct sampler passes; a wrong law
               # (e.g. an off-by-one shift) gives p < 1e-10 at these sample sizes.


def tree_equal(a, b) -> bool:
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    return tree_a == tree_b and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b))


def chi_square_p(delays: np.ndarray, cdf) -> float:
    """Chi-square p-value of integer samples against a CDF k -> P(D <= k) (numpy-vectorised):
    one bin per integer, merged left to right until each expects >= 5 items, plus a tail bin."""
    n = len(delays)
    top = 1
    while n * (1.0 - cdf(top)) >= 5:
        top *= 2
    ks = np.arange(top + 1)
    mass = np.diff(np.concatenate([[0.0], cdf(ks)]))
    counts = np.bincount(np.minimum(delays, top + 1), minlength=top + 2)[:top + 1]
    observed, expected = [], []
    acc_o = acc_e = 0.0
    for o, e in zip(counts, mass * n):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5:
            observed.append(acc_o)
            expected.append(acc_e)
            acc_o = acc_e = 0.0
    tail_o, tail_e = acc_o + np.sum(delays > top), acc_e + n * (1.0 - cdf(top))
    if tail_e >= 5:
        observed.append(tail_o)
        expected.append(tail_e)
    else:                       # a short or empty tail joins the last bin
        observed[-1] += tail_o
        expected[-1] += tail_e
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    expected *= observed.sum() / expected.sum()
    return stats.chisquare(observed, expected).pvalue


def run_wrapper(env: Delayed, params, key, horizon: int, policy=lambda t: t % 4):
    """Plays ``policy`` for ``horizon`` rounds; returns (final state, stacked feedback, metrics)."""
    state = env.reset(key, params)

    def body(state, t):
        step_key = jax.random.fold_in(key, t)
        state, feedback, info = env.step(step_key, state, jnp.int32(policy(t)), params)
        return state, (feedback, info.metrics)

    state, (feedback, metrics) = jax.jit(
        lambda s: jax.lax.scan(body, s, jnp.arange(horizon)))(state)
    return state, jax.device_get(feedback), jax.device_get(metrics)


def drawn_delays(env: Delayed, params, key, horizon: int) -> np.ndarray:
    """The delay drawn for round s, recomputed from the documented key derivation."""
    def one(t):
        delay_key = jax.random.fold_in(jax.random.fold_in(key, t), DELAY_STREAM)
        return sample_delay(env.dist, delay_key, params.delay.positive)
    return np.asarray(jax.vmap(one)(jnp.arange(horizon)))


def bernoulli_delayed(**static):
    return Delayed(BernoulliBandit(K=4, generator="fixed"), **static)


def params_for(env: Delayed, **delay):
    return env.sample_params(jax.random.PRNGKey(0), {"means": jnp.asarray(MEANS),
                                                     "delay": delay})


# ---------------------------------------------------------------------------------------------
# Delay laws.
# ---------------------------------------------------------------------------------------------
LAW_CASES = [
    ("fixed", {"d": 3}),
    ("geometric", {"mean": 4.0}),
    ("geometric", {"mean": 0.0}),
    ("uniform", {"lo": 2, "hi": 9}),
    ("pareto", {"alpha": 1.5, "scale": 5.0}),
    ("pareto", {"alpha": 0.8, "scale": 2.0}),
    ("poisson", {"mean": 6.0}),
    ("poisson", {"mean": 40.0}),
]


def reference_cdf(dist: str, p: dict, k: np.ndarray) -> np.ndarray:
    """P(D <= k) written from the distributions' definitions (SciPy / closed forms)."""
    k = np.asarray(k, float)
    if dist == "fixed":
        return (k >= p["d"]).astype(float)
    if dist == "geometric":
        if p["mean"] == 0:
            return (k >= 0).astype(float)
        return stats.geom.cdf(k + 1, 1.0 / (1.0 + p["mean"]))      # scipy's geom starts at 1
    if dist == "uniform":
        return stats.randint.cdf(k, p["lo"], p["hi"] + 1)
    if dist == "pareto":   # D = floor(X), X Lomax: P(D <= k) = P(X < k + 1)
        return np.where(k >= 0, stats.lomax.cdf(np.floor(k) + 1, p["alpha"], scale=p["scale"]), 0)
    return stats.poisson.cdf(k, p["mean"])


@pytest.mark.parametrize("dist,p", LAW_CASES)
def test_delay_cdf_matches_reference(dist, p):
    ks = np.arange(-2, 60)
    law = DelayLaw.from_settings(p)
    got = np.asarray(delay_cdf(dist, law, jnp.asarray(ks, jnp.float32)))
    # float32: the incomplete gamma (poisson) is good to about 1e-5 relative.
    np.testing.assert_allclose(got, reference_cdf(dist, p, ks), rtol=2e-5, atol=2e-6)
    assert float(delay_cdf(dist, law, jnp.inf)) == 1.0


@pytest.mark.parametrize("dist,p", LAW_CASES)
def test_delay_samples_fit_the_law(dist, p):
    law = DelayLaw.from_settings(p)
    keys = jax.random.split(jax.random.PRNGKey(7), 20000)
    delays = np.asarray(jax.vmap(lambda k: sample_delay(dist, k, law))(keys))
    assert delays.min() >= 0
    if dist == "fixed" or (dist == "geometric" and p["mean"] == 0):
        assert np.all(delays == (p.get("d", 0)))
        return
    p_value = chi_square_p(delays, lambda k: reference_cdf(dist, p, np.asarray(k)))
    assert p_value > P_MIN, p_value


def test_arrival_probability_uses_window_and_outcome():
    params = DelayParams.from_settings({"mean": 2.0, "mean_negative": 10.0, "window": 3.0})
    elapsed = jnp.asarray([0.0, 2.0, 3.0, 7.0, 50.0])
    q_pos, q_neg = 2.0 / 3.0, 10.0 / 11.0
    expected_pos = 1 - q_pos ** (np.minimum([0, 2, 3, 7, 50], 3) + 1)
    expected_neg = 1 - q_neg ** (np.minimum([0, 2, 3, 7, 50], 3) + 1)
    np.testing.assert_allclose(arrival_probability("geometric", params, elapsed, True),
                               expected_pos, rtol=1e-5)
    np.testing.assert_allclose(arrival_probability("geometric", params, elapsed, False),
                               expected_neg, rtol=1e-5)


def test_default_batch_is_the_poisson_quantile():
    # P(Poisson(1) > 7) = 1.0e-5 > 1e-5 and P(Poisson(1) > 8) = 1.1e-6: B = 8.
    assert default_batch(1) == 8
    assert stats.poisson.sf(default_batch(3), 3) <= 1e-5 < stats.poisson.sf(default_batch(3) - 1, 3)


# ---------------------------------------------------------------------------------------------
# The wrapper.
# ---------------------------------------------------------------------------------------------
def _simulate(env, learner_name, settings, runs, horizon, hparams, record=None, **static):
    learner = LEARNERS.get(learner_name, "learner")(env.spec, horizon, **static)
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(3), runs))
    tiled = jax.tree_util.tree_map(lambda v: np.repeat(np.asarray(v)[None], runs, 0), settings)
    hp = {k: np.full(runs, v, np.float32) for k, v in hparams.items()}
    return simulate(env, learner, run_keys=keys, instance_keys=keys, env_settings=tiled,
                    hparams=hp, horizon=horizon,
                    record=record_grid(horizon, 20) if record is None else record)


def test_zero_delay_reproduces_the_plain_environment():
    plain = BernoulliBandit(K=4, generator="fixed")
    base = _simulate(plain, "ucb1", {"means": MEANS}, 40, 300, {"c": 2.0})
    # (geometric with mean 0 draws only zeros: test_delay_samples_fit_the_law[geometric-p2].)
    env = Delayed(plain, dist="fixed", capacity=16)
    got = _simulate(env, "ucb1", {"means": MEANS, "delay": {"d": 0}}, 40, 300, {"c": 2.0})
    np.testing.assert_array_equal(got.columns["regret"], base.columns["regret"])
    np.testing.assert_array_equal(got.columns["received"], 1.0)
    # Contextual: the chosen arm's features pass through the buffer unchanged.
    linear = LinearBandit(K=5, d=3)
    settings = {"theta_norm": 1.0, "noise": 0.1}
    hp = {"alpha": 1.0, "regulariser": 1.0}
    base = _simulate(linear, "linucb_shared", settings, 10, 150, hp, compensated=False)
    env = Delayed(linear, dist="fixed", capacity=4)
    got = _simulate(env, "linucb_shared", dict(settings, delay={"d": 0}), 10, 150, hp,
                    compensated=False)
    np.testing.assert_array_equal(got.columns["regret"], base.columns["regret"])


def test_observed_delays_fit_the_configured_laws_by_outcome():
    env = bernoulli_delayed(dist="geometric", capacity=128)
    params = params_for(env, mean=2.0, mean_negative=8.0)
    horizon = 4000
    _, feedback, _ = run_wrapper(env, params, jax.random.PRNGKey(11), horizon)
    t = np.repeat(np.arange(horizon)[:, None], feedback.mask.shape[1], 1)
    made = feedback.round[feedback.mask]
    delay = (t - feedback.round)[feedback.mask]
    positive = feedback.reward[feedback.mask] > 0
    # Only items made early enough that a delay of up to 120 rounds would have been seen:
    # P(D >= 120) < 1e-6 under mean 8, so nothing of the law is cut off.
    early = made < horizon - 120
    for outcome, mean in ((True, 2.0), (False, 8.0)):
        sample = delay[early & (positive == outcome)]
        q = mean / (1 + mean)
        p_value = chi_square_p(sample, lambda k: 1 - q ** (np.asarray(k) + 1.0))
        assert p_value > P_MIN, (outcome, p_value)
        assert abs(sample.mean() - mean) < 4 * math.sqrt(mean * (mean + 1) / len(sample))


def test_every_item_arrives_exactly_when_due_never_earlier():
    env = bernoulli_delayed(dist="geometric", capacity=64)
    params = params_for(env, mean=3.0)
    key, horizon = jax.random.PRNGKey(5), 500
    state, feedback, metrics = run_wrapper(env, params, key, horizon)
    drawn = drawn_delays(env, params, key, horizon)
    t = np.repeat(np.arange(horizon)[:, None], feedback.mask.shape[1], 1)
    released = sorted(zip(feedback.round[feedback.mask].tolist(), t[feedback.mask].tolist()))
    due = sorted((s, s + int(d)) for s, d in enumerate(drawn) if s + d < horizon)
    assert released == due                    # each exactly once, exactly D rounds later
    assert metrics["buffer_drops"].sum() == 0
    assert np.all(feedback.action[feedback.mask] == feedback.round[feedback.mask] % 4)


def test_censored_items_never_arrive():
    env = bernoulli_delayed(dist="geometric", capacity=64)
    params = params_for(env, mean=3.0, window=2.0)
    key, horizon = jax.random.PRNGKey(6), 600
    state, feedback, metrics = run_wrapper(env, params, key, horizon)
    drawn = drawn_delays(env, params, key, horizon)
    t = np.repeat(np.arange(horizon)[:, None], feedback.mask.shape[1], 1)
    observed = (t - feedback.round)[feedback.mask]
    assert observed.max() <= 2
    censored_rounds = set(np.flatnonzero(drawn > 2).tolist())
    assert censored_rounds.isdisjoint(set(feedback.round[feedback.mask].tolist()))
    assert metrics["delay_censored"].sum() == len(censored_rounds) > 0
    pending = int(env.pending(state))
    assert metrics["delay_sent"].sum() == (metrics["delay_arrived"].sum()
                                           + metrics["delay_censored"].sum() + pending)


def test_buffer_full_drops_are_counted():
    # (a) delays beyond the calendar: capacity 8, every delay 10 -> every item dropped, counted.
    env = bernoulli_delayed(dist="fixed", capacity=8)
    _, feedback, metrics = run_wrapper(env, params_for(env, d=10), jax.random.PRNGKey(1), 50)
    assert not feedback.mask.any()
    np.testing.assert_array_equal(metrics["buffer_drops"], 1.0)
    # (b) full rows: one slot per round, uniform delays collide; items are conserved.
    env = bernoulli_delayed(dist="uniform", capacity=16, batch=1)
    state, feedback, metrics = run_wrapper(env, params_for(env, lo=0, hi=3),
                                           jax.random.PRNGKey(2), 400)
    pending = int(env.pending(state))
    drops = metrics["buffer_drops"].sum()
    assert drops > 20            # about a third of the items collide at batch = 1
    assert metrics["delay_sent"].sum() == metrics["delay_arrived"].sum() + drops + pending
    assert feedback.mask.sum() == metrics["delay_arrived"].sum()


def test_received_and_mean_delay_columns_by_hand():
    plain = BernoulliBandit(K=4, generator="fixed")
    env = Delayed(plain, dist="fixed", capacity=8)
    # Runs 0-2: delay 2, no window; runs 3-5: window 1 < 2, everything censored.
    settings = {"means": np.tile(MEANS, (6, 1)),
                "delay": {"d": np.full(6, 2, np.int32),
                          "window": np.array([np.inf] * 3 + [1.0] * 3, np.float32)}}
    learner = LEARNERS.get("ucb1", "learner")(env.spec, 10)
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(3), 6))
    result = simulate(env, learner, run_keys=keys, instance_keys=keys, env_settings=settings,
                      hparams={"c": np.full(6, 2.0, np.float32)}, horizon=10,
                      record=np.arange(1, 11))
    t = result.t.astype(float)
    np.testing.assert_array_equal(t, np.arange(1, 11))
    columns = {k: v[:3] for k, v in result.columns.items()}
    # After t rounds t items were made and the t - 2 of rounds 0..t-3 have arrived, each 2 late.
    np.testing.assert_allclose(columns["received"],
                               np.broadcast_to(np.maximum(t - 2, 0) / t, (3, 10)), rtol=1e-6)
    assert np.all(np.isnan(columns["mean_delay"][:, :2]))
    np.testing.assert_array_equal(columns["mean_delay"][:, 2:], 2.0)
    np.testing.assert_array_equal(columns["censored"], 0.0)
    np.testing.assert_array_equal(columns["buffer_drops"], 0.0)
    censored = {k: v[3:] for k, v in result.columns.items()}
    np.testing.assert_array_equal(censored["received"], 0.0)
    np.testing.assert_array_equal(censored["censored"], np.broadcast_to(t, (3, 10)))


def test_positives_only_discloses_only_positive_rewards():
    env = bernoulli_delayed(dist="geometric", capacity=64, positives_only=True)
    _, feedback, metrics = run_wrapper(env, params_for(env, mean=2.0), jax.random.PRNGKey(4),
                                       2000)
    assert np.all(feedback.reward[feedback.mask] == 1.0)
    # Arms played in turn: about mean(MEANS) = 0.525 of the items are positive (3 sd of a
    # binomial over 2000 items is 0.034; the last few pending ones are within that too).
    received = metrics["delay_arrived"].sum() / metrics["delay_sent"].sum()
    assert abs(received - MEANS.mean()) < 0.04


@struct.dataclass
class PairState:
    t: jax.Array
    features: jax.Array


class PairEnv(Environment):
    """A minimal dueling environment (not registered): a pair action, per-arm features, a
    'weak_regret' metric; the reward is 1 when the first arm has the larger first feature."""

    metric_names = ("weak_regret",)

    @property
    def spec(self):
        return EnvSpec(num_arms=4, feature_dim=3, action_arity=2, preference_feedback=True)

    def sample_params(self, key, settings):
        return {}

    def reset(self, key, params):
        return PairState(t=jnp.zeros((), jnp.int32), features=jax.random.normal(key, (4, 3)))

    def observe(self, key, state, params):
        return Observation(features=state.features, t=state.t)

    def step(self, key, state, action, params):
        x = state.features
        reward = (x[action[0], 0] > x[action[1], 0]).astype(jnp.float32)
        feedback = immediate_feedback(action, x, reward, state.t)
        info = StepInfo(regret=jnp.float32(1.0), metrics={"weak_regret": jnp.float32(0.5)})
        return PairState(t=state.t + 1, features=jax.random.normal(key, (4, 3))), feedback, info


def test_pair_actions_and_inner_metrics_pass_through():
    env = Delayed(PairEnv(), dist="fixed", capacity=8)
    assert env.spec.action_arity == 2 and env.spec.feedback_size == env.batch
    params = env.sample_params(jax.random.PRNGKey(0), {"delay": {"d": 1}})
    key = jax.random.PRNGKey(9)
    state = env.reset(key, params)
    step = jax.jit(env.step)
    played = []
    for t in range(6):
        obs = env.observe(key, state, params)
        action = jnp.asarray([t % 4, (t + 1) % 4], jnp.int32)
        state, feedback, info = step(jax.random.fold_in(key, t), state, action, params)
        played.append((np.asarray(action), np.asarray(obs.features)[np.asarray(action)]))
        assert feedback.action.shape == (env.batch, 2)
        assert feedback.features.shape == (env.batch, 2, 3)
        assert float(info.metrics["weak_regret"]) == 0.5
        if t == 0:
            assert not feedback.mask.any()
        else:
            assert feedback.mask.sum() == 1
            row = int(np.argmax(feedback.mask))
            np.testing.assert_array_equal(feedback.action[row], played[t - 1][0])
            np.testing.assert_array_equal(feedback.features[row], played[t - 1][1])
            assert feedback.round[row] == t - 1
    columns = env.metric_columns(
        {"regret": np.array([[6.0]]), "weak_regret": np.array([[3.0]]),
         "delay_sent": np.array([[6.0]]), "delay_arrived": np.array([[5.0]]),
         "delay_total": np.array([[5.0]]), "delay_censored": np.array([[0.0]]),
         "buffer_drops": np.array([[0.0]])}, np.array([6.0]))
    assert columns["weak_regret"][0, 0] == 0.5 and columns["regret"][0, 0] == 6.0
    assert columns["received"][0, 0] == 5 / 6 and columns["mean_delay"][0, 0] == 1.0


# ---------------------------------------------------------------------------------------------
# Learners.
# ---------------------------------------------------------------------------------------------
def garbage_batch(key, size, dim, num_arms):
    keys = jax.random.split(key, 4)
    return Feedback(action=jax.random.randint(keys[0], (size,), 0, num_arms),
                    features=jax.random.normal(keys[1], (size, 1, dim)),
                    reward=jax.random.normal(keys[2], (size,)),
                    round=jax.random.randint(keys[3], (size,), 0, 5),
                    mask=jnp.zeros((size,), bool))


def linear_spec(batch=4):
    return EnvSpec(num_arms=5, feature_dim=3, feedback_size=batch, reward_range=None,
                   bernoulli_rewards=False)


@pytest.mark.parametrize("name", ["joulani", "otf_linucb", "otf_lints"])
def test_masked_out_feedback_is_ignored(name):
    spec = linear_spec()
    cls = LEARNERS.get(name, "learner")
    static = {"window": 3} if name != "joulani" else {"base": "ucb1"}
    learner = cls(spec, 100, **static)
    hparams = {s.name: jnp.float32(s.default) for s in cls.dynamic_settings()
               if s.default is not None}
    hparams.update({"c": jnp.float32(2.0)})
    key = jax.random.PRNGKey(0)
    state = learner.init(key, hparams)
    obs = Observation(features=jax.random.normal(key, (5, 3)), t=jnp.int32(4))
    # Some real feedback first, so queues / statistics are not empty.
    real = garbage_batch(jax.random.PRNGKey(1), 4, 3, 5).replace(
        mask=jnp.ones((4,), bool), round=jnp.full((4,), 3), reward=jnp.ones((4,)))
    update = jax.jit(learner.update)
    state = update(state, obs, jnp.int32(1), real, hparams)
    outs = [update(state, obs, jnp.int32(2), garbage_batch(jax.random.PRNGKey(s), 4, 3, 5),
                   hparams) for s in (10, 11, 12)]
    assert tree_equal(outs[0], outs[1]) and tree_equal(outs[0], outs[2])
    if name == "joulani":
        assert int(outs[0].size.sum()) == int(state.size.sum()) - (
            int(outs[0].base_steps) - int(state.base_steps))
    else:
        np.testing.assert_array_equal(outs[0].ridge.target, state.ridge.target)


def test_joulani_feeds_the_base_every_reward_once():
    env = bernoulli_delayed(dist="geometric", capacity=256)
    runs, horizon = 8, 600
    result_learner = Joulani(env.spec, horizon, base="ucb1", queue=16)
    params = jax.vmap(lambda k: params_for(env, mean=15.0))(jax.random.split(jax.random.PRNGKey(0),
                                                                             runs))
    hp = {"c": jnp.full((runs,), 2.0)}

    def run(key, params, hparams):
        env_state = env.reset(key, params)
        state = result_learner.init(key, hparams)

        def body(carry, t):
            env_state, state, arrived = carry
            k = jax.random.fold_in(key, t)
            obs = env.observe(k, env_state, params).replace(t=t)
            action = result_learner.act(k, state, obs, hparams)
            env_state, feedback, _ = env.step(k, env_state, action, params)
            state = result_learner.update(state, obs, action, feedback, hparams)
            return (env_state, state, arrived + feedback.mask.sum()), None

        carry, _ = jax.lax.scan(body, (env_state, state, jnp.int32(0)), jnp.arange(horizon))
        return carry

    _, state, arrived = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(1), runs),
                                               params, hp)
    # Every arrived reward was fed to the base (its counts), is still queued, or overflowed.
    np.testing.assert_array_equal(state.base.counts.sum(1), state.base_steps)
    np.testing.assert_array_equal(state.base_steps + state.size.sum(1) + state.overflow, arrived)
    assert np.all(state.base_steps > 0.8 * horizon)      # the base is not starved
    assert np.all(state.size <= 16)


def test_otf_linucb_statistics_and_bias_match_numpy():
    linear = LinearBandit(K=5, d=3)
    env = Delayed(linear, dist="geometric", capacity=64)
    params = env.sample_params(jax.random.PRNGKey(0), {"theta_norm": 1.0, "noise": 0.1,
                                                        "delay": {"mean": 3.0}})
    window, lam, horizon = 4, 0.5, 80
    learner = OTFLinUCB(env.spec, horizon, window=window)
    hparams = {"regulariser": jnp.float32(lam), "alpha": jnp.float32(1.0),
               "noise": jnp.float32(0.1), "delta": jnp.float32(0.05),
               "norm_bound": jnp.float32(1.0)}
    key = jax.random.PRNGKey(2)
    env_state, state = env.reset(key, params), learner.init(key, hparams)
    design, target, played = lam * np.eye(3), np.zeros(3), []
    act, step, update = jax.jit(learner.act), jax.jit(env.step), jax.jit(learner.update)
    skipped = 0
    for t in range(horizon):
        k = jax.random.fold_in(key, t)
        obs = env.observe(k, env_state, params).replace(t=jnp.int32(t))
        action = act(k, state, obs, hparams)
        env_state, feedback, _ = step(k, env_state, action, params)
        state = update(state, obs, action, feedback, hparams)
        x = np.asarray(obs.features, np.float64)[int(action)]
        design += np.outer(x, x)
        played.append(x)
        for j in np.flatnonzero(np.asarray(feedback.mask)):
            if t - int(feedback.round[j]) <= window:
                target += float(feedback.reward[j]) * np.asarray(feedback.features[j, 0])
            else:
                skipped += 1
    assert skipped > 0        # the window filter was exercised (mean delay 3, window 4)
    inverse = np.linalg.inv(design)
    np.testing.assert_allclose(state.ridge.inverse, inverse, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state.ridge.target, target, rtol=1e-4, atol=1e-5)
    features = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (5, 3)))
    recent = np.stack(played[-window:])
    expected_bias = np.abs(features @ inverse @ recent.T).sum(1)
    np.testing.assert_allclose(learner.bias(state, jnp.asarray(features)), expected_bias,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_otf_learners_beat_uniform_under_delays():
    # Logistic instance (K = 10, d = 5, ||theta|| = 2), geometric delays of mean 20, window 100,
    # 20 runs of 2000 rounds. Measured (2-core CPU, 30 runs): otf_linucb 56, otf_lints 68,
    # against several hundred for a uniform arm; the stated bound (half of uniform's regret) is
    # far from both.
    config = {"run": {"horizon": 2000, "seeds": 20, "record": 5},
              "env": {"name": "logistic", "K": 10, "d": 5, "theta_norm": 2.0,
                      "delay": {"dist": "geometric", "mean": 20.0, "window": 100.0,
                                "capacity": 256}},
              "learner": [{"name": "otf_linucb", "window": 100},
                          {"name": "otf_lints", "window": 100}, {"name": "uniform"}]}
    frame, _ = simulate_experiment(config_lib.build(config), progress=False)
    final = frame[frame.t == 2000].groupby("learner")["regret"].mean()
    assert final["otf_linucb"] < 0.5 * final["uniform"], final
    assert final["otf_lints"] < 0.5 * final["uniform"], final


def test_joulani_ucb1_under_delays_within_factor_of_undelayed_ucb1():
    # Fixed instance (MEANS), 100 runs, T = 2000, geometric delays with mean 20. Joulani et al.
    # (2013, Theorem 6) bound the extra regret by an additive term of order
    # sum_a gap_a * E[outstanding feedback] (about 0.7 * 20 here, vs ~95 undelayed). Measured
    # (2-core CPU, these keys): 94.9 undelayed, 96.2 delayed (101.2 at mean 50, 112.3 at mean
    # 200); the stated factor 1.5 leaves room for noise (standard errors about 1.5).
    plain = BernoulliBandit(K=4, generator="fixed")
    base = _simulate(plain, "ucb1", {"means": MEANS}, 100, 2000, {"c": 2.0})
    env = Delayed(plain, dist="geometric", capacity=512)
    delayed = _simulate(env, "joulani", {"means": MEANS, "delay": {"mean": 20.0}}, 100, 2000,
                        {"c": 2.0}, base="ucb1")
    undelayed_regret = base.columns["regret"][:, -1].mean()
    delayed_regret = delayed.columns["regret"][:, -1].mean()
    assert delayed.columns["mean_delay"][:, -1].mean() == pytest.approx(20.0, rel=0.1)
    assert delayed_regret < 1.5 * undelayed_regret, (delayed_regret, undelayed_regret)


# ---------------------------------------------------------------------------------------------
# Config.
# ---------------------------------------------------------------------------------------------
def delay_config(**delay):
    return {"run": {"horizon": 200, "seeds": 3, "record": 5},
            "env": {"name": "bernoulli", "K": 4, "means": MEANS.tolist(),
                    "delay": dict({"dist": "geometric", "mean": [0.0, 5.0]}, **delay)},
            "learner": [{"name": "joulani", "base": "ucb1", "c": [1.0, 2.0]}]}


def test_config_delay_table_is_a_wrapper_with_sweep_axes():
    experiment = config_lib.build(delay_config(window=50.0, capacity=64))
    assert len(experiment.groups) == 1                 # one compile: mean and c are dynamic
    group = experiment.groups[0]
    assert isinstance(group.env, Delayed) and group.env.capacity == 64
    assert isinstance(group.learner, Joulani)
    np.testing.assert_array_equal(sorted(set(group.env_settings["delay"]["mean"])), [0.0, 5.0])
    assert set(group.runs["env.delay.mean"]) == {0.0, 5.0}
    assert set(group.runs["hp.c"]) == {1.0, 2.0} and set(group.runs["hp.base"]) == {"ucb1"}
    assert len(group.runs) == 2 * 2 * 3
    frame, _ = simulate_experiment(experiment, progress=False)
    last = frame[frame.t == 200]
    no_delay = last[last["env.delay.mean"] == 0.0]
    assert np.all(no_delay["received"] == 1.0) and np.all(no_delay["mean_delay"] == 0.0)
    delayed = last[last["env.delay.mean"] == 5.0]
    assert np.all(delayed["received"] < 1.0) and np.all(delayed["mean_delay"] > 1.0)


@pytest.mark.parametrize("change,field", [
    ({"dist": "gamma"}, "env.delay.dist"),
    ({"window": 300.0, "capacity": 256}, "env.delay.window"),
    ({"dist": "uniform", "lo": 5, "hi": 2, "mean": 1.0}, "env.delay.lo"),
    ({"positives_only": True, "mean_negative": 3.0}, "env.delay.mean_negative"),
    ({"windw": 3.0}, "env.delay.windw"),
])
def test_config_errors_name_the_field(change, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config_lib.build(delay_config(**change))


def test_config_joulani_base_errors():
    config = delay_config()
    config["learner"] = [{"name": "joulani", "base": "linucb"}]
    with pytest.raises(ConfigError, match=r"learner\[0\]\.base = 'linucb'"):
        config_lib.build(config)
    config["learner"] = [{"name": "joulani", "base": "ucb1", "alpha": 1.0}]
    with pytest.raises(ConfigError, match=r"learner\[0\]\.alpha"):
        config_lib.build(config)
