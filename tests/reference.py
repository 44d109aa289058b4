"""Test helpers, and the NumPy references the tests compare the JAX learners against.

The references themselves (UCB1, Thompson sampling, KL-UCB, epsilon-greedy, EXP3, LinUCB, the
uniform policy's expected regret) live in ``experiments/references.py``, one set shared with
``banditjax bench``, each written from its paper; they are imported here so that tests can say
``reference.ucb1(...)``.

The helpers:
- ``standard_error``: of a sample mean;
- ``cheap_jit``: ``jax.jit`` compiled without XLA's expensive backend optimisations, for functions
  the tests compile themselves (compile time dominates the suite);
- ``run_alone``: one run of the runner's own per-run functions as a plain ``lax.scan`` over every
  round, no ``vmap``, no chunks: what a batched, chunked ``simulate`` must reproduce exactly;
- ``environment_trace``: an environment alone under given actions, with the runner's keys.
"""
from __future__ import annotations

import numpy as np

from experiments.references import (epsilon_greedy, etc, exp3, exp3_gamma,  # noqa: F401
                                    instances, klucb, linucb, thompson, ucb1,
                                    uniform_expected_regret, uniform_instances)


def standard_error(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    return float(values.std(ddof=1) / np.sqrt(values.shape[0]))


# ---------------------------------------------------------------------------------------------
# Compilation and single runs.
# ---------------------------------------------------------------------------------------------
CHEAP_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def cheap_jit(fn):
    """``jax.jit(fn)``, compiled with ``CHEAP_COMPILE`` once per input signature.

    For checks of what a function computes, not of how fast: about half the compile time of the
    default optimisation level on CPU, the same semantics. (Not for the runner, whose compiled
    code the tests must exercise as users run it.)
    """
    import jax

    compiled = {}

    def call(*args):
        flat, tree = jax.tree_util.tree_flatten(args)
        signature = (tree, tuple((np.shape(x), str(x.dtype if hasattr(x, "dtype") else
                                                   np.result_type(x)),
                                  getattr(x, "weak_type", False)) for x in flat))
        if signature not in compiled:
            compiled[signature] = jax.jit(fn).lower(*args).compile(CHEAP_COMPILE)
        return compiled[signature](*args)

    return call


def run_alone(env, learner, horizon: int):
    """f(run_key, instance_key, env_settings, hparams) -> [horizon] cumulative regret of one run.

    ``experiments.runner.Simulation.run_alone``: the runner's per-run initialisation and round
    (so the same keys and the same arithmetic) in one ``lax.scan`` over all rounds, without
    ``vmap``.
    """
    from experiments.runner import Simulation

    sim = Simulation(env, learner, horizon, np.arange(1, horizon + 1), horizon)

    def one_run(run_key, instance_key, env_settings, hparams):
        return sim.run_alone(run_key, instance_key, env_settings, hparams)[:, 0]

    return cheap_jit(one_run)


def environment_trace(env):
    """f(run key, instance key, settings, actions [T]) -> per round (state before the step,
    observation, feedback, step info) of one run of ``env`` playing ``actions``, with the
    runner's key scheme (envs/randomness.py); vmap it for a batch of runs."""
    import jax
    import jax.numpy as jnp

    from envs import randomness

    def one(run_key, instance_key, settings, actions):
        params = env.sample_params(instance_key, settings)
        reset_key, _, round_key = jax.random.split(run_key, 3)
        state = env.reset(reset_key, params)

        def body(state, inputs):
            t, action = inputs
            obs = env.observe(randomness.consumer_key(round_key, t, randomness.OBSERVE), state,
                              params).replace(t=t)
            new, feedback, info = env.step(
                randomness.consumer_key(round_key, t, randomness.STEP), state, action, params)
            return new, (state, obs, feedback, info)

        actions = jnp.asarray(actions, jnp.int32)
        rounds = jnp.arange(actions.shape[0], dtype=jnp.int32)
        return jax.lax.scan(body, state, (rounds, actions))[1]

    return one
