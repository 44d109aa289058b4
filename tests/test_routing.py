"""Tests of the routing environment, the routing learners and the routing analysis."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bandits  # noqa: F401  (registers learners)
import envs  # noqa: F401
from analysis import routing as analysis
from bandits.core import LEARNERS
from envs import routing
from envs.core import ConfigError, Feedback, Observation
from experiments import config as config_lib
from experiments.experiment import simulate_experiment


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def make_env(**values):
    static, dynamic = routing.resolved_settings(**values)
    env = routing.Routing(**static)
    return env, env.sample_params(jax.random.PRNGKey(0), dynamic), dynamic


def run_config(env: dict, learners: list[dict], horizon: int, seeds: int) -> pd.DataFrame:
    config = {"run": {"horizon": horizon, "seeds": seeds, "seed": 0, "record": 5},
              "env": {"name": "routing", **env}, "learner": learners}
    frame, _ = simulate_experiment(config_lib.build(config), progress=False)
    return frame[frame["t"] == horizon]


# ---------------------------------------------------------------------------------------------
# The surface's formulas against hand-computed values.
# ---------------------------------------------------------------------------------------------
def test_single_shot_is_the_two_parameter_item_response_model():
    # sigmoid(a (theta + u.z - b)) with a = 2, theta = 1, u.z = 0.5, b = 0.5: sigmoid(2).
    p = routing.single_shot(jnp.array([1.0]), jnp.array([[0.5, 0.0]]), jnp.array([1.0, 0.0]),
                            jnp.float32(0.5), jnp.float32(2.0))
    assert p[0] == pytest.approx(sigmoid(2.0), abs=1e-6)
    # The reasoning gain adds to the ability inside the bracket: sigmoid(2 (1 + 0.5 - 0.5 + 1)).
    p = routing.single_shot(jnp.array([1.0]), jnp.array([[0.5, 0.0]]), jnp.array([1.0, 0.0]),
                            jnp.float32(0.5), jnp.float32(2.0), jnp.float32(1.0))
    assert p[0] == pytest.approx(sigmoid(4.0), abs=1e-6)


def test_verifier_quality_is_one_minus_all_samples_wrong():
    assert float(routing.verifier_quality(jnp.float32(0.3), 4.0)) == pytest.approx(
        1 - 0.7 ** 4, abs=1e-6)                                   # 0.7599
    assert float(routing.verifier_quality(jnp.float32(0.3), 1.0)) == pytest.approx(0.3)


@pytest.mark.parametrize("p", [0.1, 0.45, 0.6, 0.9])
def test_majority_vote_small_k_by_hand(p):
    vote = lambda k, rho: float(routing.majority_vote_quality(jnp.float32(p), k, rho))  # noqa
    # One sample, or two (a 1-1 split is a fair coin): the vote is the single-shot success.
    assert vote(1, 0.5) == pytest.approx(p, abs=1e-6)
    assert vote(2, 0.5) == pytest.approx(p, abs=1e-6)
    # k = 3, every wrong sample the same answer (rho = 1): at least 2 of 3 right.
    assert vote(3, 1.0) == pytest.approx(p ** 3 + 3 * p ** 2 * (1 - p), abs=1e-6)
    # k = 3, every wrong sample different (rho = 0): a single right answer ties with two
    # singletons and wins with probability 1/3.
    assert vote(3, 0.0) == pytest.approx(p ** 3 + 3 * p ** 2 * (1 - p) + p * (1 - p) ** 2,
                                         abs=1e-6)
    # k = 3, rho = 0.5: q = r = (1 - p) / 2; (c, w, s) = (1, 0, 2) and (1, 1, 1) are 3-way ties.
    q = r = (1 - p) / 2
    expected = p ** 3 + 3 * p ** 2 * (1 - p) + (3 * p * r * r + 6 * p * q * r) / 3
    assert vote(3, 0.5) == pytest.approx(expected, abs=1e-6)


def test_majority_vote_saturates_on_easy_and_falls_on_hard_requests():
    ks = [1, 3, 5, 9, 15, 63]
    easy = [float(routing.majority_vote_quality(jnp.float32(0.7), k, 1.0)) for k in ks]
    hard = [float(routing.majority_vote_quality(jnp.float32(0.3), k, 1.0)) for k in ks]
    assert all(b > a for a, b in zip(easy, easy[1:])) and easy[-1] > 0.99
    assert all(b < a for a, b in zip(hard, hard[1:])) and hard[-1] < 0.01
    # With scattered wrong answers (rho = 0.2) p = 0.3 beats the dominant wrong answer
    # (0.2 * 0.7 = 0.14), so voting helps even though p < 1/2.
    scattered = [float(routing.majority_vote_quality(jnp.float32(0.3), k, 0.2)) for k in ks]
    assert scattered[-1] > 0.95 and scattered[-1] > scattered[0]


def test_reasoning_gain_per_doubling_saturates():
    gain = lambda b: float(routing.reasoning_gain(jnp.float32(b), 0.5, 3.0, 512.0))  # noqa
    assert gain(0.0) == 0.0
    assert gain(512.0) == pytest.approx(0.5 * 3 * (1 - math.exp(-1 / 3)), abs=1e-6)  # 0.4252
    assert gain(3 * 512.0) == pytest.approx(1.5 * (1 - math.exp(-2 / 3)), abs=1e-6)  # 2 doublings
    assert gain(512.0 * 2 ** 20) < 1.5 and gain(512.0 * 2 ** 20) > 1.49   # at most gain * s


def test_call_cost_in_dollars():
    # 400 input tokens at $30/1M, 4 samples of 250 output tokens at $60/1M.
    assert float(routing.call_cost(400.0, 250.0, 30.0, 60.0, 4.0)) == pytest.approx(0.072)
    # One call with 1024 thinking tokens billed as output.
    assert float(routing.call_cost(400.0, 250.0, 30.0, 60.0, 1.0, 1024.0)) == pytest.approx(
        (400 * 30 + (250 + 1024) * 60) / 1e6)


def test_surface_of_a_hand_made_instance():
    env, params, _ = make_env(models=2, abilities=[0.0, 1.0], price_in=[1.0, 10.0],
                              price_out=[2.0, 20.0], budgets=[1, 3], scaling="verifier",
                              dim=2)
    params = params.replace(specialisation=jnp.zeros((2, 2)))
    request = routing.Request(z=jnp.array([1.0, 0.0]), difficulty=jnp.float32(0.5),
                              discrimination=jnp.float32(2.0), input_tokens=jnp.float32(1000.0),
                              output_tokens=jnp.float32(500.0))
    quality, cost, available = env.surface(request, jnp.int32(0), params)
    p0, p1 = sigmoid(2 * (0 - 0.5)), sigmoid(2 * (1 - 0.5))
    # Arm order: model * len(budgets) + budget index.
    np.testing.assert_allclose(quality, [p0, 1 - (1 - p0) ** 3, p1, 1 - (1 - p1) ** 3],
                               atol=1e-6)
    np.testing.assert_allclose(cost, [(1000 * 1 + 500 * 2) / 1e6, (1000 * 1 + 3 * 500 * 2) / 1e6,
                                      (1000 * 10 + 500 * 20) / 1e6,
                                      (1000 * 10 + 3 * 500 * 20) / 1e6], rtol=1e-6)
    assert bool(available.all())
    # Normaliser: one 1-sample call of the dearest model (by output price) on a typical request
    # (400 input, 250 output tokens): (400 * 10 + 250 * 20) / 1e6.
    assert float(params.cost_scale) == pytest.approx(9000 / 1e6)
    assert env.arm_names() == ("m0@k1", "m0@k3", "m1@k1", "m1@k3")


# ---------------------------------------------------------------------------------------------
# Environment invariants.
# ---------------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnums=0)
def _roll(env, params, actions, key):
    def body(state, inputs):
        t, action = inputs
        k = jax.random.fold_in(key, t)
        obs = env.observe(k, state, params).replace(t=t)
        new, feedback, info = env.step(k, state, action, params)
        return new, (state, obs, feedback, info)
    state = env.reset(jax.random.fold_in(key, 1_000_000), params)
    steps = jnp.arange(actions.shape[0], dtype=jnp.int32)
    return jax.lax.scan(body, state, (steps, actions))[1]


def roll(env, params, actions, key=0):
    """Plays ``actions`` ([T]); returns (states, observations, feedback, infos) over rounds,
    each state being the one before that round's step."""
    return _roll(env, params, jnp.asarray(actions, jnp.int32), jax.random.PRNGKey(key))


