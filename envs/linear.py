"""Stochastic linear and logistic contextual bandits.

``linear``: the linear payoff model of Li, Chu, Langford and Schapire (2010), eq. (2) (disjoint)
and Chu, Li, Reyzin and Schapire (2011), sec. 2 (shared), as analysed by Abbasi-Yadkori, Pal and
Szepesvari (2011), sec. 2: arm a in round t has features x_{t,a} and pays

    r_t = <theta_a, x_{t,a}> + sigma * eta_t,    eta_t ~ N(0, 1).

``logistic``: the generalised linear model of Filippi, Cappe, Garivier and Szepesvari (2010),
sec. 2, and Li, Lu and Zhou (2017), eq. (1), with the logistic link:
r_t ~ Bernoulli(sigmoid(<theta_a, x_{t,a}>)).

Two models (``model``, static):
- ``shared``: one parameter theta shared by all arms; each arm has its own feature vector, drawn
  fresh every round (Chu et al. 2011; the setting of OFUL and LinTS).
- ``disjoint``: one context x_t shared by all arms and one parameter theta_a per arm
  (Li et al. 2010, sec. 3.1). ``Observation.features`` is [K, d] with every row equal to x_t, so
  any learner sees the same array shape in both models.

Instance generators (``theta_generator``): ``sphere``: theta (each theta_a) Gaussian, normalised to
norm ``theta_norm`` (S in OFUL's theorem); ``gaussian``: N(0, theta_norm^2 I_d / d) entries, so
E||theta||^2 = theta_norm^2 without the norm being fixed; ``fixed``: the ``theta`` vector from the
config (shared model only).

Contexts (``context``): ``sphere``: uniform on the unit sphere (a normalised Gaussian), fresh
each round; ``gaussian``: N(0, I_d / d), fresh each round (E||x||^2 = 1); ``fixed``: K unit-sphere
vectors drawn once per instance and kept for the whole run (a fixed finite arm set, the
non-contextual linear bandit).

The context of round t lives in the state (made in ``reset``, and in ``step`` for the next round)
so ``step`` can return the chosen arm's features in the Feedback. Contexts and reward noise are
drawn from keys that do not depend on the action (common random numbers: two learners on the same
run key see the same contexts and the same noise draws).

Regret (``StepInfo.regret``): max_a E[r | x_{t,a}] - E[r | x_{t,A_t}], on the reward scale
(for ``logistic``, the difference of sigmoids).
"""
from __future__ import annotations

import abc
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import struct

from envs import distributions, randomness
from envs.core import (Array, ConfigError, EnvSpec, Environment, Observation, Setting, StepInfo,
                       TableRow, immediate_feedback, register_env, unit_rows)

MODELS = ("shared", "disjoint")
THETA_GENERATORS = ("sphere", "gaussian", "fixed")
CONTEXTS = ("sphere", "gaussian", "fixed")


@struct.dataclass
class LinearParams:
    """One instance.

    theta:    [K, d] parameter of each arm (shared model: every row is the one theta).
    features: [K, d] the fixed arm set (context = 'fixed'; zeros otherwise, unused).
    noise:    [] reward noise standard deviation (linear only).
    """

    theta: Array
    features: Array
    noise: Array


@struct.dataclass
class LinearState:
    t: Array
    features: Array   # [K, d] this round's context




def _settings(theta_norm_default: float) -> tuple[Setting, ...]:
    return (
        Setting("K", 10, "number of arms", kind=int, static=True, low=2),
        Setting("d", 8, "context (feature) dimension", kind=int, static=True, low=1),
        Setting("model", "shared", "'shared': one theta, per-arm features; 'disjoint': one "
                "shared context, one theta per arm", kind=str, static=True, choices=MODELS),
        Setting("context", "sphere", "context distribution: 'sphere' (uniform on the unit "
                "sphere, fresh each round), 'gaussian' (N(0, I/d), fresh each round), 'fixed' "
                "(K unit vectors drawn once per instance)", kind=str, static=True,
                choices=CONTEXTS),
        Setting("theta_generator", None, "how theta is made: 'sphere' (norm exactly "
                "theta_norm), 'gaussian' (N(0, theta_norm^2 I/d)), 'fixed' (the theta given); "
                "default 'fixed' when theta is given, else 'sphere'", kind=str, static=True,
                choices=THETA_GENERATORS, optional=True),
        Setting("theta", None, "the shared parameter (theta_generator = 'fixed', shared model, "
                "d numbers)", kind="vector", optional=True),
        Setting("theta_norm", theta_norm_default, "norm of theta (S)", low=0.0,
                low_open=True),
    )


