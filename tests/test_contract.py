"""The learner contract, checked for EVERY registered learner (``bandits.LEARNERS``).

The registry is read at test time, so learners added later are covered without editing this
file. Each learner is paired with a compatible environment: the natural one for its class
attributes (``action_arity`` 2: ``dueling`` / ``contextual_dueling``; ``needs_features``:
``linear`` / ``logistic`` / ``nonlinear``; else ``bernoulli``), then every other registered one,
keeping the first that the config layer accepts (``check_spec``: arity, features, rewards, and the
feedback extras and expected rewards a learner declares it needs) and that traces.
``EXPLICIT_ENVS`` pins a learner that cannot be paired this way.

With its default hyper-parameters, ``init``, ``act`` and ``update`` are each ``jit``-compiled
over a ``vmap`` of 2 runs (once per learner; with ``tests.reference.cheap_jit``, low XLA
optimisation, as compile time dominates this module), and fed a batch of 3 real feedback items
from the environment (random actions; rewards 1 and 0 so that gain- and loss-based learners
both move). The learner is built with ``feedback_size`` = 3, as under the delay wrapper:
- ``act`` returns a valid action: integers in [0, K), shape () or (2,) for pair actions;
- an all-masked batch leaves the state unchanged, at init and after learning (docs/design.md: "a
  learner that ignores the mask is a bug that tests catch");
- the content of a masked item does not matter (two different random fillings of the middle item
  of [valid, masked, valid] give identical states), while the valid items are learnt from.
The neural learners' contract is marked slow (compile time; see ``_params``).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bandits  # noqa: F401  (registers every learner)
import envs  # noqa: F401  (registers every environment)
from bandits.core import LEARNERS
from envs.core import ENVS, ConfigError, Feedback
from experiments import config as config_lib
from tests.reference import cheap_jit

RUNS = 2          # vmapped runs
ITEMS = 3         # real feedback items in the batch (one per environment round)
HORIZON = 50

# Learners that cannot be paired from their class attributes alone: name -> environment table.
EXPLICIT_ENVS: dict[str, dict] = {}
# Learners whose update, by their paper, also records the round's own action whatever feedback
# arrives (so an all-masked batch may change the state, but only through obs and action):
# OTFLinUCB / OTFLinTS (Vernade et al. 2020) add every played action to V at play time.
RECORDS_PLAYED_ACTION = {"otf_linucb", "otf_lints"}
# Baselines that learn nothing by design (their state, if any, ignores rewards).
NOT_LEARNING = {"oracle", "fixed_arm"}


def required_hparams(learner_cls) -> dict:
    """Values for settings that have no default (e.g. fixed_arm's ``arm``): the lowest allowed."""
    out = {}
    for s in learner_cls.settings:
        if s.default is None and not s.optional:
            if s.choices:
                out[s.name] = s.choices[0]
            elif s.kind in (int, float):
                out[s.name] = s.kind(s.low if s.low is not None and not s.low_open else 1)
    return out


def candidate_envs(learner_cls) -> list[dict]:
    """Environment tables to try, in order: the natural ones first, then every registered one."""
    if learner_cls.name in EXPLICIT_ENVS:
        return [EXPLICIT_ENVS[learner_cls.name]]
    if learner_cls.action_arity == 2:
        first = (["contextual_dueling", "dueling"] if learner_cls.needs_features
                 else ["dueling", "contextual_dueling"])
    elif learner_cls.needs_features:
        first = ["linear", "logistic", "nonlinear"]
    else:
        first = ["bernoulli", "gaussian"]
    names = [n for n in first if n in ENVS] + [n for n in ENVS.names() if n not in first]
    return [{"name": n} for n in names]


# ---------------------------------------------------------------------------------------------
# One environment's data, shared by every learner paired with it (compiled once per env).
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class EnvData:
    env: object
    group: object          # the config group of the first learner built on this env
    obs: object            # [RUNS] observation of round ITEMS
    feedback: Feedback     # [RUNS, B] real items, B = ITEMS x the env's own batch size


_ENV_DATA: dict[str, EnvData] = {}


def random_actions(rng: np.random.Generator, spec) -> np.ndarray:
    """[ITEMS, RUNS] arms, or [ITEMS, RUNS, 2] distinct pairs for dueling environments."""
    k = spec.num_arms
    if spec.action_arity == 1:
        return rng.integers(0, k, (ITEMS, RUNS)).astype(np.int32)
    return np.stack([[rng.permutation(k)[:2] for _ in range(RUNS)]
                     for _ in range(ITEMS)]).astype(np.int32)


def env_rollout(env):
    """(instance keys, settings, run keys, actions) -> (obs of round ITEMS, [ITEMS] feedback)."""
    def one(instance_key, env_settings, run_key, actions):
        params = env.sample_params(instance_key, env_settings)
        keys = jax.random.split(run_key, 2 * ITEMS + 2)
        state = env.reset(keys[0], params)
        items = []
        for t in range(ITEMS):
            env.observe(keys[1 + 2 * t], state, params)
            state, feedback, _ = env.step(keys[2 + 2 * t], state, actions[t], params)
            items.append(feedback)
        obs = env.observe(keys[-1], state, params).replace(t=jnp.int32(ITEMS))
        return obs, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=0), *items)

    return jax.vmap(one)


