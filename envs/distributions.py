"""Exact samplers on the counter-based random words of ``envs/randomness.py``.

Every sampler takes a consumer key (uint32 [2], a hash output) and returns samples. All code is
per run: the runner vmaps it over runs, with shapes like [K] arms per run. A run's draws depend
only on its key, never on the other runs of the batch: the values are bit-identical whether a
run is computed alone or in a batch of any size (tested). The key's own two words are random
words of the scheme (``randomness.words``), so it must be a hash output (a consumer key, or a
``jax.random`` key after ``fold_in``/``split``), not a seed key such as ``PRNGKey(0)``.

- ``normal``: Box and Muller (1958), "A note on the generation of random normal deviates",
  Ann. Math. Statist. 29(2), 610-611: sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2).
- ``gamma`` / ``log_gamma``: Marsaglia and Tsang (2000), "A simple method for generating gamma
  variables", ACM TOMS 26(3), 363-372. For a >= 1: d = a - 1/3, c = 1 / sqrt(9 d), x ~ N(0, 1),
  v = (1 + c x)^3, u ~ U(0, 1); accept d v if v > 0 and (u < 1 - 0.0331 x^4, the squeeze, or
  ln u < x^2 / 2 + d - d v + d ln v). Shapes a < 1 by their sec. 6 boost,
  Gamma(a) = Gamma(a + 1) U^(1/a), in log space (ln Gamma(a + 1) + ln(U) / a never underflows).
- ``beta``: X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b) independent (Devroye (1986),
  "Non-Uniform Random Variate Generation", ch. IX.4); sigmoid(ln X - ln Y) where X + Y would
  underflow (both shapes tiny), so never 0/0.
- ``bernoulli``, ``categorical``: u < p, and inversion of the cumulative sums.

The words (every one addressed by a counter, so no value depends on anything but its key):

- Fast round r of element e (of n in its run) reads words 4 j .. 4 j + 3 of
  ``randomness.words(key, .)``, j = r n + e. A beta element uses the two Box-Muller normals of
  (w0, w1) as the proposals of its X and Y lanes, with uniforms w2 and w3 (one try per lane a
  round); a gamma element makes two tries for its one lane (normal 0 with w2, then 1 with w3).
  ``fast_tries`` = 2 tries per lane (beta: two rounds; gamma: one). One try fails with
  probability 0.048 at a = 1, 0.018 at 2, 0.003 at 10, 3e-5 at 1000 (Monte Carlo, 2e6 tries),
  so two leave 0.23 %, 0.03 %, 9e-6, 8e-10 to the fallback.
- Fallback round r of lane g reads threefry2x32(key, (2 r, g ^ FALLBACK_DOMAIN)) and
  (2 r + 1, g ^ FALLBACK_DOMAIN): two tries; rounds continue until one is accepted (exact).
  Lanes: beta X_e = 2 e, Y_e = 2 e + 1; gamma element e = e.
- The boost uniform (a < 1) of element e is word 0 (X, gamma) or 1 (Y) of
  threefry2x32(key, (e, BOOST_DOMAIN)), independent of every try.

Batching: each sampler is a ``jax.custom_batching.custom_vmap`` whose rule flattens (batch,
runs) into runs and calls the same sampler (nested vmaps flatten level by level). On the M runs
it computes the fast tries and the final arithmetic of every element (NaN marks an element with
a lane whose fast tries all failed), lists those elements (a bitmask, below), and takes them
``slots`` at a time: gathered, recomputed (the same words give the same fast tries) and
completed by a while loop over fallback rounds on that chunk only, then scattered back. With no
element pending this costs the listing, one pass. (A ``while_loop`` with a batched predicate
would run its body on every lane of the batch while any lane fails: at 10,000 runs x 10 arms,
nearly every round.)

Why this shape (measured on XLA:CPU, 2-core AVX-512 Zen 4, jax 0.10.2):

- ``vmap`` of per-run code gives a [runs, K] layout; with K = 10 on the minor axis XLA:CPU
  emitted scalar loops (3.5 ms against 0.6 ms for the same kernel on flat elements). A fusion
  does not cross a ``cond``, so the whole pipeline runs inside one (the boost branch when any
  shape < 1), on flat elements. Its operands are materialised once: a key derived by hashes in
  the caller (``fold_in``) was otherwise recomputed in every lane (12 ms a round -> 4 ms).
- A fusion computes each of its outputs separately: each kernel has one output per element
  (two outputs sharing a Box-Muller pair hashed twice).
- ``jnp.nonzero`` and ``cumsum`` over 2e5 lanes cost ~1.5 ms; the listing packs the flags 32 to
  a word and prefix-sums the N / 32 popcounts only.
- XLA:CPU's vectorised exp clamps its argument (a NaN comes out as 0), so the missing mark is
  set by a select, never propagated; its sin, cos and rsqrt cost 2-5 ns a lane, hence the
  polynomials and the Newton rsqrt below. LLVM may contract a multiply and an add into one
  fused multiply-add where nothing stands between them, so both branches of the boost ``cond``
  apply the same select to the gamma values (else the last bit moved with the batch's branch).
- The fast kernel compiles to 8-wide vectors; with ``xla_cpu_prefer_vector_width=512`` its
  float arithmetic ran scalar (2.7x slower), and so did a one-try kernel at the default width
  (slower than the two-try kernel although it hashes half as much): hence ``fast_tries`` = 2.
- [10000, 10] draws of Beta(1 + s, 1 + f), s, f ~ U{0..1000}, jitted and vmapped, median of 3:
  1.90 ms on one core (fast kernel ~1.6 ms, listing and fallback the rest), 1.55 ms on two
  (load 0.9); NumPy ``Generator.beta`` 4.35 ms; ``jax.random.beta`` 28.8 ms (one core).

Precision (float32): ln u < x^2 / 2 + d - d v + d ln v cancels catastrophically for large d
(d v ~ 1e6 has an ulp of 0.06 at a = 1e6). With y = c x, x^2 / 2 = (9 / 2) d y^2 exactly and
ln v = 3 ln(1 + y), so the right side is 3 d g(y), g(y) = ln(1 + y) - y + y^2 / 2 - y^3 / 3,
evaluated by its Taylor series -y^4 / 4 + y^5 / 5 - ... to y^11 for |y| < 0.1 (truncation
< 1e-8 relative) and directly otherwise (|y| >= 0.1 needs |x| >= 0.3 sqrt(d), so the absolute
error 3 d |y| 6e-8 stays below 1e-5). The 23-bit uniforms (``randomness.to_open_unit``) cut the
Box-Muller normals off at sqrt(2 ln 2^24) = 5.77 standard deviations (mass 8e-9).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from envs import randomness

Array = jax.Array

# High counter words (the fallback's xor a lane index < 2^30): apart from ``randomness.DOMAIN``
# (words()), from each other, and from the counters (0, i) jax.random itself hashes under a key.
FALLBACK_DOMAIN = np.uint32(int(randomness.DOMAIN) ^ 0x80000000)
BOOST_DOMAIN = np.uint32(int(randomness.DOMAIN) ^ 0xC0000000)
# Marsaglia and Tsang's squeeze: accept at once if u < 1 - 0.0331 x^4.
SQUEEZE = np.float32(0.0331)
FAST_TRIES = 2       # tries per lane before the exact fallback (module docstring)
_SERIES_LIMIT = np.float32(0.1)
_LOG_FLOOR = np.float32(-np.finfo(np.float32).max)


# ---------------------------------------------------------------------------------------------
# Normals.
# ---------------------------------------------------------------------------------------------
def normal(key: Array, shape: tuple[int, ...] = ()) -> Array:
    """Standard normals of ``shape`` (float32) from the words of ``key``.

    Box and Muller (1958), Ann. Math. Statist. 29(2), 610-611: for independent uniforms u1 in
    (0, 1) and u2 in [0, 1), sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2) are two independent
    N(0, 1). Element 2 p is the cosine and 2 p + 1 the sine of words 2 p and 2 p + 1 of
    ``randomness.words(key, .)`` (one threefry pair, or the key itself for p = 0). Exact up to
    the 23-bit uniforms (``randomness.to_open_unit`` for the log: tails cut at 5.77 standard
    deviations); sin and cos by polynomials (``_sin_cos_half_turn``).
    """
    shape = tuple(shape)
    n = math.prod(shape)
    key = _key_words(key).reshape(1, 2)
    carrier = jnp.zeros((1, n), jnp.float32)        # only its shape: n elements per run
    return _sampler("normal", 0)(key, carrier, carrier).reshape(shape)


def _normals(keys: Array, per_run: int) -> Array:
    """``normal``'s values on M runs, flat (run-major): keys [M, 2] -> [M n]."""
    runs = keys.shape[0]
    element = (jnp.zeros((runs, 1), jnp.uint32)
               + jnp.arange(per_run, dtype=jnp.uint32)).reshape(-1)
    lane_keys = jnp.broadcast_to(keys[:, None, :], (runs, per_run, 2)).reshape(-1, 2).T
    pair = element // np.uint32(2)
    h0, h1 = randomness.threefry2x32(lane_keys, (pair - np.uint32(1), randomness.DOMAIN))
    first = pair == 0
    z0, z1 = _box_muller(jnp.where(first, lane_keys[0], h0), jnp.where(first, lane_keys[1], h1))
    return jnp.where(element % np.uint32(2) == 0, z0, z1)