@functools.lru_cache(maxsize=None)
def small_env() -> routing.Routing:
    """One environment object (so one compiled roll) for the invariant and budget tests."""
    return routing.Routing(**routing.resolved_settings(budgets=[1, 3])[0])


def small_params(**values):
    static, dynamic = routing.resolved_settings(budgets=[1, 3], **values)
    return small_env().sample_params(jax.random.PRNGKey(0), dynamic)


def test_environment_invariants():
    env, params = small_env(), small_params(cost_weight=0.2)
    k = env.num_arms
    actions = np.random.default_rng(0).integers(0, k, size=300)
    states, obs, feedback, info = roll(env, params, actions)
    z, bias = obs.features[:, :, :-1], obs.features[:, :, -1]
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, atol=1e-5)   # unit embeddings
    np.testing.assert_array_equal(bias, 1.0)
    assert np.all(z == z[:, :1, :])                      # every arm's row is (z, 1)
    np.testing.assert_array_equal(z[:, 0, :], states.z)  # the context kept in the state
    regret = np.asarray(info.regret)
    assert regret.min() >= -1e-6
    objective = np.asarray(obs.expected_rewards)
    np.testing.assert_allclose(objective, states.quality - 0.2 * states.cost
                               / float(params.cost_scale), atol=1e-6)
    chosen = objective[np.arange(len(actions)), actions]
    np.testing.assert_allclose(regret, objective.max(axis=1) - chosen, atol=1e-6)
    quality, cost = np.asarray(info.metrics["quality"]), np.asarray(info.metrics["cost"])
    assert quality.min() >= 0 and quality.max() <= 1 and cost.min() > 0
    observed = np.asarray(feedback.extras["quality"])[:, 0]
    assert set(np.unique(observed)) <= {0.0, 1.0}
    normalised = np.asarray(feedback.extras["cost"])[:, 0]
    np.testing.assert_allclose(normalised, cost / float(params.cost_scale), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(feedback.reward)[:, 0], observed - 0.2 * normalised,
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(feedback.action)[:, 0], actions)  # no budget
    np.testing.assert_array_equal(np.asarray(feedback.round)[:, 0], np.arange(300))
    shares = np.stack([np.asarray(info.metrics[n]) for n in env.share_names()], axis=1)
    np.testing.assert_array_equal(shares.argmax(axis=1), actions)
    np.testing.assert_array_equal(shares.sum(axis=1), 1.0)
    # The Bernoulli outcome has mean q: 300 rounds, |mean(y - q)| <= 4 sd of the mean.
    assert abs(np.mean(observed - quality)) < 4 * 0.5 / math.sqrt(len(actions))


