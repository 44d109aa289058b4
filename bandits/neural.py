"""Neural contextual bandits: NeuralUCB, NeuralTS and NeuralLinear, and the pieces they share.

- ``neural_ucb``: Zhou, Li and Gu (2020), "Neural Contextual Bandits with UCB-based Exploration",
  Algorithm 1: play argmax_a f(x_a; theta) + gamma sqrt(g(x_a)^T Z^{-1} g(x_a) / m), then
  Z <- Z + g(x_{A_t}) g(x_{A_t})^T / m and retrain theta on the history (TrainNN, Algorithm 2).
- ``neural_ts``: Zhang, Zhou, Li and Gu (2021), "Neural Thompson Sampling", Algorithm 1: draw
  r~_a ~ N(f(x_a; theta), nu^2 sigma_a^2) with sigma_a^2 = lambda g(x_a)^T U^{-1} g(x_a) / m,
  play the argmax, update U like Z above and retrain.
- ``neural_linear``: Riquelme, Tucker and Snoek (2018), "Deep Bayesian Bandits Showdown", sec. 3
  ("NeuralLinear"): Thompson sampling from a Bayesian linear regression on the last hidden layer
  phi(x) of the network, with the Normal-Inverse-Gamma prior sigma^2 ~ IG(a0, b0),
  beta | sigma^2 ~ N(0, sigma^2 / lambda I). The network is retrained every m rounds (default
  50, their setting) and the posterior then recomputed from the whole buffer with the new
  features; between retrains it is updated one observation at a time.

Choices made so the learners stay jittable under ``vmap`` with fixed cost per round:
- g(x; theta) = grad_theta f(x; theta) / sqrt(m) (m = ``width``), so Z = lambda I + sum g g^T
  and sigma^2 = lambda g^T Z^{-1} g is the papers' formula. Z is kept DIAGONAL, the
  approximation the papers' experiments use for speed (and the authors' released NeuralUCB code,
  ``learner_diag.py``): Z_jj = lambda + sum_s g_j(x_s)^2, cost O(p) per round for p network
  parameters.
- NeuralUCB's gamma_t (a theoretical expression) is taken constant, gamma = nu sqrt(lambda), so
  both learners share the parametrisation of NeuralTS: index = f + nu * sigma (UCB) or
  f + nu * sigma * N(0, 1) (TS), with sigma = sqrt(lambda g^T Z^{-1} g).
- The gradient g is taken at the parameters current when the feedback arrives (the papers use
  theta_{t-1}, the same thing for immediate feedback).
- TrainNN: the papers minimise L(theta) = sum_i (f(x_i) - r_i)^2 / 2 + m lambda ||theta -
  theta_0||^2 / 2 by J full-batch gradient steps. Here: ``train_steps`` (static) optimiser steps
  (optax; ``optimizer`` Adam or SGD with ``learning_rate``) on minibatches of ``batch_size`` items
  drawn uniformly from the replay buffer, on L / n (n = items held, so the learning rate does not
  have to shrink as data grows), warm-started from the current parameters, every ``train_every``
  rounds (static: it must be static so that the schedule predicate depends only on the unbatched
  round index and ``lax.cond`` stays a real branch under ``vmap``; a per-run value would turn
  the branch into a select that trains every round). A scheduled retrain is skipped when no
  feedback arrived that round, so masked-out feedback leaves the whole state unchanged.
- The replay buffer is ``bandits.glm.History`` (fixed capacity, validity mask, ring overwrite);
  a feedback item's features [A, d] are stored flattened, so pair actions (dueling) fit too.
- The network is a flax linen MLP of ``depth`` hidden ReLU layers of ``width`` units with flax's
  default (LeCun normal) initialisation, not the papers' symmetric NTK initialisation.

Shared pieces (stable API; the neural dueling learners use them too):
- ``MLP``, ``init_network``, ``network_values``, ``last_layer_features``: the network.
- ``gradient_features(network, params, x, width)``: (f(x_k), g(x_k)) for rows x_k.
- ``flat_size``: number of parameters p.
- ``replay_create``, ``replay_add``, ``replay_sample``, ``replay_count``: the buffer.
- ``make_optimizer``, ``squared_loss``, ``train_network``: TrainNN.
- ``retrain_on_schedule``: the every-m-rounds ``lax.cond``.
- ``diagonal_precision_init``, ``diagonal_precision_add``, ``diagonal_widths``: diagonal Z.
- ``NetworkState`` and the ``NeuralLearner`` base class (settings, init, buffer + retrain).
- ``BayesianRegression``, ``regression_add``, ``regression_sample``: NeuralLinear's last layer.
- ``cholesky_lower``, ``solve_lower``, ``solve_lower_transposed``: small dense algebra without
  LAPACK calls (a CPU deadlock workaround, see ``cholesky_lower``).
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax import struct

from bandits import glm
from bandits.core import Learner, random_argmax, register_learner
from bandits.theory import Theory
from envs.core import Array, Feedback, Observation, Setting

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


# ---------------------------------------------------------------------------------------------
# The learners.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class NetworkState:
    """What every neural learner keeps about its network.

    params: theta (flax parameters); anchor: theta_0, the initial parameters the regulariser
    pulls towards; opt_state: the optax state (kept across retrains); buffer: the replay buffer;
    key: fixed per run, folded with the round index to draw training minibatches.
    """

    params: Any
    anchor: Any
    opt_state: Any
    buffer: glm.History
    key: Array


NETWORK_SETTINGS = (
    Setting("width", 32, "hidden units per layer (the m of the papers)", kind=int, static=True,
            low=1),
    Setting("depth", 1, "hidden layers", kind=int, static=True, low=1),
    Setting("regulariser", 0.1, "lambda: prior precision (Z_0 = lambda I) and weight of the "
            "penalty m lambda ||theta - theta_0||^2 / 2", low=0.0, low_open=True),
    Setting("learning_rate", 0.01, "optimiser learning rate", low=0.0, low_open=True),
    Setting("optimizer", "adam", "'adam' or 'sgd'", kind=str, static=True, choices=OPTIMIZERS),
    Setting("train_every", 10, "retrain every this many rounds (m in the papers' schedule; "
            "static, see the module docstring)", kind=int, static=True, low=1),
    Setting("train_steps", 25, "optimiser steps per retrain (J)", kind=int, static=True, low=1),
    Setting("batch_size", 32, "items per minibatch", kind=int, static=True, low=1),
    Setting("capacity", None, "replay buffer size (default: the horizon; the oldest items are "
            "overwritten when it is full)", kind=int, static=True, low=1, optional=True),
)


def with_defaults(settings: tuple[Setting, ...], **defaults: Any) -> tuple[Setting, ...]:
    """``settings`` with the defaults of the named ones replaced."""
    return tuple(dataclasses.replace(s, default=defaults[s.name]) if s.name in defaults else s
                 for s in settings)


class NeuralLearner(Learner):
    """Base of the neural learners: the network, its buffer and the retraining schedule.

    Subclasses keep a ``NetworkState`` in their state (``network_state`` / ``with_network``) and
    call ``learn`` from ``update``.
    """

    needs_features = True
    settings = NETWORK_SETTINGS
    width: int
    depth: int
    optimizer: str
    train_every: int
    train_steps: int
    batch_size: int
    capacity: Optional[int]

    @classmethod
    def resolve(cls, values, context):
        if values.get("capacity") is None:
            values = dict(values, capacity=int(context["horizon"]))
        return values

    @property
    def network(self) -> MLP:
        return MLP(widths=(self.width,) * self.depth)

    @property
    def item_dim(self) -> int:
        return self.action_arity * self.spec.feature_dim

    def init_network_state(self, key: Array, hparams) -> NetworkState:
        params_key, train_key = jax.random.split(key)
        params = init_network(self.network, params_key, self.spec.feature_dim)
        capacity = self.capacity if self.capacity is not None else self.horizon
        opt_state = make_optimizer(self.optimizer, 1.0).init(params)
        return NetworkState(params=params, anchor=params, opt_state=opt_state,
                            buffer=replay_create(capacity, self.item_dim), key=train_key)

    def item_loss(self, params: Any, inputs: Array, targets: Array) -> Array:
        """Squared loss of f on single-arm items (override for other feedback)."""
        return squared_loss(network_values(self.network, params, inputs), targets)

    def train(self, net: NetworkState, t: Array, hparams) -> NetworkState:
        """TrainNN: ``train_steps`` minibatch steps from the current parameters."""
        optimizer = make_optimizer(self.optimizer, hparams["learning_rate"])
        penalty = self.width * hparams["regulariser"]
        params, opt_state = train_network(
            self.item_loss, net.params, net.anchor, net.opt_state, optimizer, net.buffer,
            jax.random.fold_in(net.key, t), self.train_steps, self.batch_size, penalty)
        return net.replace(params=params, opt_state=opt_state)

    def learn(self, state: Any, obs: Observation, feedback: Feedback, hparams,
              after_training: Callable[[Any], Any] = lambda s: s) -> Any:
        """Stores the feedback, then retrains on schedule (and applies ``after_training``)."""
        net = self.network_state(state)
        state = self.with_network(state, net.replace(
            buffer=replay_add(net.buffer, feedback, obs.t)))

        def retrain(state):
            trained = self.train(self.network_state(state), obs.t, hparams)
            return after_training(self.with_network(state, trained))

        return retrain_on_schedule(obs.t, self.train_every, jnp.any(feedback.mask), retrain,
                                   state)

    def network_state(self, state: Any) -> NetworkState:
        return state.net

    def with_network(self, state: Any, net: NetworkState) -> Any:
        return state.replace(net=net)


@struct.dataclass
class GradientState:
    net: NetworkState
    precision: Array   # [p] diag(Z)


class _GradientExplorer(NeuralLearner):
    """Shared by NeuralUCB and NeuralTS: f and sigma from the gradient features, diagonal Z."""

    settings = NETWORK_SETTINGS + (
        Setting("nu", 1.0, "exploration scale nu (index f + nu sigma, or a draw from "
                "N(f, nu^2 sigma^2))", low=0.0),)

    def init(self, key, hparams) -> GradientState:
        net = self.init_network_state(key, hparams)
        return GradientState(net=net, precision=diagonal_precision_init(
            flat_size(net.params), hparams["regulariser"]))

    def act(self, key, state: GradientState, obs, hparams):
        index_key, tie_key = jax.random.split(key)
        values, grads = gradient_features(self.network, state.net.params, obs.features,
                                          self.width)
        sigma = diagonal_widths(state.precision, grads, hparams["regulariser"])
        return random_argmax(tie_key, self.index(index_key, values, sigma, hparams))

    @abc.abstractmethod
    def index(self, key: Array, values: Array, sigma: Array, hparams) -> Array:
        """Defined by each subclass."""

    def update(self, state: GradientState, obs, action, feedback: Feedback,
               hparams) -> GradientState:
        _, grads = gradient_features(self.network, state.net.params, feedback.features[:, 0, :],
                                     self.width)
        state = state.replace(precision=diagonal_precision_add(state.precision, grads,
                                                               feedback.mask))
        return self.learn(state, obs, feedback, hparams)


@register_learner("neural_ucb")
class NeuralUCB(_GradientExplorer):
    """NeuralUCB with diagonal Z (Zhou, Li and Gu 2020, Algorithm 1)."""
    theory = Theory("sqrt")
    colour = "#117733"

    def index(self, key, values, sigma, hparams):
        return values + hparams["nu"] * sigma


@register_learner("neural_ts")
class NeuralTS(_GradientExplorer):
    """Neural Thompson sampling with diagonal U (Zhang, Zhou, Li and Gu 2021, Algorithm 1)."""
    theory = Theory("sqrt")
    colour = "#AA4499"

    def index(self, key, values, sigma, hparams):
        return values + hparams["nu"] * sigma * jax.random.normal(key, values.shape)


@struct.dataclass
class NeuralLinearState:
    net: NetworkState
    regression: BayesianRegression   # over the last-layer features phi (dimension width)


@register_learner("neural_linear")
class NeuralLinear(NeuralLearner):
    """Thompson sampling on a Bayesian linear last layer (Riquelme, Tucker and Snoek 2018)."""
    theory = Theory("sqrt")

    # Retrain every 50 rounds as in Riquelme et al.'s NeuralLinear (training_freq_network = 50),
    # with 100 steps: the same optimiser work per round as the defaults of NeuralUCB, and a
    # fifth of the posterior refits (each one a pass over the whole buffer).
    settings = with_defaults(NETWORK_SETTINGS, train_every=50, train_steps=100) + (
        Setting("a0", 6.0, "Inverse-Gamma prior shape of the noise variance", low=0.0,
                low_open=True),
        Setting("b0", 6.0, "Inverse-Gamma prior scale of the noise variance", low=0.0,
                low_open=True),
    )

    def init(self, key, hparams) -> NeuralLinearState:
        return NeuralLinearState(net=self.init_network_state(key, hparams),
                                 regression=BayesianRegression.create(
                                     self.width, hparams["regulariser"]))

    def features(self, params: Any, x: Array) -> Array:
        return last_layer_features(self.network, params, x)

    def act(self, key, state: NeuralLinearState, obs, hparams):
        beta_key, tie_key = jax.random.split(key)
        beta = regression_sample(beta_key, state.regression, hparams["a0"], hparams["b0"])
        return random_argmax(tie_key, self.features(state.net.params, obs.features) @ beta)

    def update(self, state: NeuralLinearState, obs, action, feedback: Feedback,
               hparams) -> NeuralLinearState:
        phi = self.features(state.net.params, feedback.features[:, 0, :])
        regression = regression_add(state.regression, phi, feedback.reward,
                                    feedback.mask.astype(jnp.float32))
        return self.learn(state.replace(regression=regression), obs, feedback, hparams,
                          after_training=lambda s: self.refit(s, hparams))

    def refit(self, state: NeuralLinearState, hparams) -> NeuralLinearState:
        """The posterior recomputed from the whole buffer with the retrained features."""
        buffer = state.net.buffer
        phi = self.features(state.net.params, buffer.inputs)
        empty = BayesianRegression.create(self.width, hparams["regulariser"])
        regression = regression_add(empty, phi, jnp.where(buffer.valid, buffer.targets, 0.0),
                                    buffer.valid.astype(jnp.float32))
        return state.replace(regression=regression)