# ---------------------------------------------------------------------------------------------
# Marsaglia-Tsang tries on flat lanes.
# ---------------------------------------------------------------------------------------------
def _log_ratio(d: Array, y: Array) -> Array:
    """x^2 / 2 + d - d v + d ln v with y = c x, v = (1 + y)^3, as 3 d g(y) (module docstring)."""
    y2 = y * y
    # g(y) = sum_{k >= 4} (-1)^(k + 1) y^k / k: Horner from k = 11 down to k = 4, times y^4.
    series = np.float32(-1.0 / 11.0)
    for k in range(10, 3, -1):
        series = series * y + np.float32((-1.0) ** (k + 1) / k)
    series = series * (y2 * y2)
    direct = jnp.log1p(y) - y + y2 * (np.float32(0.5) - y / np.float32(3.0))
    return np.float32(3.0) * d * jnp.where(jnp.abs(y) < _SERIES_LIMIT, series, direct)


def _rsqrt(x: Array) -> Array:
    """1 / sqrt(x) for x > 0: the bit-level initial guess and three Newton steps.

    Lomont (2003), "Fast inverse square root", constant 0x5F375A86; Newton's y (3 - x y^2) / 2
    squares the relative error (1.8e-3, 4.6e-6, 3e-11), so float32 rounding is what remains
    (2.6e-7 relative, measured). XLA:CPU's own rsqrt ran at a third of the speed.
    """
    guess = np.uint32(0x5F375A86) - (jax.lax.bitcast_convert_type(x, jnp.uint32) >> np.uint32(1))
    y = jax.lax.bitcast_convert_type(guess, jnp.float32)
    half = np.float32(0.5) * x
    for _ in range(3):
        y = y * (np.float32(1.5) - half * y * y)
    return y


