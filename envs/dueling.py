"""Dueling bandits: the learner picks a pair of arms and observes which one won.

Two environments (action = int32 pair [2]; ``Feedback.reward`` = 1.0 when action[0] beat
action[1]; ``EnvSpec(action_arity=2, preference_feedback=True)``):

``dueling``: K arms and a preference matrix P (P[i, j] = probability that i beats j,
P + P^T = 1, P[i, i] = 1/2). The K-armed dueling bandit of Yue, Broder, Kleinberg and Joachims
(2012), "The K-armed Dueling Bandits Problem", sec. 2, as used by RUCB (Zoghi, Whiteson, Munos
and de Rijke 2014, sec. 2). Generators (``generator``):
- ``bradley_terry``: latent utilities u (given as ``utilities`` or drawn Uniform(low, high)) and
  P[i, j] = sigmoid(u_i - u_j) (Bradley and Terry 1952); total order, the best utility is the
  Condorcet winner.
- ``condorcet``: a random matrix with a Condorcet winner that beats every other arm with
  probability 1/2 + Uniform(gap, 1/2) while the duels among the other arms are Uniform(0, 1)
  (no total order, cycles allowed: the setting where RUCB needs only a Condorcet winner).
- ``matrix``: a given matrix (``preferences``: K*K numbers, row-major) that must have a
  Condorcet winner; checked on the host.
Arms are placed in a random order per instance (except ``matrix``), so no learner profits from
a preference for low indices. Regret uses the preference gaps of Yue et al. (2012), sec. 2 and
Zoghi et al. (2014), sec. 2: with c the Condorcet winner and Delta_i = P[c, i] - 1/2,
average regret (Delta_i + Delta_j) / 2 and weak regret min(Delta_i, Delta_j).

``contextual_dueling``: each round K arms with d-dimensional features x_1..x_K (uniform on the
unit sphere, or uniform in the cube [-1, 1]^d scaled to the unit ball), kept in the state;
P(i beats j) = sigmoid(f(x_i) - f(x_j)) with f (``function``):
- ``linear``: f(x) = scale <theta, x>, ||theta|| = 1 (the linear stochastic transitivity model
  with logistic link of Saha 2021, "Optimal Algorithms for Stochastic Contextual Preference
  Bandits", sec. 2, and Bengs, Saha and Hullermeier 2022, sec. 2);
- ``mlp``: a fixed random one-hidden-layer ReLU network (width ``hidden``) times ``scale``;
- ``square``: scale * 10 (<a, x>)^2 and ``cosine``: scale * cos(3 <a, x>), the test functions
  h1 and h3 of Zhou, Li and Gu (2020), "Neural Contextual Bandits with UCB-based Exploration",
  sec. 7.1, used for neural dueling bandits by Verma, Dai, Lin, Jaillet and Low (2024),
  "Neural Dueling Bandits", sec. 5;
- ``quadratic``: scale * x^T A^T A x with A ~ N(0, 1) entries / d (h2 of Zhou et al. 2020).
Regret in utility units (Saha 2021, eq. 1; Bengs et al. 2022, eq. 3): with f* = max_k f(x_k),
average regret f* - (f(x_i) + f(x_j)) / 2 and weak regret f* - max(f(x_i), f(x_j)).

Both report ``regret`` (average regret, cumulative) and ``weak_regret`` (cumulative too:
``metric_columns`` is overridden). Weak regret <= average regret round by round.

Rewards use common random numbers: the duel outcome is ``u < P`` with one uniform u per round.
Both compose with ``envs.delay.Delayed`` (the feedback is an ordinary masked batch).
"""
from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import REGRET, Metric
from envs.core import (Array, ConfigError, EnvSpec, Environment, Observation, Setting,
                       StepInfo, immediate_feedback, register_env)


def _duel(key: Array, preference: Array) -> Array:
    """1.0 when the first arm wins a duel that it wins with probability ``preference``."""
    return (jax.random.uniform(key) < preference).astype(jnp.float32)


