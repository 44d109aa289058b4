"""The environment contract, checked for EVERY registered environment (``envs.ENVS``) and for the
delay wrapper around a plain one (docs/design.md, "The two protocols").

The registry is read at test time, so environments added later are covered without editing this
file (``SMALL`` only shrinks the static settings of the known ones, to keep compiles cheap; an
environment missing from it runs with its defaults). Everything goes through public entry
points: ``experiments.config.build`` for the environment object, its dynamic settings and the
keys, then the environment's own ``sample_params`` / ``reset`` / ``observe`` / ``step`` in one
``lax.scan`` over ``ROUNDS`` rounds, ``vmap``ped over ``RUNS`` runs (different seeds, one
instance) and ``jit``-compiled (``tests.reference.cheap_jit``). The actions are given: in round
t every run plays arm t mod K (pairs (t mod K, (t + 1) mod K) for dueling environments), so every
arm is played and the runs differ by their keys only. Checked:
- shapes and dtypes match the declared ``EnvSpec``: observation features [K, d]; a ``Feedback``
  batch of ``feedback_size`` items with [B] or [B, action_arity] actions, [B, action_arity, d]
  features, [B] rewards, rounds, extras and a boolean mask; the extras are the declared
  ``feedback_extras`` and the expected rewards are filled iff ``expected_rewards`` says so;
- the per-round pseudo-regret is finite and >= 0 (so the cumulative regret never decreases), and
  every metric is finite; an environment declaring ``monotone_regret = False`` (a policy regret
  against a simulated benchmark policy) only needs a cumulative regret >= 0; an environment
  replaying a log, ``logged_feedback``, reports an estimate that may be negative;
- the mask marks exactly the real items: an immediate environment returns one valid item, the
  action just played in this round (a replayed log: that item, valid only when it matched); the delay wrapper's valid items are actions played in
  earlier (or this) rounds, each at most once, and the rest are masked;
- ``jit`` and ``vmap``: a run alone (compiled without ``vmap``) gives the numbers of its row in
  the batch;
- determinism: the same config gives the same keys and the same outputs; different seeds give
  different draws.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bandits  # noqa: F401  (registers every learner)
import envs  # noqa: F401  (registers every environment)
from bandits.core import LEARNERS
from envs.core import ENVS, ConfigError
from experiments import config as config_lib
from tests.reference import cheap_jit, environment_trace

RUNS = 3
ROUNDS = 24
# Small static settings for the registered environments (compile time dominates this module).
SMALL: dict[str, dict] = {
    "bernoulli": {"K": 3},
    "gaussian": {"K": 3},
    "dueling": {"K": 4},
    "contextual_dueling": {"K": 4, "d": 3, "hidden": 4},
    "linear": {"K": 4, "d": 3},
    "logistic": {"K": 4, "d": 3},
    "nonlinear": {"K": 3, "d": 3, "mlp_width": 4, "mlp_layers": 1},
    "rotting": {"K": 3},
    "recovering": {"K": 3},
    "last_switch": {"K": 3},
    "piecewise": {"K": 3, "change_points": [5, 12]},
    "drifting": {"K": 3, "drift": "random_walk", "step": 0.05},
    "routing": {"models": 3, "budgets": [1.0, 4.0], "dim": 4, "topics": 4,
                "abilities": [0.0, 0.5, 1.0], "price_in": [0.1, 1.0, 3.0],
                "price_out": [0.4, 4.0, 15.0]},
    # The small table checked into tests/data (no default table: path or preset is required).
    "dataset": {"path": str(Path(__file__).parent / "data" / "classes.csv"), "label": "class",
                "sampling": "permutation"},
    # The small log checked into tests/data (uniform logging over 3 arms).
    "replay": {"path": str(Path(__file__).parent / "data" / "logged.csv")},
}
# The delay wrapper around a plain environment: geometric delays of mean 2 in a small buffer.
DELAYED = {"name": "bernoulli", "K": 3,
           "delay": {"dist": "geometric", "mean": 2.0, "capacity": 16, "batch": 4}}
# Learners tried, in order, to complete a config (the learner itself is never run).
FIRST_LEARNERS = ("uniform", "uniform_pair")


def tables() -> list[tuple[str, dict]]:
    out = [(name, {"name": name, **SMALL.get(name, {})}) for name in ENVS.names()]
    return out + [("delay(bernoulli)", DELAYED)]


TABLES = tables()


def build(table: dict) -> config_lib.Group:
    """The config layer's group for ``table``: RUNS seeds, one instance, any learner it accepts."""
    names = [n for n in FIRST_LEARNERS if n in LEARNERS] + [
        n for n in LEARNERS.names() if n not in FIRST_LEARNERS]
    errors = []
    for name in names:
        config = {"run": {"horizon": ROUNDS, "seeds": RUNS, "record": 4},
                  "env": table, "learner": [{"name": name}]}
        try:
            return config_lib.build(config).groups[0]
        except ConfigError as error:
            errors.append(f"{name}: {error}")
    raise AssertionError(f"no learner accepts environment {table}: " + " | ".join(errors[:5]))