def env_inputs(group):
    actions = random_actions(np.random.default_rng(0), group.env.spec)
    return (jnp.asarray(group.instance_keys), group.env_settings, jnp.asarray(group.run_keys),
            jnp.asarray(np.swapaxes(actions, 0, 1)))


def env_data(table: dict, group) -> EnvData:
    """The environment's observation and a batch of its real feedback (one compile per env)."""
    key = repr(sorted(table.items()))
    if key not in _ENV_DATA:
        obs, feedback = cheap_jit(env_rollout(group.env))(*env_inputs(group))
        _ENV_DATA[key] = EnvData(env=group.env, group=group, obs=obs,
                                 feedback=jax.device_get(feedback))
    return _ENV_DATA[key]


# ---------------------------------------------------------------------------------------------
# Feedback batches built on the host.
# ---------------------------------------------------------------------------------------------
def with_rewards_both_ways(feedback: Feedback) -> Feedback:
    """Rewards 1, ..., 1, 0: the first and last items (valid in every batch used here) pay 1
    and 0, so gain-based (EXP3) and loss-based (EXP3-IX) learners both have something to learn."""
    reward = np.ones_like(np.asarray(feedback.reward))
    reward[:, -1] = 0.0
    return feedback.replace(reward=reward)


def random_filling(rng: np.random.Generator, feedback: Feedback, num_arms: int) -> Feedback:
    """Random content with the shapes and dtypes of ``feedback`` (valid arms, finite values)."""
    action = np.asarray(feedback.action)
    features = np.asarray(feedback.features)
    return feedback.replace(
        action=rng.integers(0, num_arms, action.shape).astype(action.dtype),
        features=(3.0 * rng.standard_normal(features.shape)).astype(features.dtype),
        reward=rng.integers(0, 2, np.shape(feedback.reward)).astype(np.float32),
        round=rng.integers(0, ITEMS, np.shape(feedback.round)).astype(np.int32),
        extras={k: rng.random(np.shape(v)).astype(np.float32)
                for k, v in feedback.extras.items()})


def with_item(feedback: Feedback, filling: Feedback, index: int, mask: np.ndarray) -> Feedback:
    """``feedback`` with item ``index`` taken from ``filling`` and the given mask ([B])."""
    def put(a, b):
        a = np.array(a)
        a[:, index] = np.asarray(b)[:, index]
        return a
    out = jax.tree_util.tree_map(put, feedback, filling)
    return out.replace(mask=np.broadcast_to(mask, np.shape(feedback.mask)).copy())


# ---------------------------------------------------------------------------------------------
# State comparison.
# ---------------------------------------------------------------------------------------------
def leaves(tree) -> list[tuple[str, np.ndarray]]:
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out.append((jax.tree_util.keystr(path), np.asarray(leaf)))
    return out


def differences(a, b) -> list[str]:
    """Paths of the leaves where two state trees differ (NaN equals NaN)."""
    if jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b):
        return ["<tree structure>"]
    out = []
    for (path, x), (_, y) in zip(leaves(a), leaves(b)):
        same = x.shape == y.shape and np.array_equal(
            x, y, equal_nan=bool(np.issubdtype(x.dtype, np.inexact)))
        if not same:
            out.append(path or "<root>")
    return out


# ---------------------------------------------------------------------------------------------
# One learner: pair, compile, run the feedback batches.
# ---------------------------------------------------------------------------------------------
_OUTCOMES: dict[str, dict] = {}


def pair(name: str):
    """(EnvData, learner built for a batch of the env's real items) for learner ``name``."""
    learner_cls = LEARNERS.get(name, "learner")
    errors = []
    for table in candidate_envs(learner_cls):
        config = {"run": {"horizon": HORIZON, "seeds": RUNS, "record": 5},
                  "env": dict(table), "learner": [{"name": name, **required_hparams(learner_cls)}]}
        try:
            group = config_lib.build(config).groups[0]
            learner = group.learner
            # Trace (no compile) the environment and the learner on its outputs (a learner
            # needing signals this environment lacks was refused by build: the next
            # environment is tried).
            obs, feedback = jax.eval_shape(env_rollout(group.env), *env_inputs(group))
            static = {s.name: getattr(learner, s.name) for s in learner_cls.static_settings()}
            spec = dataclasses.replace(group.env.spec, feedback_size=int(feedback.mask.shape[1]))
            learner = learner_cls(spec, HORIZON, **static)
            keys = jnp.asarray(group.run_keys)
            state = jax.eval_shape(jax.vmap(learner.init), keys, group.hparams)
            action = jax.eval_shape(jax.vmap(learner.act), keys, state, obs, group.hparams)
            jax.eval_shape(jax.vmap(learner.update), state, obs, action, feedback,
                           group.hparams)
            data = env_data(table, group)
        except ConfigError as error:
            errors.append(f"{table['name']}: {error}")
            continue
        return data, group, learner, table
    raise AssertionError(f"no registered environment accepts learner {name!r}; add it to "
                         f"EXPLICIT_ENVS. Tried: " + " | ".join(errors))


