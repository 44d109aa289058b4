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

The network, its training, the replay buffer, the diagonal precision and NeuralLinear's
Bayesian regression are in ``bandits/networks.py`` (re-exported here, their stable API; the
neural dueling learners use them too); ``NetworkState`` and the ``NeuralLearner`` base class
(settings, init, buffer + retrain) are here.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from flax import struct

from bandits import glm
from bandits.core import Learner, random_argmax, register_learner, the_horizon
from bandits.networks import (MLP, OPTIMIZERS, BayesianRegression, cholesky_lower,
                              diagonal_precision_add, diagonal_precision_init, diagonal_widths,
                              flat_size, flatten_rows, gradient_features, init_network,
                              last_layer_features, make_optimizer, network_values,
                              regression_add, regression_sample, replay_add, replay_count,
                              replay_create, replay_sample, retrain_on_schedule, solve_lower,
                              solve_lower_transposed, squared_loss, sum_of_squares,
                              train_network)
from bandits.theory import Theory
from envs.core import Array, Feedback, Observation, Setting

__all__ = [
    "MLP", "OPTIMIZERS", "BayesianRegression", "cholesky_lower", "diagonal_precision_add",
    "diagonal_precision_init", "diagonal_widths", "flat_size", "flatten_rows",
    "gradient_features", "init_network", "last_layer_features", "make_optimizer",
    "network_values", "regression_add", "regression_sample", "replay_add", "replay_count",
    "replay_create", "replay_sample", "retrain_on_schedule", "solve_lower",
    "solve_lower_transposed", "squared_loss", "sum_of_squares", "train_network",
    "NetworkState", "NETWORK_SETTINGS", "with_defaults", "NeuralLearner", "GradientState",
    "NeuralUCB", "NeuralTS", "NeuralLinearState", "NeuralLinear",
]


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
            "overwritten when it is full)", kind=int, static=True, low=1, optional=True,
            default_from=the_horizon),
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
