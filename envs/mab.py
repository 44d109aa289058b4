"""Stochastic K-armed bandits with Bernoulli or Gaussian rewards.

The setting of Lattimore and Szepesvari, "Bandit Algorithms" (2020), ch. 4: arm a pays
X_t ~ nu_a independently each round, and the pseudo-regret after T rounds is
sum_t (mu* - mu_{A_t}) (their eq. 4.1 taken in expectation over rewards, not over actions).

Instance generators (``generator``):
- ``fixed``: the ``means`` given in the config;
- ``uniform``: means i.i.d. Uniform(low, high), as in Chapelle and Li (2011);
- ``gap``: one best arm at ``best`` and K-1 arms at ``best - gap``, the instances of Agrawal and
  Goyal (2012) and Garivier and Cappe (2011) for Thompson sampling and KL-UCB;
- ``linspace``: means evenly spaced in [low, high], as in bsuite's bandit experiments
  (Osband et al. 2020).
Generated arms are placed in a random order per instance, so no learner can profit from a
preference for low indices.

Rewards use common random numbers: a Bernoulli reward is ``u < mu_a`` with one uniform u per
round, so two learners given the same run key face the same luck.
"""
from __future__ import annotations

import abc
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs import randomness
from envs.core import (Array, ConfigError, EnvSpec, Environment, Observation, Setting,
                       StepInfo, arm_max, immediate_feedback, join_arms, register_env,
                       split_arms, take_arm)


@struct.dataclass
class MABParams:
    """The arm means, stored arm by arm (``envs.core.split_arms``): the step reads the played
    arm's mean from K contiguous [runs] vectors."""

    stored_means: tuple[Array, ...] | Array

    @classmethod
    def of(cls, means: Array) -> "MABParams":
        return cls(stored_means=split_arms(jnp.asarray(means, jnp.float32)))

    @property
    def means(self) -> Array:
        """[K] (or [..., K] for a batch of instances)."""
        return join_arms(self.stored_means)


@struct.dataclass
class MABState:
    t: Array


GENERATORS = ("fixed", "uniform", "gap", "linspace")


def _arms_from_means(values: Mapping[str, Any], context: Mapping[str, Any]) -> int:
    """K when not given: one arm per value of ``means``, else 10."""
    return len(values["means"]) if values.get("means") is not None else 10


def mean_settings(mean_low: float | None, mean_high: float | None) -> tuple[Setting, ...]:
    """K, the generator, the fixed means and the generator's settings (shared with the drifting
    bandits of envs/changing.py, whose means start there)."""
    return (
        Setting("K", 10, "number of arms (default: the length of means when they are given, "
                "else 10)", kind=int, static=True, low=2, default_from=_arms_from_means),
        Setting("generator", None, "how arm means are made: " + ", ".join(GENERATORS)
                + " (default: 'fixed' when means are given, else 'uniform')",
                kind=str, static=True, choices=GENERATORS, optional=True),
        Setting("means", None, "arm means (generator = 'fixed'); giving them selects 'fixed'",
                kind="vector", optional=True, low=mean_low, high=mean_high),
    ) + generator_settings(mean_low, mean_high)


def generator_settings(mean_low: float | None, mean_high: float | None) -> tuple[Setting, ...]:
    """The settings of the drawing generators (``draw_means``), shared with envs/changing.py."""
    return (
        Setting("low", 0.0, "lowest mean (uniform and linspace)", low=mean_low, high=mean_high),
        Setting("high", 1.0, "highest mean (uniform and linspace)", low=mean_low, high=mean_high),
        Setting("best", 0.5, "mean of the best arm (gap)", low=mean_low, high=mean_high),
        Setting("gap", 0.1, "best mean minus every other mean (gap)", low=0.0, low_open=True),
    )


def draw_means(key: Array, generator: str, num_arms: int, settings: Mapping[str, Array]) -> Array:
    """[K] arm means from a drawing ``generator`` ('uniform', 'gap' or 'linspace', see the
    module docstring) and its settings (``low``, ``high``, ``best``, ``gap``), in a random order.

    Shared with the piecewise-stationary bandits (envs/changing.py), which call it once per
    segment for fresh means after a change point.
    """
    order_key, draw_key = jax.random.split(key)
    if generator == "uniform":
        means = jax.random.uniform(draw_key, (num_arms,), minval=settings["low"],
                                   maxval=settings["high"])
    elif generator == "gap":
        means = jnp.full((num_arms,), settings["best"] - settings["gap"]).at[0].set(
            settings["best"])
    elif generator == "linspace":
        means = jnp.linspace(settings["low"], settings["high"], num_arms)
    else:
        raise ValueError(f"draw_means: {generator!r} is not a drawing generator")
    return jax.random.permutation(order_key, means).astype(jnp.float32)


def resolve_generator(values: Mapping[str, Any]) -> dict:
    """``values`` with the generator filled in: 'fixed' when means are given, else 'uniform'."""
    values = dict(values)
    if values.get("generator") is None:
        values["generator"] = "uniform" if values.get("means") is None else "fixed"
    return values