def planned_actions(spec) -> np.ndarray:
    """[ROUNDS] arms t mod K, or [ROUNDS, 2] pairs (t mod K, (t + 1) mod K)."""
    t = np.arange(ROUNDS)
    if spec.action_arity == 1:
        return (t % spec.num_arms).astype(np.int32)
    return np.stack([t % spec.num_arms, (t + 1) % spec.num_arms], axis=1).astype(np.int32)


def rollout(env):
    """f(run key, instance key, settings, actions) -> per round (obs, feedback, info) of one run,
    with the runner's key scheme (``tests.reference.environment_trace``)."""
    trace = environment_trace(env)

    def one(run_key, instance_key, settings, actions):
        return trace(run_key, instance_key, settings, actions)[1:]

    return one


_OUTCOMES: dict[str, dict] = {}


def outcome(label: str, table: dict) -> dict:
    """Rollouts of one environment (computed once per environment)."""
    if label in _OUTCOMES:
        return _OUTCOMES[label]
    group = build(table)
    env = group.env
    actions = planned_actions(env.spec)
    batched = np.broadcast_to(actions, (RUNS,) + actions.shape)
    inputs = (jnp.asarray(group.run_keys), jnp.asarray(group.instance_keys), group.env_settings,
              jnp.asarray(batched))
    batched_rollout = cheap_jit(jax.vmap(rollout(env)))
    batch = jax.device_get(batched_rollout(*inputs))
    alone = jax.device_get(cheap_jit(rollout(env))(
        *jax.tree_util.tree_map(lambda x: x[RUNS - 1], inputs)))
    again = build(table)
    same_keys = (np.array_equal(again.run_keys, group.run_keys)
                 and np.array_equal(again.instance_keys, group.instance_keys))
    repeat = jax.device_get(batched_rollout(
        jnp.asarray(again.run_keys), jnp.asarray(again.instance_keys), again.env_settings,
        jnp.asarray(batched)))
    _OUTCOMES[label] = {"spec": env.spec, "env": env, "actions": actions, "batch": batch,
                        "alone": alone, "repeat": repeat, "same_keys": same_keys}
    return _OUTCOMES[label]


PARAMS = [pytest.param(label, table, id=label) for label, table in TABLES]


def _leaves(tree) -> list[tuple[str, np.ndarray]]:
    return [(jax.tree_util.keystr(path), np.asarray(leaf))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


@pytest.mark.parametrize("label, table", PARAMS)
def test_shapes_match_the_spec(label, table):
    out = outcome(label, table)
    spec = out["spec"]
    obs, feedback, info = out["batch"]
    k, d, arity, size = spec.num_arms, spec.feature_dim, spec.action_arity, spec.feedback_size
    lead = (RUNS, ROUNDS)
    assert np.shape(obs.features) == lead + (k, d), f"{label}: observation features"
    if obs.expected_rewards is not None:
        assert np.shape(obs.expected_rewards) == lead + (k,), f"{label}: expected rewards"
    action_shape = (size,) if arity == 1 else (size, arity)
    assert np.shape(feedback.action) == lead + action_shape, f"{label}: feedback actions"
    assert np.issubdtype(np.asarray(feedback.action).dtype, np.integer)
    assert np.shape(feedback.features) == lead + (size, arity, d), f"{label}: feedback features"
    for name in ("reward", "round", "mask"):
        assert np.shape(getattr(feedback, name)) == lead + (size,), f"{label}: feedback.{name}"
    for name, value in feedback.extras.items():
        assert np.shape(value) == lead + (size,), f"{label}: feedback.extras[{name!r}]"
    # What the spec declares it provides is what it provides (learners are checked against it
    # at config time, ``Learner.check_spec``).
    assert set(feedback.extras) == set(spec.feedback_extras), (
        f"{label}: feedback extras {sorted(feedback.extras)}, declared {spec.feedback_extras}")
    assert (obs.expected_rewards is not None) == spec.expected_rewards, (
        f"{label}: Observation.expected_rewards and EnvSpec.expected_rewards disagree")
    assert np.asarray(feedback.mask).dtype == np.bool_, f"{label}: the mask is not boolean"
    assert np.asarray(feedback.reward).dtype == np.float32
    assert np.shape(info.regret) == lead
    assert set(info.metrics) == set(out["env"].metric_names), f"{label}: metric names"
    for name, value in info.metrics.items():
        assert np.shape(value) == lead, f"{label}: metric {name!r}"


@pytest.mark.parametrize("label, table", PARAMS)
def test_regret_is_nonnegative_and_metrics_finite(label, table):
    out = outcome(label, table)
    _, _, info = out["batch"]
    regret = np.asarray(info.regret, np.float64)
    assert np.all(np.isfinite(regret)), f"{label}: non-finite regret"
    if out["env"].logged_feedback:
        pass            # an estimate of regret from a log: a single term may be negative
    elif out["env"].monotone_regret:
        assert np.all(regret >= -1e-6), f"{label}: negative per-round regret {regret.min()}"
        assert np.all(np.diff(np.cumsum(regret, axis=1), axis=1) >= -1e-6)
    else:   # a policy regret against a benchmark policy: the sum is >= 0, not monotone
        assert np.all(np.cumsum(regret, axis=1) >= -1e-5), f"{label}: negative regret"
    for name, value in info.metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), f"{label}: metric {name!r} not finite"


