"""The bounded, jittable logistic maximum-likelihood estimate shared by every GLM learner.

Used by GLM-UCB (``bandits/linear.py``), the linear dueling learners (MaxInP, CoLSTIM, linear
dueling UCB/TS, ``bandits/dueling/linear.py``) and LDB-DF (``bandits/dueling/delayed.py``).

The model is the logistic GLM of Filippi, Cappe, Garivier and Szepesvari (2010), "Parametric
Bandits: The Generalized Linear Case", and Li, Lu and Zhou (2017), "Provably Optimal Algorithms
for Generalized Linear Contextual Bandits" (their eq. 3, the MLE), which the linear dueling
bandits inherit with x = x_i - x_j (Saha 2021, "Optimal Algorithms for Stochastic Contextual
Preference Bandits", sec. 3; Bengs, Saha and Hullermeier 2022, "Stochastic Contextual Dueling
Bandits under Linear Stochastic Transitivity Models", eq. 4):

    P(y = 1 | x) = sigmoid(<theta, x>),
    L_t(theta) = sum_s w_s [softplus(<theta, x_s>) - y_s <theta, x_s>] + (lambda / 2) ||theta||^2.

The weights w_s are where inverse-probability weighting enters: LDB-DF weighs an arrived
comparison from round s by 1 / P(D <= t - s), recomputed every round from the stored round s
(``inverse_probability_weights``), so the weighted loss estimates the full-information loss.
With all weights 1 this is the plain ridge-regularised MLE.

Bounded cost (a fixed cost per round): the minimisation is ``iterations`` warm-started Newton
steps (a static count, so a round costs the same every time and a sweep never recompiles),
each O(N d^2 + d^3) over a fixed-capacity history of N items. A regularised logistic loss is
strictly convex with Hessian >= lambda I, so Newton converges quadratically from a warm start;
the optional ``max_step`` clips each step's Euclidean norm (a trust region) for the first rounds,
when the warm start may be far from the minimiser.

The history is a ring buffer (``History``) of (input, target, round, arrival round, valid):
item weights are not stored but recomputed from ``rounds`` each round, since IPW weights change
with t. When the buffer is full the oldest item is overwritten; ``History.overwritten`` counts
such losses (never silent). A capacity equal to the horizon never overwrites with one item per
round.

Ridge pieces (the design matrix V_t = lambda I + sum x x^T, its Sherman-Morrison inverse and the
widths ||x||_{V^{-1}}) are in ``bandits/linalg.py``; this module does not repeat them. For a
GLM-shaped confidence matrix use ``fisher_information`` (the loss's Hessian at theta).

Functions (rlax style: pure, documented, no hidden state):
- ``History.create(capacity, dim)`` / ``History.append(inputs, targets, rounds, mask, now)``.
- ``logistic_loss(theta, inputs, targets, weights, regulariser)``: L above.
- ``loss_gradient_hessian(...)``: its gradient [d] and Hessian [d, d].
- ``fisher_information(theta, inputs, weights, regulariser)``: the Hessian alone.
- ``newton_step`` / ``fit_logistic(theta, inputs, targets, weights, regulariser, iterations)``.
- ``fit_history(theta, history, weights, regulariser, iterations)``: the same on a History.
- ``inverse_probability_weights(arrival_probability, valid, max_weight)``: 1 / P, clipped.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array


# ---------------------------------------------------------------------------------------------
# The history buffer.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class History:
    """A fixed-capacity ring buffer of GLM observations (capacity N, dimension d).

    inputs:   [N, d] regression inputs (dueling: x_i - x_j of the compared pair).
    targets:  [N] outcomes in [0, 1] (dueling: 1.0 when the first arm won).
    rounds:   [N] int32 round in which the action was taken (s).
    arrivals: [N] int32 round in which the item reached the learner (s + observed delay).
    valid:    [N] bool, True for a slot that holds an item.
    written:  [] int32 items ever appended; the next slot is written % N.
    """

    inputs: Array
    targets: Array
    rounds: Array
    arrivals: Array
    valid: Array
    written: Array

    @classmethod
    def create(cls, capacity: int, dim: int) -> "History":
        return cls(inputs=jnp.zeros((capacity, dim), jnp.float32),
                   targets=jnp.zeros((capacity,), jnp.float32),
                   rounds=jnp.zeros((capacity,), jnp.int32),
                   arrivals=jnp.zeros((capacity,), jnp.int32),
                   valid=jnp.zeros((capacity,), bool),
                   written=jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return self.valid.shape[-1]

    @property
    def overwritten(self) -> Array:
        """How many items were overwritten because the buffer was full."""
        return jnp.maximum(self.written - self.capacity, 0)

    def append(self, inputs: Array, targets: Array, rounds: Array, mask: Array,
               now: Array) -> "History":
        """Appends the items of a masked batch (in order); masked-out items are dropped.

        Args:
          inputs: [B, d]; targets: [B]; rounds: [B] int (round of the action);
          mask: [B] bool; now: [] the round in which the batch arrives.
        The batch must not exceed the capacity (B <= N).
        """
        mask = jnp.asarray(mask, bool)
        position = self.written + jnp.cumsum(mask.astype(jnp.int32)) - 1
        slots = jnp.where(mask, position % self.capacity, self.capacity)   # N: dropped
        now = jnp.broadcast_to(jnp.asarray(now, jnp.int32), mask.shape)

        def put(buffer, values):
            return buffer.at[slots].set(values.astype(buffer.dtype), mode="drop")

        return History(inputs=put(self.inputs, inputs), targets=put(self.targets, targets),
                       rounds=put(self.rounds, rounds), arrivals=put(self.arrivals, now),
                       valid=put(self.valid, mask),
                       written=self.written + jnp.sum(mask.astype(jnp.int32)))


# ---------------------------------------------------------------------------------------------
# The weighted, regularised logistic loss and its minimisation.
# ---------------------------------------------------------------------------------------------
def logistic_loss(theta: Array, inputs: Array, targets: Array, weights: Array,
                  regulariser: Array) -> Array:
    """sum_s w_s [softplus(z_s) - y_s z_s] + (lambda / 2) ||theta||^2 with z_s = <theta, x_s>.

    Args:
      theta: [d]; inputs: [N, d]; targets: [N] in [0, 1]; weights: [N] (0 for empty slots);
      regulariser: lambda.
    """
    z = inputs @ theta
    per_item = jax.nn.softplus(z) - targets * z
    return jnp.sum(weights * per_item) + 0.5 * regulariser * jnp.sum(theta * theta)


def fisher_information(theta: Array, inputs: Array, weights: Array,
                       regulariser: Array) -> Array:
    """The loss's Hessian: sum_s w_s p_s (1 - p_s) x_s x_s^T + lambda I ([d, d], symmetric)."""
    p = jax.nn.sigmoid(inputs @ theta)
    curvature = weights * p * (1.0 - p)
    hessian = (inputs * curvature[:, None]).T @ inputs
    hessian = 0.5 * (hessian + hessian.T)
    return hessian + regulariser * jnp.eye(theta.shape[0], dtype=theta.dtype)