class _LinearModel(Environment):
    """Shared by ``linear`` and ``logistic``: instances, contexts, observation, regret."""

    @classmethod
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        values = dict(values)
        if values.get("theta_generator") is None:
            values["theta_generator"] = "sphere" if values.get("theta") is None else "fixed"
        return values

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        theta = values.get("theta")
        if values["theta_generator"] == "fixed":
            if theta is None:
                raise ConfigError(f"{where}.theta: required when theta_generator = 'fixed' "
                                  f"(a list of d = {values['d']} numbers)")
            if values["model"] != "shared":
                raise ConfigError(f"{where}.theta_generator = 'fixed': only with model = "
                                  f"'shared' (the disjoint model draws one theta per arm; use "
                                  f"'sphere' or 'gaussian')")
        if theta is not None:
            if values["theta_generator"] != "fixed":
                raise ConfigError(f"{where}.theta is given but theta_generator = "
                                  f"{values['theta_generator']!r}: use 'fixed' or drop theta")
            if len(theta) != values["d"]:
                raise ConfigError(f"{where}.theta has {len(theta)} values but d = "
                                  f"{values['d']}: give d numbers")

    # -- instances ----------------------------------------------------------------------------
    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> LinearParams:
        theta_key, feature_key = jax.random.split(key)
        rows = 1 if self.model == "shared" else self.K
        norm = jnp.asarray(settings["theta_norm"], jnp.float32)
        if self.theta_generator == "fixed":
            theta = jnp.asarray(settings["theta"], jnp.float32)[None, :]
        elif self.theta_generator == "sphere":
            theta = norm * unit_rows(jax.random.normal(theta_key, (rows, self.d)))
        else:
            theta = norm * jax.random.normal(theta_key, (rows, self.d)) / jnp.sqrt(self.d)
        theta = jnp.broadcast_to(theta, (self.K, self.d)).astype(jnp.float32)
        if self.context == "fixed":
            features = unit_rows(jax.random.normal(feature_key, (self.K, self.d)))
        else:
            features = jnp.zeros((self.K, self.d))
        noise = jnp.asarray(settings.get("noise", 0.0), jnp.float32)
        return LinearParams(theta=theta, features=features.astype(jnp.float32), noise=noise)

    def draw_context(self, key: Array, params: LinearParams) -> Array:
        """The [K, d] features of one round."""
        if self.context == "fixed":
            return params.features
        rows = self.K if self.model == "shared" else 1
        x = distributions.normal(key, (rows, self.d))
        x = unit_rows(x) if self.context == "sphere" else x / jnp.sqrt(self.d)
        return jnp.broadcast_to(x, (self.K, self.d))

    # -- protocol -----------------------------------------------------------------------------
    def reset(self, key: Array, params: LinearParams) -> LinearState:
        return LinearState(t=jnp.zeros((), jnp.int32), features=self.draw_context(key, params))

    def observe(self, key: Array, state: LinearState, params: LinearParams) -> Observation:
        return Observation(features=state.features, t=state.t)

    def linear_predictors(self, state: LinearState, params: LinearParams) -> Array:
        """<theta_a, x_{t,a}> for every arm ([K])."""
        return jnp.sum(params.theta * state.features, axis=-1)

    def step(self, key: Array, state: LinearState, action: Array, params: LinearParams):
        # The reward reads the step key's own words, the next context a subkey's
        # (docs/design.md, "Random numbers": no jax.random in the round).
        reward_key, context_key = key, randomness.subkey(key, 0)
        expected = self.expected_rewards(self.linear_predictors(state, params))
        chosen = expected[action]
        reward = self.draw_reward(reward_key, chosen, params)
        feedback = immediate_feedback(action, state.features, reward, state.t)
        info = StepInfo(regret=jnp.max(expected) - chosen)
        next_state = LinearState(t=state.t + 1, features=self.draw_context(context_key, params))
        return next_state, feedback, info

    # -- table export (``banditjax export``) ----------------------------------------------------
    def export_support(self, settings: Mapping[str, Any]) -> str | None:
        if self.model != "disjoint":
            return ("model = 'shared' gives every arm its own features, a table row holds one "
                    "context: use model = 'disjoint'")
        return None

    def export_row(self, state: LinearState, params: LinearParams) -> TableRow:
        """The shared context x (d columns) and E[r] of every arm."""
        return TableRow(features=state.features[0], rewards=self.expected_rewards(
            self.linear_predictors(state, params)))

    @abc.abstractmethod
    def expected_rewards(self, predictors: Array) -> Array:
        """E[r] of every arm from its linear predictor."""

    @abc.abstractmethod
    def draw_reward(self, key: Array, mean: Array, params: LinearParams) -> Array:
        """One reward of an arm with expected reward ``mean``."""


@register_env("linear")
class LinearBandit(_LinearModel):
    """r = <theta_a, x_a> + noise * N(0, 1)."""

    settings = _settings(1.0) + (
        Setting("noise", 0.1, "reward noise standard deviation (sigma; the R of OFUL)",
                low=0.0),)
    linear_model = True

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec(num_arms=self.K, feature_dim=self.d, reward_range=None,
                       bernoulli_rewards=False)

    def expected_rewards(self, predictors):
        return predictors

    def draw_reward(self, key, mean, params):
        return mean + params.noise * distributions.normal(key)


@register_env("logistic")
class LogisticBandit(_LinearModel):
    """r ~ Bernoulli(sigmoid(<theta_a, x_a>)); regret on the probability scale."""

    settings = _settings(3.0)

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec(num_arms=self.K, feature_dim=self.d, reward_range=(0.0, 1.0),
                       bernoulli_rewards=True)

    def expected_rewards(self, predictors):
        return jax.nn.sigmoid(predictors)

    def draw_reward(self, key, mean, params):
        return (randomness.uniform(key) < mean).astype(jnp.float32)
