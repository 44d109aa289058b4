"""Samplers of envs/distributions.py against SciPy, and their batching contract.

- Kolmogorov-Smirnov tests against ``scipy.stats`` (gamma, log-gamma, beta, normal) on 20,000
  draws from fixed seeds, through the fast path and through the exact fallback alone;
- sample means and variances within a stated number of standard errors;
- the fallback is exercised (elements whose fast tries all failed exist, and every output is
  finite) and batch-independent: a run's values are bit-identical alone, in batches of 7 and
  1,000 runs, under nested vmaps, with or without a shape < 1 elsewhere in the batch;
- jit, vmap and scan work; extreme shapes (1e-3, 1e5, 1e6) give no NaN or inf;
- the fast path reads the words ``randomness.words`` documents.

Draws come from consumer keys ``randomness.consumer_key(run_key, t, ACT)``, as in the runner.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from envs import distributions, randomness
from tests.reference import cheap_jit

RUN_KEY = jnp.asarray([0x12345678, 0x9ABCDEF0], jnp.uint32)
RUNS, PER_RUN = 4000, 5            # 20,000 draws per test: 4,000 runs x 5 elements each
SAMPLES = RUNS * PER_RUN
# Each KS test uses its own fixed seed and must give p > 1e-3. For a correct sampler p is
# uniform on (0, 1), so a given seed fails with probability 1e-3; the seeds are fixed, so the
# suite is deterministic. With n = 20,000 the test rejects (p < 1e-3) a sup-distance between
# the CDFs of about 1.95 / sqrt(n) = 0.014: an error in a rejection test or a boost of that
# size is caught, float32 rounding (~1e-7) is not.
KS_P_MIN = 1e-3
# Means and variances: |estimate - truth| <= 5 standard errors (a two-sided normal tail of
# 6e-7 per check, so no flakiness from the ~60 checks here, while a bias of 5 se is caught).
SE_TOLERANCE = 5.0

GAMMA_SHAPES = [0.1, 0.5, 1.0, 2.5, 10.0, 1000.0]
BETA_SHAPES = [(1.0, 1.0), (0.5, 0.5), (2.0, 30.0), (300.0, 700.0), (3000.0, 7000.0)]


def run_keys(count: int, seed: int) -> jax.Array:
    """Consumer keys of ``count`` runs (round ``seed``), as the runner derives them."""
    run = jax.vmap(lambda i: randomness.threefry2x32(RUN_KEY, (i, np.uint32(seed))))(
        jnp.arange(count, dtype=jnp.uint32))
    run = jnp.stack(run, axis=-1)
    return jax.vmap(lambda k: randomness.consumer_key(k, seed, randomness.ACT))(run)


# One compiled program per (sampler, fast_tries) at [RUNS, PER_RUN] (the shapes are traced
# arrays): compile time dominates this module. ``cheap_jit`` where only the law is checked; the
# batch-independence tests compile as users do.
@functools.lru_cache(maxsize=None)
def batched(name: str, fast_tries: int = distributions.FAST_TRIES):
    sampler = functools.partial(getattr(distributions, name), fast_tries=fast_tries)
    return cheap_jit(jax.vmap(sampler))


def full(value, dtype=jnp.float32) -> jax.Array:
    return jnp.full((RUNS, PER_RUN), value, dtype)


def draw(name: str, params: tuple[float, ...], seed: int, fast_tries: int = 2) -> np.ndarray:
    keys = run_keys(RUNS, seed)
    args = [jnp.full((RUNS, PER_RUN), p, jnp.float32) for p in params]
    return np.asarray(batched(name, fast_tries)(keys, *args), np.float64).reshape(-1)


def check_moments(sample: np.ndarray, dist) -> None:
    n = sample.size
    mean, var, _, kurtosis = (float(x) for x in dist.stats(moments="mvsk"))
    se_mean = np.sqrt(var / n)
    # Var of the sample variance: sigma^4 (2 / (n - 1) + excess kurtosis / n).
    se_var = var * np.sqrt(2.0 / (n - 1) + kurtosis / n)
    assert abs(sample.mean() - mean) <= SE_TOLERANCE * se_mean, (sample.mean(), mean, se_mean)
    assert abs(sample.var(ddof=1) - var) <= SE_TOLERANCE * se_var, (sample.var(), var, se_var)


def check_ks(sample: np.ndarray, dist) -> float:
    p = stats.kstest(sample, dist.cdf).pvalue
    assert p > KS_P_MIN, p
    return p


# ---------------------------------------------------------------------------------------------
# Distributions.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fast_tries", [2, 0], ids=["fast", "fallback-only"])
@pytest.mark.parametrize("shape", GAMMA_SHAPES)
def test_gamma_matches_scipy(shape, fast_tries):
    sample = draw("gamma", (shape,), seed=1 + GAMMA_SHAPES.index(shape) + 10 * fast_tries,
                  fast_tries=fast_tries)
    assert np.all(np.isfinite(sample)) and np.all(sample >= 0.0)
    check_ks(sample, stats.gamma(shape))
    check_moments(sample, stats.gamma(shape))


@pytest.mark.parametrize("fast_tries", [2, 0], ids=["fast", "fallback-only"])
@pytest.mark.parametrize("a, b", BETA_SHAPES)
def test_beta_matches_scipy(a, b, fast_tries):
    sample = draw("beta", (a, b), seed=100 + BETA_SHAPES.index((a, b)) + 10 * fast_tries,
                  fast_tries=fast_tries)
    assert np.all((sample >= 0.0) & (sample <= 1.0))
    check_ks(sample, stats.beta(a, b))
    check_moments(sample, stats.beta(a, b))


@pytest.mark.parametrize("shape", [1e-3, 0.1, 2.5])
def test_log_gamma_matches_scipy(shape):
    # scipy.stats.loggamma(c) is the law of ln X for X ~ Gamma(c): the tiny shapes, whose
    # gamma variates underflow float32, are checked in log space.
    sample = draw("log_gamma", (shape,), seed=200 + int(shape * 1000))
    assert np.all(np.isfinite(sample))
    check_ks(sample, stats.loggamma(shape))


def test_log_gamma_is_the_log_of_gamma():
    keys = run_keys(RUNS, seed=300)
    shapes = jnp.asarray(np.geomspace(0.2, 500.0, SAMPLES).reshape(RUNS, PER_RUN), jnp.float32)
    g = np.asarray(batched("gamma")(keys, shapes), np.float64)
    lg = np.asarray(batched("log_gamma")(keys, shapes), np.float64)
    np.testing.assert_allclose(np.log(g), lg, rtol=1e-5, atol=1e-5)


def test_normal_matches_scipy():
    keys = run_keys(RUNS, seed=400)
    sample = np.asarray(cheap_jit(jax.vmap(lambda k: distributions.normal(k, (PER_RUN,))))(keys),
                        np.float64).reshape(-1)
    check_ks(sample, stats.norm())
    check_moments(sample, stats.norm())
    # Elements of one run are independent of each other (here: the cosine and sine halves).
    rows = sample.reshape(RUNS, PER_RUN)
    correlation = np.corrcoef(rows[:, 0], rows[:, 3])[0, 1]
    assert abs(correlation) < SE_TOLERANCE / np.sqrt(RUNS)


@pytest.mark.parametrize("shape", [(), (1,), (3,), (2, 5)])
def test_normal_shapes(shape):
    z = distributions.normal(jnp.asarray([1, 2], jnp.uint32), shape)
    assert z.shape == shape and z.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(z)))


def test_thompson_posteriors_with_a_million_counts():
    # Beta(1 + s, 1 + f) with s + f = 1e6: mean and spread of the posterior (se from the law).
    for s in (300_000.0, 999_000.0):
        sample = draw("beta", (1.0 + s, 1.0 + 1e6 - s), seed=500 + int(s) % 7)
        check_moments(sample, stats.beta(1.0 + s, 1.0 + 1e6 - s))


def test_bernoulli_and_categorical_frequencies():
    keys = run_keys(SAMPLES, seed=600)
    p = jnp.asarray([0.0, 0.1, 0.5, 0.97, 1.0], jnp.float32)
    hits = np.asarray(jax.vmap(lambda k: distributions.bernoulli(k, p))(keys)).mean(axis=0)
    se = np.sqrt(np.asarray(p) * (1 - np.asarray(p)) / SAMPLES)
    assert np.all(np.abs(hits - np.asarray(p)) <= SE_TOLERANCE * se + 1e-12)
    weights = jnp.asarray([0.0, 2.0, 1.0, 0.0, 5.0, 0.0], jnp.float32)
    draws = np.asarray(jax.vmap(lambda k: distributions.categorical(k, weights))(keys))
    freq = np.bincount(draws, minlength=6) / SAMPLES
    q = np.asarray(weights) / float(weights.sum())
    assert np.all(np.abs(freq - q) <= SE_TOLERANCE * np.sqrt(q * (1 - q) / SAMPLES) + 1e-12)


# ---------------------------------------------------------------------------------------------
# The fallback and batching.
# ---------------------------------------------------------------------------------------------
@cheap_jit
def fast_path_misses(keys, a, b):
    """[runs, n] True where an element's fast tries all failed (it went to the fallback)."""
    elements = distributions._Elements("beta", distributions.FAST_TRIES, False, keys, a, b)
    return jnp.isnan(elements.compute(None, fallback=False)).reshape(a.shape)