def _regret_info(gap_first: Array, gap_second: Array) -> StepInfo:
    """Average regret (mean of the two gaps) and weak regret (the smaller gap)."""
    return StepInfo(regret=0.5 * (gap_first + gap_second),
                    metrics={"weak_regret": jnp.minimum(gap_first, gap_second)})


class _DuelingEnvironment(Environment):
    """Shared by both dueling environments: the metric columns."""

    metric_names = ("weak_regret",)
    metrics = (REGRET, Metric("weak_regret", "cumulative weak regret", figure=True))

    def metric_columns(self, sums: Mapping[str, np.ndarray], t: np.ndarray):
        """Both regrets are cumulative (not running means)."""
        return {"regret": sums["regret"], "weak_regret": sums["weak_regret"]}


# ---------------------------------------------------------------------------------------------
# K-armed dueling bandit.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class DuelingParams:
    preferences: Array   # [K, K] P[i, j] = P(i beats j)
    gaps: Array          # [K] P[c, i] - 1/2 for the Condorcet winner c (0 for c)


@struct.dataclass
class DuelingState:
    t: Array


DUELING_GENERATORS = ("bradley_terry", "condorcet", "matrix")


def condorcet_winner(preferences: np.ndarray) -> int | None:
    """The arm that beats every other with probability > 1/2, or None (host-side check)."""
    k = preferences.shape[0]
    for i in range(k):
        if all(preferences[i, j] > 0.5 for j in range(k) if j != i):
            return i
    return None


