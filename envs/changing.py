"""K-armed bandits whose arm means change with time, independently of the play history.

Two environments, Bernoulli or Gaussian rewards (``reward``), one shared round:

- ``piecewise``: piecewise-stationary means, the setting of Garivier and Moulines (2011, "On
  upper-confidence bound policies for switching bandit problems", ALT, sec. 2) and of Besson,
  Kaufmann, Maillard and Seznec (2022, "Efficient change-point detection for tackling
  piecewise-stationary bandits", JMLR 23, sec. 2): the means are constant between change points
  (breakpoints). Change points are given as rounds (``change_points``) or drawn with a hazard
  rate (``hazard``: every round t >= 1 is a change point with that probability, independently,
  the Bernoulli-process model of Mellor and Shapiro 2013, "Thompson sampling in switching
  environments with Bayesian online change detection", AISTATS); global (every arm changes) or
  per arm (``per_arm``). New means come from the generators of envs/mab.py (``uniform``,
  ``gap``, ``linspace``: a fresh draw per segment) or are given, one row per segment (``means``).
- ``drifting``: slowly varying means, sinusoidal (mu_k(t) = m_k + amplitude sin(2 pi t / period
  + 2 pi k / K), clipped to [floor, ceiling]) or a random walk reflected into [floor, ceiling]
  (mu_k(t + 1) = reflect(mu_k(t) + step * N(0, 1))), the slowly-varying setting of
  Besbes, Gur and Zeevi (2014, "Stochastic multi-armed-bandit problem with non-stationary
  rewards", NeurIPS) and Slivkins and Upfal (2008, "Adapting to a changing environment: the
  Brownian restless bandits", COLT). The starting (or centre) means m come from envs/mab.py's
  generators.

Columns (docs/design.md, "Results"):
- ``regret``: dynamic pseudo-regret, sum_{s < t} (max_k mu_k(s) - mu_{A_s}(s)) (Besbes et al.
  2014, eq. (2); Besson et al. 2022, eq. (1)).
- ``static_regret``: regret against the best fixed arm in hindsight,
  sum_{s < t} (mu_{k*}(s) - mu_{A_s}(s)) with k* = argmax_k sum_{s < T} mu_k(s), the arm with the
  highest mean averaged over the run's T rounds (Auer et al. 2002, "The nonstochastic multiarmed
  bandit problem", the weak regret in expectation over rewards). At t = T it is exactly the
  hindsight regret; it is <= ``regret`` at every t and may be negative. Computed without knowing
  T in advance: each round adds mu_k(s) - mu_{A_s}(s) for every arm k to a per-arm sum, and
  ``metric_columns`` takes the arm whose sum is largest at the last recorded round (the
  horizon). The price: K + 2 per-round metrics, so the runner's record buffer holds
  [runs, points, K + 2] floats (for K = 1,000 arms, 10,000 runs and 60 points, 2.4 GB).
- ``changes`` (``piecewise`` only): the number of change points among rounds 0 .. t-1 (a
  round where at least one arm's mean changes counts once).
"""
from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs import distributions, randomness
from envs.core import (REGRET, Array, ConfigError, EnvSpec, Environment, Metric, Observation,
                       Setting, StepInfo, arm_max, immediate_feedback, register_env, take_arm)
from envs.mab import (bernoulli_reward, check_generator, check_mean_settings, draw_means,
                      gaussian_reward, generator_settings, mean_settings, resolve_generator)

REWARDS = ("bernoulli", "gaussian")
NEVER = 2 ** 30          # the round of a change point that does not happen (padding)
STATIC_REGRET = Metric("static_regret", "cumulative regret against the best fixed arm in "
                       "hindsight", figure=True)
CHANGES = Metric("changes", "change points so far", summary=True)


def reward_settings() -> tuple[Setting, ...]:
    return (
        Setting("reward", "bernoulli", "reward law: 'bernoulli' (0/1 with P(1) = mean) or "
                "'gaussian' (mean + sigma N(0, 1))", kind=str, static=True, choices=REWARDS),
        Setting("sigma", 1.0, "reward noise standard deviation (reward = 'gaussian')",
                low=0.0, low_open=True),
    )


def arm_regret_name(arm: int) -> str:
    """The per-round metric mu_arm(t) - mu_{A_t}(t), summed into the regret against ``arm``."""
    return f"regret_vs_arm_{arm}"