def test_fallback_runs_and_completes_the_missing_elements():
    keys = run_keys(RUNS, seed=700)
    ones = full(1.0)                  # shape 1: 0.23 % of the lanes miss both fast tries
    missing = np.asarray(fast_path_misses(keys, ones, ones))
    assert missing.sum() >= 40
    out = np.asarray(batched("beta")(keys, ones, ones))
    assert np.all(np.isfinite(out[missing])) and np.all((out >= 0) & (out <= 1))


@pytest.mark.parametrize("fast_tries", [distributions.FAST_TRIES, 0],
                         ids=["fast", "fallback-only"])
def test_values_do_not_depend_on_the_batch(fast_tries):
    runs, n = 1000, 10
    keys = run_keys(runs, seed=800)
    rng = np.random.default_rng(0)
    a = jnp.asarray(1.0 + rng.integers(0, 3, (runs, n)), jnp.float32)
    b = jnp.asarray(1.0 + rng.integers(0, 3, (runs, n)), jnp.float32)
    # One run elsewhere in the big batch has a shape < 1: the batch takes the boost branch,
    # the small batches below do not (the two branches must agree on every other element).
    a_big = a.at[runs - 1, 0].set(0.3)
    missing = np.asarray(fast_path_misses(keys, a, b)).any(axis=1)
    picked = np.concatenate([np.nonzero(missing)[0][:4], [0, 1, 2]])[:7]
    assert missing[picked].sum() >= 3            # the fallback runs inside the small batch too
    sampler = functools.partial(distributions.beta, fast_tries=fast_tries)
    f = jax.jit(jax.vmap(sampler))               # compiled as users do, for every batch size
    big = np.asarray(f(keys, a_big, b))[picked]
    np.testing.assert_array_equal(np.asarray(f(keys[picked], a[picked], b[picked])), big)
    if fast_tries == 0:
        return
    np.testing.assert_array_equal(np.asarray(f(keys[picked[:1]], a[picked[:1]],
                                               b[picked[:1]])), big[:1])
    alone = jax.jit(sampler)
    for row, i in enumerate(picked[:3]):
        np.testing.assert_array_equal(np.asarray(alone(keys[i], a[i], b[i])), big[row])
    nested = jax.jit(jax.vmap(jax.vmap(sampler)))
    grid = np.asarray(nested(keys.reshape(10, 100, 2), a_big.reshape(10, 100, n),
                             b.reshape(10, 100, n))).reshape(runs, n)
    np.testing.assert_array_equal(grid[picked], big)