@register_env("dueling")
class Dueling(_DuelingEnvironment):
    """K-armed dueling bandit with a Condorcet winner (Yue et al. 2012; Zoghi et al. 2014).

    Pairs in, duel outcomes out."""

    settings = (
        Setting("K", 10, "number of arms", kind=int, static=True, low=2),
        Setting("generator", "bradley_terry", "how the preference matrix is made: "
                + ", ".join(DUELING_GENERATORS), kind=str, static=True,
                choices=DUELING_GENERATORS),
        Setting("utilities", None, "latent utilities (bradley_terry); default: drawn "
                "Uniform(low, high)", kind="vector", optional=True),
        Setting("low", 0.0, "lowest drawn utility (bradley_terry)"),
        Setting("high", 2.0, "highest drawn utility (bradley_terry)"),
        Setting("gap", 0.1, "smallest margin of the Condorcet winner over 1/2 (condorcet)",
                low=0.0, high=0.5, low_open=True),
        Setting("preferences", None, "K*K preference probabilities, row-major (matrix): "
                "P[i][j] = P(i beats j), P + P^T = 1, with a Condorcet winner",
                kind="vector", optional=True, low=0.0, high=1.0),
    )

    @classmethod
    def check_cross(cls, values, where):
        k = values["K"]
        if values["generator"] == "bradley_terry":
            if values.get("utilities") is not None and len(values["utilities"]) != k:
                raise ConfigError(f"{where}.utilities has {len(values['utilities'])} values but "
                                  f"K = {k}: give one utility per arm")
            if values.get("utilities") is None and values["low"] > values["high"]:
                raise ConfigError(f"{where}.low = {values['low']} is above high = "
                                  f"{values['high']}")
        if values["generator"] == "matrix":
            prefs = values.get("preferences")
            if prefs is None or len(prefs) != k * k:
                got = "nothing" if prefs is None else f"{len(prefs)} numbers"
                raise ConfigError(f"{where}.preferences: generator = 'matrix' needs K*K = "
                                  f"{k * k} numbers (row-major), got {got}")
            matrix = np.asarray(prefs, np.float64).reshape(k, k)
            if not np.allclose(matrix + matrix.T, 1.0, atol=1e-6):
                raise ConfigError(f"{where}.preferences: P[i][j] + P[j][i] must be 1 for every "
                                  f"pair (and P[i][i] = 0.5)")
            if condorcet_winner(matrix) is None:
                raise ConfigError(f"{where}.preferences: no Condorcet winner (an arm beating "
                                  f"every other with probability > 0.5)")

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec(num_arms=self.K, action_arity=2, preference_feedback=True)

    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> DuelingParams:
        k = self.K
        order_key, draw_key = jax.random.split(key)
        if self.generator == "matrix":
            matrix = jnp.asarray(settings["preferences"], jnp.float32).reshape(k, k)
            return self._params(matrix)
        if self.generator == "bradley_terry":
            if "utilities" in settings:
                utilities = jnp.asarray(settings["utilities"], jnp.float32)
                return self._params(jax.nn.sigmoid(utilities[:, None] - utilities[None, :]))
            utilities = jax.random.uniform(draw_key, (k,), minval=settings["low"],
                                           maxval=settings["high"])
            matrix = jax.nn.sigmoid(utilities[:, None] - utilities[None, :])
        else:
            matrix = self._random_condorcet(draw_key, settings["gap"])
        permutation = jax.random.permutation(order_key, k)
        return self._params(matrix[permutation][:, permutation])

    def _random_condorcet(self, key: Array, gap: Array) -> Array:
        """Arm 0 beats every arm with 1/2 + U(gap, 1/2); other duels U(0, 1), antisymmetric."""
        k = self.K
        win_key, rest_key = jax.random.split(key)
        upper = jax.random.uniform(rest_key, (k, k))
        upper = jnp.triu(upper, 1)
        matrix = upper + jnp.triu(1.0 - upper, 1).T
        margins = 0.5 + jax.random.uniform(win_key, (k,), minval=gap, maxval=0.5)
        matrix = matrix.at[0, :].set(margins).at[:, 0].set(1.0 - margins)
        return matrix.at[jnp.diag_indices(k)].set(0.5)

    def _params(self, matrix: Array) -> DuelingParams:
        matrix = matrix.at[jnp.diag_indices(self.K)].set(0.5)
        # The Condorcet winner has the largest number of wins over 1/2 (K - 1 of them).
        winner = jnp.argmax(jnp.sum(matrix > 0.5, axis=1))
        gaps = jnp.maximum(matrix[winner] - 0.5, 0.0)
        return DuelingParams(preferences=matrix.astype(jnp.float32),
                             gaps=gaps.astype(jnp.float32))

    def reset(self, key: Array, params: DuelingParams) -> DuelingState:
        return DuelingState(t=jnp.zeros((), jnp.int32))

    def observe(self, key: Array, state: DuelingState, params: DuelingParams) -> Observation:
        return Observation(features=jnp.zeros((self.K, 0), jnp.float32), t=state.t)

    def step(self, key: Array, state: DuelingState, action: Array, params: DuelingParams):
        action = jnp.asarray(action, jnp.int32)
        first, second = action[0], action[1]
        reward = _duel(key, params.preferences[first, second])
        feedback = immediate_feedback(action, jnp.zeros((self.K, 0)), reward, state.t)
        info = _regret_info(params.gaps[first], params.gaps[second])
        return DuelingState(t=state.t + 1), feedback, info


# ---------------------------------------------------------------------------------------------
# Contextual dueling bandit.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class ContextualDuelingParams:
    direction: Array    # [d] theta (linear) or a (square, cosine); unit norm
    matrix: Array       # [d, d] A (quadratic) or the hidden layer W1 [hidden, d] (mlp)
    bias: Array         # [hidden] b1 (mlp)
    output: Array       # [hidden] w2 (mlp)
    scale: Array        # []


@struct.dataclass
class ContextualDuelingState:
    t: Array
    features: Array     # [K, d] this round's arms


FUNCTIONS = ("linear", "mlp", "square", "cosine", "quadratic")
CONTEXTS = ("sphere", "ball")


