"""Independent NumPy reference implementations used by the tests.

Written from the papers, not from ``bandits/mab.py``: a loop over rounds, vectorised over runs,
with NumPy's own generator (so the only thing shared with the JAX code is the algorithm).

- UCB1: Auer, Cesa-Bianchi and Fischer (2002), fig. 1: play every arm once, then the arm with
  the largest mean + sqrt(c ln t / n) (c = 2 in the paper), t the 1-based round index.
- Beta-Bernoulli Thompson sampling: Agrawal and Goyal (2012), Algorithm 1: sample
  theta_a ~ Beta(S_a + 1, F_a + 1) and play the largest.
- Explore-then-commit: Lattimore and Szepesvari (2020), Bandit Algorithms, Algorithm 1 (ch. 6):
  A_t = (t mod K) + 1 for t <= m K, then argmax_i mu_i(m K), the empirical means after the m K
  exploration rounds, for the rest of the run.
- Uniform: the expected pseudo-regret of a uniformly random arm is T * (mu* - mean(mu)).

Ties are broken uniformly at random (as the package's convention), rewards are Bernoulli.

Also two test helpers: ``cheap_jit`` (``jax.jit`` compiled without XLA's expensive backend
optimisations, for functions the tests compile themselves: compile time dominates the suite) and
``run_alone`` (one run of the runner's own per-run functions as a plain ``lax.scan`` over every
round, no ``vmap``, no chunks: what a batched, chunked ``simulate`` must reproduce exactly).
"""
from __future__ import annotations

import numpy as np


def random_argmax(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Per row of ``values`` ([R, K]), an index of a maximum, uniform among ties."""
    is_max = values >= values.max(axis=1, keepdims=True)
    noise = rng.random(values.shape)
    return np.argmax(np.where(is_max, noise, -1.0), axis=1)


def _play(means: np.ndarray, arms: np.ndarray, rng: np.random.Generator):
    """Bernoulli rewards of the chosen arms and their pseudo-regret."""
    mu = means[arms]
    rewards = (rng.random(arms.shape) < mu).astype(np.float64)
    return rewards, means.max() - mu


def ucb1_final_regret(means, horizon: int, runs: int, seed: int, c: float = 2.0) -> np.ndarray:
    """Final cumulative pseudo-regret of UCB1 in each of ``runs`` independent runs ([runs])."""
    means = np.asarray(means, np.float64)
    rng = np.random.default_rng(seed)
    k = means.shape[0]
    counts = np.zeros((runs, k))
    sums = np.zeros((runs, k))
    regret = np.zeros(runs)
    rows = np.arange(runs)
    for t in range(1, horizon + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            index = sums / counts + np.sqrt(c * np.log(t) / counts)
        index = np.where(counts > 0, index, np.inf)
        arms = random_argmax(rng, index)
        rewards, step_regret = _play(means, arms, rng)
        counts[rows, arms] += 1
        sums[rows, arms] += rewards
        regret += step_regret
    return regret


def thompson_final_regret(means, horizon: int, runs: int, seed: int, prior_alpha: float = 1.0,
                          prior_beta: float = 1.0) -> np.ndarray:
    """Final cumulative pseudo-regret of Beta-Bernoulli Thompson sampling per run ([runs])."""
    means = np.asarray(means, np.float64)
    rng = np.random.default_rng(seed)
    k = means.shape[0]
    successes = np.zeros((runs, k))
    failures = np.zeros((runs, k))
    regret = np.zeros(runs)
    rows = np.arange(runs)
    for _ in range(horizon):
        theta = rng.beta(prior_alpha + successes, prior_beta + failures)
        arms = np.argmax(theta, axis=1)            # ties have probability 0
        rewards, step_regret = _play(means, arms, rng)
        successes[rows, arms] += rewards
        failures[rows, arms] += 1.0 - rewards
        regret += step_regret
    return regret


def etc_final_regret(means, horizon: int, runs: int, seed: int, m: int) -> np.ndarray:
    """Final cumulative pseudo-regret of explore-then-commit per run ([runs]).

    Rounds t = 1, ..., n (1-based, as in the book): arm (t mod K) + 1 (1-based arms) while
    t <= m K; at t = m K + 1 the arm with the largest empirical mean (ties uniformly at random)
    is chosen and played until n. If m K >= n the run never leaves exploration.
    """
    means = np.asarray(means, np.float64)
    rng = np.random.default_rng(seed)
    k = means.shape[0]
    counts = np.zeros((runs, k))
    sums = np.zeros((runs, k))
    regret = np.zeros(runs)
    rows = np.arange(runs)
    committed = None
    for t in range(1, horizon + 1):
        if t <= m * k:
            arms = np.full(runs, ((t % k) + 1) - 1)        # (t mod k) + 1, as a 0-based index
            rewards, step_regret = _play(means, arms, rng)
            counts[rows, arms] += 1
            sums[rows, arms] += rewards
        else:
            if committed is None:
                committed = random_argmax(rng, sums / counts)
            step_regret = means.max() - means[committed]
        regret += step_regret
    return regret


def uniform_expected_regret(means, horizon: int) -> float:
    """E[regret] of the uniform-random policy: T * (max mean - average mean)."""
    means = np.asarray(means, np.float64)
    return float(horizon * (means.max() - means.mean()))


def standard_error(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    return float(values.std(ddof=1) / np.sqrt(values.shape[0]))


# ---------------------------------------------------------------------------------------------
# Test helper.
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

    Uses ``experiments.runner.Simulation``'s per-run initialisation and round (so the same keys
    and the same arithmetic) in one ``lax.scan`` over all rounds, without ``vmap``.
    """
    import jax
    import jax.numpy as jnp

    from experiments.runner import Simulation

    sim = Simulation(env, learner, horizon, np.arange(1, horizon + 1), horizon)

    def one_run(run_key, instance_key, env_settings, hparams):
        carry, consts = sim._init_run(run_key, instance_key, env_settings, hparams)

        def body(state, t):
            env_state, learner_state, sums = sim._round(*state, consts, t)
            return (env_state, learner_state, sums), sums[0]

        state = (carry.env_state, carry.learner_state, carry.sums)
        return jax.lax.scan(body, state, jnp.arange(horizon, dtype=jnp.int32))[1]

    return cheap_jit(one_run)