def test_gamma_values_do_not_depend_on_the_batch():
    keys = run_keys(RUNS, seed=900)
    shapes = jnp.asarray(np.geomspace(0.05, 50.0, SAMPLES).reshape(RUNS, PER_RUN), jnp.float32)
    big = np.asarray(batched("gamma", 0)(keys, shapes))
    alone = cheap_jit(functools.partial(distributions.gamma, fast_tries=0))
    for i in (0, RUNS // 2, RUNS - 1):
        np.testing.assert_array_equal(np.asarray(alone(keys[i], shapes[i])), big[i])


def test_inside_scan_equals_round_by_round():
    runs, rounds = 50, 4
    run = jnp.stack(jax.vmap(lambda i: randomness.threefry2x32(RUN_KEY, (i, np.uint32(1))))(
        jnp.arange(runs, dtype=jnp.uint32)), axis=-1)
    shapes = jnp.full((runs, 6), 1.5, jnp.float32)

    def round_draws(t):
        keys = jax.vmap(lambda k: randomness.consumer_key(k, t, randomness.ACT))(run)
        return jax.vmap(distributions.beta)(keys, shapes, shapes + 1.0)

    scanned = cheap_jit(lambda: jax.lax.scan(lambda c, t: (c, round_draws(t)), 0,
                                             jnp.arange(rounds, dtype=jnp.uint32))[1])()
    one_round = cheap_jit(round_draws)
    for t in range(rounds):
        np.testing.assert_array_equal(np.asarray(scanned[t]),
                                      np.asarray(one_round(jnp.uint32(t))))


def test_fast_words_are_the_documented_words_of_the_key():
    key = jnp.asarray([0xDEADBEEF, 0x01234567], jnp.uint32)
    expected = np.asarray(randomness.words(key, 4 * 12)).reshape(12, 4)
    got = distributions._fast_words(jnp.broadcast_to(key[:, None], (2, 12)),
                                    jnp.arange(12, dtype=jnp.uint32))
    np.testing.assert_array_equal(np.stack([np.asarray(w) for w in got], axis=1), expected)


def test_works_with_jax_keys_and_broadcasts():
    key = jax.random.fold_in(jax.random.PRNGKey(3), 1)          # what the runner passes today
    out = cheap_jit(lambda k: (distributions.beta(k, jnp.ones((2, 3)), 2.0),
                               distributions.gamma(k, 2.0)))(key)
    assert out[0].shape == (2, 3) and out[1].shape == ()
    assert np.all(np.isfinite(np.asarray(out[0]))) and np.isfinite(float(out[1]))


# ---------------------------------------------------------------------------------------------
# Extreme and invalid shapes.
# ---------------------------------------------------------------------------------------------
def test_extreme_shapes_give_finite_values():
    keys = run_keys(RUNS, seed=1000)
    extremes = [1e-3, 1e-3, 1e5, 1e6, 1e-3]
    partners = [1e-3, 1e5, 1e5, 1.0, 1e6]
    a = jnp.broadcast_to(jnp.asarray(extremes, jnp.float32), (RUNS, PER_RUN))
    b = jnp.broadcast_to(jnp.asarray(partners, jnp.float32), (RUNS, PER_RUN))
    x = np.asarray(batched("beta")(keys, a, b))
    assert np.all(np.isfinite(x)) and np.all((x >= 0) & (x <= 1))
    # Beta(1e-3, 1e-3) puts half its mass near 0 and half near 1 (5 se of a proportion).
    assert abs((x[:, 0] > 0.5).mean() - 0.5) <= SE_TOLERANCE * 0.5 / np.sqrt(RUNS)
    g = np.asarray(batched("gamma")(keys, a))
    assert np.all(np.isfinite(g)) and np.all(g >= 0)
    assert abs(g[:, 2].mean() - 1e5) <= SE_TOLERANCE * np.sqrt(1e5 / RUNS)
    lg = np.asarray(batched("log_gamma")(keys, a))
    assert np.all(np.isfinite(lg))


def test_invalid_shapes_give_nan_and_do_not_hang():
    keys = run_keys(RUNS, seed=1100)
    a = full(2.0).at[0].set(jnp.asarray([0.0, -1.0, jnp.inf, jnp.nan, 2.0], jnp.float32))
    for fast_tries in (2, 0):
        g = np.asarray(batched("gamma", fast_tries)(keys, a))
        x = np.asarray(batched("beta", fast_tries)(keys, a, full(1.0)))
        for out in (g, x):
            assert np.all(np.isnan(out[0, :4])) and np.all(np.isfinite(out[1:]))
            assert np.isfinite(out[0, 4])