def loss_gradient_hessian(theta: Array, inputs: Array, targets: Array, weights: Array,
                          regulariser: Array) -> tuple[Array, Array]:
    """Gradient [d] and Hessian [d, d] of ``logistic_loss`` at theta (closed form)."""
    p = jax.nn.sigmoid(inputs @ theta)
    gradient = inputs.T @ (weights * (p - targets)) + regulariser * theta
    return gradient, fisher_information(theta, inputs, weights, regulariser)


def newton_step(theta: Array, inputs: Array, targets: Array, weights: Array,
                regulariser: Array, max_step: Optional[float] = None) -> Array:
    """One Newton step theta - H^{-1} g, its norm clipped to ``max_step`` if given.

    H >= lambda I > 0, so the Cholesky solve is well defined for lambda > 0.
    """
    gradient, hessian = loss_gradient_hessian(theta, inputs, targets, weights, regulariser)
    factor = jax.scipy.linalg.cho_factor(hessian)
    step = jax.scipy.linalg.cho_solve(factor, gradient)
    if max_step is not None:
        norm = jnp.sqrt(jnp.sum(step * step))
        step = step * jnp.minimum(1.0, max_step / jnp.maximum(norm, 1e-12))
    return theta - step


def fit_logistic(theta: Array, inputs: Array, targets: Array, weights: Array,
                 regulariser: Array, iterations: int,
                 max_step: Optional[float] = None) -> Array:
    """``iterations`` (static) Newton steps on ``logistic_loss`` from the warm start theta."""
    def body(_, current):
        return newton_step(current, inputs, targets, weights, regulariser, max_step)

    return jax.lax.fori_loop(0, iterations, body, theta)


def fit_history(theta: Array, history: History, weights: Array, regulariser: Array,
                iterations: int, max_step: Optional[float] = None) -> Array:
    """``fit_logistic`` over a History; empty slots get weight 0 whatever ``weights`` says.

    Args:
      theta: [d] warm start (the previous round's estimate).
      weights: [N] per-slot weights (1 for the plain MLE, IPW weights for LDB-DF).
    """
    weights = jnp.where(history.valid, weights, 0.0)
    return fit_logistic(theta, history.inputs, history.targets, weights, regulariser,
                        iterations, max_step)


def inverse_probability_weights(arrival_probability: Array, valid: Array,
                                max_weight: Array = jnp.inf) -> Array:
    """1 / P(item has arrived by now), 0 for invalid items, clipped at ``max_weight``.

    With P(arrived) = 0 for a valid item (impossible under the model that produced P) the
    weight is max_weight (finite when clipped), never inf or nan.
    """
    probability = jnp.maximum(arrival_probability, 1e-12)
    return jnp.where(valid, jnp.minimum(1.0 / probability, max_weight), 0.0)