class _ChangingMAB(Environment):
    """The round shared by ``piecewise`` and ``drifting``: this round's means give the reward,
    the dynamic regret and the regret against every fixed arm."""

    metrics: ClassVar = (REGRET, STATIC_REGRET)
    extra_metric_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **static: Any):
        super().__init__(**static)
        self.metric_names = self.extra_metric_names + tuple(
            arm_regret_name(k) for k in range(self.K))

    @property
    def spec(self) -> EnvSpec:
        if self.reward == "bernoulli":
            return EnvSpec(num_arms=self.K, reward_range=(0.0, 1.0), bernoulli_rewards=True)
        return EnvSpec(num_arms=self.K, reward_range=None, bernoulli_rewards=False)

    def observe(self, key: Array, state: Any, params: Any) -> Observation:
        return Observation(features=jnp.zeros((self.K, 0), jnp.float32), t=state.t)

    @abc.abstractmethod
    def round_means(self, state: Any, params: Any) -> Array:
        """[K] the arm means in round ``state.t``."""

    def next_state(self, key: Array, state: Any, params: Any) -> Any:
        """The state of the next round (the round counter and any drift)."""
        return state.replace(t=state.t + 1)

    def round_metrics(self, state: Any, params: Any) -> dict:
        """Further per-round metrics of the subclass (``extra_metric_names``)."""
        return {}

    def step(self, key: Array, state: Any, action: Array, params: Any):
        means = self.round_means(state, params)
        mean = take_arm(means, action)
        if self.reward == "bernoulli":
            reward = bernoulli_reward(key, mean)
        else:
            reward = gaussian_reward(key, mean, params.sigma)
        feedback = immediate_feedback(action, jnp.zeros((self.K, 0)), reward, state.t)
        metrics = self.round_metrics(state, params)
        metrics.update({arm_regret_name(k): means[k] - mean for k in range(self.K)})
        info = StepInfo(regret=arm_max(means) - mean, metrics=metrics)
        return self.next_state(key, state, params), feedback, info

    def metric_columns(self, sums: Mapping[str, np.ndarray], t: np.ndarray) -> dict:
        """``regret`` and ``static_regret`` (the per-arm regret of the arm with the largest
        total mean at the last recorded round, the horizon), and every extra metric as its
        cumulative sum."""
        per_arm = np.stack([sums[arm_regret_name(k)] for k in range(self.K)], axis=-1)
        best = np.argmax(per_arm[:, -1, :], axis=-1)             # [R] k* of each run
        static = np.take_along_axis(per_arm, best[:, None, None], axis=-1)[..., 0]
        columns = {"regret": sums["regret"], "static_regret": static}
        for name in self.extra_metric_names:
            columns[name] = sums[name]
        return columns

    @classmethod
    def check_reward_range(cls, values: Mapping[str, Any], names: tuple[str, ...],
                           where: str) -> None:
        """Bernoulli means must be probabilities: each named setting (a number, a vector or a
        matrix) within [0, 1]."""
        if values["reward"] != "bernoulli":
            return
        for name in names:
            value = values.get(name)
            if value is None:
                continue
            flat = np.asarray(value, np.float64).reshape(-1)
            if np.any((flat < 0.0) | (flat > 1.0)):
                raise ConfigError(f"{where}.{name} = {value!r}: out of range for Bernoulli "
                                  f"rewards, every mean must be in [0, 1]")


# ---------------------------------------------------------------------------------------------
# Piecewise-stationary means.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class PiecewiseParams:
    breakpoints: Array   # [K, C] int32: the rounds at which arm k's mean changes (NEVER: none)
    table: Array         # [K, C + 1] arm k's mean after its i-th change is table[k, i]
    sigma: Array


@struct.dataclass
class ChangingState:
    t: Array


def default_max_changes(values: Mapping[str, Any], context: Mapping[str, Any]) -> int:
    """The number of change points given; with a hazard rate h, ceil(h T + 4 sqrt(h T) + 4) for
    horizon T (the count of a Bernoulli process is Binomial(T - 1, h): it exceeds this bound with
    probability below 1e-4); 0 when the means never change."""
    if values.get("change_points") is not None:
        return len(values["change_points"])
    if values.get("hazard") is not None:
        expected = values["hazard"] * context["horizon"]
        return int(math.ceil(expected + 4.0 * math.sqrt(expected) + 4.0))
    return 0


