"""Neural dueling learners: Verma, Dai, Lin, Jaillet and Low (2024), "Neural Dueling Bandits",
Algorithm 1 (NDB-UCB and NDB-TS): first arm greedy, argmax_i f(x_i); second arm
argmax_j f(x_j) + nu sigma_j (UCB) or argmax_j of a draw N(f(x_j) - f(x_first), nu^2 sigma_j^2)
(TS), with f a flax MLP trained on the logistic preference loss
sum_s softplus(f(x_s1) - f(x_s2)) - y_s (f(x_s1) - f(x_s2))
(with the ``bandits/neural.py`` regulariser m lambda ||theta - theta_0||^2 / 2), and
the gradient-based width sigma_j = sqrt(lambda (g_j - g_first)^T Z^{-1} (g_j - g_first)),
Z = lambda I + sum_s (g_s1 - g_s2)(g_s1 - g_s2)^T kept diagonal, g = grad f / sqrt(m) (the shared
pieces of ``bandits/networks.py``): ``neural_dueling_ucb``, ``neural_dueling_ts``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from bandits import neural
from bandits.core import random_argmax, register_learner
from bandits.dueling.common import DelayEstimate, make_pair
from bandits.theory import Theory
from envs.core import Array, Feedback, Setting


# ---------------------------------------------------------------------------------------------
# Neural dueling learners.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class NeuralDuelingState:
    net: neural.NetworkState
    precision: Array           # [p] diag(Z)
    delays: DelayEstimate


def logistic_preference_loss(first_values: Array, second_values: Array, targets: Array) -> Array:
    """softplus(z) - y z with z = f(x_first) - f(x_second), per item."""
    z = first_values - second_values
    return jax.nn.softplus(z) - targets * z


class _NeuralDueling(neural.NeuralLearner):
    """The network on the logistic preference loss, diagonal Z over gradient differences, and
    the greedy-first / optimistic-or-sampled-second rule of Verma et al. (2024)."""

    action_arity = 2
    settings = neural.NETWORK_SETTINGS + (
        Setting("nu", 1.0, "exploration scale nu (second arm: f + nu sigma, or a draw from "
                "N(f - f_first, nu^2 sigma^2))", low=0.0),)
    sampled: bool = False

    def init(self, key, hparams) -> NeuralDuelingState:
        net = self.init_network_state(key, hparams)
        return NeuralDuelingState(net=net, precision=neural.diagonal_precision_init(
            neural.flat_size(net.params), hparams["regulariser"]), delays=self.init_delays())

    def init_delays(self) -> DelayEstimate:
        return DelayEstimate.create(1)

    def update_delays(self, delays, obs, feedback):
        return delays

    def slot_weights(self, state: NeuralDuelingState, t: Array, hparams) -> Array | None:
        return None

    def uses_sampling(self) -> bool:
        return self.sampled

    def item_loss(self, params, inputs, targets):
        d = self.spec.feature_dim
        values = neural.network_values(self.network, params,
                                       inputs.reshape(inputs.shape[0], 2, d))
        return logistic_preference_loss(values[:, 0], values[:, 1], targets)

    def act(self, key, state: NeuralDuelingState, obs, hparams):
        first_key, noise_key, second_key = jax.random.split(key, 3)
        values, grads = neural.gradient_features(self.network, state.net.params, obs.features,
                                                 self.width)
        first = random_argmax(first_key, values)
        sigma = neural.diagonal_widths(state.precision, grads - grads[first],
                                       hparams["regulariser"])
        bonus = hparams["nu"] * sigma
        if self.uses_sampling():
            bonus = bonus * jax.random.normal(noise_key, values.shape)
        return make_pair(first, random_argmax(second_key, values + bonus))

    def update(self, state: NeuralDuelingState, obs, action, feedback: Feedback,
               hparams) -> NeuralDuelingState:
        params = state.net.params
        _, first_grads = neural.gradient_features(self.network, params,
                                                  feedback.features[:, 0, :], self.width)
        _, second_grads = neural.gradient_features(self.network, params,
                                                   feedback.features[:, 1, :], self.width)
        precision = neural.diagonal_precision_add(state.precision, first_grads - second_grads,
                                                  feedback.mask)
        net = state.net.replace(buffer=neural.replay_add(state.net.buffer, feedback, obs.t))
        state = NeuralDuelingState(net=net, precision=precision,
                                   delays=self.update_delays(state.delays, obs, feedback))

        def retrain(state: NeuralDuelingState) -> NeuralDuelingState:
            return state.replace(net=self.train_weighted(
                state.net, obs.t, hparams, self.slot_weights(state, obs.t, hparams)))

        return neural.retrain_on_schedule(obs.t, self.train_every, jnp.any(feedback.mask),
                                          retrain, state)

    def train_weighted(self, net: neural.NetworkState, t: Array, hparams,
                       slot_weights: Array | None) -> neural.NetworkState:
        """TrainNN on the (optionally weighted) logistic preference loss."""
        optimizer = neural.make_optimizer(self.optimizer, hparams["learning_rate"])
        penalty = self.width * hparams["regulariser"]
        params, opt_state = neural.train_network(
            self.item_loss, net.params, net.anchor, net.opt_state, optimizer, net.buffer,
            jax.random.fold_in(net.key, t), self.train_steps, self.batch_size, penalty,
            slot_weights)
        return net.replace(params=params, opt_state=opt_state)


@register_learner("neural_dueling_ucb")
class NeuralDuelingUCB(_NeuralDueling):
    """NDB-UCB (Verma et al. 2024, Algorithm 1 with the UCB second arm)."""
    theory = Theory("sqrt")

    sampled = False


@register_learner("neural_dueling_ts")
class NeuralDuelingTS(_NeuralDueling):
    """NDB-TS (Verma et al. 2024, Algorithm 1 with the Thompson-sampled second arm)."""
    theory = Theory("sqrt")

    sampled = True