def _unit(x: Array) -> Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@register_env("contextual_dueling")
class ContextualDueling(_DuelingEnvironment):
    """Contextual dueling: P(i beats j) = sigmoid(f(x_i) - f(x_j)) (Saha 2021; Bengs et al. 2022).

    K arms with fresh features each round."""

    settings = (
        Setting("K", 10, "arms per round", kind=int, static=True, low=2),
        Setting("d", 5, "feature dimension", kind=int, static=True, low=1),
        Setting("function", "linear", "utility f: " + ", ".join(FUNCTIONS), kind=str,
                static=True, choices=FUNCTIONS),
        Setting("contexts", "sphere", "arm features: uniform on the unit sphere ('sphere') or "
                "uniform in [-1, 1]^d scaled into the unit ball ('ball')", kind=str,
                static=True, choices=CONTEXTS),
        Setting("hidden", 16, "hidden width of the random network (function = 'mlp')",
                kind=int, static=True, low=1),
        Setting("scale", 2.0, "utility scale: f is multiplied by it (larger = clearer "
                "preferences, larger gaps)", low=0.0, low_open=True),
    )

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec(num_arms=self.K, feature_dim=self.d, action_arity=2,
                       preference_feedback=True)

    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> ContextualDuelingParams:
        d, h = self.d, self.hidden
        dir_key, mat_key, bias_key, out_key = jax.random.split(key, 4)
        direction = _unit(jax.random.normal(dir_key, (d,)))
        if self.function == "mlp":
            matrix = jax.random.normal(mat_key, (h, d)) * math.sqrt(2.0)
            bias = 0.1 * jax.random.normal(bias_key, (h,))
            output = jax.random.normal(out_key, (h,)) / math.sqrt(h)
        else:
            matrix = jax.random.normal(mat_key, (d, d)) / d
            bias = jnp.zeros((h,))
            output = jnp.zeros((h,))
        return ContextualDuelingParams(
            direction=direction.astype(jnp.float32), matrix=matrix.astype(jnp.float32),
            bias=bias.astype(jnp.float32), output=output.astype(jnp.float32),
            scale=jnp.asarray(settings["scale"], jnp.float32))

    def utility(self, features: Array, params: ContextualDuelingParams) -> Array:
        """f(x) for each row of ``features`` [K, d] -> [K]."""
        projection = features @ params.direction
        if self.function == "linear":
            value = projection
        elif self.function == "square":
            value = 10.0 * projection ** 2
        elif self.function == "cosine":
            value = jnp.cos(3.0 * projection)
        elif self.function == "quadratic":
            mapped = features @ params.matrix.T
            value = jnp.sum(mapped * mapped, axis=-1)
        else:
            hidden = jax.nn.relu(features @ params.matrix.T + params.bias)
            value = hidden @ params.output
        return params.scale * value

    def draw_features(self, key: Array) -> Array:
        shape = (self.K, self.d)
        if self.contexts == "sphere":
            return _unit(jax.random.normal(key, shape)).astype(jnp.float32)
        cube = jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
        return (cube / math.sqrt(self.d)).astype(jnp.float32)

    def reset(self, key: Array, params) -> ContextualDuelingState:
        return ContextualDuelingState(t=jnp.zeros((), jnp.int32), features=self.draw_features(key))

    def observe(self, key: Array, state: ContextualDuelingState, params) -> Observation:
        return Observation(features=state.features, t=state.t)

    def step(self, key: Array, state: ContextualDuelingState, action: Array, params):
        duel_key, next_key = jax.random.split(key)
        action = jnp.asarray(action, jnp.int32)
        utilities = self.utility(state.features, params)
        first, second = utilities[action[0]], utilities[action[1]]
        reward = _duel(duel_key, jax.nn.sigmoid(first - second))
        feedback = immediate_feedback(action, state.features, reward, state.t)
        best = jnp.max(utilities)
        info = _regret_info(best - first, best - second)
        new_state = ContextualDuelingState(t=state.t + 1, features=self.draw_features(next_key))
        return new_state, feedback, info