def geometric_gaps(key: Array, hazard: Array, shape: tuple[int, ...]) -> Array:
    """Independent gaps >= 1 between change points of a Bernoulli(hazard) process, float32:
    ceil(ln u / ln(1 - hazard)) for u uniform in (0, 1); 2^24 (never, for any horizon below
    2^24 rounds) when hazard = 0."""
    u = jax.random.uniform(key, shape, minval=np.float32(2.0 ** -24), maxval=1.0)
    log_stay = jnp.log1p(-jnp.minimum(hazard, 1.0 - 1e-7))
    gaps = jnp.ceil(jnp.log(u) / jnp.minimum(log_stay, -1e-30))
    return jnp.clip(jnp.where(hazard > 0, gaps, 2.0 ** 24), 1.0, 2.0 ** 24)


@register_env("piecewise")
class PiecewiseBandit(_ChangingMAB):
    """Piecewise-stationary K-armed bandit (Garivier and Moulines 2011, sec. 2; Besson et al.
    2022, sec. 2).

    Change points: ``change_points`` = rounds tau (0-based) from which the new means hold (a
    change point 1000 with horizon 3000 gives the segments [0, 1000) and [1000, 3000)), or a
    hazard rate (each round t >= 1 a change point with probability ``hazard``, at most
    ``max_changes`` of them: the bound is static, a shape; later ones are dropped). Global by
    default: at a change point every arm takes its mean in the next segment. With ``per_arm``
    one arm changes at a time: at a given change point one arm drawn uniformly at random per
    instance, with a hazard rate every arm has its own process (and up to ``max_changes``
    changes). New means: ``means`` (one row per segment, len(change_points) + 1 rows, global
    change points only) or a fresh draw of the generator (envs/mab.py ``draw_means``) per
    segment; with ``gap`` or ``linspace`` a fresh draw is a new arrangement of the same values,
    which may equal the previous one (the change point still counts in ``changes``).

    Regret: dynamic pseudo-regret (``regret``), the regret against the best fixed arm in
    hindsight (``static_regret``) and the change points so far (``changes``): see the module
    docstring.
    """

    settings = (
        Setting("K", 3, "number of arms", kind=int, static=True, low=2),
    ) + reward_settings() + (
        Setting("generator", None, "how the means of each segment are made: 'fixed' (means "
                "given) or a fresh draw of 'uniform', 'gap', 'linspace' (envs/mab.py) per "
                "segment (default: 'fixed' when means are given, else 'uniform')", kind=str,
                static=True, choices=("fixed", "uniform", "gap", "linspace"), optional=True),
        Setting("means", None, "arm means per segment, one row of K means per segment "
                "(len(change_points) + 1 rows); giving them selects generator 'fixed'",
                kind="matrix", optional=True),
    ) + generator_settings(None, None) + (
        Setting("change_points", None, "rounds (0-based, increasing, >= 1) at which the means "
                "change; the new means hold from that round on", kind="vector", optional=True,
                low=1.0),
        Setting("hazard", None, "probability that a round is a change point (instead of "
                "change_points)", low=0.0, high=1.0, high_open=True, optional=True),
        Setting("per_arm", False, "one arm changes at a time (each arm its own hazard "
                "process) instead of all arms at every change point", kind=bool, static=True),
        Setting("max_changes", None, "static bound on the change points drawn with a hazard "
                "rate, per arm when per_arm (default ceil(h T + 4 sqrt(h T) + 4), set it to "
                "keep a hazard sweep in one compile); with change_points, their number",
                kind=int, static=True, low=0, optional=True, default_from=default_max_changes),
    )
    extra_metric_names = ("changes",)
    metrics = (REGRET, STATIC_REGRET, CHANGES)
    figures = ("analysis.nonstationary:plot_change_points",)

    @classmethod
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        return resolve_generator(values)

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        k, means, points = values["K"], values.get("means"), values.get("change_points")
        hazard = values.get("hazard")
        if points is not None and hazard is not None:
            raise ConfigError(f"{where}.hazard = {hazard}: give either change_points or a "
                              f"hazard rate, not both")
        if points is not None:
            if any(not float(p).is_integer() for p in points):
                raise ConfigError(f"{where}.change_points = {points!r}: expected whole rounds")
            if any(b <= a for a, b in zip(points, points[1:])):
                raise ConfigError(f"{where}.change_points = {points!r}: expected strictly "
                                  f"increasing rounds")
            if values["max_changes"] != len(points):
                raise ConfigError(f"{where}.max_changes = {values['max_changes']}: with "
                                  f"change_points it is their number, {len(points)}")
        if values["generator"] == "fixed":
            if means is None:
                raise ConfigError(f"{where}.means: required when generator = 'fixed' (one row "
                                  f"of K = {k} means per segment)")
            segments = 1 + (len(points) if points is not None else 0)
            if len(means) != segments or len(means[0]) != k:
                raise ConfigError(f"{where}.means is {len(means)} x {len(means[0])}: expected "
                                  f"{segments} rows (len(change_points) + 1) of K = {k} means")
            if hazard is not None:
                raise ConfigError(f"{where}.hazard = {hazard}: drawn change points need drawn "
                                  f"means; give change_points with means, or a generator")
            if values["per_arm"]:
                raise ConfigError(f"{where}.per_arm = true: with given means the rows already "
                                  f"say which arms change; drop per_arm or use a generator")
        elif means is not None:
            raise ConfigError(f"{where}.means: given, but generator = {values['generator']!r} "
                              f"draws the means itself; drop means or set generator = 'fixed'")
        check_generator(values, where, 0.0 if values["reward"] == "bernoulli" else -math.inf)
        cls.check_reward_range(values, ("means", "low", "high", "best"), where)

    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> PiecewiseParams:
        k, c = self.K, self.max_changes
        sigma = jnp.asarray(settings["sigma"], jnp.float32)
        if self.generator == "fixed":
            table = jnp.asarray(settings["means"], jnp.float32).T          # [K, C + 1]
            points = jnp.asarray(settings.get("change_points", jnp.zeros((0,))), jnp.float32)
            breakpoints = jnp.broadcast_to(jnp.round(points).astype(jnp.int32), (k, c))
            return PiecewiseParams(breakpoints=breakpoints, table=table, sigma=sigma)
        table_key, point_key, owner_key = jax.random.split(key, 3)
        draws = jax.vmap(lambda kk: draw_means(kk, self.generator, k, settings))(
            jax.random.split(table_key, c + 1))                              # [C + 1, K]
        return PiecewiseParams(breakpoints=self._breakpoints(point_key, owner_key, settings),
                               table=draws.T, sigma=sigma)

    def _breakpoints(self, point_key: Array, owner_key: Array, settings) -> Array:
        """[K, C] int32 change rounds of every arm (NEVER where there is none)."""
        k, c = self.K, self.max_changes
        if "change_points" in settings:
            points = jnp.round(jnp.asarray(settings["change_points"], jnp.float32))
            points = jnp.broadcast_to(points, (k, c))
            if self.per_arm:       # one arm per change point, uniformly at random
                owner = jax.random.randint(owner_key, (c,), 0, k)
                points = jnp.where(jnp.arange(k)[:, None] == owner[None, :], points, NEVER)
            return points.astype(jnp.int32)
        if "hazard" not in settings or c == 0:
            return jnp.full((k, c), NEVER, jnp.int32)
        rows = k if self.per_arm else 1
        points = jnp.cumsum(geometric_gaps(point_key, settings["hazard"], (rows, c)), axis=-1)
        points = jnp.where(points < 2.0 ** 24, points, NEVER).astype(jnp.int32)
        return jnp.broadcast_to(points, (k, c))

    def reset(self, key: Array, params: PiecewiseParams) -> ChangingState:
        return ChangingState(t=jnp.zeros((), jnp.int32))

    def round_means(self, state: ChangingState, params: PiecewiseParams) -> Array:
        segment = jnp.sum(params.breakpoints <= state.t, axis=-1)           # [K]
        slots = jnp.arange(params.table.shape[-1])
        return jnp.sum(jnp.where(slots[None, :] == segment[:, None], params.table, 0.0), axis=-1)

    def round_metrics(self, state: ChangingState, params: PiecewiseParams) -> dict:
        return {"changes": jnp.any(params.breakpoints == state.t).astype(jnp.float32)}