def _proposal(shape_param: Array) -> tuple[Array, Array]:
    """d and c of the Gamma(a') proposal: a' = a for a >= 1, a + 1 (the boost) below."""
    boosted = jnp.where(shape_param < 1.0, shape_param + np.float32(1.0), shape_param)
    d = boosted - np.float32(1.0 / 3.0)
    return d, _rsqrt(np.float32(9.0) * d)


def _sin_cos_half_turn(u: Array) -> tuple[Array, Array]:
    """(cos, sin) of 2 pi u - pi for u in [0, 1): Taylor polynomials of the half angle.

    h = pi (u - 1/2) in [-pi/2, pi/2): sin h to h^13 and cos h to h^14 (truncation < 1e-9),
    then cos 2h = (c - s)(c + s), sin 2h = 2 s c. A rotation by pi of Box-Muller's angle 2 pi u,
    so the pair of normals is exact as well. (XLA:CPU's sin and cos cost ~5 ns a lane here.)
    """
    h = np.float32(math.pi) * (u - np.float32(0.5))
    h2 = h * h
    sin = np.float32(-1.0 / math.factorial(13))
    for k in range(5, -1, -1):
        sin = sin * h2 + np.float32((-1.0) ** k / math.factorial(2 * k + 1))
    sin = sin * h
    cos = np.float32(-1.0 / math.factorial(14))
    for k in range(6, -1, -1):
        cos = cos * h2 + np.float32((-1.0) ** k / math.factorial(2 * k))
    return (cos - sin) * (cos + sin), np.float32(2.0) * sin * cos


