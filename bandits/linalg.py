"""Linear-algebra pieces shared by every linear learner (LinUCB, LinTS, OFUL, GLM-UCB, delayed,
dueling, routing and neural-linear learners): a ridge-regression state with Sherman-Morrison
updates.

Regularised least squares (Abbasi-Yadkori, Pal and Szepesvari 2011, "Improved Algorithms for
Linear Stochastic Bandits", sec. 2 and Theorem 2; Li, Chu, Langford and Schapire 2010, Algorithm 1,
lines 5-13):

    V_t = lambda I + sum_s x_s x_s^T,    b_t = sum_s r_s x_s,    theta_t = V_t^{-1} b_t.

The state keeps V^{-1} (never V): one rank-one Sherman-Morrison step per observation,

    (V + x x^T)^{-1} = V^{-1} - u u^T,    u = V^{-1} x / sqrt(1 + x^T V^{-1} x),

written as the outer product of one vector with itself and symmetrised, so V^{-1} stays exactly
symmetric in float32 (DESIGN.md, "Conventions"). The log-determinant ratio
log(det V_t / det(lambda I)) that OFUL's radius needs is tracked alongside by the matrix
determinant lemma, log det(V + x x^T) = log det V + log(1 + x^T V^{-1} x), so no determinant is
ever computed.

Compensated (double-float32) storage, ``RidgeState.create(..., compensated=True)``. Measured
(2-core CPU, d = 8, lambda = 1): with fresh random contexts plain float32 Sherman-Morrison stays
within 2e-5 (relative) of a float64 solve after 10^5 updates, but when the design concentrates on
a few directions (a fixed arm set, a learner that has settled on its best arm) the decrements
u u^T ~ 1/n^2 fall below the rounding unit of V^{-1}'s O(1/lambda) entries and are lost: after
10^5 updates on 3 fixed arms the predictions <theta_t, x> were off by 2.7 and the widths by 160%
(by 0.03 and 1% after 10^4). With ``compensated=True`` V^{-1} and b are each kept as an unevaluated
sum hi + lo of two float32 arrays (Knuth's TwoSum, "The Art of Computer Programming" vol. 2,
sec. 4.2.2, Theorem B; Dekker 1971), which brought the same case to 5e-4 and 2e-4. It costs about
twice the update arithmetic and memory. ``create`` defaults to ``compensated=False`` so that
states built directly as ``RidgeState(inverse=..., target=..., log_det_ratio=..., count=...)``
keep the same pytree structure as created ones (``inverse_residual`` / ``target_residual`` are
None for an uncompensated state); pass ``compensated=True`` for long runs on fixed arm sets.

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
- ``RidgeState.create(dim, regulariser, num_models=None, compensated=False)``: lambda^{-1} I, b = 0.
- ``RidgeState.from_design(design, target, regulariser, count, compensated=False)``: a state
  from V and b in one Cholesky factorisation (e.g. after retraining features).
- ``sherman_morrison(inverse, x)``: symmetric rank-one update of V^{-1};
  ``compensated_sherman_morrison(inverse, residual, x)``: the same on hi + lo.
- ``add_design``, ``add_target``, ``add_observation``: one (masked) observation.
- ``add_batch``: a masked batch [B, d] into one regression, in order.
- ``add_batch_per_arm``: a masked batch of (arm, x, r) into per-arm regressions.
- ``estimate``: theta = V^{-1} b (also per arm, by broadcasting).
- ``inverse_matrix``: V^{-1} as one float32 array (hi + lo rounded).
- ``confidence_widths``: ||x_k||_{V^{-1}} = sqrt(x_k^T V^{-1} x_k) for each row of [K, d].
- ``widths_per_arm``: the same with one V^{-1} per arm.
- ``widths``: either of the two, from a state (uses the residual when there is one).
- ``oful_radius``: beta_t of Abbasi-Yadkori et al. (2011), Theorem 2.
- ``sample_posterior``: theta ~ N(theta_hat, v^2 V^{-1}) (Agrawal and Goyal 2013, Algorithm 1).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from flax import struct

from bandits.core import tree_where

Array = jax.Array


@struct.dataclass
class RidgeState:
    """Ridge regression V_t = lambda I + sum x x^T, b_t = sum r x, kept as V^{-1} and b.

    inverse:          [..., d, d] V_t^{-1}, symmetric (the hi part when compensated).
    target:           [..., d] b_t (the hi part when compensated).
    log_det_ratio:    [...] log(det V_t / det(lambda I)) = sum_s log(1 + x_s^T V_{s-1}^{-1} x_s).
    count:            [...] number of observations added to the design (float32).
    inverse_residual: [..., d, d] lo part of V^{-1} (None: not compensated).
    target_residual:  [..., d] lo part of b (None: not compensated).
    """

    inverse: Array
    target: Array
    log_det_ratio: Array
    count: Array
    inverse_residual: Optional[Array] = None
    target_residual: Optional[Array] = None

    @property
    def compensated(self) -> bool:
        return self.inverse_residual is not None

    @classmethod
    def create(cls, dim: int, regulariser, num_models: Optional[int] = None,
               compensated: bool = False) -> "RidgeState":
        """The empty regression V = lambda I (``regulariser`` = lambda > 0, may be traced).

        num_models: if given, a stack of that many independent regressions (e.g. one per arm).
        compensated: keep V^{-1} and b in double-float32 (see the module docstring).
        """
        lead = () if num_models is None else (num_models,)
        eye = jnp.eye(dim, dtype=jnp.float32) / jnp.asarray(regulariser, jnp.float32)
        inverse = jnp.broadcast_to(eye, lead + (dim, dim))
        target = jnp.zeros(lead + (dim,), jnp.float32)
        return cls(inverse=inverse, target=target,
                   log_det_ratio=jnp.zeros(lead, jnp.float32),
                   count=jnp.zeros(lead, jnp.float32),
                   inverse_residual=jnp.zeros_like(inverse) if compensated else None,
                   target_residual=jnp.zeros_like(target) if compensated else None)

    @classmethod
    def from_design(cls, design: Array, target: Array, regulariser, count,
                    compensated: bool = False) -> "RidgeState":
        """A state from V ([d, d], lambda I included) and b ([d]) by one Cholesky factorisation.

        For rebuilding a regression at once (e.g. NeuralLinear after retraining its features);
        ``compensated`` must match the states it is mixed with (``lax.cond`` branches).
        """
        dim = design.shape[-1]
        design = 0.5 * (design + design.T)
        factor = jnp.linalg.cholesky(design)
        inverse = jax.scipy.linalg.cho_solve((factor, True), jnp.eye(dim, dtype=design.dtype))
        inverse = 0.5 * (inverse + inverse.T)
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor)))
        return cls(inverse=inverse, target=target,
                   log_det_ratio=log_det - dim * jnp.log(jnp.asarray(regulariser, jnp.float32)),
                   count=jnp.asarray(count, jnp.float32),
                   inverse_residual=jnp.zeros_like(inverse) if compensated else None,
                   target_residual=jnp.zeros_like(target) if compensated else None)


# ---------------------------------------------------------------------------------------------
# Rank-one updates.
# ---------------------------------------------------------------------------------------------
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


def two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    """s, e with s = fl(a + b) and a + b = s + e exactly (Knuth's TwoSum, elementwise)."""
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def _compensated_add(hi: Array, lo: Array, addend: Array) -> tuple[Array, Array]:
    """(hi + lo) + addend as a renormalised pair (hi', lo')."""
    s, error = two_sum(hi, addend)
    return two_sum(s, lo + error)


def compensated_sherman_morrison(inverse: Array, residual: Array,
                                 x: Array) -> tuple[Array, Array, Array]:
    """``sherman_morrison`` on V^{-1} = inverse + residual (double-float32), kept symmetric.

    Returns (new inverse, new residual, x^T V^{-1} x before the update).
    """
    vx = inverse @ x + residual @ x
    quad = jnp.maximum(x @ vx, 0.0)
    u = vx / jnp.sqrt(1.0 + quad)
    hi, lo = _compensated_add(inverse, residual, -jnp.outer(u, u))
    return 0.5 * (hi + hi.T), 0.5 * (lo + lo.T), quad


def add_design(state: RidgeState, x: Array, valid: Array = True) -> RidgeState:
    """Adds x x^T to V (V^{-1}, log-determinant, count); b is untouched. No-op if not valid."""
    if state.compensated:
        inverse, residual, quad = compensated_sherman_morrison(state.inverse,
                                                               state.inverse_residual, x)
    else:
        (inverse, quad), residual = sherman_morrison(state.inverse, x), None
    new = state.replace(inverse=inverse, inverse_residual=residual,
                        log_det_ratio=state.log_det_ratio + jnp.log1p(quad),
                        count=state.count + 1.0)
    return tree_where(jnp.asarray(valid), new, state)


def add_target(state: RidgeState, x: Array, reward: Array, valid: Array = True) -> RidgeState:
    """Adds r x to b; V is untouched. No-op if not valid."""
    if state.compensated:
        target, residual = _compensated_add(state.target, state.target_residual, reward * x)
    else:
        target, residual = state.target + reward * x, None
    new = state.replace(target=target, target_residual=residual)
    return tree_where(jnp.asarray(valid), new, state)


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

    For each item the played arm's regression is read out (a gather), updated once, and written
    back with a one-hot ``jnp.where`` over the arm axis (DESIGN.md: no scatter; cost d^2 for the
    update plus K d^2 selects, not K updates).

    Args:
      state: regressions with a leading arm axis [K, ...].
      arms: [B] int arm of each item; features: [B, d]; rewards: [B]; mask: [B] bool.
    """
    num_arms = state.count.shape[0]

    def add_one(s: RidgeState, item) -> RidgeState:
        arm, x, r, valid = item
        chosen = jax.tree_util.tree_map(lambda leaf: leaf[arm], s)
        updated = add_observation(chosen, x, r, valid)
        hot = jnp.arange(num_arms) == arm

        def put(leaf, new):
            return jnp.where(hot.reshape((num_arms,) + (1,) * new.ndim), new[None], leaf)

        return jax.tree_util.tree_map(put, s, updated)

    items = (arms.reshape(-1).astype(jnp.int32), features, rewards, mask)
    if features.shape[0] == 1:
        return add_one(state, jax.tree_util.tree_map(lambda v: v[0], items))
    return jax.lax.scan(lambda s, item: (add_one(s, item), None), state, items)[0]


# ---------------------------------------------------------------------------------------------
# Estimates and confidence widths.
# ---------------------------------------------------------------------------------------------
def estimate(state: RidgeState) -> Array:
    """theta = V^{-1} b ([..., d]; per arm when the state has an arm axis)."""
    def apply(matrix, vector):
        return jnp.einsum("...ij,...j->...i", matrix, vector)

    theta = apply(state.inverse, state.target)
    if state.compensated:
        theta = theta + (apply(state.inverse, state.target_residual)
                         + apply(state.inverse_residual, state.target))
    return theta


def inverse_matrix(state: RidgeState) -> Array:
    """V^{-1} as one float32 array ([..., d, d]; hi + lo rounded when compensated)."""
    if state.compensated:
        return state.inverse + state.inverse_residual
    return state.inverse


def confidence_widths(inverse: Array, features: Array,
                      residual: Optional[Array] = None) -> Array:
    """||x_k||_{V^{-1}} = sqrt(x_k^T V^{-1} x_k) for every row of ``features`` [K, d] -> [K].

    residual: the lo part of a compensated V^{-1} (optional).
    """
    quad = jnp.einsum("ki,ij,kj->k", features, inverse, features)
    if residual is not None:
        quad = quad + jnp.einsum("ki,ij,kj->k", features, residual, features)
    return jnp.sqrt(jnp.maximum(quad, 0.0))


def widths_per_arm(inverse: Array, features: Array, residual: Optional[Array] = None) -> Array:
    """sqrt(x_k^T V_k^{-1} x_k) with one V_k^{-1} per arm: inverse [K, d, d], features [K, d]."""
    quad = jnp.einsum("ki,kij,kj->k", features, inverse, features)
    if residual is not None:
        quad = quad + jnp.einsum("ki,kij,kj->k", features, residual, features)
    return jnp.sqrt(jnp.maximum(quad, 0.0))


def widths(state: RidgeState, features: Array) -> Array:
    """||x_k||_{V^{-1}} for the rows of ``features`` [K, d]: one regression, or one per arm."""
    if state.inverse.ndim == 3:
        return widths_per_arm(state.inverse, features, state.inverse_residual)
    return confidence_widths(state.inverse, features, state.inverse_residual)


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
    inverse = inverse_matrix(state)
    bump = jitter * jnp.trace(inverse) / dim
    chol = jnp.linalg.cholesky(inverse + bump * jnp.eye(dim, dtype=inverse.dtype))
    noise = jax.random.normal(key, (dim,), jnp.float32)
    return estimate(state) + scale * (chol @ noise)