# ---------------------------------------------------------------------------------------------
# Drifting means.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class DriftParams:
    centres: Array   # [K] the generator's means: the sinusoid's centre or the walk's start
    amplitude: Array
    period: Array
    step: Array
    floor: Array
    ceiling: Array
    sigma: Array


@struct.dataclass
class DriftState:
    t: Array
    means: Array     # [K] this round's means (the random walk's position; unused by sinusoids)


def reflect(x: Array, floor: Array, ceiling: Array) -> Array:
    """x folded into [floor, ceiling] by reflection at both ends (any number of times)."""
    width = ceiling - floor
    y = jnp.mod(x - floor, 2.0 * jnp.maximum(width, 1e-12))
    return floor + jnp.where(y > width, 2.0 * width - y, y)


@register_env("drifting")
class DriftingBandit(_ChangingMAB):
    """K arms whose means drift every round (Besbes, Gur and Zeevi 2014; Slivkins and Upfal 2008).

    ``drift = 'sinusoidal'``: mu_k(t) = clip(m_k + amplitude sin(2 pi t / period + 2 pi k / K),
    floor, ceiling); the phases are spread over the arms, so the best arm changes about K times
    per period. ``drift = 'random_walk'``: mu_k(0) = clip(m_k, floor, ceiling), then
    mu_k(t + 1) = reflect(mu_k(t) + step Z_k(t)) into [floor, ceiling], Z_k(t) ~ N(0, 1)
    independent; the walk is driven by the round's keys (the same for every learner on the same
    seed), never by the actions. m comes from the generator (envs/mab.py). Regret: dynamic
    (``regret``) and against the best fixed arm in hindsight (``static_regret``), see the module
    docstring.
    """

    settings = mean_settings(None, None) + reward_settings() + (
        Setting("drift", "sinusoidal", "'sinusoidal' or 'random_walk'", kind=str, static=True,
                choices=("sinusoidal", "random_walk")),
        Setting("amplitude", 0.2, "amplitude of the sinusoid", low=0.0),
        Setting("period", 1000.0, "period of the sinusoid in rounds", low=0.0, low_open=True),
        Setting("step", 0.01, "standard deviation of the random walk's steps", low=0.0),
        Setting("floor", 0.0, "lowest mean: the walk reflects here, sinusoids are clipped"),
        Setting("ceiling", 1.0, "highest mean: the walk reflects here, sinusoids are clipped"),
    )

    @classmethod
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        return resolve_generator(values)

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        check_mean_settings(values, where, -math.inf)
        if values["floor"] >= values["ceiling"]:
            raise ConfigError(f"{where}.floor = {values['floor']} is not below ceiling = "
                              f"{values['ceiling']}")
        cls.check_reward_range(values, ("floor", "ceiling"), where)

    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> DriftParams:
        if self.generator == "fixed":
            centres = jnp.asarray(settings["means"], jnp.float32)
        else:
            centres = draw_means(key, self.generator, self.K, settings)
        f32 = lambda name: jnp.asarray(settings[name], jnp.float32)
        return DriftParams(centres=centres, amplitude=f32("amplitude"), period=f32("period"),
                           step=f32("step"), floor=f32("floor"), ceiling=f32("ceiling"),
                           sigma=f32("sigma"))

    def reset(self, key: Array, params: DriftParams) -> DriftState:
        return DriftState(t=jnp.zeros((), jnp.int32),
                          means=jnp.clip(params.centres, params.floor, params.ceiling))

    def round_means(self, state: DriftState, params: DriftParams) -> Array:
        if self.drift == "random_walk":
            return state.means
        phase = 2.0 * jnp.pi * (state.t.astype(jnp.float32) / params.period
                                + jnp.arange(self.K, dtype=jnp.float32) / self.K)
        return jnp.clip(params.centres + params.amplitude * jnp.sin(phase), params.floor,
                        params.ceiling)

    def next_state(self, key: Array, state: DriftState, params: DriftParams) -> DriftState:
        if self.drift != "random_walk":
            return state.replace(t=state.t + 1)
        # The reward used the step key's own words; the walk draws from a subkey.
        noise = distributions.normal(randomness.subkey(key, 1), (self.K,))
        means = reflect(state.means + params.step * noise, params.floor, params.ceiling)
        return DriftState(t=state.t + 1, means=means)