def _box_muller(w0: Array, w1: Array) -> tuple[Array, Array]:
    """Two independent N(0, 1) from two words (Box and Muller 1958)."""
    radius = jnp.sqrt(np.float32(-2.0) * jnp.log(randomness.to_open_unit(w0)))
    cos, sin = _sin_cos_half_turn(randomness.to_unit(w1))
    return radius * cos, radius * sin


def _try(d: Array, c: Array, x: Array, u: Array) -> Array:
    """One Marsaglia-Tsang try for a normal x and a uniform u in (0, 1): y = c x, or NaN."""
    y = c * x
    x2 = x * x
    squeeze = u < np.float32(1.0) - SQUEEZE * (x2 * x2)
    full = jnp.log(u) < _log_ratio(d, y)
    # v > 0 (y > -1) is part of the method; where it fails log1p(y) is NaN and compares False.
    accepted = (y > np.float32(-1.0)) & (squeeze | full)
    return jnp.where(accepted, y, np.float32(jnp.nan))


def _round(d: Array, c: Array, w0: Array, w1: Array, w2: Array, w3: Array) -> Array:
    """Two tries from four words: normals from (w0, w1), uniforms w2, w3; the first accepted."""
    x0, x1 = _box_muller(w0, w1)
    first = _try(d, c, x0, randomness.to_open_unit(w2))
    return jnp.where(jnp.isnan(first), _try(d, c, x1, randomness.to_open_unit(w3)), first)


def _valid(shape_param: Array) -> Array:
    """Shapes the sampler accepts: finite and > 0 (others give NaN, never a hang)."""
    return (shape_param > 0.0) & (shape_param < np.float32(np.inf))


def _fast_words(keys: Array, j: Array) -> tuple[Array, Array, Array, Array]:
    """Words 4 j .. 4 j + 3 of ``randomness.words(key, .)``, keys [2, E], j [E]: the pairs
    2 j - 1 and 2 j under DOMAIN (the key's own two words stand for pair -1)."""
    h0, h1 = randomness.threefry2x32(keys, (np.uint32(2) * j - np.uint32(1), randomness.DOMAIN))
    w2, w3 = randomness.threefry2x32(keys, (np.uint32(2) * j, randomness.DOMAIN))
    first = j == 0
    return jnp.where(first, keys[0], h0), jnp.where(first, keys[1], h1), w2, w3


def _fallback_words(keys: Array, lane: Array, r: Array) -> tuple[Array, Array, Array, Array]:
    """The four words of fallback round r of ``lane``: (2 r, lane ^ D) and (2 r + 1, lane ^ D)."""
    high = lane ^ FALLBACK_DOMAIN
    w0, w1 = randomness.threefry2x32(keys, (np.uint32(2) * r, high))
    w2, w3 = randomness.threefry2x32(keys, (np.uint32(2) * r + np.uint32(1), high))
    return w0, w1, w2, w3


