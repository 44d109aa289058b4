"""Linear-algebra pieces shared by every linear learner (LinUCB, LinTS, OFUL, GLM-UCB, delayed,
dueling, routing and neural-linear learners): a ridge-regression state with Sherman-Morrison
updates.

Regularised least squares (Abbasi-Yadkori, Pal and Szepesvari 2011, "Improved Algorithms for
Linear Stochastic Bandits", sec. 2 and Theorem 2; Li, Chu, Langford and Schapire 2010, Algorithm 1,
lines 5-13):

    V_t = lambda I + sum_s x_s x_s^T,    b_t = sum_s r_s x_s,    theta_t = V_t^{-1} b_t.

The state keeps V^{-1} (never V): one rank-one Sherman-Morrison step per observation,

    (V + x x^T)^{-1} = V^{-1} - u u^T,    u = V^{-1} x / sqrt(1 + x^T V^{-1} x),

written as the outer product of one vector with itself, so V^{-1} stays exactly symmetric in
float32 without a symmetrising pass: u_i u_j and u_j u_i are the same product (also when XLA fuses
the subtraction into a fused multiply-add), so entries (i, j) and (j, i) see the same operations.
The log-determinant ratio log(det V_t / det(lambda I)) that OFUL's radius needs is tracked
alongside by the matrix determinant lemma, log det(V + x x^T) = log det V + log(1 + x^T V^{-1} x),
so no determinant is ever computed.

Compensated (double-float32) storage, ``RidgeState.create(..., compensated=True)``. Measured
(2-core CPU, d = 8, lambda = 1, one regression, 10^5 updates): with fresh random contexts plain
float32 Sherman-Morrison stays within 1e-5 (relative) of a float64 solve, but when the design
concentrates on a few directions (a fixed arm set, a learner that has settled on its best arm) the
decrements u u^T ~ 1/n^2 fall below the rounding unit of V^{-1}'s O(1/lambda) entries and are
lost: on 10 fixed arms, one played 99% of the time, the predictions <theta_t, x> were off by 0.19
and the widths by 75% (an earlier measurement on 3 fixed arms: 2.7 and 160% after 10^5 updates,
0.03 and 1% after 10^4). With ``compensated=True`` V^{-1} and b are each kept as an unevaluated
sum hi + lo of two float32 arrays (Knuth's TwoSum, "The Art of Computer Programming" vol. 2,
sec. 4.2.2, Theorem B; Dekker 1971), which brought the 10-arm case to 1.8e-5 and 2.3e-5. It costs
about twice the arithmetic, memory and memory traffic of an update. ``create`` defaults to
``compensated=False`` so that states built directly as ``RidgeState(inverse=..., target=...,
log_det_ratio=..., count=...)`` keep the same pytree structure as created ones
(``inverse_residual`` / ``target_residual`` / ``theta`` are None unless asked for); pass
``compensated=True`` for long runs on fixed arm sets.

Widths read the hi part of V^{-1} only. The lo part is below half a float32 unit of each entry,
and evaluating x^T V^{-1} x in float32 already rounds at that level (V^{-1}'s O(1/lambda) entries
cancel down to O(1/n) in a settled direction): measured on a fixed arm set after 10^5 updates
(disjoint models, K = 10, one arm played 99% of the time), the widths from hi alone were within
3.3e-4 (d = 8) and 5.2e-4 (d = 16) of float64, against 6.4e-4 and 1.9e-4 from hi + lo. So the
per-round index streams one float32 matrix per arm; the lo part is read and written only by
updates.

Cached estimate, ``RidgeState.create(..., cache_estimate=True)`` (the per-arm learners use it):
theta = V^{-1} b is kept in the state and moved by each update with the recursive least-squares
step (Plackett 1950, "Some theorems in least squares", Biometrika 37; the "RLS" update),

    theta' = theta + V'^{-1} x (r - x^T theta),    V'^{-1} x = V^{-1} x / (1 + x^T V^{-1} x),

(add_design alone: r = 0 in the bracket and b unchanged, theta' = theta - V'^{-1} x x^T theta;
add_target alone: theta' = theta + r V^{-1} x), all equal to V'^{-1} b' in exact arithmetic. It
costs O(d) per update with V^{-1} x, which the Sherman-Morrison step computes anyway, and saves an
O(d^2) matrix-vector product per arm and round in ``estimate``, and it is more accurate than
recomputing V^{-1} b, whose float32 products cancel b's O(n) entries down to O(1): on the same
fixed arm set (compensated) the cached predictions were within 1.3e-7 (d = 8) and 9e-8 (d = 16)
of float64, V^{-1} b recomputed from the stored hi + lo within 1.3e-4 and 6e-6. (Uncompensated,
the cached predictions stay within 3e-4 but the widths are off by 300%: the cache does not
replace compensation.)

Masking: every update takes a ``valid`` flag (a feedback item's mask) and returns the state
bit-for-bit unchanged where it is False, so masked-out feedback never moves a learner.

The design part (V^{-1}, log-determinant, count) and the target part (b) can be updated
separately (``add_design`` / ``add_target``): OTFLinUCB (Vernade, Carpentier, Lattimore, Zappella,
Erdogdu and Ormandi 2020) puts an action into V when it is played but its reward into b only when
it arrives. ``add_observation`` does both at once.

Shapes: one ``RidgeState`` is one regression ([d, d], [d], [], []). A disjoint model (one
regression per arm, LinUCB Algorithm 1) is a ``RidgeState`` whose leaves carry a leading arm axis
[K, ...]; ``add_batch_per_arm`` and ``widths_per_arm`` work on it. ``add_batch_per_arm`` reads the
played arm's regression out (a gather), updates it and writes it back (a scatter), so an update
touches one arm's d x d matrices, not all K of them.

Forgetting (bandits/drifting_linear.py). ``remove_observation`` is the Sherman-Morrison downdate
for an observation leaving a sliding window (Cheung, Simchi-Levi and Zhu 2019),

    (V - x x^T)^{-1} = V^{-1} + u u^T,    u = V^{-1} x / sqrt(1 - x^T V^{-1} x),

symmetric in the same way as the update; ``refit`` rebuilds a regression from its items at once
(``from_design``), which the sliding window does periodically so that float32 round-off of the
add / downdate pairs cannot accumulate. ``DiscountedRidge`` is the weighted regression of
Russac, Vernade and Cappe (2019): it keeps the design matrices V and tilde V themselves (their
update V <- gamma V + x x^T + (1 - gamma) lambda I is full rank, no rank-one inverse update
exists) and solves with a Cholesky factor each round; the update contracts old round-off by gamma
each step, so float32 errors stay bounded without compensation.

Matrix-vector products of the symmetric V^{-1} are written as a broadcast product summed over the
second-to-last axis, sum_i M_ij v_i: XLA:CPU vectorises that over j, where ``einsum`` / ``@``
became a batched dot per run and arm (measured 1.9x slower for the per-arm widths of 1,000 runs,
K = 10, d = 16).

Functions (rlax style: pure, documented, no hidden state):
- ``RidgeState.create(dim, regulariser, num_models=None, compensated=False,
  cache_estimate=False)``: lambda^{-1} I, b = 0.
- ``RidgeState.from_design(design, target, regulariser, count, compensated=False,
  cache_estimate=False)``: a state from V and b in one Cholesky factorisation (e.g. after
  retraining features).
- ``sherman_morrison(inverse, x)``: symmetric rank-one update of V^{-1};
  ``compensated_sherman_morrison(inverse, residual, x)``: the same on hi + lo.
- ``add_design``, ``add_target``, ``add_observation``: one (masked) observation.
- ``add_batch``: a masked batch [B, d] into one regression, in order.
- ``add_batch_per_arm``: a masked batch of (arm, x, r) into per-arm regressions.
- ``estimate``: theta = V^{-1} b (also per arm, by broadcasting; the cached one when kept).
- ``inverse_matrix``: V^{-1} as one float32 array (hi + lo rounded).
- ``confidence_widths``: ||x_k||_{V^{-1}} = sqrt(x_k^T V^{-1} x_k) for each row of [K, d].
- ``widths_per_arm``: the same with one V^{-1} per arm.
- ``widths``: either of the two, from a state (the hi part of V^{-1}, see above).
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


def _matvec(matrix: Array, vector: Array) -> Array:
    """M v for symmetric M ([..., d, d], [..., d] -> [..., d]) as sum_i M_ij v_i (see above)."""
    return jnp.sum(matrix * vector[..., :, None], axis=-2)


@struct.dataclass
class RidgeState:
    """Ridge regression V_t = lambda I + sum x x^T, b_t = sum r x, kept as V^{-1} and b.

    inverse:          [..., d, d] V_t^{-1}, symmetric (the hi part when compensated).
    target:           [..., d] b_t (the hi part when compensated).
    log_det_ratio:    [...] log(det V_t / det(lambda I)) = sum_s log(1 + x_s^T V_{s-1}^{-1} x_s).
    count:            [...] number of observations added to the design (float32).
    inverse_residual: [..., d, d] lo part of V^{-1} (None: not compensated).
    target_residual:  [..., d] lo part of b (None: not compensated).
    theta:            [..., d] the estimate V_t^{-1} b_t, kept up to date by every update
                      (None: not cached, ``estimate`` computes it).
    """

    inverse: Array
    target: Array
    log_det_ratio: Array
    count: Array
    inverse_residual: Optional[Array] = None
    target_residual: Optional[Array] = None
    theta: Optional[Array] = None

    @property
    def compensated(self) -> bool:
        return self.inverse_residual is not None

    @property
    def cached(self) -> bool:
        return self.theta is not None

    @classmethod
    def create(cls, dim: int, regulariser, num_models: Optional[int] = None,
               compensated: bool = False, cache_estimate: bool = False) -> "RidgeState":
        """The empty regression V = lambda I (``regulariser`` = lambda > 0, may be traced).

        num_models: if given, a stack of that many independent regressions (e.g. one per arm).
        compensated: keep V^{-1} and b in double-float32 (see the module docstring).
        cache_estimate: keep theta = V^{-1} b in the state (see the module docstring).
        """
        lead = () if num_models is None else (num_models,)
        eye = jnp.eye(dim, dtype=jnp.float32) / jnp.asarray(regulariser, jnp.float32)
        inverse = jnp.broadcast_to(eye, lead + (dim, dim))
        target = jnp.zeros(lead + (dim,), jnp.float32)
        return cls(inverse=inverse, target=target,
                   log_det_ratio=jnp.zeros(lead, jnp.float32),
                   count=jnp.zeros(lead, jnp.float32),
                   inverse_residual=jnp.zeros_like(inverse) if compensated else None,
                   target_residual=jnp.zeros_like(target) if compensated else None,
                   theta=jnp.zeros_like(target) if cache_estimate else None)

    @classmethod
    def from_design(cls, design: Array, target: Array, regulariser, count,
                    compensated: bool = False, cache_estimate: bool = False) -> "RidgeState":
        """A state from V ([d, d], lambda I included) and b ([d]) by one Cholesky factorisation.

        For rebuilding a regression at once (e.g. NeuralLinear after retraining its features);
        ``compensated`` and ``cache_estimate`` must match the states it is mixed with
        (``lax.cond`` branches).
        """
        dim = design.shape[-1]
        design = 0.5 * (design + design.T)
        factor = jnp.linalg.cholesky(design)
        inverse = jax.scipy.linalg.cho_solve((factor, True), jnp.eye(dim, dtype=design.dtype))
        inverse = 0.5 * (inverse + inverse.T)
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor)))
        state = cls(inverse=inverse, target=target,
                    log_det_ratio=log_det - dim * jnp.log(jnp.asarray(regulariser, jnp.float32)),
                    count=jnp.asarray(count, jnp.float32),
                    inverse_residual=jnp.zeros_like(inverse) if compensated else None,
                    target_residual=jnp.zeros_like(target) if compensated else None)
        return state.replace(theta=_solve(state)) if cache_estimate else state


# ---------------------------------------------------------------------------------------------
# Rank-one updates.
# ---------------------------------------------------------------------------------------------
def _inverse_times(inverse: Array, residual: Optional[Array], x: Array) -> Array:
    """V^{-1} x with V^{-1} = inverse (+ residual)."""
    vx = _matvec(inverse, x)
    return vx if residual is None else vx + _matvec(residual, x)


def _sherman_morrison_step(inverse: Array, residual: Optional[Array], x: Array):
    """(new inverse, new residual or None, V^{-1} x, x^T V^{-1} x), the last two before it."""
    vx = _inverse_times(inverse, residual, x)
    quad = jnp.maximum(jnp.sum(x * vx), 0.0)
    u = vx / jnp.sqrt(1.0 + quad)
    if residual is None:
        return inverse - jnp.outer(u, u), None, vx, quad
    new, new_residual = _compensated_add(inverse, residual, -jnp.outer(u, u))
    return new, new_residual, vx, quad


def sherman_morrison(inverse: Array, x: Array) -> tuple[Array, Array]:
    """Rank-one update of V^{-1} to (V + x x^T)^{-1}, exactly symmetric if V^{-1} is.

    Args:
      inverse: [d, d] symmetric V^{-1}.
      x: [d] the new feature vector.
    Returns:
      (new inverse [d, d], x^T V^{-1} x [] before the update; log1p of it is the increase of
      log det V by the matrix determinant lemma).
    """
    new, _, _, quad = _sherman_morrison_step(inverse, None, x)
    return new, quad


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
    new, new_residual, _, quad = _sherman_morrison_step(inverse, residual, x)
    return new, new_residual, quad


def _add_design(state: RidgeState, x: Array) -> tuple[RidgeState, Array, Array]:
    """V += x x^T (theta untouched); also returns V^{-1} x and x^T V^{-1} x from before."""
    inverse, residual, vx, quad = _sherman_morrison_step(state.inverse, state.inverse_residual,
                                                         x)
    return state.replace(inverse=inverse, inverse_residual=residual,
                         log_det_ratio=state.log_det_ratio + jnp.log1p(quad),
                         count=state.count + 1.0), vx, quad


def _add_target(state: RidgeState, x: Array, reward: Array) -> RidgeState:
    """b += r x (theta untouched)."""
    if state.compensated:
        target, residual = _compensated_add(state.target, state.target_residual, reward * x)
    else:
        target, residual = state.target + reward * x, None
    return state.replace(target=target, target_residual=residual)


def add_design(state: RidgeState, x: Array, valid: Array = True) -> RidgeState:
    """Adds x x^T to V (V^{-1}, log-determinant, count); b is untouched. No-op if not valid."""
    new, vx, quad = _add_design(state, x)
    if state.cached:          # theta' = V'^{-1} b = theta - V'^{-1} x x^T theta
        new = new.replace(theta=state.theta - vx * (jnp.sum(x * state.theta) / (1.0 + quad)))
    return tree_where(jnp.asarray(valid), new, state)


def add_target(state: RidgeState, x: Array, reward: Array, valid: Array = True) -> RidgeState:
    """Adds r x to b; V is untouched. No-op if not valid."""
    new = _add_target(state, x, reward)
    if state.cached:          # theta' = V^{-1} (b + r x) = theta + r V^{-1} x
        new = new.replace(theta=state.theta + reward * _inverse_times(
            state.inverse, state.inverse_residual, x))
    return tree_where(jnp.asarray(valid), new, state)


def add_observation(state: RidgeState, x: Array, reward: Array,
                    valid: Array = True) -> RidgeState:
    """Adds one observation (x, r): V += x x^T, b += r x. No-op if not valid."""
    new, vx, quad = _add_design(state, x)
    new = _add_target(new, x, reward)
    if state.cached:          # theta' = theta + V'^{-1} x (r - x^T theta)
        gain = (reward - jnp.sum(x * state.theta)) / (1.0 + quad)
        new = new.replace(theta=state.theta + vx * gain)
    return tree_where(jnp.asarray(valid), new, state)


def remove_observation(state: RidgeState, x: Array, reward: Array,
                       valid: Array = True) -> RidgeState:
    """Removes one observation (x, r) added before: V -= x x^T, b -= r x (the Sherman-Morrison
    downdate, module docstring). No-op if not valid. Not for cached-estimate states.

    x^T V^{-1} x < 1 holds in exact arithmetic for an x that is in V (V - x x^T >= lambda I);
    the factor 1 - x^T V^{-1} x is floored at 1e-6 against round-off.
    """
    vx = _inverse_times(state.inverse, state.inverse_residual, x)
    quad = jnp.sum(x * vx)
    keep = jnp.maximum(1.0 - quad, 1e-6)
    u = vx / jnp.sqrt(keep)
    if state.compensated:
        inverse, residual = _compensated_add(state.inverse, state.inverse_residual,
                                             jnp.outer(u, u))
        target, target_residual = _compensated_add(state.target, state.target_residual,
                                                   -reward * x)
    else:
        inverse, residual = state.inverse + jnp.outer(u, u), None
        target, target_residual = state.target - reward * x, None
    new = state.replace(inverse=inverse, inverse_residual=residual, target=target,
                        target_residual=target_residual,
                        log_det_ratio=state.log_det_ratio + jnp.log(keep),
                        count=state.count - 1.0)
    return tree_where(jnp.asarray(valid), new, state)


def refit(features: Array, rewards: Array, mask: Array, regulariser,
          compensated: bool = False) -> RidgeState:
    """The regression of the valid items ([B, d], [B], [B] bool) built at once (one Cholesky
    factorisation, ``RidgeState.from_design``): V = lambda I + sum x x^T, b = sum r x."""
    weight = mask.astype(jnp.float32)
    dim = features.shape[-1]
    design = (jnp.asarray(regulariser, jnp.float32) * jnp.eye(dim, dtype=jnp.float32)
              + (features * weight[:, None]).T @ features)
    target = features.T @ (rewards * weight)
    return RidgeState.from_design(design, target, regulariser, jnp.sum(weight),
                                  compensated=compensated)


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


def _take_row(leaf: Array, arm: Array) -> Array:
    """leaf[arm] for an in-range traced ``arm``, gathered as one flat row."""
    rows = leaf.reshape(leaf.shape[0], -1)
    return rows.at[arm].get(mode="promise_in_bounds").reshape(leaf.shape[1:])


def add_batch_per_arm(state: RidgeState, arms: Array, features: Array, rewards: Array,
                      mask: Array) -> RidgeState:
    """Adds a masked batch to a stack of per-arm regressions (disjoint model).

    For each item the played arm's regression is read out (a gather of one flat row per leaf),
    updated once and written back (``.at[arm].set``: a scatter under ``vmap``, in place), so an
    item costs O(d^2), not K d^2. A masked item writes back the values it read.

    Args:
      state: regressions with a leading arm axis [K, ...].
      arms: [B] int arm of each item (clipped to [0, K)); features: [B, d]; rewards: [B];
        mask: [B] bool.
    """
    num_arms = state.count.shape[0]

    def add_one(s: RidgeState, item) -> RidgeState:
        arm, x, r, valid = item
        arm = jnp.clip(arm, 0, num_arms - 1)
        chosen = jax.tree_util.tree_map(lambda leaf: _take_row(leaf, arm), s)
        updated = add_observation(chosen, x, r, valid)
        return jax.tree_util.tree_map(lambda leaf, new: leaf.at[arm].set(new), s, updated)

    items = (arms.reshape(-1).astype(jnp.int32), features, rewards, mask)
    if features.shape[0] == 1:
        return add_one(state, jax.tree_util.tree_map(lambda v: v[0], items))
    return jax.lax.scan(lambda s, item: (add_one(s, item), None), state, items)[0]


# ---------------------------------------------------------------------------------------------
# Estimates and confidence widths.
# ---------------------------------------------------------------------------------------------
def _solve(state: RidgeState) -> Array:
    """V^{-1} b from the stored inverse and target (hi + lo products when compensated)."""
    theta = _matvec(state.inverse, state.target)
    if state.compensated:
        theta = theta + (_matvec(state.inverse, state.target_residual)
                         + _matvec(state.inverse_residual, state.target))
    return theta


def estimate(state: RidgeState) -> Array:
    """theta = V^{-1} b ([..., d]; per arm when the state has an arm axis)."""
    return state.theta if state.cached else _solve(state)


def inverse_matrix(state: RidgeState) -> Array:
    """V^{-1} as one float32 array ([..., d, d]; hi + lo rounded when compensated)."""
    if state.compensated:
        return state.inverse + state.inverse_residual
    return state.inverse


def _quadratic_forms(inverse: Array, features: Array) -> Array:
    """x_k^T M_k x_k for rows x_k of [..., K, d] and M_k of [..., K, d, d] (or one shared M)."""
    return jnp.sum(_matvec(inverse, features) * features, axis=-1)


def confidence_widths(inverse: Array, features: Array,
                      residual: Optional[Array] = None) -> Array:
    """||x_k||_{V^{-1}} = sqrt(x_k^T V^{-1} x_k) for every row of ``features`` [K, d] -> [K].

    residual: the lo part of a compensated V^{-1} (optional).
    """
    quad = _quadratic_forms(inverse[None], features)
    if residual is not None:
        quad = quad + _quadratic_forms(residual[None], features)
    return jnp.sqrt(jnp.maximum(quad, 0.0))


def widths_per_arm(inverse: Array, features: Array, residual: Optional[Array] = None) -> Array:
    """sqrt(x_k^T V_k^{-1} x_k) with one V_k^{-1} per arm: inverse [K, d, d], features [K, d]."""
    quad = _quadratic_forms(inverse, features)
    if residual is not None:
        quad = quad + _quadratic_forms(residual, features)
    return jnp.sqrt(jnp.maximum(quad, 0.0))


def widths(state: RidgeState, features: Array) -> Array:
    """||x_k||_{V^{-1}} for the rows of ``features`` [K, d]: one regression, or one per arm.

    From the hi part of V^{-1} only (module docstring: the lo part is below its rounding).
    """
    if state.inverse.ndim == 3:
        return widths_per_arm(state.inverse, features)
    return confidence_widths(state.inverse, features)


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


# ---------------------------------------------------------------------------------------------
# Discounted (exponentially weighted) ridge regression.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class DiscountedRidge:
    """The weighted regression of Russac, Vernade and Cappe (2019), Algorithm 1 (D-LinUCB):

        V_t       = gamma V_{t-1}         + x x^T + (1 - gamma) lambda I,
        tilde V_t = gamma^2 tilde V_{t-1} + x x^T + (1 - gamma^2) lambda I,
        b_t       = gamma b_{t-1} + r x,

    from V_0 = tilde V_0 = lambda I, b_0 = 0 (so V_t = lambda I + sum_s gamma^{t-s} x_s x_s^T).
    The matrices are kept as they are (module docstring, "Forgetting"); ``count`` is the number
    of observations t, which the confidence radius needs.
    """

    design: Array    # [d, d] V_t
    tilde: Array     # [d, d] tilde V_t
    target: Array    # [d] b_t
    count: Array     # [] t (float32)

    @classmethod
    def create(cls, dim: int, regulariser) -> "DiscountedRidge":
        eye = jnp.asarray(regulariser, jnp.float32) * jnp.eye(dim, dtype=jnp.float32)
        return cls(design=eye, tilde=eye, target=jnp.zeros((dim,), jnp.float32),
                   count=jnp.zeros((), jnp.float32))


def discounted_add(state: DiscountedRidge, x: Array, reward: Array, gamma: Array,
                   regulariser: Array, valid: Array = True) -> DiscountedRidge:
    """One observation into a ``DiscountedRidge`` (its update equations). No-op if not valid."""
    eye = jnp.eye(x.shape[-1], dtype=jnp.float32) * regulariser
    outer = jnp.outer(x, x)
    gamma2 = gamma * gamma
    new = DiscountedRidge(design=gamma * state.design + outer + (1.0 - gamma) * eye,
                          tilde=gamma2 * state.tilde + outer + (1.0 - gamma2) * eye,
                          target=gamma * state.target + reward * x,
                          count=state.count + 1.0)
    return tree_where(jnp.asarray(valid), new, state)


def discounted_estimate_and_widths(state: DiscountedRidge,
                                   features: Array) -> tuple[Array, Array]:
    """(theta_hat = V^{-1} b [d], ||x_a||_{V^{-1} tilde V V^{-1}} for the rows of [K, d]).

    One Cholesky factor of V solves for b and for every x_a at once (O(d^3 + K d^2)).
    """
    factor = jax.scipy.linalg.cho_factor(0.5 * (state.design + state.design.T), lower=True)
    solved = jax.scipy.linalg.cho_solve(factor, jnp.concatenate(
        [state.target[:, None], features.T], axis=1))                    # [d, 1 + K]
    theta, projected = solved[:, 0], solved[:, 1:]                        # V^{-1} x_a columns
    quad = jnp.sum(projected * (state.tilde @ projected), axis=0)
    return theta, jnp.sqrt(jnp.maximum(quad, 0.0))