def test_budget_falls_back_to_the_cheapest_arm():
    env, params = small_env(), small_params(budget=0.05)
    dearest = env.num_arms - 1                                  # gpt-4 with 3 samples
    states, _, feedback, _ = roll(env, params, np.full(300, dearest))
    served = np.asarray(feedback.action)[:, 0]
    every = np.asarray(states.cost) / float(params.cost_scale)  # [T, K] normalised costs
    allowance = np.asarray(states.balance) + 0.05
    fallback = served != dearest
    assert fallback.mean() > 0.9                                # the budget binds
    # A fallback happens exactly when the chosen arm costs more than the balance allows, and
    # serves the request's cheapest arm.
    np.testing.assert_array_equal(fallback, every[:, dearest] > allowance)
    np.testing.assert_array_equal(served[fallback], every[fallback].argmin(axis=1))
    # The balance accrues the budget and pays for what was served.
    cost = np.asarray(feedback.extras["cost"])[:, 0]
    np.testing.assert_allclose(np.asarray(states.balance)[1:], (allowance - cost)[:-1],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shift", ["price_cut", "quality_regression", "new_model"])
def test_shifts(shift):
    env, params, _ = make_env(shift=shift, shift_round=10, shift_model=5, budgets=[1])
    request = env.draw_request(jax.random.PRNGKey(3), params)
    q_before, c_before, a_before = env.surface(request, jnp.int32(9), params)
    q_after, c_after, a_after = env.surface(request, jnp.int32(10), params)
    others = np.arange(env.num_arms) != 5
    np.testing.assert_array_equal(q_before[others], q_after[others])
    np.testing.assert_array_equal(c_before[others], c_after[others])
    if shift == "price_cut":                                   # default factor 0.25
        assert float(c_after[5]) == pytest.approx(0.25 * float(c_before[5]), rel=1e-5)
        assert float(q_after[5]) == float(q_before[5])
    elif shift == "quality_regression":                        # ability - 1 logit
        assert float(q_after[5]) < float(q_before[5])
    else:
        assert not bool(a_before[5]) and float(q_before[5]) == 0 and float(c_before[5]) == 0
        assert bool(a_after[5]) and float(q_after[5]) > 0 and float(c_after[5]) > 0


def test_graded_outcome_in_unit_interval():
    env, params, _ = make_env(budgets=[1], outcome="graded")
    _, _, feedback, info = roll(env, params, np.full(200, 3))
    y = np.asarray(feedback.extras["quality"])[:, 0]
    assert y.min() >= 0 and y.max() <= 1 and len(np.unique(y)) > 100
    q = np.asarray(info.metrics["quality"])
    # Beta(10 q, 10 (1 - q)) has sd <= 0.5 / sqrt(11); mean within 4 sd of the mean of 200.
    assert abs(np.mean(y - q)) < 4 * 0.5 / math.sqrt(11 * 200)


def test_config_errors():
    with pytest.raises(ConfigError, match="budgets"):
        routing.resolved_settings(budgets=[1, 2.5])                 # samples must be integers
    with pytest.raises(ConfigError, match="abilities"):
        routing.resolved_settings(models=3)                         # no preset for 3 models
    with pytest.raises(ConfigError, match="shift_model"):
        routing.resolved_settings(shift="price_cut", shift_model=6)
    base = {"run": {"horizon": 10, "seeds": 1}, "env": {"name": "routing"}}
    with pytest.raises(ConfigError, match="arm = 18"):
        config_lib.build({**base, "learner": [{"name": "fixed_arm", "arm": 18}]})
    with pytest.raises(ConfigError, match="arm"):
        config_lib.build({**base, "learner": [{"name": "fixed_arm"}]})


def test_preset_calibration():
    """Mean single-shot quality of the preset models near the targets (0.2 ... 0.78), and the
    per-request oracle sends most traffic to the four cheap models once cost matters."""
    env, _, dynamic = make_env()
    params = jax.vmap(lambda k: env.sample_params(k, dynamic))(
        jax.random.split(jax.random.PRNGKey(7), 64))

    def requests(p, key):
        keys = jax.random.split(key, 256)
        return jax.vmap(lambda k: env.new_state(k, jnp.int32(0), p, 0.0))(keys)

    states = jax.jit(jax.vmap(requests))(params, jax.random.split(jax.random.PRNGKey(8), 64))
    budgets = len(env.budgets)
    # Budget 1 is a single sample (a vote of one): its quality is the single-shot p_m(x).
    single = np.asarray(states.quality[..., ::budgets]).mean(axis=(0, 1))
    # The targets hold on average over instances; each instance's random specialisations move a
    # model's mean by several points, so a 64-instance mean has a standard error of about 0.01
    # (seeds 1-4 at 64 instances x 1024 requests: within 0.026 of the targets). Tolerance 0.04.
    np.testing.assert_allclose(single, routing.TARGET_QUALITY, atol=0.04)
    normalised = states.cost / params.cost_scale[:, None, None]
    for weight in (0.01, 0.1):
        choice = np.asarray(jnp.argmax(states.quality - weight * normalised, axis=-1))
        cheap = (choice // budgets) < 4
        assert cheap.mean() > 0.5, (weight, cheap.mean())


# ---------------------------------------------------------------------------------------------
# Learners.
# ---------------------------------------------------------------------------------------------
def test_oracle_regret_is_zero():
    final = run_config({"budgets": [1, 4], "cost_weight": [0.0, 0.1, 1.0]},
                       [{"name": "oracle"}], horizon=300, seeds=3)
    assert len(final) == 9 and (final["regret"] == 0).all()
    # Its traffic moves to cheaper arms as lambda grows.
    cost = final.groupby("env.cost_weight")["cost"].mean()
    assert cost[0.0] > cost[0.1] > cost[1.0]


def test_cost_ignoring_learner_is_worse_on_the_scalarised_reward():
    """LinUCB on the scalarised reward vs the same index learnt from quality only.

    lambda = 0.3 (a call of the dearest model costs 0.3 quality points), 1,000 rounds, 4 seeds
    (master seed 0). Required: the cost-ignoring router's cumulative regret is at least 2x the
    cost-aware one's, and worse by at least 0.1 objective points per round on average (it keeps
    paying for the dearest model, whose objective is about 0.5 below the oracle's here).
    """
    learners = [{"name": "linucb", "alpha": 0.5},
                {"name": "budgeted_linucb", "label": "ignoring", "target": "quality",
                 "alpha": 0.5}]
    final = run_config({"budgets": [1, 4], "cost_weight": 0.3}, learners, horizon=1000,
                       seeds=4)
    regret = final.groupby("learner")["regret"].mean()
    assert regret["ignoring"] > 2 * regret["linucb"], regret.to_dict()
    assert (regret["ignoring"] - regret["linucb"]) / 1000 > 0.1, regret.to_dict()


@pytest.mark.slow
def test_budgeted_linucb_without_budget_is_linucb():
    """Same index, same keys: without a budget, budgeted_linucb plays exactly like linucb."""
    learners = [{"name": "linucb", "alpha": 0.5},
                {"name": "budgeted_linucb", "label": "aware", "alpha": 0.5}]
    final = run_config({"budgets": [1, 4], "cost_weight": 0.1}, learners, horizon=500, seeds=2)
    a = final[final["learner"] == "linucb"].sort_values("seed")
    b = final[final["learner"] == "aware"].sort_values("seed")
    np.testing.assert_allclose(a["regret"].to_numpy(), b["regret"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(a["cost"].to_numpy(), b["cost"].to_numpy(), rtol=1e-6)


def _learner(name, env, **hp):
    cls = LEARNERS.get(name, "learner")
    values = {s.name: hp.get(s.name, s.default) for s in cls.settings}
    values = cls.settle(values, {"horizon": 100, "num_arms": env.spec.num_arms,
                                 "feature_dim": env.spec.feature_dim})
    learner = cls(env.spec, 100, **{s.name: values[s.name] for s in cls.static_settings()})
    hparams = {s.name: jnp.asarray(values[s.name], jnp.float32) for s in cls.dynamic_settings()
               if values[s.name] is not None}
    return learner, hparams


@pytest.mark.parametrize("name, hp", [("budgeted_linucb", {}),
                                      ("budgeted_linucb", {"target": "quality"}),
                                      ("budgeted_linucb", {"budget": 0.1}),
                                      ("fixed_arm", {"arm": 2}), ("oracle", {})])
def test_masked_feedback_is_ignored(name, hp):
    env = small_env()
    k, d = env.spec.num_arms, env.spec.feature_dim
    learner, hparams = _learner(name, env, **hp)
    rng = np.random.default_rng(0)

    def batch(mask, size):
        return Feedback(action=jnp.asarray(rng.integers(0, k, size), jnp.int32),
                        features=jnp.asarray(rng.normal(size=(size, 1, d)), jnp.float32),
                        reward=jnp.asarray(rng.normal(size=size), jnp.float32),
                        round=jnp.zeros((size,), jnp.int32), mask=jnp.asarray(mask),
                        extras={"quality": jnp.asarray(rng.random(size), jnp.float32),
                                "cost": jnp.asarray(3 * rng.random(size), jnp.float32)})

    obs = Observation(features=jnp.ones((k, d)), t=jnp.int32(0),
                      expected_rewards=jnp.asarray(rng.normal(size=k), jnp.float32))
    update = jax.jit(lambda s, f: learner.update(s, obs, jnp.int32(0), f, hparams))
    # Learn from real items first (mixed mask), so the state is not the initial one.
    state = update(learner.init(jax.random.PRNGKey(2), hparams),
                   batch([True, False, True, True], 4))
    new = update(state, batch([False] * 4, 4))
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(new)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if name == "budgeted_linucb":       # the real items did move it
        fresh = learner.init(jax.random.PRNGKey(2), hparams)
        assert not np.array_equal(np.asarray(state.cost_target), np.asarray(fresh.cost_target))


def test_budgeted_multiplier_rises_when_spend_exceeds_budget():
    env = small_env()
    learner, hparams = _learner("budgeted_linucb", env, budget=0.1, step=0.5)
    lstate = learner.init(jax.random.PRNGKey(0), hparams)
    update = jax.jit(lambda s, f: learner.update(s, None, jnp.int32(5), f, hparams))
    feedback = Feedback(action=jnp.array([5], jnp.int32), features=jnp.ones((1, 1, 9)),
                        reward=jnp.array([0.5]), round=jnp.array([0]), mask=jnp.ones((1,), bool),
                        extras={"quality": jnp.array([1.0]), "cost": jnp.array([1.1])})
    lstate = update(lstate, feedback)
    # mu = clip(0 + 0.5 * (1.1 - 0.1), 0, 1 / 0.1) = 0.5
    assert float(lstate.multiplier) == pytest.approx(0.5)
    cheap = feedback.replace(extras={"quality": jnp.array([1.0]), "cost": jnp.array([0.0])})
    for _ in range(3):
        lstate = update(lstate, cheap)
    assert float(lstate.multiplier) == pytest.approx(0.35)      # 0.5 - 3 * 0.5 * 0.1
    for _ in range(10):
        lstate = update(lstate, cheap)
    assert float(lstate.multiplier) == 0.0                      # clipped at 0
    expensive = feedback.replace(extras={"quality": jnp.array([1.0]), "cost": jnp.array([50.0])})
    lstate = update(lstate, expensive)
    assert float(lstate.multiplier) == pytest.approx(10.0)      # clipped at 1 / budget


def test_routing_learners_need_routing_signals():
    base = {"run": {"horizon": 5, "seeds": 1}, "env": {"name": "bernoulli", "K": 3}}
    with pytest.raises(ConfigError, match="oracle"):
        simulate_experiment(config_lib.build({**base, "learner": [{"name": "oracle"}]}),
                            progress=False)


# ---------------------------------------------------------------------------------------------
# Analysis.
# ---------------------------------------------------------------------------------------------
def test_pareto_front_by_hand():
    cost = [1, 2, 3, 4, 5, 2, 1.5]
    quality = [0.5, 0.7, 0.75, 0.9, 0.85, 0.4, 0.55]
    fc, fq = analysis.pareto_front(cost, quality)
    # Upper hull (1, .5) (2, .7) (4, .9) (5, .85): (1.5, .55) and (3, .75) lie under chords,
    # (2, .4) is dominated, and (5, .85) is past the best quality.
    np.testing.assert_allclose(fc, [1, 2, 4])
    np.testing.assert_allclose(fq, [0.5, 0.7, 0.9])
    assert analysis.front_value(fc, fq, 3.0) == pytest.approx(0.8)
    assert analysis.front_value(fc, fq, 0.5) == 0.0
    assert analysis.front_value(fc, fq, 9.0) == pytest.approx(0.9)
    # Area over [1, 5]: 0.6 * 1 + 0.8 * 2 + 0.9 * 1 = 3.1, AIQ 3.1 / 4; over [0, 5] the first
    # unit is 0: 3.1 / 5.
    assert analysis.area_under_front(fc, fq, 1, 5) == pytest.approx(3.1 / 4)
    assert analysis.area_under_front(fc, fq, 0, 5) == pytest.approx(3.1 / 5)
    # Log cost over [1, 4]: (0.6 + 0.8) * log10(2) / log10(4) = 0.7.
    assert analysis.area_under_front(fc, fq, 1, 4, log_cost=True) == pytest.approx(0.7)
    # Collinear middle points are not vertices; a single point is its own front.
    fc, fq = analysis.pareto_front([1, 2, 3], [0.5, 0.6, 0.7])
    np.testing.assert_allclose(fc, [1, 3])
    fc, fq = analysis.pareto_front([2.0], [0.3])
    assert list(fc) == [2.0] and list(fq) == [0.3]


def synthetic_frame() -> pd.DataFrame:
    """A hand-made results frame: two routers over two lambdas, two single arms, two runs each."""
    rows, run = [], 0
    shares = {"a@k1": 0.0, "a@k2": 0.0, "b@k1": 0.0, "b@k2": 0.0}

    def add(learner, setting, weight, quality, cost, share, arm=None):
        nonlocal run
        for seed in range(2):
            for t, factor in ((10, 0.5), (100, 1.0)):
                row = {"learner": learner, "setting": setting, "run": run, "seed": seed,
                       "t": t, "regret": 0.0, "quality": quality + 0.01 * seed,
                       "cost": cost * factor, "env.cost_weight": weight, "env": "routing",
                       "hp.arm": arm}
                row.update({f"share.{k}": share.get(k, 0.0) for k in shares})
                rows.append(row)
            run += 1
    for w, q, c in ((0.0, 0.9, 0.04), (0.1, 0.8, 0.01)):
        add("linucb", f"linucb | cost_weight={w:g}", w, q, c, {"b@k1": 0.5, "a@k1": 0.5})
        add("oracle", f"oracle | cost_weight={w:g}", w, q + 0.05, c, {"b@k2": 1.0})
    add("fixed_arm", "fixed_arm (arm=0) | cost_weight=0", 0.0, 0.5, 0.001, {"a@k1": 1.0}, 0)
    add("fixed_arm", "fixed_arm (arm=2) | cost_weight=0", 0.0, 0.85, 0.03, {"b@k1": 1.0}, 2)
    return pd.DataFrame(rows)


def test_points_shares_and_headline(tmp_path):
    frame = synthetic_frame()
    points = analysis.cost_quality_points(frame)
    linucb = points[points["router"] == "linucb"].set_index("cost_weight")
    assert linucb.loc[0.1, "quality"] == pytest.approx(0.805)     # mean of 0.80 and 0.81
    assert linucb.loc[0.1, "cost"] == pytest.approx(0.01)         # final t only
    arms = points[points["kind"] == "arm"].set_index("router")
    assert set(arms.index) == {"a@k1", "b@k1"}                    # names from share columns
    share = analysis.traffic_share(frame)
    row = share[(share["router"] == "linucb") & (share["cost_weight"] == 0.1)].iloc[0]
    assert row["a"] == pytest.approx(0.5) and row["b"] == pytest.approx(0.5)
    # Reference: best single model at the smallest budget = b@k1 (0.855, 0.03).
    lines = analysis.headlines(points)
    assert any(line.startswith("oracle (cost_weight=0.1): 100% of b@k1's quality at 33% of its "
                               "cost") for line in lines), lines
    paths = analysis.plot_routing(frame, tmp_path)
    assert {p.name for p in paths} == {"pareto.png", "pareto.pdf", "share.png", "share.pdf"}
    assert all(p.stat().st_size > 1000 for p in paths)


def test_preset_config_builds():
    experiment = config_lib.build(config_lib.load("experiments/configs/routing.toml"))
    env = experiment.groups[0].env
    assert env.num_arms == 18 and env.spec.feature_dim == 9
    labels = {g.runs["learner"].iloc[0] for g in experiment.groups}
    assert {"linucb", "oracle", "uniform", "fixed_arm", "quality_linucb"} <= labels