class _Elements:
    """The elements of a sampler on M runs, flat (run-major), and how each one is computed.

    An element reads four words per fast round: a beta element makes one try for its X lane
    and one for its Y lane (the two Box-Muller normals of (w0, w1), uniforms w2 and w3); a gamma
    element makes two tries for its one lane (``_round``). Lanes (fallback and boost words):
    beta X_i = 2 i, Y_i = 2 i + 1; gamma element e = e, within its run.
    """

    def __init__(self, kind: str, fast_tries: int, boost: bool, keys: Array, a: Array,
                 b: Array):
        self.kind, self.boost = kind, boost
        # Beta: one try per lane a round; gamma: two.
        self.fast_rounds = fast_tries if kind == "beta" else -(-fast_tries // 2)
        self.keys = keys                                       # [M, 2]
        self.per_run = a.shape[1]
        self.a, self.b = a.reshape(-1), b.reshape(-1)           # [M n]

    def valid(self) -> Array:
        return _valid(self.a) & (_valid(self.b) if self.kind == "beta" else True)

    def compute(self, at: Array | None, fallback: bool) -> Array:
        """The values of elements ``at`` (None: all); without ``fallback``, NaN where a lane
        has no accepted fast try, with it the exact value (the fallback loop runs on ``at``)."""
        n = self.per_run
        if at is None:
            index = jnp.arange(self.a.shape[0], dtype=jnp.int32)
            keys = jnp.broadcast_to(self.keys[:, None, :], (self.keys.shape[0], n, 2))
            keys = keys.reshape(-1, 2).T
            a, b = self.a, self.b
        else:
            index, keys, a, b = at, self.keys[at // n].T, self.a[at], self.b[at]
        beta = self.kind == "beta"
        element = (index % n).astype(jnp.uint32)
        da, ca = _proposal(a)
        db, cb = _proposal(b)
        ya = jnp.full(a.shape, np.float32(jnp.nan))
        yb = ya if beta else jnp.zeros_like(ya)
        for r in range(self.fast_rounds):
            w0, w1, w2, w3 = _fast_words(keys, element + np.uint32(r * n))
            if beta:
                x0, x1 = _box_muller(w0, w1)
                ya = jnp.where(jnp.isnan(ya), _try(da, ca, x0, randomness.to_open_unit(w2)), ya)
                yb = jnp.where(jnp.isnan(yb), _try(db, cb, x1, randomness.to_open_unit(w3)), yb)
            else:
                ya = jnp.where(jnp.isnan(ya), _round(da, ca, w0, w1, w2, w3), ya)
        if fallback:
            lane_a = np.uint32(2) * element if beta else element
            lane_b = lane_a + np.uint32(1)

            def one_round(state):
                r, ya, yb = state
                ya = jnp.where(jnp.isnan(ya), _round(da, ca, *_fallback_words(keys, lane_a, r)),
                               ya)
                if beta:
                    yb = jnp.where(jnp.isnan(yb),
                                   _round(db, cb, *_fallback_words(keys, lane_b, r)), yb)
                return r + np.uint32(1), ya, yb

            # An invalid shape never accepts a try: it is not retried (its value is NaN).
            valid = _valid(a) & _valid(b)
            ya, yb = jnp.where(valid, ya, 0.0), jnp.where(valid, yb, 0.0)
            _, ya, yb = jax.lax.while_loop(
                lambda s: jnp.any(jnp.isnan(s[1]) | jnp.isnan(s[2])), one_round,
                (np.uint32(0), ya, yb))
        return self._finish(keys, element, a, b, ya, yb)

    def _finish(self, keys, element, a, b, ya, yb) -> Array:
        """The sample from the accepted y of each lane; NaN for invalid shapes and (set here,
        explicitly: XLA:CPU's exp clamps its argument, so a NaN does not survive it) for a
        lane without an accepted try."""
        missing = jnp.isnan(ya) | jnp.isnan(yb)
        valid = _valid(a) & (_valid(b) if self.kind == "beta" else True)
        return jnp.where(valid & ~missing, self._value(keys, element, a, b, ya, yb),
                         np.float32(jnp.nan))

    def _value(self, keys, element, a, b, ya, yb) -> Array:
        log_a = log_b = None
        if self.boost:
            words = randomness.threefry2x32(keys, (element, BOOST_DOMAIN))
            log_a, log_b = _logs(a, ya, words[0]), _logs(b, yb, words[1])
        elif self.kind == "log_gamma":
            log_a = _logs(a, ya, None)
        if self.kind == "log_gamma":
            return log_a
        if self.kind == "gamma":
            return _values(a, ya, log_a)
        x_value, y_value = _values(a, ya, log_a), _values(b, yb, log_b)
        total = x_value + y_value
        out = x_value / total
        if self.boost:
            out = jnp.where(total >= np.float32(1e-30), out, jax.nn.sigmoid(log_a - log_b))
        return out


def _slots(lanes: int) -> int:
    """Pending lanes per gather (speed only: no value depends on it)."""
    return lanes if lanes <= 64 else max(64, min(16384, lanes // 128))


def _compact(pending: Array) -> tuple[Array, Array, Array]:
    """An ordered list of the pending lanes without a prefix sum over the lanes.

    The flags are packed 32 to a uint32 word; a prefix sum runs over the N / 32 word popcounts
    only. Returns (words, inclusive counts, total): slot s (< total) is found by
    ``_slot_lanes``. (``jnp.nonzero``/``cumsum`` over 2e5 lanes cost ~1.5 ms on XLA:CPU.)
    """
    m = pending.shape[0]
    width = -(-m // 32)
    flags = jnp.pad(pending, (0, width * 32 - m)).reshape(width, 32).astype(jnp.uint32)
    words = jnp.sum(flags << jnp.arange(32, dtype=jnp.uint32), axis=1, dtype=jnp.uint32)
    counts = jax.lax.population_count(words).astype(jnp.int32)
    inclusive = jnp.cumsum(counts)
    return words, inclusive, inclusive[-1]


def _slot_lanes(words: Array, inclusive: Array, slot: Array) -> Array:
    """The lane of each output slot (slot < total): its word by binary search, then its bit."""
    # "scan_unrolled": one fused gather per step instead of a while loop of small kernels.
    word = jnp.searchsorted(inclusive, slot, side="right", method="scan_unrolled")
    word = jnp.minimum(word, words.shape[0] - 1)
    bits = words[word]
    rank = slot - (inclusive[word] - jax.lax.population_count(bits).astype(jnp.int32))
    # The rank-th set bit: the largest p with popcount(bits below p) <= rank.
    position = jnp.zeros(slot.shape, jnp.uint32)
    for step in (16, 8, 4, 2, 1):
        trial = position + np.uint32(step)
        below = jax.lax.population_count(bits & ((np.uint32(1) << trial) - np.uint32(1)))
        position = jnp.where(below.astype(jnp.int32) <= rank, trial, position)
    return word * 32 + position.astype(jnp.int32)


def _fallback(complete, pending: Array) -> Array:
    """The values of the pending elements ([E]; 0 elsewhere).

    The pending elements are listed once (``_compact``) and taken ``slots`` at a time;
    ``complete(at)`` computes a chunk exactly (its loop runs on the chunk only), and the chunk
    is scattered into the result. With none pending it costs the listing: one pass.
    """
    m = pending.shape[0]
    slots = _slots(m)
    words, inclusive, total = _compact(pending)

    def chunk(state):
        start, out = state
        slot = start + jnp.arange(slots, dtype=jnp.int32)
        live = slot < total
        at = jnp.where(live, _slot_lanes(words, inclusive, slot), 0)
        return start + slots, out.at[jnp.where(live, at, m)].set(complete(at), mode="drop")

    init = (jnp.int32(0), jnp.zeros((m,), jnp.float32))
    return jax.lax.while_loop(lambda s: s[0] < total, chunk, init)[1]


def _logs(shapes: Array, y: Array, boost_word: Array | None) -> Array:
    """ln Gamma(a) = ln(d v) + ln(U) / a (the last term for a < 1 only), floored finite."""
    d, _ = _proposal(shapes)
    log_value = jnp.log(d) + np.float32(3.0) * jnp.log1p(y)
    if boost_word is None:
        boost = np.float32(0.0)
    else:
        log_u = jnp.log(randomness.to_open_unit(boost_word)) / shapes
        boost = jnp.where(shapes < 1.0, log_u, np.float32(0.0))
    return jnp.maximum(log_value + boost, _LOG_FLOOR)


def _values(shapes: Array, y: Array, log_value: Array | None) -> Array:
    """Gamma(a) = d (1 + y)^3, or exp(ln value) for boosted lanes (a < 1)."""
    d, _ = _proposal(shapes)
    plain = d * (np.float32(1.0) + y) ** 3
    # The same select in both branches of the boost ``cond`` (only the boost branch has
    # shapes < 1): LLVM may contract d * v + ... into a fused multiply-add where nothing stands
    # between the two, which moved the last bit between the branches.
    boosted = np.float32(0.0) if log_value is None else jnp.exp(log_value)
    return jnp.where(shapes < 1.0, boosted, plain)


def _pipeline(kind: str, fast_tries: int, boost: bool, keys: Array, a: Array, b: Array
              ) -> Array:
    """Fast tries and final arithmetic for every element, then the exact fallback for those
    with a lane whose fast tries all failed: keys [M, 2], shapes [M, n] -> values [M n]."""
    elements = _Elements(kind, fast_tries, boost, keys, a, b)
    fast = elements.compute(None, fallback=False)
    # Two consumers (the listing and the final where) keep ``fast`` in memory: XLA:CPU would
    # recompute it for each read inside a single consumer that reads it more than once.
    pending = jnp.isnan(fast) & elements.valid()
    slow = _fallback(lambda at: elements.compute(at, fallback=True), pending)
    return jnp.where(pending, slow, fast)


def _flat_sample(kind: str, fast_tries: int, keys: Array, a: Array, b: Array) -> Array:
    """The sampler on M runs at once: keys [M, 2], shapes a, b [M, n] -> [M, n].

    The whole pipeline runs inside a ``cond`` (boost branch when any shape < 1): its operands
    are materialised once (a key derived by hashes in the caller is not recomputed per lane)
    and its loops run over the flat elements (module docstring).
    """
    if kind == "normal":
        # No choice to make: the predicate is always true ((k | 1) != 0), the cond is only the
        # boundary that keeps the loop on the flat elements and the keys materialised.
        always = (keys[0, 0] | np.uint32(1)) != np.uint32(0)
        out = jax.lax.cond(always, functools.partial(_normals, per_run=a.shape[1]),
                           lambda k: jnp.zeros((a.size,), jnp.float32), keys)
        return out.reshape(a.shape)
    shapes_below_one = jnp.any(a < 1.0) | (jnp.any(b < 1.0) if kind == "beta" else False)
    out = jax.lax.cond(shapes_below_one,
                       functools.partial(_pipeline, kind, fast_tries, True),
                       functools.partial(_pipeline, kind, fast_tries, False), keys, a, b)
    return out.reshape(a.shape)


@functools.lru_cache(maxsize=None)
def _sampler(kind: str, fast_tries: int):
    """The custom_vmap'd sampler of one kind: (keys [M, 2], a [M, n], b [M, n]) -> [M, n]."""

    @jax.custom_batching.custom_vmap
    def sample(keys, a, b):
        return _flat_sample(kind, fast_tries, keys, a, b)

    @sample.def_vmap
    def flatten(axis_size, in_batched, keys, a, b):
        # (batch, run) -> runs, and the same sampler on them: its body, or, under a further
        # vmap, this rule one level up. No lane's value depends on the batch.
        args = [x if batched else jnp.broadcast_to(x, (axis_size,) + x.shape)
                for x, batched in zip((keys, a, b), in_batched)]
        out = sample(*[x.reshape((-1,) + x.shape[2:]) for x in args])
        return out.reshape((axis_size, -1) + out.shape[1:]), True

    return sample


def _key_words(key: Array) -> Array:
    """The two uint32 words of a key (raw, as the runner passes them, or a typed JAX key)."""
    if jax.dtypes.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return jnp.asarray(key, jnp.uint32)


def _run(kind: str, key: Array, a: Array, b: Array | None, fast_tries: int) -> Array:
    a = jnp.asarray(a, jnp.float32)
    shape = a.shape
    if b is not None:
        b = jnp.asarray(b, jnp.float32)
        shape = jnp.broadcast_shapes(a.shape, b.shape)
        b = jnp.broadcast_to(b, shape).reshape(1, -1)
    a = jnp.broadcast_to(a, shape).reshape(1, -1)
    key = _key_words(key).reshape(1, 2)
    out = _sampler(kind, int(fast_tries))(key, a, a if b is None else b)
    return out.reshape(shape)


# ---------------------------------------------------------------------------------------------
# Public samplers.
# ---------------------------------------------------------------------------------------------
def gamma(key: Array, shape_param: Array, *, fast_tries: int = FAST_TRIES) -> Array:
    """X ~ Gamma(shape_param, 1), elementwise over an array of shapes > 0 (float32).

    Marsaglia and Tsang (2000), "A simple method for generating gamma variables", ACM TOMS
    26(3), sec. 4: d = a - 1/3, c = 1 / sqrt(9 d), v = (1 + c x)^3, accept d v if
    u < 1 - 0.0331 x^4 or ln u < x^2 / 2 + d - d v + d ln v; a < 1 by sec. 6,
    Gamma(a) = Gamma(a + 1) U^(1/a), which underflows to 0 in float32 where the variate does
    (``log_gamma`` does not). Invalid shapes (<= 0, inf, NaN) give NaN. ``fast_tries``: tries
    per lane before the exact fallback; the values depend on it, their distribution does not
    (tests set 0 to run every element through the fallback).
    """
    return _run("gamma", key, shape_param, None, fast_tries)


def log_gamma(key: Array, shape_param: Array, *, fast_tries: int = FAST_TRIES) -> Array:
    """ln X for X ~ Gamma(shape_param, 1), elementwise (float32).

    Marsaglia and Tsang (2000), ACM TOMS 26(3), sec. 4 and sec. 6 in log space:
    ln Gamma(a) = ln(d v) + ln(U) / a for a < 1, finite for every a > 0 (floored at -3.4e38).
    The same draws as ``gamma``: exp(log_gamma(k, a)) == gamma(k, a) up to rounding.
    """
    return _run("log_gamma", key, shape_param, None, fast_tries)


def beta(key: Array, a: Array, b: Array, *, fast_tries: int = FAST_TRIES) -> Array:
    """Beta(a, b) variates, elementwise over the broadcast shapes of ``a`` and ``b`` (> 0).

    X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b) independent (Devroye 1986, ch. IX.4,
    Theorem 4.1; gammas by Marsaglia and Tsang 2000, see ``gamma``); sigmoid(ln X - ln Y) where
    X + Y < 1e-30 (both shapes tiny), so never 0/0. Thompson sampling's posteriors
    Beta(1 + successes, 1 + failures) are the intended use (shapes from 0.1 to 1e6).
    """
    return _run("beta", key, a, b, fast_tries)


# ---------------------------------------------------------------------------------------------
# Discrete helpers.
# ---------------------------------------------------------------------------------------------
def bernoulli(key: Array, p: Array) -> Array:
    """Bernoulli(p) draws (bool, shape of ``p``): u < p, u from ``randomness.uniform``."""
    p = jnp.asarray(p, jnp.float32)
    return randomness.uniform(key, p.shape) < p


def categorical(key: Array, probabilities: Array) -> Array:
    """One index drawn from ``probabilities`` ([K], need not sum to 1): an int32 scalar.

    Inversion (Devroye 1986, ch. III.2): the number of cumulative sums <= u * total, for one
    uniform u from the key's first word (``randomness.uniform``).
    """
    probabilities = jnp.asarray(probabilities, jnp.float32)
    cdf = jnp.cumsum(probabilities)
    u = randomness.uniform(key) * cdf[-1]
    return jnp.minimum(jnp.sum(cdf <= u), probabilities.shape[-1] - 1).astype(jnp.int32)