def check_mean_settings(values: Mapping[str, Any], where: str, mean_floor: float) -> None:
    """The cross-checks of ``K``, ``generator``, ``means`` and the generator's settings."""
    k, means = values["K"], values.get("means")
    if values["generator"] == "fixed":
        if means is None:
            raise ConfigError(f"{where}.means: required when generator = 'fixed' (a list of "
                              f"K = {k} numbers)")
    elif means is not None:
        raise ConfigError(f"{where}.means: given, but generator = {values['generator']!r} "
                          f"draws the means itself; drop means or set generator = 'fixed'")
    if means is not None and len(means) != k:
        raise ConfigError(f"{where}.means has {len(means)} values but K = {k}: give one mean "
                          f"per arm")
    check_generator(values, where, mean_floor)


def check_generator(values: Mapping[str, Any], where: str, mean_floor: float) -> None:
    """The cross-checks of a drawing generator's settings (ConfigError on the host)."""
    if values["generator"] in ("uniform", "linspace") and values["low"] > values["high"]:
        raise ConfigError(f"{where}.low = {values['low']} is above high = {values['high']}")
    if values["generator"] == "gap" and values["best"] - values["gap"] < mean_floor:
        raise ConfigError(f"{where}.gap = {values['gap']}: best - gap = "
                          f"{values['best'] - values['gap']:g} is below the smallest allowed "
                          f"mean {mean_floor:g}")


def bernoulli_reward(key: Array, mean: Array) -> Array:
    """A 0/1 reward with P(1) = mean, as ``u < mean`` for one uniform u (common random numbers)."""
    return (randomness.uniform(key) < mean).astype(jnp.float32)


def gaussian_reward(key: Array, mean: Array, sigma: Array) -> Array:
    """mean + sigma * N(0, 1)."""
    return mean + sigma * jax.random.normal(key)


class _StochasticMAB(Environment):
    """Shared by the Bernoulli and Gaussian bandits: instances, observation and regret."""

    @classmethod
    def known_arm_means(cls, settings: Mapping[str, Any]):
        """The configured means when generator = 'fixed' (other generators draw them)."""
        if settings.get("generator") != "fixed" or settings.get("means") is None:
            return None
        return (np.asarray(settings["means"], np.float64),
                float(settings.get("sigma", float("nan"))))

    def arm_means(self, params: MABParams):
        return params.means, getattr(params, "sigma", None)

    @classmethod
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        return resolve_generator(values)

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        check_mean_settings(values, where, cls._mean_floor())

    @classmethod
    def _mean_floor(cls) -> float:
        return -float("inf")

    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> MABParams:
        if self.generator == "fixed":
            return MABParams.of(settings["means"])
        return MABParams.of(draw_means(key, self.generator, self.K, settings))

    def reset(self, key: Array, params: MABParams) -> MABState:
        return MABState(t=jnp.zeros((), jnp.int32))

    def observe(self, key: Array, state: MABState, params: MABParams) -> Observation:
        return Observation(features=jnp.zeros((self.K, 0), jnp.float32), t=state.t)

    def step(self, key: Array, state: MABState, action: Array, params: MABParams):
        mean = take_arm(params.stored_means, action)
        reward = self.draw_reward(key, mean, params)
        feedback = immediate_feedback(action, jnp.zeros((self.K, 0)), reward, state.t)
        info = StepInfo(regret=arm_max(params.stored_means) - mean)
        return MABState(t=state.t + 1), feedback, info

    @abc.abstractmethod
    def draw_reward(self, key: Array, mean: Array, params: MABParams) -> Array:
        """One reward of an arm with expected reward ``mean``."""


@register_env("bernoulli")
class BernoulliBandit(_StochasticMAB):
    """K arms paying 1 with probability mu_a, else 0 (Lattimore and Szepesvari 2020, ch. 4)."""

    settings = mean_settings(0.0, 1.0)
    reward_family = "bernoulli"

    @classmethod
    def _mean_floor(cls) -> float:
        return 0.0

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec(num_arms=self.K, reward_range=(0.0, 1.0), bernoulli_rewards=True)

    def draw_reward(self, key, mean, params):
        return bernoulli_reward(key, mean)


@register_env("gaussian")
class GaussianBandit(_StochasticMAB):
    """K arms paying mu_a + sigma * N(0, 1) (Lattimore and Szepesvari 2020, ch. 4)."""

    settings = mean_settings(None, None) + (
        Setting("sigma", 1.0, "reward noise standard deviation", low=0.0, low_open=True),)
    reward_family = "gaussian"

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec(num_arms=self.K, reward_range=None, bernoulli_rewards=False)

    def sample_params(self, key, settings):
        return GaussianParams(stored_means=super().sample_params(key, settings).stored_means,
                              sigma=jnp.asarray(settings["sigma"], jnp.float32))

    def draw_reward(self, key, mean, params):
        return gaussian_reward(key, mean, params.sigma)


@struct.dataclass
class GaussianParams(MABParams):
    sigma: Array = 1.0