@pytest.mark.parametrize("label, table", PARAMS)
def test_mask_marks_exactly_the_real_items(label, table):
    out = outcome(label, table)
    _, feedback, _ = out["batch"]
    actions = out["actions"]
    mask = np.asarray(feedback.mask)
    action, rounds = np.asarray(feedback.action), np.asarray(feedback.round)
    reward = np.asarray(feedback.reward)
    assert np.all(np.isfinite(reward[mask])), f"{label}: a valid item has a non-finite reward"
    if out["env"].logged_feedback:
        # A replayed log: the one item is this round's action, valid exactly when it matched
        # the logged arm (so some rounds are valid and some are not).
        assert np.array_equal(rounds[..., 0], np.broadcast_to(np.arange(ROUNDS), (RUNS, ROUNDS)))
        assert np.array_equal(action[:, :, 0], np.broadcast_to(actions, action[:, :, 0].shape))
        assert mask.any() and not mask.all(), f"{label}: every round matched, or none"
        assert np.all(reward[~mask] == 0.0), f"{label}: a masked item carries a reward"
        return
    if out["spec"].feedback_size == 1 and "delay" not in table:
        assert mask.all(), f"{label}: an immediate environment masked its only item"
        assert np.array_equal(rounds[..., 0], np.broadcast_to(np.arange(ROUNDS), (RUNS, ROUNDS)))
        assert np.array_equal(action[:, :, 0], np.broadcast_to(actions, action[:, :, 0].shape))
        return
    # Delayed: each valid item is an action played in an earlier round or this one, at most once.
    t = np.arange(ROUNDS)[None, :, None]
    assert np.all(~mask | ((rounds >= 0) & (rounds <= t))), f"{label}: an item from the future"
    for run in range(RUNS):
        valid_rounds = rounds[run][mask[run]]
        assert len(set(valid_rounds.tolist())) == len(valid_rounds), f"{label}: item twice"
        assert np.array_equal(action[run][mask[run]], actions[valid_rounds])
    assert mask.any() and not mask.all(), f"{label}: the delay test saw no (masked) item"


@pytest.mark.parametrize("label, table", PARAMS)
def test_a_run_alone_equals_its_row_in_the_vmapped_batch(label, table):
    out = outcome(label, table)
    batch = jax.tree_util.tree_map(lambda x: x[RUNS - 1], out["batch"])
    for (path, a), (_, b) in zip(_leaves(batch), _leaves(out["alone"])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"{label}: {path}")


@pytest.mark.parametrize("label, table", PARAMS)
def test_same_keys_same_draws_other_keys_other_draws(label, table):
    out = outcome(label, table)
    assert out["same_keys"], f"{label}: the same config gave other keys"
    for (path, a), (_, b) in zip(_leaves(out["batch"]), _leaves(out["repeat"])):
        assert np.array_equal(a, b, equal_nan=np.issubdtype(a.dtype, np.inexact)), (
            f"{label}: the same keys gave other outputs at {path}")
    obs, feedback, _ = out["batch"]
    draws = [np.asarray(obs.features), np.asarray(feedback.reward)] + [
        np.asarray(v) for v in feedback.extras.values()]
    for first in range(RUNS):
        for second in range(first + 1, RUNS):
            assert any(not np.array_equal(x[first], x[second]) for x in draws), (
                f"{label}: runs {first} and {second} (other seeds) drew the same observations "
                f"and rewards")
