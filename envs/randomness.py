"""Counter-based random numbers: which 32-bit words a round draws, and how.

Salmon, Moraes, Dror and Shaw (2011), "Parallel random numbers: as easy as 1, 2, 3" (SC'11):
Threefry-2x32 with 20 rounds is a keyed bijection of a pair of 32-bit words; hashing a counter
gives random words addressed by the counter, so any word of any run can be computed on its own.
This is the hash behind ``jax.random``'s default implementation; here it is written as
straight-line ``jnp`` code (XLA fuses it with its consumers on every backend; JAX's own CPU
lowering is a rolled loop that XLA:CPU cannot fuse), and bit-identical to JAX's
(``threefry2x32(k, (0, d)) == jax.random.key_data(jax.random.fold_in(k, d))``; tested).

The scheme (docs/design.md, "Random numbers"):

- Every run has a key ``k``: two uint32 words, derived by the config layer from (master seed,
  seed index, instance) -- never from the run's position in a batch.
- In round ``t`` (0-based) consumer ``c`` (``OBSERVE`` = 0, ``ACT`` = 1, ``STEP`` = 2; wrappers
  and the runner's own draws use higher numbers) gets the key

      key(t, c) = threefry2x32(k, (t, c)),

  one hash. The key is a valid JAX key (``jax.random.uniform(key)`` works in user code), and its
  two words are themselves random: ``words(key, n)`` returns them for ``n <= 2`` without another
  hash, and hashes ``(i, DOMAIN)`` under the key for the i-th further pair.
- Consumers the round does not use cost nothing: XLA drops the hash of an unused key.

Everything a run draws is therefore a function of (run key, round, consumer, word index): results
do not depend on batch size, chunk size, device count or which other learners share the batch.
Samplers built on these words (``uniform``, ``normal``, ``gamma``, ``beta``, ...) live below.
Exact non-uniform samplers (normal, gamma, beta, bernoulli, categorical): envs/distributions.py.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

OBSERVE, ACT, STEP = 0, 1, 2
# The high counter word of "more words from a consumer key": keeps those draws apart from the
# counters ``jax.random`` itself hashes under the same key (small iotas in the low words).
DOMAIN = np.uint32(0xB5297A4D)
SUBKEY_DOMAIN = np.uint32(0x68E31DA4)

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: Array, r: int) -> Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(key: Array, counter: tuple[Array, Array]) -> tuple[Array, Array]:
    """Threefry-2x32 (20 rounds) of ``counter`` under ``key``: two uint32 words.

    Args:
      key: uint32 [2] (or [2, ...] to hash many counters under many keys elementwise).
      counter: (c0, c1), uint32 arrays broadcastable against key[0].
    Returns:
      (x0, x1), the hashed words, same shape as the broadcast counters.
    """
    k0 = jnp.asarray(key[0], jnp.uint32)
    k1 = jnp.asarray(key[1], jnp.uint32)
    k2 = k0 ^ k1 ^ _PARITY
    schedule = (k0, k1, k2)
    x0 = jnp.asarray(counter[0], jnp.uint32) + k0
    x1 = jnp.asarray(counter[1], jnp.uint32) + k1
    for block in range(5):
        for r in _ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, r) ^ x0
        x0 = x0 + schedule[(block + 1) % 3]
        x1 = x1 + schedule[(block + 2) % 3] + np.uint32(block + 1)
    return x0, x1


def consumer_key(run_key: Array, t: Array, consumer: int) -> Array:
    """key(t, c) = threefry2x32(run key, (t, c)): the key of one consumer in round ``t``."""
    x0, x1 = threefry2x32(run_key, (jnp.asarray(t, jnp.uint32), np.uint32(consumer)))
    return jnp.stack([x0, x1])


def words(key: Array, count: int) -> Array:
    """``count`` random uint32 words from a key ([count]).

    The first two are the key's own words (no hash); the i-th further pair is
    threefry2x32(key, (i, DOMAIN)).
    """
    key = jnp.asarray(key, jnp.uint32)
    if count <= 2:
        return key[:count]
    pairs = (count - 1) // 2
    x0, x1 = threefry2x32(key, (jnp.arange(pairs, dtype=jnp.uint32), DOMAIN))
    more = jnp.stack([x0, x1], axis=-1).reshape(-1)
    return jnp.concatenate([key, more])[:count]


def subkey(key: Array, index: int) -> Array:
    """A further key from ``key`` (one hash): threefry2x32(key, (index, SUBKEY_DOMAIN)).

    For a consumer that hands keys on (a learner whose index is random and whose ties are broken
    at random uses the key's own words for the tie and ``subkey(key, 0)`` for the index).
    """
    x0, x1 = threefry2x32(jnp.asarray(key, jnp.uint32), (np.uint32(index), SUBKEY_DOMAIN))
    return jnp.stack([x0, x1])


def to_unit(bits: Array) -> Array:
    """uint32 words -> float32 uniforms in [0, 1) on a grid of 2^-23 (as ``jax.random``)."""
    mantissa = (jnp.asarray(bits, jnp.uint32) >> np.uint32(9)) | np.uint32(0x3F800000)
    return jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0


def to_open_unit(bits: Array) -> Array:
    """uint32 words -> float32 uniforms in (0, 1): the midpoints of the 2^-23 grid (safe logs)."""
    return to_unit(bits) + np.float32(2.0 ** -24)


def uniform(key: Array, shape: tuple[int, ...] = ()) -> Array:
    """Uniforms in [0, 1) of ``shape`` from the words of ``key`` (no hash for one or two)."""
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return to_unit(words(key, size)).reshape(shape)


# ---------------------------------------------------------------------------------------------
# A random permutation addressed by a counter: position -> element, nothing stored.
# ---------------------------------------------------------------------------------------------
PERMUTATION_ROUNDS = 6


def permuted_index(key: Array, position: Array, size: int, cycle: Array = 0) -> Array:
    """Element ``position`` (in [0, size)) of a pseudo-random permutation of [0, size).

    A keyed bijection, so a whole permutation costs no memory and any position is computed on
    its own (a per-run shuffle of a table's rows without an [N] array per run). Construction:
    the alternating Feistel network on Z_a x Z_b of Black and Rogaway (2002), "Ciphers with
    Arbitrary Finite Domains" (CT-RSA; method FE2, ``PERMUTATION_ROUNDS`` rounds, each round
    adding a threefry word of (other half, round) under ``key`` to one half modulo its size), on
    a x b >= size with a = ceil(sqrt(size)), b = ceil(size / a), restricted to [0, size) by
    cycle walking (their section 3: re-encrypt until the value falls inside; it terminates
    because the cycle through a value of [0, size) returns to it). Fewer than a of the a x b
    values lie outside, so a walk is longer than one step with probability < 1 / sqrt(size).
    Luby and Rackoff (1988, SIAM J. Comput.) show that 4 Feistel rounds with independent random
    round functions give a pseudo-random permutation; 6 leave a margin for the small, unbalanced
    halves used here (tested: every position of a small permutation is uniform over keys).

    ``cycle`` selects an independent permutation under the same key (pass number over a table).
    """
    a = max(1, math.isqrt(size - 1) + 1) if size > 1 else 1
    b = max(1, -(-size // a))
    a_, b_ = np.uint32(a), np.uint32(b)
    key = jnp.asarray(key, jnp.uint32)
    base = jnp.asarray(cycle, jnp.uint32) * np.uint32(PERMUTATION_ROUNDS)

    def encrypt(x):
        left, right = x % a_, x // a_
        for r in range(PERMUTATION_ROUNDS):
            counter = base + np.uint32(r)
            if r % 2 == 0:
                left = (left + threefry2x32(key, (right, counter))[0] % a_) % a_
            else:
                right = (right + threefry2x32(key, (left, counter))[0] % b_) % b_
        return left + a_ * right

    first = encrypt(jnp.asarray(position, jnp.uint32))
    walked = jax.lax.while_loop(lambda x: x >= np.uint32(size), encrypt, first)
    return walked.astype(jnp.int32)
