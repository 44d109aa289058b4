"""The network pieces of the neural learners (``bandits/neural.py``, and the neural dueling
learners of ``bandits/dueling/neural.py``): the MLP, TrainNN, the replay buffer, the diagonal
precision and the Bayesian linear regression of NeuralLinear. The papers, and the choices that
keep these pieces jittable under ``vmap`` with a fixed cost per round, are described in
``bandits/neural.py``.

Shared pieces (stable API; the neural dueling learners use them too):
- ``MLP``, ``init_network``, ``network_values``, ``last_layer_features``: the network.
- ``gradient_features(network, params, x, width)``: (f(x_k), g(x_k)) for rows x_k.
- ``flat_size``: number of parameters p.
- ``replay_create``, ``replay_add``, ``replay_sample``, ``replay_count``: the buffer.
- ``make_optimizer``, ``squared_loss``, ``train_network``: TrainNN.
- ``retrain_on_schedule``: the every-m-rounds ``lax.cond``.
- ``diagonal_precision_init``, ``diagonal_precision_add``, ``diagonal_widths``: diagonal Z.
- ``BayesianRegression``, ``regression_add``, ``regression_sample``: NeuralLinear's last layer.
- ``cholesky_lower``, ``solve_lower``, ``solve_lower_transposed``: small dense algebra without
  LAPACK calls (a CPU deadlock workaround, see ``cholesky_lower``).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax import struct

from bandits import glm
from envs.core import Array, Feedback


OPTIMIZERS = ("adam", "sgd")


# ---------------------------------------------------------------------------------------------
# The network.
# ---------------------------------------------------------------------------------------------
class MLP(nn.Module):
    """f(x) = w^T phi(x) + b with phi(x) = ``len(widths)`` ReLU layers; x [..., d] -> [...]."""

    widths: Sequence[int]

    def setup(self):
        self.hidden = [nn.Dense(w) for w in self.widths]
        self.head = nn.Dense(1)

    def features(self, x: Array) -> Array:
        """The last hidden layer phi(x) ([..., d] -> [..., widths[-1]])."""
        for layer in self.hidden:
            x = nn.relu(layer(x))
        return x

    def __call__(self, x: Array) -> Array:
        return self.head(self.features(x))[..., 0]


def init_network(network: MLP, key: Array, feature_dim: int) -> Any:
    """Initial parameters theta_0 (a pytree) for inputs of dimension ``feature_dim``."""
    return network.init(key, jnp.zeros((feature_dim,), jnp.float32))


def network_values(network: MLP, params: Any, x: Array) -> Array:
    """f(x; params) for inputs [..., d] -> [...]."""
    return network.apply(params, x)


def last_layer_features(network: MLP, params: Any, x: Array) -> Array:
    """phi(x; params), the last hidden layer, for inputs [..., d] -> [..., width]."""
    return network.apply(params, x, method=MLP.features)


def flatten_rows(tree: Any, rows: int) -> Array:
    """A pytree whose leaves have a leading axis of ``rows`` -> [rows, p] (fixed leaf order)."""
    return jnp.concatenate([leaf.reshape(rows, -1) for leaf in jax.tree_util.tree_leaves(tree)],
                           axis=1)


def flat_size(params: Any) -> int:
    """p, the number of network parameters."""
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))


def gradient_features(network: MLP, params: Any, x: Array, width: int) -> tuple[Array, Array]:
    """f(x_k; theta) and g(x_k; theta) = grad_theta f(x_k; theta) / sqrt(width) for each row.

    Args:
      x: [K, d] inputs (one per arm). width: the m of the papers' 1/sqrt(m) scaling.
    Returns:
      values [K], gradients [K, p] (parameters flattened in ``flatten_rows`` order).
    """
    value_and_grad = jax.vmap(jax.value_and_grad(lambda p, xk: network.apply(p, xk)),
                              in_axes=(None, 0))
    values, grads = value_and_grad(params, x)
    return values, flatten_rows(grads, x.shape[0]) / math.sqrt(width)


# ---------------------------------------------------------------------------------------------
# The replay buffer (a glm.History of flattened feedback features).
# ---------------------------------------------------------------------------------------------
def replay_create(capacity: int, item_dim: int) -> glm.History:
    """An empty buffer of ``capacity`` items of ``item_dim`` = A * d floats each."""
    return glm.History.create(capacity, item_dim)


def replay_add(buffer: glm.History, feedback: Feedback, now: Array) -> glm.History:
    """Appends the valid items of a feedback batch (features [B, A, d] stored as [B, A * d]).

    Masked-out items are dropped: the buffer is unchanged by an all-False batch.
    """
    inputs = feedback.features.reshape(feedback.size, -1)
    return buffer.append(inputs, feedback.reward, feedback.round, feedback.mask, now)


def replay_count(buffer: glm.History) -> Array:
    """n, the number of items held (float32 [])."""
    return jnp.sum(buffer.valid.astype(jnp.float32))


def replay_sample(buffer: glm.History, key: Array, batch_size: int,
                  slot_weights: Optional[Array] = None) -> tuple[Array, Array, Array]:
    """A minibatch drawn uniformly with replacement from the items held.

    Items fill slots 0..n-1 (the ring only overwrites), so a slot index floor(u n) is uniform
    over them. Returns inputs [b, A * d], targets [b] and weights [b]: 0 when the buffer is
    empty, else ``slot_weights`` of the drawn slots (1 when None; e.g. inverse-probability
    weights for delayed feedback).
    """
    n = replay_count(buffer)
    u = jax.random.uniform(key, (batch_size,))
    slots = jnp.minimum(jnp.floor(u * n).astype(jnp.int32),
                        jnp.maximum(n.astype(jnp.int32) - 1, 0))
    weights = buffer.valid[slots].astype(jnp.float32)
    if slot_weights is not None:
        weights = weights * slot_weights[slots]
    return buffer.inputs[slots], buffer.targets[slots], weights


# ---------------------------------------------------------------------------------------------
# Training (TrainNN).
# ---------------------------------------------------------------------------------------------
def make_optimizer(name: str, learning_rate: Array) -> optax.GradientTransformation:
    """``adam`` or plain ``sgd``; the learning rate may be a traced array (a swept setting).

    The optimiser state does not depend on the learning rate, so a state made with any value
    (e.g. at ``init``) serves every call.
    """
    if name == "adam":
        return optax.adam(learning_rate)
    return optax.sgd(learning_rate)


def squared_loss(predictions: Array, targets: Array) -> Array:
    """(f - r)^2 / 2 per item."""
    return 0.5 * (predictions - targets) ** 2


def sum_of_squares(tree: Any) -> Array:
    return sum(jnp.sum(leaf * leaf) for leaf in jax.tree_util.tree_leaves(tree))


def train_network(item_loss: Callable[[Any, Array, Array], Array], params: Any, anchor: Any,
                  opt_state: Any, optimizer: optax.GradientTransformation,
                  buffer: glm.History, key: Array, steps: int, batch_size: int,
                  penalty: Array, slot_weights: Optional[Array] = None) -> tuple[Any, Any]:
    """``steps`` (static) optimiser steps on (1/n) [sum_i w_i loss_i + penalty/2 ||theta - anchor||^2].

    The sum runs over the n items of ``buffer``; each step uses a fresh uniform minibatch of
    ``batch_size`` items, so the minibatch gradient is unbiased for the objective above.
    NeuralUCB/NeuralTS (TrainNN): loss_i = (f(x_i) - r_i)^2 / 2, penalty = m lambda, anchor =
    theta_0.

    Args:
      item_loss: (params, inputs [b, A * d], targets [b]) -> per-item losses [b].
      slot_weights: optional [capacity] weights w of the buffer slots (default 1).
    Returns:
      (params, opt_state) after the steps.
    """
    n = jnp.maximum(replay_count(buffer), 1.0)

    def objective(p, inputs, targets, weights):
        data = jnp.sum(weights * item_loss(p, inputs, targets)) / batch_size
        shift = jax.tree_util.tree_map(lambda a, b: a - b, p, anchor)
        return data + 0.5 * penalty * sum_of_squares(shift) / n

    def step(i, carry):
        p, s = carry
        inputs, targets, weights = replay_sample(buffer, jax.random.fold_in(key, i),
                                                 batch_size, slot_weights)
        grads = jax.grad(objective)(p, inputs, targets, weights)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    return jax.lax.fori_loop(0, steps, step, (params, opt_state))


def retrain_on_schedule(t: Array, every: int, arrived: Array, train: Callable[[Any], Any],
                        state: Any) -> Any:
    """``train(state)`` on rounds with (t + 1) % every == 0 when ``arrived``, else ``state``.

    ``every`` is static and ``t`` the runner's unbatched round index, so under ``vmap`` the outer
    ``lax.cond`` stays a real branch (training runs only on scheduled rounds); ``arrived`` (did
    any feedback item arrive this round) may differ between runs and becomes a select inside it.
    """
    due = (jnp.asarray(t, jnp.int32) + 1) % every == 0

    def scheduled(state):
        return jax.lax.cond(arrived, train, lambda s: s, state)

    return jax.lax.cond(due, scheduled, lambda s: s, state)


# ---------------------------------------------------------------------------------------------
# The diagonal approximation of Z (NeuralUCB) / U (NeuralTS).
# ---------------------------------------------------------------------------------------------
def diagonal_precision_init(num_params: int, regulariser: Array) -> Array:
    """diag(Z_0) = lambda (a [p] vector)."""
    return jnp.full((num_params,), 1.0, jnp.float32) * jnp.asarray(regulariser, jnp.float32)


def diagonal_precision_add(precision: Array, grads: Array, mask: Array) -> Array:
    """diag(Z) + sum_b g_b^2 over the valid rows of ``grads`` [B, p] (mask [B])."""
    squares = jnp.where(mask[:, None], grads * grads, 0.0)
    return precision + jnp.sum(squares, axis=0)


def diagonal_widths(precision: Array, grads: Array, regulariser: Array) -> Array:
    """sigma_k = sqrt(lambda g_k^T diag(Z)^{-1} g_k) for each row of ``grads`` [K, p] -> [K]."""
    return jnp.sqrt(regulariser * jnp.sum(grads * grads / precision, axis=-1))


# ---------------------------------------------------------------------------------------------
# Bayesian linear regression on the last layer (NeuralLinear), in precision form.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class BayesianRegression:
    """Normal-Inverse-Gamma posterior of r = beta^T phi + eps, eps ~ N(0, sigma^2).

    Prior sigma^2 ~ IG(a0, b0), beta | sigma^2 ~ N(0, sigma^2 / lambda I) (Riquelme et al. 2018,
    sec. 3). Kept as sufficient statistics: precision = lambda I + sum phi phi^T ([w, w]),
    target = sum r phi ([w]), sum_squares = sum r^2, count = n. The precision (not its
    inverse) is stored: refitting after a retrain is then a matrix product, and sampling needs
    one Cholesky factor and two triangular solves (``cholesky_lower``, ``solve_lower``,
    ``solve_lower_transposed``: plain jnp loops, no LAPACK call; see there why).
    """

    precision: Array
    target: Array
    sum_squares: Array
    count: Array

    @classmethod
    def create(cls, dim: int, regulariser: Array) -> "BayesianRegression":
        eye = jnp.eye(dim, dtype=jnp.float32)
        return cls(precision=eye * jnp.asarray(regulariser, jnp.float32),
                   target=jnp.zeros((dim,), jnp.float32),
                   sum_squares=jnp.zeros((), jnp.float32), count=jnp.zeros((), jnp.float32))


def regression_add(state: BayesianRegression, features: Array, targets: Array,
                   weights: Array) -> BayesianRegression:
    """Adds a weighted batch (features [N, w], targets [N], weights [N]; 0 = skip the item).

    The precision gains sum_i w_i phi_i phi_i^T, symmetrised (exactly unchanged for weight 0).
    """
    weighted = features * weights[:, None]
    outer = weighted.T @ features
    return BayesianRegression(precision=state.precision + 0.5 * (outer + outer.T),
                              target=state.target + weighted.T @ targets,
                              sum_squares=state.sum_squares + jnp.sum(weights * targets ** 2),
                              count=state.count + jnp.sum(weights))


def cholesky_lower(matrix: Array) -> Array:
    """L lower triangular with L L^T = ``matrix`` ([n, n] symmetric positive definite).

    Column by column (Cholesky-Crout) in a ``fori_loop`` of n vectorised steps, instead of
    LAPACK: under ``vmap`` at about 1,000 runs, jaxlib 0.10's batched LAPACK kernels on CPU split
    the batch over XLA's intra-op thread pool and wait for it, and two such independent kernels
    (e.g. two triangular solves off one factor) running at once on the 2-thread pool of a 2-core
    machine deadlocked the whole program (seen with gdb: both pool threads in
    ``jax::ParallelBatchMap``). Batched solves with matrix right-hand sides were also 100x
    slower there. For the small last layer of NeuralLinear (n = width) n steps are cheap.
    """
    n = matrix.shape[-1]
    rows = jnp.arange(n)

    def column(j, factor):
        residual = matrix[:, j] - factor @ factor[j]          # columns >= j of factor are 0
        pivot = jnp.sqrt(jnp.maximum(residual[j], 1e-30))
        values = jnp.where(rows == j, pivot, residual / pivot)
        return factor.at[:, j].set(jnp.where(rows >= j, values, 0.0))

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(matrix))


def solve_lower(factor: Array, rhs: Array) -> Array:
    """x with L x = rhs (forward substitution; ``rhs`` [n] or [n, m])."""
    n = factor.shape[-1]

    def row(i, x):
        value = (rhs[i] - factor[i] @ x) / factor[i, i]       # entries >= i of x are 0
        return x.at[i].set(value)

    return jax.lax.fori_loop(0, n, row, jnp.zeros_like(rhs))


def solve_lower_transposed(factor: Array, rhs: Array) -> Array:
    """x with L^T x = rhs (backward substitution; ``rhs`` [n] or [n, m])."""
    n = factor.shape[-1]

    def row(k, x):
        i = n - 1 - k
        value = (rhs[i] - factor[:, i] @ x) / factor[i, i]    # entries <= i of x are 0
        return x.at[i].set(value)

    return jax.lax.fori_loop(0, n, row, jnp.zeros_like(rhs))


def regression_sample(key: Array, state: BayesianRegression, a0: Array, b0: Array) -> Array:
    """One posterior draw of beta: sigma^2 ~ IG(a_n, b_n), beta ~ N(mu, sigma^2 precision^{-1}).

    a_n = a0 + n / 2, b_n = b0 + (sum r^2 - mu^T precision mu) / 2, mu = precision^{-1} target
    (Riquelme et al. 2018, sec. 3, the NIG update). With precision = L L^T and z ~ N(0, I),
    mu + sigma L^{-T} z has covariance sigma^2 precision^{-1}.
    """
    noise_key, beta_key = jax.random.split(key)
    factor = cholesky_lower(state.precision)
    half = solve_lower(factor, state.target)                            # L^{-1} b
    shape = a0 + 0.5 * state.count
    scale = b0 + 0.5 * jnp.maximum(state.sum_squares - half @ half, 0.0)   # half.half = mu.b
    variance = scale / jax.random.gamma(noise_key, shape)
    z = jax.random.normal(beta_key, half.shape, jnp.float32)
    # One backward substitution for mean and noise: L^{-T} (L^{-1} b + sigma z).
    return solve_lower_transposed(factor, half + jnp.sqrt(variance) * z)
