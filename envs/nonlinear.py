"""Non-linear contextual bandits: the synthetic test problems of NeuralUCB and NeuralTS.

Zhou, Li and Gu (2020), "Neural Contextual Bandits with UCB-based Exploration", sec. 7.1, and
Zhang, Zhou, Li and Gu (2021), "Neural Thompson Sampling", sec. 6: K arms, each with its own
d-dimensional feature vector x_{t,a} drawn fresh every round, and reward

    r_{t,a} = h(x_{t,a}) + noise * xi_t,    xi_t ~ N(0, 1),

with h one of (``function``, static):
- ``quadratic``:        h1(x) = 10 (a^T x)^2;
- ``quadratic_form``:   h2(x) = x^T A^T A x;
- ``cosine``:           h3(x) = cos(3 a^T x);
- ``mlp``:              a fixed random ReLU network (``mlp_layers`` hidden layers of ``mlp_width``
                        units, no biases), weights N(0, 1) in the first layer and N(0, 2 / width)
                        after it (the scaling of He, Zhang, Ren and Sun 2015), so on unit-norm
                        contexts every pre-activation and the output have unit variance.
As in the papers, every entry of A is N(0, 1) and a is a random unit vector; a, A and the
network weights are drawn once per instance (``sample_params``). The papers' experiments use
unit-variance noise (the default ``noise = 1``); ``noise`` is a dynamic (sweepable) setting.

Contexts (``context``, static): ``sphere``: uniform on the unit sphere (the papers' theory
assumes ||x|| = 1; the linear environment's default); ``ball``: uniform in the unit ball
(the wording of NeuralUCB sec. 7.1).

The context of round t lives in the state (made in ``reset``, and in ``step`` for the next
round), so ``step`` can return the chosen arm's features in the Feedback. Contexts and noise are
drawn from keys that do not depend on the action (common random numbers across learners).

Regret (``StepInfo.regret``): max_a h(x_{t,a}) - h(x_{t,A_t}).
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
from flax import struct

from envs.core import (Array, EnvSpec, Environment, Observation, Setting, StepInfo,
                       immediate_feedback, register_env, unit_rows)

FUNCTIONS = ("quadratic", "quadratic_form", "cosine", "mlp")
CONTEXTS = ("sphere", "ball")


@struct.dataclass
class NonlinearParams:
    """One instance.

    direction: [d] the unit vector a (quadratic, cosine).
    matrix:    [d, d] A with N(0, 1) entries (quadratic_form).
    weights:   tuple of the reward network's weight matrices (mlp; empty otherwise):
               [d, w], then [w, w] per further hidden layer, then [w].
    noise:     [] reward noise standard deviation.
    """

    direction: Array
    matrix: Array
    weights: tuple
    noise: Array


@struct.dataclass
class NonlinearState:
    t: Array
    features: Array   # [K, d] this round's context




def random_relu_network(key: Array, dim: int, width: int, layers: int) -> tuple:
    """Weights of the fixed reward network: unit-variance pre-activations on unit inputs."""
    keys = jax.random.split(key, layers + 1)
    weights = [jax.random.normal(keys[0], (dim, width))]
    for k in keys[1:layers]:
        weights.append(jax.random.normal(k, (width, width)) * jnp.sqrt(2.0 / width))
    weights.append(jax.random.normal(keys[layers], (width,)) * jnp.sqrt(2.0 / width))
    return tuple(w.astype(jnp.float32) for w in weights)


def relu_network(weights: tuple, x: Array) -> Array:
    """The reward network on rows of ``x`` ([..., d] -> [...])."""
    h = x
    for w in weights[:-1]:
        h = jax.nn.relu(h @ w)
    return h @ weights[-1]


def reward_function(function: str, params: NonlinearParams, x: Array) -> Array:
    """h(x) for every row of ``x`` ([..., d] -> [...])."""
    if function == "quadratic":
        return 10.0 * (x @ params.direction) ** 2
    if function == "quadratic_form":
        ax = x @ params.matrix.T
        return jnp.sum(ax * ax, axis=-1)
    if function == "cosine":
        return jnp.cos(3.0 * (x @ params.direction))
    return relu_network(params.weights, x)


@register_env("nonlinear")
class NonlinearBandit(Environment):
    """r = h(x_a) + noise * N(0, 1), the test problems of NeuralUCB/NeuralTS (Zhou et al. 2020).

    h is a quadratic, cosine or random-network function."""

    settings = (
        Setting("K", 4, "number of arms", kind=int, static=True, low=2),
        Setting("d", 10, "context (feature) dimension", kind=int, static=True, low=1),
        Setting("function", "quadratic", "reward function h: 'quadratic' 10 (a^T x)^2, "
                "'quadratic_form' x^T A^T A x, 'cosine' cos(3 a^T x), 'mlp' a fixed random "
                "ReLU network", kind=str, static=True, choices=FUNCTIONS),
        Setting("context", "sphere", "context distribution: 'sphere' (uniform on the unit "
                "sphere) or 'ball' (uniform in the unit ball), fresh each round", kind=str,
                static=True, choices=CONTEXTS),
        Setting("mlp_width", 32, "hidden units per layer of the reward network (mlp)",
                kind=int, static=True, low=1),
        Setting("mlp_layers", 2, "hidden layers of the reward network (mlp)", kind=int,
                static=True, low=1),
        Setting("noise", 1.0, "reward noise standard deviation", low=0.0),
    )

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec(num_arms=self.K, feature_dim=self.d, reward_range=None,
                       bernoulli_rewards=False)

    # -- instances ----------------------------------------------------------------------------
    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> NonlinearParams:
        direction_key, matrix_key, network_key = jax.random.split(key, 3)
        direction = unit_rows(jax.random.normal(direction_key, (self.d,)))
        matrix = jax.random.normal(matrix_key, (self.d, self.d))
        weights = (random_relu_network(network_key, self.d, self.mlp_width, self.mlp_layers)
                   if self.function == "mlp" else ())
        return NonlinearParams(direction=direction.astype(jnp.float32),
                               matrix=matrix.astype(jnp.float32), weights=weights,
                               noise=jnp.asarray(settings.get("noise", 1.0), jnp.float32))

    def draw_context(self, key: Array) -> Array:
        """The [K, d] features of one round."""
        direction_key, radius_key = jax.random.split(key)
        x = unit_rows(jax.random.normal(direction_key, (self.K, self.d), jnp.float32))
        if self.context == "ball":
            radius = jax.random.uniform(radius_key, (self.K, 1)) ** (1.0 / self.d)
            x = x * radius
        return x

    def expected_rewards(self, state: NonlinearState, params: NonlinearParams) -> Array:
        """h(x_{t,a}) for every arm ([K])."""
        return reward_function(self.function, params, state.features)

    # -- protocol -----------------------------------------------------------------------------
    def reset(self, key: Array, params: NonlinearParams) -> NonlinearState:
        return NonlinearState(t=jnp.zeros((), jnp.int32), features=self.draw_context(key))

    def observe(self, key: Array, state: NonlinearState, params: NonlinearParams) -> Observation:
        return Observation(features=state.features, t=state.t)

    def step(self, key: Array, state: NonlinearState, action: Array, params: NonlinearParams):
        noise_key, context_key = jax.random.split(key)
        expected = self.expected_rewards(state, params)
        chosen = expected[action]
        reward = chosen + params.noise * jax.random.normal(noise_key)
        feedback = immediate_feedback(action, state.features, reward, state.t)
        # Clipped at 0: XLA may fuse the max and the gather differently (float32 round-off).
        info = StepInfo(regret=jnp.maximum(jnp.max(expected) - chosen, 0.0))
        next_state = NonlinearState(t=state.t + 1, features=self.draw_context(context_key))
        return next_state, feedback, info