def outcome(name: str) -> dict:
    """Everything the tests of one learner look at; computed once per learner."""
    if name in _OUTCOMES:
        return _OUTCOMES[name]
    data, group, learner, table = pair(name)
    num_arms = data.env.spec.num_arms
    init = cheap_jit(jax.vmap(learner.init))
    act = cheap_jit(jax.vmap(learner.act))
    update = cheap_jit(jax.vmap(learner.update))
    run_keys, hparams, obs = jnp.asarray(group.run_keys), group.hparams, data.obs

    rng = np.random.default_rng(1)
    real = with_rewards_both_ways(data.feedback)
    size = np.shape(real.mask)[1]
    none = np.zeros(size, bool)
    middle_masked = np.ones(size, bool)
    middle_masked[size // 2] = False

    s0 = init(run_keys, hparams)
    a0 = act(jax.vmap(jax.random.fold_in, (0, None))(run_keys, 1), s0, obs, hparams)
    s0_none = update(s0, obs, a0, random_filling(rng, real, num_arms).replace(
        mask=np.zeros_like(real.mask)), hparams)
    s1 = update(s0, obs, a0, real, hparams)
    a1 = act(jax.vmap(jax.random.fold_in, (0, None))(run_keys, 2), s1, obs, hparams)
    s1_none = [update(s1, obs, a1, random_filling(rng, real, num_arms).replace(
        mask=np.broadcast_to(none, np.shape(real.mask)).copy()), hparams) for _ in range(2)]
    mixed = [update(s1, obs, a1, with_item(real, random_filling(rng, real, num_arms),
                                           size // 2, middle_masked), hparams)
             for _ in range(2)]
    out = {"table": table, "spec": data.env.spec, "actions": np.stack([a0, a1], axis=1),
           "s0": s0, "s0_none": s0_none, "s1": s1, "s1_none": s1_none[0],
           "s1_none_other": s1_none[1],
           "mixed_a": mixed[0], "mixed_b": mixed[1]}
    _OUTCOMES[name] = jax.device_get(out)
    return _OUTCOMES[name]


def _compiles_slowly(name: str) -> bool:
    """Neural learners (bandits/neural.py and subclasses): 3-4 s of compile each here."""
    try:
        from bandits.neural import NeuralLearner
    except ImportError:
        return False
    return issubclass(LEARNERS.get(name, "learner"), NeuralLearner)


# The six neural learners cost about 20 s of compilation together (2-core CPU), a fifth of this
# suite's time budget, and their mask handling is also checked by the default tests of their
# family (tests/test_neural.py, tests/test_dueling.py); their contract runs with the slow tests
# (`make test-slow`). Every other registered learner is checked by default.
def _params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if _compiles_slowly(n) else n for n in names]


LEARNER_NAMES = _params(LEARNERS.names())


@pytest.mark.parametrize("name", LEARNER_NAMES)
def test_act_returns_a_valid_action(name):
    out = outcome(name)
    spec, actions = out["spec"], np.asarray(out["actions"])
    assert np.issubdtype(actions.dtype, np.integer), f"{name} acts with dtype {actions.dtype}"
    arity_shape = () if spec.action_arity == 1 else (spec.action_arity,)
    assert actions.shape == (RUNS, 2) + arity_shape, (
        f"{name} on {out['table']['name']}: action shape {actions.shape[2:]}, expected "
        f"{arity_shape}")
    assert np.all((actions >= 0) & (actions < spec.num_arms))


@pytest.mark.parametrize("name", LEARNER_NAMES)
def test_all_masked_feedback_leaves_state_unchanged(name):
    out = outcome(name)
    where = f"{name} on {out['table']['name']}"
    changed = differences(out["s1_none"], out["s1_none_other"])
    assert not changed, f"{where}: the content of masked-out items changed the state at {changed}"
    if name in RECORDS_PLAYED_ACTION:
        return
    changed = differences(out["s0_none"], out["s0"])
    assert not changed, f"{where}: masked-out feedback changed the initial state at {changed}"
    changed = differences(out["s1_none"], out["s1"])
    assert not changed, f"{where}: masked-out feedback changed a learnt state at {changed}"


@pytest.mark.parametrize("name", LEARNER_NAMES)
def test_masked_item_content_is_ignored(name):
    out = outcome(name)
    changed = differences(out["mixed_a"], out["mixed_b"])
    assert not changed, (f"{name} on {out['table']['name']}: the content of a masked item "
                         f"changed the state at {changed}")


@pytest.mark.parametrize("name", _params([n for n in LEARNERS.names() if n not in NOT_LEARNING]))
def test_valid_feedback_is_learnt_from(name):
    # Guards the two tests above against a vacuous pass (an update that ignores everything).
    out = outcome(name)
    assert differences(out["s1"], out["s0"]), (
        f"{name} on {out['table']['name']}: {ITEMS} valid feedback items left the state "
        f"unchanged")
    assert differences(out["mixed_a"], out["s1"]), (
        f"{name} on {out['table']['name']}: two valid items among a masked one left the "
        f"state unchanged")
