"""Exact samplers on the counter-based random words of ``envs/randomness.py``.

Every sampler takes a consumer key (uint32 [2], a hash output) and returns samples; all code is
per run (the runner vmaps it over runs), and what a run draws depends only on its key, never on
the other runs of the batch.

- ``normal``: Box and Muller (1958), "A note on the generation of random normal deviates",
  Ann. Math. Statist. 29(2): z0 = sqrt(-2 ln u1) cos(2 pi u2), z1 = sqrt(-2 ln u1) sin(2 pi u2).
- ``gamma`` / ``log_gamma``: Marsaglia and Tsang (2000), "A simple method for generating gamma
  variables", ACM TOMS 26(3), 363-372: for a >= 1, d = a - 1/3, c = 1 / sqrt(9 d), x ~ N(0, 1),
  v = (1 + c x)^3, u ~ U(0, 1); accept d v if u < 1 - 0.0331 x^4 (the squeeze) or
  ln u < x^2 / 2 + d - d v + d ln v (their sec. 4). Shapes a < 1 by their sec. 6 boost:
  Gamma(a) = Gamma(a + 1) U^(1/a), in log space (ln Gamma(a + 1) + ln(U) / a never underflows).
- ``beta``: X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b) (e.g. Devroye (1986), "Non-Uniform
  Random Variate Generation", ch. IX.4); in log space, sigmoid(ln X - ln Y), when both draws
  would underflow, so it never returns 0/0.
- ``bernoulli``, ``categorical``: u < p and the inverse of the cumulative distribution.

How the rejection loop of Marsaglia and Tsang runs here (an exact sampler, vectorised):

- Fast path: one "round" of two tries per element from four random words: (w0, w1) give two
  independent normals by Box-Muller, w2 and w3 the two acceptance uniforms (their top 23 bits,
  ``randomness.to_open_unit``). The first accepted try is kept. One round fails with probability
  0.0023 at a = 1, 3e-4 at a = 2, 9e-6 at a = 10, 8e-10 at a = 1000 (Monte Carlo, 2e6 tries).
  The words are ``randomness.words(key, 4 n)`` for n elements: fixed indices per element.
- The boost uniform U of a < 1 costs no extra word: it is made of the low 9 bits of w0, w1 and
  w2 of the accepted round (27 bits, of which ``to_open_unit`` keeps 23). The tries read only
  the top 23 bits of each word, and the 32 bits of a threefry output are independent, so U is
  independent of the accepted Gamma(a + 1) draw: the boost stays exact.
- Exact fallback: an element whose fast round fails runs further rounds r = 0, 1, ... from the
  words threefry2x32(key, (2 r, id ^ FALLBACK_DOMAIN)) and (2 r + 1, id ^ FALLBACK_DOMAIN), with
  ``id`` its index among the sampler's elements, until a try is accepted. Every word is addressed
  by (key, element, round), so a value never depends on the batch it is computed in.
- Under ``vmap`` a ``while_loop`` with a batched predicate runs its body on every lane while any
  lane fails, which at 10,000 runs x 10 arms is nearly every round. The fallback is therefore a
  ``jax.custom_batching.custom_vmap`` whose batching rule flattens the batch into one axis of
  lanes, gathers the failing ones (``jnp.nonzero(..., size=bound)``, in chunks of ``bound`` if
  more fail), loops over rounds on that small chunk only and scatters the results back. When no
  lane fails it costs one ``any`` over the batch; nested ``vmap`` levels flatten in turn.

Precision (float32): the test ln u < x^2 / 2 + d - d v + d ln v cancels catastrophically for
large d (d v ~ 1e6 with an ulp of 0.06 at a = 1e6). With y = c x, x^2 / 2 = (9 / 2) d y^2 exactly
and ln v = 3 ln(1 + y), so the right side is 3 d g(y) with g(y) = ln(1 + y) - y + y^2 / 2 - y^3 / 3,
evaluated by its Taylor series -y^4 / 4 + y^5 / 5 - ... for |y| < 0.1 (to y^11, relative error
< 1e-8) and directly otherwise (|y| >= 0.1 needs |x| >= 0.3 sqrt(d), so the absolute error
3 d |y| 6e-8 stays below 1e-5). Box-Muller uses 23-bit uniforms, so normals are cut off at
sqrt(2 ln 2^24) = 5.77 standard deviations (mass 8e-9), as ``jax.random.normal``'s 23-bit
inverse-erf sampler is.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from envs import randomness

Array = jax.Array

# High counter word (xor the element id) of the fallback's words: apart from ``randomness.DOMAIN``
# (words()) for ids < 2^31, and from jax.random's own counters (small iotas).
FALLBACK_DOMAIN = np.uint32(int(randomness.DOMAIN) ^ 0x80000000)
# Marsaglia and Tsang's squeeze: accept at once if u < 1 - 0.0331 x^4.
SQUEEZE = np.float32(0.0331)
FAST_ROUNDS = 1          # rounds of two tries drawn for every element before the fallback
_SERIES_LIMIT = np.float32(0.1)
_TWO_PI = np.float32(2.0 * math.pi)
_LOW9 = np.uint32(0x1FF)


# ---------------------------------------------------------------------------------------------
# Normals.
# ---------------------------------------------------------------------------------------------
def _box_muller(w0: Array, w1: Array) -> tuple[Array, Array]:
    """Two independent standard normals per pair of words (Box and Muller 1958)."""
    radius = jnp.sqrt(np.float32(-2.0) * jnp.log(randomness.to_open_unit(w0)))
    angle = _TWO_PI * randomness.to_unit(w1)
    return radius * jnp.cos(angle), radius * jnp.sin(angle)


def normal(key: Array, shape: tuple[int, ...] = ()) -> Array:
    """Standard normals of ``shape`` (float32) from the words of ``key``.

    Box and Muller (1958), Ann. Math. Statist. 29(2), 610-611: for independent uniforms u1 in
    (0, 1), u2 in [0, 1), sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2) are two independent N(0, 1).
    Element i < m = ceil(n / 2) uses the cosine of words (i, m + i) of ``randomness.words(key,
    2 m)``, element m + i the sine. Exact up to the 23-bit uniforms (tails cut at 5.77 sd).
    """
    shape = tuple(shape)
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    m = (n + 1) // 2
    w = randomness.words(key, 2 * m)
    z0, z1 = _box_muller(w[:m], w[m:])
    return jnp.concatenate([z0, z1])[:n].reshape(shape)


# ---------------------------------------------------------------------------------------------
# Marsaglia-Tsang gamma variates.
# ---------------------------------------------------------------------------------------------
def _log_ratio(d: Array, y: Array) -> Array:
    """x^2 / 2 + d - d v + d ln v with y = c x, v = (1 + y)^3, as 3 d g(y) (module docstring)."""
    y2 = y * y
    # g(y) = sum_{k >= 4} (-1)^(k + 1) y^k / k, Horner in y from k = 11 down to k = 4.
    series = np.float32(-1.0 / 11.0)
    for k in range(10, 3, -1):
        series = series * y + np.float32((-1.0) ** (k + 1) / k)
    series = series * (y2 * y2)
    direct = jnp.log1p(y) - y + y2 * (np.float32(0.5) - y / np.float32(3.0))
    g = jnp.where(jnp.abs(y) < _SERIES_LIMIT, series, direct)
    return np.float32(3.0) * d * g


def _try(d: Array, c: Array, x: Array, u: Array) -> tuple[Array, Array]:
    """One Marsaglia-Tsang try: (accepted, y = c x) for normals x and uniforms u in (0, 1)."""
    y = c * x
    x2 = x * x
    squeeze = u < np.float32(1.0) - SQUEEZE * (x2 * x2)
    full = jnp.log(u) < _log_ratio(d, y)
    # v > 0 (y > -1) is part of the method; where it fails log1p(y) is NaN and compares False.
    return (y > np.float32(-1.0)) & (squeeze | full), y


def _round(d: Array, c: Array, w0: Array, w1: Array, w2: Array, w3: Array
           ) -> tuple[Array, Array, Array]:
    """Two tries from four words: (accepted, y of the first accepted try, boost word)."""
    x0, x1 = _box_muller(w0, w1)
    ok0, y0 = _try(d, c, x0, randomness.to_open_unit(w2))
    ok1, y1 = _try(d, c, x1, randomness.to_open_unit(w3))
    # The low 9 bits of w0, w1, w2 (unread by the tries) as the top 27 bits of the boost word.
    boost = (((w0 & _LOW9) << np.uint32(23)) | ((w1 & _LOW9) << np.uint32(14))
             | ((w2 & _LOW9) << np.uint32(5)))
    return ok0 | ok1, jnp.where(ok0, y0, y1), boost


def _constants(shape_param: Array) -> tuple[Array, Array]:
    """d and c of the Gamma(a') proposal, a' = a for a >= 1 and a + 1 (the boost) below."""
    boosted = jnp.where(shape_param < 1.0, shape_param + np.float32(1.0), shape_param)
    d = boosted - np.float32(1.0 / 3.0)
    return d, jax.lax.rsqrt(np.float32(9.0) * d)


def _fallback_rounds(keys: Array, a: Array, ids: Array, pending: Array) -> tuple[Array, Array]:
    """The exact fallback on flat lanes: ([N] y, [N] boost words), valid where ``pending``.

    Gathers at most ``bound`` pending lanes at a time and runs rounds on them until every one
    has accepted a try. Round r of lane i reads threefry2x32(keys[i], (2 r, ids[i] ^ D)) and
    threefry2x32(keys[i], (2 r + 1, ids[i] ^ D)): the same values in any batch.
    """
    n = a.shape[0]
    bound = n if n <= 256 else max(256, n // 64)

    def chunk_body(state):
        y_all, boost_all, todo = state
        (idx,) = jnp.nonzero(todo, size=bound, fill_value=n)
        live = idx < n
        safe = jnp.minimum(idx, n - 1)
        k = keys[safe].T                                   # [2, bound]
        d, c = _constants(a[safe])
        high = ids[safe] ^ FALLBACK_DOMAIN

        def round_body(inner):
            r, y, boost, done = inner
            w0, w1 = randomness.threefry2x32(k, (2 * r, high))
            w2, w3 = randomness.threefry2x32(k, (2 * r + 1, high))
            ok, y_new, boost_new = _round(d, c, w0, w1, w2, w3)
            take = ok & ~done
            return (r + np.uint32(1), jnp.where(take, y_new, y),
                    jnp.where(take, boost_new, boost), done | ok)

        init = (np.uint32(0), jnp.zeros((bound,), jnp.float32),
                jnp.zeros((bound,), jnp.uint32), ~live)
        _, y, boost, _ = jax.lax.while_loop(lambda s: ~jnp.all(s[3]), round_body, init)
        return (y_all.at[idx].set(y, mode="drop"), boost_all.at[idx].set(boost, mode="drop"),
                todo.at[idx].set(False, mode="drop"))

    init = (jnp.zeros((n,), jnp.float32), jnp.zeros((n,), jnp.uint32), pending)
    y, boost, _ = jax.lax.while_loop(lambda s: jnp.any(s[2]), chunk_body, init)
    return y, boost


@jax.custom_batching.custom_vmap
def _fallback(keys: Array, a: Array, ids: Array, pending: Array) -> tuple[Array, Array]:
    """``_fallback_rounds`` with a batching rule that keeps its loops on the failing lanes."""
    return _fallback_rounds(keys, a, ids, pending)


@_fallback.def_vmap
def _fallback_vmap(axis_size, in_batched, keys, a, ids, pending):
    # Flatten (batch, lane) into lanes and call ourselves: the body on flat lanes, or, under a
    # further vmap, this rule again one level up. Lane order does not change any lane's value.
    args = [x if batched else jnp.broadcast_to(x, (axis_size,) + x.shape)
            for x, batched in zip((keys, a, ids, pending), in_batched)]
    flat = [x.reshape((-1,) + x.shape[2:]) for x in args]
    y, boost = _fallback(*flat)
    return (y.reshape(axis_size, -1), boost.reshape(axis_size, -1)), (True, True)


def _marsaglia_tsang(key: Array, a: Array, fast_rounds: int) -> tuple[Array, Array]:
    """(y, boost word) of an accepted try for each element of flat shapes ``a`` ([n])."""
    n = a.shape[0]
    d, c = _constants(a)
    if fast_rounds == 0:
        pending = jnp.ones((n,), bool)
        y = jnp.zeros((n,), jnp.float32)
        boost = jnp.zeros((n,), jnp.uint32)
    else:
        w = randomness.words(key, 4 * n * fast_rounds).reshape(fast_rounds, 4, n)
        pending = jnp.ones((n,), bool)
        y = jnp.zeros((n,), jnp.float32)
        boost = jnp.zeros((n,), jnp.uint32)
        for r in range(fast_rounds):
            ok, y_r, boost_r = _round(d, c, w[r, 0], w[r, 1], w[r, 2], w[r, 3])
            take = ok & pending
            y = jnp.where(take, y_r, y)
            boost = jnp.where(take, boost_r, boost)
            pending = pending & ~ok
    keys = jnp.broadcast_to(jnp.asarray(key, jnp.uint32), (n, 2))
    y_slow, boost_slow = _fallback(keys, a, jnp.arange(n, dtype=jnp.uint32), pending)
    return jnp.where(pending, y_slow, y), jnp.where(pending, boost_slow, boost)


def _gamma_parts(key: Array, a: Array, fast_rounds: int) -> tuple[Array, Array, Array]:
    """(a' d v, ln of it, ln U / a or 0) for flat shapes ``a``: Gamma(a) = d v exp(ln U / a)."""
    a = jnp.asarray(a, jnp.float32)
    d, _ = _constants(a)
    y, boost = _marsaglia_tsang(key, a, fast_rounds)
    dv = d * (np.float32(1.0) + y) ** 3
    log_dv = jnp.log(d) + np.float32(3.0) * jnp.log1p(y)
    log_boost = jnp.where(a < 1.0, jnp.log(randomness.to_open_unit(boost)) / a, np.float32(0.0))
    return dv, log_dv, log_boost


def _flat(shape_param) -> tuple[Array, tuple[int, ...]]:
    a = jnp.asarray(shape_param, jnp.float32)
    return a.reshape(-1), a.shape


def log_gamma(key: Array, shape_param: Array, *, fast_rounds: int = FAST_ROUNDS) -> Array:
    """ln X for X ~ Gamma(shape_param, 1), elementwise (float32, shape of ``shape_param``).

    Marsaglia and Tsang (2000), ACM TOMS 26(3), sec. 4 (a >= 1) and sec. 6 (a < 1:
    ln Gamma(a + 1) + ln(U) / a, finite for every a > 0 down to ~1e-30 where the gamma itself
    underflows). Exact: fast vectorised tries, then the counter-addressed fallback (module
    docstring). ``fast_rounds``: rounds of two tries before the fallback (tests set 0 to run
    every element through the fallback; the values change, their distribution does not).
    """
    a, shape = _flat(shape_param)
    _, log_dv, log_boost = _gamma_parts(key, a, fast_rounds)
    return (log_dv + log_boost).reshape(shape)


def gamma(key: Array, shape_param: Array, *, fast_rounds: int = FAST_ROUNDS) -> Array:
    """X ~ Gamma(shape_param, 1), elementwise over any array of shapes > 0 (float32).

    Marsaglia and Tsang (2000), "A simple method for generating gamma variables", ACM TOMS
    26(3): d = a - 1/3, c = 1 / sqrt(9 d), v = (1 + c x)^3, accept d v if u < 1 - 0.0331 x^4
    or ln u < x^2 / 2 + d - d v + d ln v; a < 1 by Gamma(a) = Gamma(a + 1) U^(1/a) (sec. 6),
    which underflows to 0 in float32 as the true variate does (use ``log_gamma`` there).
    """
    a, shape = _flat(shape_param)
    dv, _, log_boost = _gamma_parts(key, a, fast_rounds)
    return (dv * jnp.exp(log_boost)).reshape(shape)


def beta(key: Array, a: Array, b: Array, *, fast_rounds: int = FAST_ROUNDS) -> Array:
    """Beta(a, b) variates, elementwise over the broadcast shapes of ``a`` and ``b`` (> 0).

    X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b) independent (Devroye 1986, ch. IX.4; gammas by
    Marsaglia and Tsang 2000, see ``gamma``). The 2 n gammas share one fast path and one
    fallback (X the first n elements, Y the next n). Where X + Y would underflow (both shapes
    tiny) the value is sigmoid(ln X - ln Y), so it is never 0/0. Thompson sampling's posteriors
    Beta(1 + successes, 1 + failures) are the intended use (shapes 0.1 to 1e6).
    """
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    shape = jnp.broadcast_shapes(a.shape, b.shape)
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    both = jnp.concatenate([jnp.broadcast_to(a, shape).reshape(-1),
                            jnp.broadcast_to(b, shape).reshape(-1)])
    dv, log_dv, log_boost = _gamma_parts(key, both, fast_rounds)
    value = dv * jnp.exp(log_boost)
    log_value = log_dv + log_boost
    x, y = value[:n], value[n:]
    total = x + y
    ratio = x / total
    in_logs = jax.nn.sigmoid(log_value[:n] - log_value[n:])
    return jnp.where(total >= np.float32(1e-30), ratio, in_logs).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Discrete helpers.
# ---------------------------------------------------------------------------------------------
def bernoulli(key: Array, p: Array) -> Array:
    """Bernoulli(p) draws (bool, shape of ``p``): u < p with u from ``randomness.uniform``."""
    p = jnp.asarray(p, jnp.float32)
    return randomness.uniform(key, p.shape) < p


def categorical(key: Array, probabilities: Array) -> Array:
    """One index drawn from ``probabilities`` ([K], need not be normalised): int32 scalar.

    Inversion (Devroye 1986, ch. III.2): the number of cumulative sums <= u * total, for one
    uniform u from the key's first word; zero-probability entries are never drawn.
    """
    probabilities = jnp.asarray(probabilities, jnp.float32)
    cdf = jnp.cumsum(probabilities)
    u = randomness.uniform(key) * cdf[-1]
    k = probabilities.shape[-1]
    return jnp.minimum(jnp.sum(cdf <= u), k - 1).astype(jnp.int32)
