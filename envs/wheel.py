"""The Wheel bandit of Riquelme, Tucker and Snoek (2018), "Deep Bayesian Bandits Showdown: An
Empirical Comparison of Bayesian Deep Networks for Thompson Sampling" (ICLR), sec. 5 ("The
Wheel Bandit") and fig. 2.

Contexts X in R^2 are uniform in the unit disc; there are K = 5 arms. With exploration parameter
delta in [0, 1]:

- the safe arm (arm 4 here) pays N(mu_1, sigma^2) whatever the context;
- inside the circle ||X|| < delta the four other arms pay N(mu_2, sigma^2) with mu_2 < mu_1,
  so the safe arm is best;
- outside it (||X|| >= delta) the context lies in one of four high-reward regions, one per
  quadrant; that quadrant's arm pays N(mu_3, sigma_3^2) with mu_3 >> mu_1 and the other three
  still N(mu_2, sigma^2).

The paper's values are the defaults: mu_1 = 1.2, mu_2 = 1.0, mu_3 = 50, sigma = sigma_3 = 0.01
(``safe_mean``, ``small_mean``, ``large_mean``, ``noise``, ``large_noise``; every one a dynamic,
sweepable setting, as is ``delta``, default 0.95, the paper's sweep being 0.5, 0.7, 0.9, 0.95,
0.99). A larger delta makes the rewarding outer ring rarer (probability 1 - delta^2) and the
problem harder to explore. Arm order and boundaries follow the authors' released sampler
(``sample_wheel_bandit_data``): quadrant arms 0 (x > 0, y > 0), 1 (x > 0, y <= 0),
2 (x <= 0, y > 0), 3 (x <= 0, y <= 0), the safe arm last, outer region ||X|| >= delta.

The learner sees the 2-d context through ``envs/contexts.py`` (``arm_features``: 'replicated'
for one-model-per-arm learners, 'block' for shared-parameter and neural ones; ``bias``: a constant
1 appended). Contexts are drawn as X = sqrt(u) (cos 2 pi v, sin 2 pi v) from two uniforms, exactly
uniform in the disc (the authors draw by rejection from the square; same law). The context of
round t lives in the state (made in ``reset`` and in ``step`` for the next round); contexts and
the noise draw come from keys that do not depend on the action (common random numbers).

Regret (``StepInfo.regret``): max_a E[r | X_t, a] - E[r | X_t, A_t], the expected-reward
pseudo-regret against the best arm for the drawn context.
"""
from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
from flax import struct

from envs import contexts, distributions, randomness
from envs.core import (Array, EnvSpec, Environment, Observation, Setting, StepInfo,
                       immediate_feedback, register_env, take_arm)

NUM_ARMS = 5
SAFE_ARM = 4
CONTEXT_DIM = 2


@struct.dataclass
class WheelParams:
    """One instance (the dynamic settings as float32 scalars)."""

    delta: Array
    safe_mean: Array     # mu_1
    small_mean: Array    # mu_2
    large_mean: Array    # mu_3
    noise: Array         # sigma
    large_noise: Array   # sigma_3


@struct.dataclass
class WheelState:
    t: Array
    context: Array   # [2] this round's X


def large_arms(context: Array, params: WheelParams) -> Array:
    """[5] bool: the arm whose high-reward region holds X (its quadrant's arm when
    ||X|| >= delta; no arm inside the circle)."""
    x, y = context[0], context[1]
    outer = jnp.sqrt(x * x + y * y) >= params.delta
    quadrant = jnp.where(x > 0, jnp.where(y > 0, 0, 1), jnp.where(y > 0, 2, 3))
    return outer & (jnp.arange(NUM_ARMS) == quadrant)


def wheel_means(context: Array, params: WheelParams) -> Array:
    """E[r | X, a] of the five arms ([5]) for a context X ([2])."""
    arms = jnp.arange(NUM_ARMS)
    means = jnp.where(arms == SAFE_ARM, params.safe_mean, params.small_mean)
    return jnp.where(large_arms(context, params), params.large_mean, means).astype(jnp.float32)


@register_env("wheel")
class WheelBandit(Environment):
    """The Wheel bandit (Riquelme et al. 2018, sec. 5): 5 arms, contexts in the unit disc."""

    settings = (
        Setting("delta", 0.95, "exploration parameter: radius of the inner circle, where the "
                "safe arm is best (the paper sweeps 0.5, 0.7, 0.9, 0.95, 0.99)", low=0.0,
                high=1.0),
        Setting("safe_mean", 1.2, "mu_1: mean reward of the safe arm (arm 4), every context"),
        Setting("small_mean", 1.0, "mu_2: mean reward of a quadrant arm (arms 0-3) outside its "
                "high-reward region"),
        Setting("large_mean", 50.0, "mu_3: mean reward of the quadrant arm in its high-reward "
                "region (||X|| >= delta)"),
        Setting("noise", 0.01, "sigma: reward noise standard deviation of the mu_1 and mu_2 "
                "rewards", low=0.0),
        Setting("large_noise", 0.01, "sigma_3: reward noise standard deviation of the mu_3 "
                "reward", low=0.0),
        contexts.ARM_FEATURES,
        contexts.BIAS,
    )

    @property
    def spec(self) -> EnvSpec:
        d = contexts.feature_dim(CONTEXT_DIM, NUM_ARMS, self.arm_features, self.bias)
        return EnvSpec(num_arms=NUM_ARMS, feature_dim=d, reward_range=None,
                       bernoulli_rewards=False)

    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> WheelParams:
        values = {s.name: jnp.asarray(settings.get(s.name, s.default), jnp.float32)
                  for s in self.dynamic_settings()}
        return WheelParams(**values)

    def draw_context(self, key: Array) -> Array:
        """X uniform in the unit disc ([2]): radius sqrt(u), angle 2 pi v."""
        u, v = randomness.uniform(key, (2,))
        radius, angle = jnp.sqrt(u), 2.0 * jnp.pi * v
        return jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)])

    def features(self, state: WheelState) -> Array:
        return contexts.arm_features(state.context, NUM_ARMS, self.arm_features, self.bias)

    # -- protocol -----------------------------------------------------------------------------
    def reset(self, key: Array, params: WheelParams) -> WheelState:
        return WheelState(t=jnp.zeros((), jnp.int32), context=self.draw_context(key))

    def observe(self, key: Array, state: WheelState, params: WheelParams) -> Observation:
        return Observation(features=self.features(state), t=state.t)

    def step(self, key: Array, state: WheelState, action: Array, params: WheelParams):
        noise_key, context_key = randomness.subkey(key, 0), randomness.subkey(key, 1)
        means = wheel_means(state.context, params)
        chosen = take_arm(means, action)
        scale = jnp.where(take_arm(large_arms(state.context, params), action),
                          params.large_noise, params.noise)
        reward = chosen + scale * distributions.normal(noise_key)
        feedback = immediate_feedback(action, self.features(state), reward, state.t)
        info = StepInfo(regret=jnp.maximum(jnp.max(means) - chosen, 0.0))
        return WheelState(t=state.t + 1, context=self.draw_context(context_key)), feedback, info
