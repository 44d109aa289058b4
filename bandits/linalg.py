"""Linear-algebra pieces shared by every linear learner (LinUCB, LinTS, OFUL, GLM-UCB, delayed,
dueling and routing learners): a ridge-regression state with Sherman-Morrison updates.

Regularised least squares (Abbasi-Yadkori, Pal and Szepesvari 2011, "Improved Algorithms for
Linear Stochastic Bandits", sec. 2 and Theorem 2; Li, Chu, Langford and Schapire 2010, Algorithm 1,
lines 5-13):

    V_t = lambda I + sum_s x_s x_s^T,    b_t = sum_s r_s x_s,    theta_t = V_t^{-1} b_t.

The state keeps V^{-1} (never V): one rank-one Sherman-Morrison step per observation,

    (V + x x^T)^{-1} = V^{-1} - (V^{-1} x)(V^{-1} x)^T / (1 + x^T V^{-1} x),

written as the outer product of one vector with itself and symmetrised, so V^{-1} stays exactly
symmetric in float32 (DESIGN.md, "Conventions"). The log-determinant ratio
log(det V_t / det(lambda I)) that OFUL's radius needs is tracked alongside by the matrix
determinant lemma, log det(V + x x^T) = log det V + log(1 + x^T V^{-1} x), so no determinant is
ever computed.

Masking: every update takes a ``valid`` flag (a feedback item's mask) and returns the state
bit-for-bit unchanged where it is False, so masked-out feedback never moves a learner.

The design part (V^{-1}, log-determinant, count) and the target part (b) can be updated
separately (``add_design`` / ``add_target``): OTFLinUCB (Vernade, Carpentier, Lattimore, Zappella,
Erdogdu and Ormandi 2020) puts an action into V when it is played but its reward into b only when
it arrives. ``add_observation`` does both at once.

Shapes: one ``RidgeState`` is one regression ([d, d], [d], [], []). A disjoint model (one
regression per arm, LinUCB Algorithm 1) is a ``RidgeState`` whose leaves carry a leading arm axis
[K, ...]; ``add_batch_per_arm`` and ``widths_per_arm`` work on it.

Functions (rlax style: pure, documented, no hidden state):
- ``RidgeState.create(dim, regulariser, num_models=None)``: lambda^{-1} I, b = 0.
- ``sherman_morrison(inverse, x)``: symmetric rank-one update of V^{-1}.
- ``add_design``, ``add_target``, ``add_observation``: one (masked) observation.
- ``add_batch``: a masked batch [B, d] into one regression, in order.
- ``add_batch_per_arm``: a masked batch of (arm, x, r) into per-arm regressions.
- ``estimate``: theta = V^{-1} b (also per arm, by broadcasting).
- ``confidence_widths``: ||x_k||_{V^{-1}} = sqrt(x_k^T V^{-1} x_k) for each row of [K, d].
- ``widths_per_arm``: the same with one V^{-1} per arm.
- ``oful_radius``: beta_t of Abbasi-Yadkori et al. (2011), Theorem 2.
- ``sample_posterior``: theta ~ N(theta_hat, v^2 V^{-1}) (Agrawal and Goyal 2013, Algorithm 1).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array


@struct.dataclass
class RidgeState:
    """Ridge regression V_t = lambda I + sum x x^T, b_t = sum r x, kept as V^{-1} and b.

    inverse:       [..., d, d] V_t^{-1}, symmetric.
    target:        [..., d] b_t.
    log_det_ratio: [...] log(det V_t / det(lambda I)) = sum_s log(1 + x_s^T V_{s-1}^{-1} x_s).
    count:         [...] number of observations added to the design (float32).
    """

    inverse: Array
    target: Array
    log_det_ratio: Array
    count: Array

    @classmethod
    def create(cls, dim: int, regulariser, num_models: Optional[int] = None) -> "RidgeState":
        """The empty regression V = lambda I (``regulariser`` = lambda > 0, may be traced).

        num_models: if given, a stack of that many independent regressions (e.g. one per arm).
        """
        lead = () if num_models is None else (num_models,)
        eye = jnp.eye(dim, dtype=jnp.float32) / jnp.asarray(regulariser, jnp.float32)
        return cls(inverse=jnp.broadcast_to(eye, lead + (dim, dim)),
                   target=jnp.zeros(lead + (dim,), jnp.float32),
                   log_det_ratio=jnp.zeros(lead, jnp.float32),
                   count=jnp.zeros(lead, jnp.float32))


def sherman_morrison(inverse: Array, x: Array) -> tuple[Array, Array]:
    """Rank-one update of V^{-1} to (V + x x^T)^{-1}, kept symmetric.

    Args:
      inverse: [d, d] symmetric V^{-1}.
      x: [d] the new feature vector.
    Returns:
      (new inverse [d, d], x^T V^{-1} x [] before the update; log1p of it is the increase of
      log det V by the matrix determinant lemma).
    """
    vx = inverse @ x
    quad = jnp.maximum(x @ vx, 0.0)
    u = vx / jnp.sqrt(1.0 + quad)
    new = inverse - jnp.outer(u, u)
    return 0.5 * (new + new.T), quad


def _where(valid: Array, new: RidgeState, old: RidgeState) -> RidgeState:
    return jax.tree_util.tree_map(lambda n, o: jnp.where(valid, n, o), new, old)


def add_design(state: RidgeState, x: Array, valid: Array = True) -> RidgeState:
    """Adds x x^T to V (V^{-1}, log-determinant, count); b is untouched. No-op if not valid."""
    inverse, quad = sherman_morrison(state.inverse, x)
    new = state.replace(inverse=inverse, log_det_ratio=state.log_det_ratio + jnp.log1p(quad),
                        count=state.count + 1.0)
    return _where(jnp.asarray(valid), new, state)


def add_target(state: RidgeState, x: Array, reward: Array, valid: Array = True) -> RidgeState:
    """Adds r x to b; V is untouched. No-op if not valid."""
    target = jnp.where(valid, state.target + reward * x, state.target)
    return state.replace(target=target)


def add_observation(state: RidgeState, x: Array, reward: Array,
                    valid: Array = True) -> RidgeState:
    """Adds one observation (x, r): V += x x^T, b += r x. No-op if not valid."""
    return add_target(add_design(state, x, valid), x, reward, valid)


def add_batch(state: RidgeState, features: Array, rewards: Array, mask: Array) -> RidgeState:
    """Adds a masked batch to one regression, item by item (order as given).

    Args:
      state: one regression (no leading axis).
      features: [B, d]; rewards: [B]; mask: [B] bool (False items are skipped).
    """
    if features.shape[0] == 1:
        return add_observation(state, features[0], rewards[0], mask[0])

    def body(s, item):
        x, r, m = item
        return add_observation(s, x, r, m), None

    return jax.lax.scan(body, state, (features, rewards, mask))[0]


def add_batch_per_arm(state: RidgeState, arms: Array, features: Array, rewards: Array,
                      mask: Array) -> RidgeState:
    """Adds a masked batch to a stack of per-arm regressions (disjoint model).

    Every arm's regression is updated with a per-arm validity ``mask & (arm == k)`` (the one-hot
    form DESIGN.md prefers to scatters on CPU; cost K d^2 per item).

    Args:
      state: regressions with a leading arm axis [K, ...].
      arms: [B] int arm of each item; features: [B, d]; rewards: [B]; mask: [B] bool.
    """
    num_arms = state.count.shape[0]
    valid = mask[:, None] & (arms.reshape(-1)[:, None] == jnp.arange(num_arms)[None, :])  # [B, K]
    per_arm = jax.vmap(add_batch, in_axes=(0, None, None, 1))
    return per_arm(state, features, rewards, valid)


def estimate(state: RidgeState) -> Array:
    """theta = V^{-1} b ([..., d]; per arm when the state has an arm axis)."""
    return jnp.einsum("...ij,...j->...i", state.inverse, state.target)


def confidence_widths(inverse: Array, features: Array) -> Array:
    """||x_k||_{V^{-1}} = sqrt(x_k^T V^{-1} x_k) for every row of ``features`` [K, d] -> [K]."""
    quad = jnp.einsum("ki,ij,kj->k", features, inverse, features)
    return jnp.sqrt(jnp.maximum(quad, 0.0))


def widths_per_arm(inverse: Array, features: Array) -> Array:
    """sqrt(x_k^T V_k^{-1} x_k) with one V_k^{-1} per arm: inverse [K, d, d], features [K, d]."""
    quad = jnp.einsum("ki,kij,kj->k", features, inverse, features)
    return jnp.sqrt(jnp.maximum(quad, 0.0))


def oful_radius(log_det_ratio: Array, noise: Array, delta: Array, regulariser: Array,
                norm_bound: Array) -> Array:
    """The confidence radius beta_t of Abbasi-Yadkori, Pal and Szepesvari (2011), Theorem 2.

    With probability 1 - delta, for all t, ||theta_t - theta*||_{V_t} <= beta_t with

        beta_t = R sqrt(2 log(det(V_t)^{1/2} det(lambda I)^{-1/2} / delta)) + lambda^{1/2} S
               = R sqrt(log(det V_t / det(lambda I)) + 2 log(1 / delta)) + sqrt(lambda) S,

    for R-sub-Gaussian noise and ||theta*||_2 <= S.

    Args:
      log_det_ratio: log(det V_t / det(lambda I)) (``RidgeState.log_det_ratio``).
      noise: R; delta: failure probability; regulariser: lambda; norm_bound: S.
    """
    return (noise * jnp.sqrt(jnp.maximum(log_det_ratio, 0.0) - 2.0 * jnp.log(delta))
            + jnp.sqrt(regulariser) * norm_bound)


def sample_posterior(key: Array, state: RidgeState, scale: Array, jitter: float = 1e-6) -> Array:
    """One draw theta ~ N(V^{-1} b, scale^2 V^{-1}) (Agrawal and Goyal 2013, Algorithm 1).

    Uses a Cholesky factor of V^{-1} (plus ``jitter`` times its mean diagonal, so float32
    round-off cannot make the factorisation fail). One regression (no arm axis); vmap for more.
    """
    dim = state.target.shape[-1]
    inverse = state.inverse
    bump = jitter * jnp.trace(inverse) / dim
    chol = jnp.linalg.cholesky(inverse + bump * jnp.eye(dim, dtype=inverse.dtype))
    noise = jax.random.normal(key, (dim,), jnp.float32)
    return estimate(state) + scale * (chol @ noise)
