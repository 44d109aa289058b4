"""K-armed bandits whose arm means depend on the play history (rested, action-induced
non-stationarity): rotting, recovering and last-switch-dependent arms.

Each arm a has a base mean mu_a (from the K-armed generators of ``envs.mab``: ``fixed``,
``uniform``, ``gap``, ``linspace``; in [0, 1]) and a rate rho_a (``rates`` given, else i.i.d.
Uniform(``rate_low``, ``rate_high``) per instance). Its mean in round t is a function of a
per-arm history counter h_a(t) that only the learner's own plays move:

- ``rotting``: rested rotting bandits (Levine, Crammer and Mannor 2017, "Rotting Bandits", sec. 2;
  Seznec, Locatelli, Carpentier, Lazaric and Valko 2019, "Rotting bandits are no harder than
  stochastic ones", sec. 2). h_a = n_a, the number of times arm a has been pulled so far, and
  mu_a(n) = mu_a g(n) with the decay law ``decay``: ``polynomial`` g(n) = (1 + n)^(-rho_a),
  ``exponential`` g(n) = exp(-rho_a n). Both are non-increasing in n.
- ``recovering``: recovering bandits (Pike-Burke and Grunewalder 2019, "Recovering Bandits",
  sec. 2): h_a = z_a, the number of rounds since arm a was last pulled (1: pulled in the previous
  round), capped at ``max_delay`` (z_max; arms never pulled have z_max), and
  mu_a(z) = mu_a f(z) with the recovery law ``recovery``: ``exponential`` f(z) = 1 -
  exp(-rho_a z), ``linear`` f(z) = min(1, rho_a z). Both saturate at mu_a.
- ``last_switch``: last-switch-dependent (LSD) bandits (Laforgue, Clerici, Cesa-Bianchi and
  Gilad-Bachrach 2022, "A Last Switch Dependent Analysis of Satiation and Seasonality in
  Bandits", sec. 2, with one arm played per round): h_a = tau_a in {-tau_max, ..., -1, 1, ...,
  tau_max}, the rounds since arm a last took part in a switch: tau_a > 0 when it was played in
  each of the last tau_a rounds (its current streak), tau_a < 0 when it was idle for the last
  |tau_a| rounds; capped at ``tau_max``; every arm starts at -tau_max (rested). The LSD model
  allows any payoff function of tau; this environment offers one parametric family with both
  effects the paper names: satiation, mu_a(tau) = mu_a exp(-rho_a tau) for a streak tau > 0, and
  seasonality, mu_a(tau) = mu_a (1 - A (1 - cos(2 pi |tau| / P)) / 2) for an idle arm (tau < 0;
  ``amplitude`` A in [0, 1], ``period`` P): a rested arm pays mu_a again every P idle rounds and
  at most A mu_a less in between (A = 0: one idle round fully restores it).

Rewards (``reward``): ``bernoulli`` (1 with probability mu_a(h_a), from one uniform of the step
key: common random numbers) or ``gaussian`` (mu_a(h_a) + sigma N(0, 1)).

Regret. The per-round best arm depends on the learner's own history, so the columns say against
which benchmark they are taken (all are pseudo-regrets: sums of means, not of rewards):
- ``rotting``: ``regret`` is the policy regret against the greedy oracle, which plays the arm
  with the highest current mean given its own pull counts and is optimal for rested rotting
  arms with non-increasing means (Heidari, Kearns and Roth 2016, "Tight Policy Regret Bounds for
  Improving and Decaying Bandits", sec. 3; Seznec et al. 2019, eq. 1): sum_{s<t} G_s -
  mu_{A_s}(n_{A_s}(s)), with G_s the greedy oracle's mean in round s (the oracle is simulated
  beside the learner, from its own counts). Its per-round terms can be negative but the sum is
  >= 0 at every t: the oracle's first t means are the t largest values of the arms' non-increasing
  sequences, and the learner's first t means are t of those values. The class declares
  ``monotone_regret = False``.
- ``recovering`` and ``last_switch``: the optimal policy is NP-hard to compute (Pike-Burke and
  Grunewalder 2019, sec. 3; Laforgue et al. 2022, sec. 3), so ``regret`` is the instantaneous
  dynamic regret on the learner's own trajectory, sum_{s<t} max_a mu_a(h_a(s)) -
  mu_{A_s}(h_{A_s}(s)) (the instantaneous regret of Pike-Burke and Grunewalder, sec. 3): >= 0 every
  round, 0 exactly for the policy that always plays a currently best arm. It is not a policy
  regret: a planning policy can collect more reward while having a larger instantaneous regret.
  ``greedy_regret`` is the policy regret against that greedy oracle simulated from its own
  history, as for rotting (it may be negative: greedy is not optimal here).
- every environment: ``static_regret`` is the policy regret against the best fixed arm of the run,
  sum_{s<t} m_{a*}(s) - mu_{A_s}(h_{A_s}(s)), where m_a(s) is arm a's mean in round s under the
  policy that plays a in every round and a* maximises sum_{s<T} m_a(s) over the whole run (the
  last recorded round; ``metric_columns`` picks it from one hidden per-arm column each,
  ``regret_vs_arm_<a>``, which are not in the results). It may be negative: switching arms
  beats every fixed arm on rotting arms.

The greedy oracle breaks ties by the lowest arm index (deterministic).
"""
from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.changing import STATIC_REGRET, arm_regret_name, reward_settings
from envs.core import (REGRET, Array, ConfigError, EnvSpec, Environment, Metric, Observation,
                       Setting, StepInfo, arm_columns, arm_max, immediate_feedback, register_env,
                       take_arm)
from envs.mab import (bernoulli_reward, check_mean_settings, draw_means, gaussian_reward,
                      mean_settings, resolve_generator)

DECAYS = ("polynomial", "exponential")
RECOVERIES = ("exponential", "linear")

GREEDY_REGRET = Metric("greedy_regret", "regret against the greedy oracle (may be negative)")


@struct.dataclass
class HistoryParams:
    """One instance: base means mu_a [K], rates rho_a [K] and the environment's scalars."""

    base: Array
    rates: Array
    sigma: Array
    knobs: dict   # environment-specific dynamic scalars (max_delay, tau_max, amplitude, period)


@struct.dataclass
class HistoryState:
    """t, the learner's history counters h_a [K] and the greedy oracle's own [K] (int32)."""

    t: Array
    history: Array
    oracle: Array


def _rate_settings(low: float, high: float, doc: str) -> tuple[Setting, ...]:
    return (
        Setting("rates", None, f"{doc} of each arm (K numbers); default: i.i.d. "
                "Uniform(rate_low, rate_high) per instance", kind="vector", optional=True,
                low=0.0),
        Setting("rate_low", low, f"lowest {doc} (drawn when rates are not given)", low=0.0),
        Setting("rate_high", high, f"highest {doc} (drawn when rates are not given)", low=0.0),
    )


def first_argmax(values: Array) -> Array:
    """The lowest index of a maximum of ``values`` ([K]), unrolled over a short arm axis."""
    best = arm_max(values)
    chosen = jnp.int32(values.shape[0] - 1)
    for k in reversed(range(values.shape[0] - 1)):
        chosen = jnp.where(values[k] >= best, jnp.int32(k), chosen)
    return chosen


class _HistoryBandit(Environment):
    """Shared by the history-dependent bandits: instances, rewards, the two oracles, columns.

    Subclasses define the history counter: ``initial_history``, ``advance``, ``means`` (the
    current means from a history) and ``fixed_arm_means`` (each arm's mean in round t when it is
    played in every round).
    """

    regret_is_greedy_policy: ClassVar[bool] = False   # rotting: regret = greedy policy regret
    knob_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **static: Any):
        super().__init__(**static)
        self.static_arm_names = tuple(arm_regret_name(a) for a in range(self.K))
        own = () if self.regret_is_greedy_policy else ("greedy_regret",)
        self.metric_names = own + self.static_arm_names

    # -- declarations ---------------------------------------------------------------------------
    @classmethod
    def known_arm_means(cls, settings: Mapping[str, Any]):
        return None            # the means move with the history

    def arm_means(self, params):
        return None

    @property
    def spec(self) -> EnvSpec:
        if self.reward == "bernoulli":
            return EnvSpec(num_arms=self.K, reward_range=(0.0, 1.0), bernoulli_rewards=True)
        return EnvSpec(num_arms=self.K, reward_range=None, bernoulli_rewards=False)

    @classmethod
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        return resolve_generator(values)

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        check_mean_settings(values, where, 0.0)
        rates = values.get("rates")
        if rates is not None and len(rates) != values["K"]:
            raise ConfigError(f"{where}.rates has {len(rates)} values but K = {values['K']}: "
                              f"give one rate per arm")
        if values["rate_low"] > values["rate_high"]:
            raise ConfigError(f"{where}.rate_low = {values['rate_low']} is above rate_high = "
                              f"{values['rate_high']}")

    # -- instances ------------------------------------------------------------------------------
    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> HistoryParams:
        if self.generator == "fixed":
            base = jnp.asarray(settings["means"], jnp.float32)
        else:
            base = draw_means(key, self.generator, self.K, settings)
        if "rates" in settings:
            rates = jnp.asarray(settings["rates"], jnp.float32)
        else:
            u = jax.random.uniform(jax.random.fold_in(key, 1), (self.K,))
            low = jnp.asarray(settings["rate_low"], jnp.float32)
            rates = low + (jnp.asarray(settings["rate_high"], jnp.float32) - low) * u
        knobs = {name: jnp.asarray(settings[name]) for name in self.knob_names}
        return HistoryParams(base=base, rates=rates.astype(jnp.float32),
                             sigma=jnp.asarray(settings.get("sigma", 1.0), jnp.float32),
                             knobs=knobs)

    # -- the history counter ---------------------------------------------------------------------
    @abc.abstractmethod
    def initial_history(self, params: HistoryParams) -> Array:
        """h_a before round 0 ([K] int32)."""

    @abc.abstractmethod
    def advance(self, history: Array, action: Array, params: HistoryParams) -> Array:
        """h_a after ``action`` is played."""

    @abc.abstractmethod
    def means(self, history: Array, params: HistoryParams) -> Array:
        """mu_a(h_a) for every arm ([K], float32)."""

    @abc.abstractmethod
    def fixed_arm_means(self, t: Array, params: HistoryParams) -> Array:
        """m_a(t): arm a's mean in round t when a has been played in every round before."""

    # -- protocol -------------------------------------------------------------------------------
    def reset(self, key: Array, params: HistoryParams) -> HistoryState:
        history = self.initial_history(params)
        return HistoryState(t=jnp.zeros((), jnp.int32), history=history, oracle=history)

    def observe(self, key: Array, state: HistoryState, params) -> Observation:
        return Observation(features=jnp.zeros((self.K, 0), jnp.float32), t=state.t)

    def draw_reward(self, key: Array, mean: Array, params: HistoryParams) -> Array:
        if self.reward == "bernoulli":
            return bernoulli_reward(key, mean)
        return gaussian_reward(key, mean, params.sigma)

    def step(self, key: Array, state: HistoryState, action: Array, params: HistoryParams):
        action = jnp.asarray(action, jnp.int32)
        means = self.means(state.history, params)
        chosen = take_arm(means, action)
        reward = self.draw_reward(key, chosen, params)
        feedback = immediate_feedback(action, jnp.zeros((self.K, 0)), reward, state.t)
        oracle_means = self.means(state.oracle, params)
        oracle_action = first_argmax(oracle_means)
        greedy = take_arm(oracle_means, oracle_action) - chosen
        metrics = {name: fixed - chosen for name, fixed in
                   zip(self.static_arm_names, arm_columns(self.fixed_arm_means(state.t, params)))}
        if self.regret_is_greedy_policy:
            regret = greedy
        else:
            regret = arm_max(means) - chosen
            metrics["greedy_regret"] = greedy
        next_state = HistoryState(t=state.t + 1,
                                  history=self.advance(state.history, action, params),
                                  oracle=self.advance(state.oracle, oracle_action, params))
        return next_state, feedback, StepInfo(regret=regret, metrics=metrics)

    def metric_columns(self, sums: Mapping[str, np.ndarray], t: np.ndarray) -> dict:
        """``regret`` and ``greedy_regret`` cumulative; ``static_regret`` from the arm a* whose
        fixed-arm total is largest at the last recorded round (per run)."""
        columns = {"regret": sums["regret"]}
        if not self.regret_is_greedy_policy:
            columns["greedy_regret"] = sums["greedy_regret"]
        per_arm = np.stack([sums[name] for name in self.static_arm_names])     # [K, R, P]
        best = np.argmax(per_arm[:, :, -1], axis=0)                            # [R]
        columns["static_regret"] = np.take_along_axis(per_arm, best[None, :, None], 0)[0]
        return columns


def _arm_index(history: Array) -> Array:
    return jnp.arange(history.shape[0], dtype=jnp.int32)


@register_env("rotting")
class Rotting(_HistoryBandit):
    """Rested rotting arms, means decay with pulls (Levine et al. 2017; Seznec et al. 2019).

    mu_a(n_a) = mu_a g(n_a), n_a the arm's own pulls. ``regret``: against the greedy oracle
    (optimal here)."""

    settings = mean_settings(0.0, 1.0) + reward_settings() + (
        Setting("decay", "polynomial", "decay law g(n): 'polynomial' (1 + n)^(-rate) or "
                "'exponential' exp(-rate n), n the arm's pulls so far", kind=str, static=True,
                choices=DECAYS),
    ) + _rate_settings(0.0, 0.5, "decay rate")
    metrics = (REGRET, STATIC_REGRET)
    monotone_regret = False
    regret_is_greedy_policy = True

    def initial_history(self, params):
        return jnp.zeros((self.K,), jnp.int32)

    def advance(self, history, action, params):
        return history + (_arm_index(history) == action).astype(jnp.int32)

    def decay_factor(self, pulls: Array, rates: Array) -> Array:
        """g(n) of the decay law ``decay``."""
        n = pulls.astype(jnp.float32)
        if self.decay == "polynomial":
            return jnp.exp(-rates * jnp.log1p(n))
        return jnp.exp(-rates * n)

    def means(self, history, params):
        return params.base * self.decay_factor(history, params.rates)

    def fixed_arm_means(self, t, params):
        return params.base * self.decay_factor(jnp.broadcast_to(t, (self.K,)), params.rates)


@register_env("recovering")
class Recovering(_HistoryBandit):
    """Recovering arms, means grow with rest (Pike-Burke and Grunewalder 2019).

    mu_a(z_a) = mu_a f(z_a), z_a the rounds since the arm's last pull, capped at max_delay.
    ``regret``: instantaneous dynamic regret."""

    settings = mean_settings(0.0, 1.0) + reward_settings() + (
        Setting("recovery", "exponential", "recovery law f(z): 'exponential' 1 - exp(-rate z) "
                "or 'linear' min(1, rate z), z the rounds since the last pull", kind=str,
                static=True, choices=RECOVERIES),
        Setting("max_delay", 30, "z_max: the delay z is capped here (arms never pulled start "
                "at z_max)", kind=int, low=1),
    ) + _rate_settings(0.05, 0.5, "recovery rate")
    metrics = (REGRET, STATIC_REGRET, GREEDY_REGRET)
    knob_names = ("max_delay",)

    def initial_history(self, params):
        return jnp.broadcast_to(params.knobs["max_delay"].astype(jnp.int32), (self.K,))

    def advance(self, history, action, params):
        cap = params.knobs["max_delay"].astype(jnp.int32)
        return jnp.where(_arm_index(history) == action, 1, jnp.minimum(history + 1, cap))

    def recover(self, delay: Array, rates: Array) -> Array:
        z = delay.astype(jnp.float32)
        if self.recovery == "exponential":
            return -jnp.expm1(-rates * z)
        return jnp.minimum(1.0, rates * z)

    def means(self, history, params):
        return params.base * self.recover(history, params.rates)

    def fixed_arm_means(self, t, params):
        delay = jnp.where(t == 0, params.knobs["max_delay"].astype(jnp.int32), 1)
        return params.base * self.recover(jnp.broadcast_to(delay, (self.K,)), params.rates)


@register_env("last_switch")
class LastSwitch(_HistoryBandit):
    """Last-switch-dependent arms: satiation and seasonality (Laforgue et al. 2022).

    Satiation along a streak, seasonality while idle. ``regret``: instantaneous dynamic regret."""

    settings = mean_settings(0.0, 1.0) + reward_settings() + (
        Setting("tau_max", 50, "the state tau is capped at +-tau_max (every arm starts at "
                "-tau_max)", kind=int, low=1),
        Setting("amplitude", 0.5, "A: an idle arm pays mu (1 - A (1 - cos(2 pi |tau| / "
                "period)) / 2) (seasonality; 0: rested after one round)", low=0.0, high=1.0),
        Setting("period", 10.0, "P: the period, in idle rounds, of the seasonal payoff",
                low=0.0, low_open=True),
    ) + _rate_settings(0.05, 0.3, "satiation rate (mu exp(-rate tau) along a streak of tau)")
    metrics = (REGRET, STATIC_REGRET, GREEDY_REGRET)
    knob_names = ("tau_max", "amplitude", "period")

    def initial_history(self, params):
        return jnp.broadcast_to(-params.knobs["tau_max"].astype(jnp.int32), (self.K,))

    def advance(self, history, action, params):
        cap = params.knobs["tau_max"].astype(jnp.int32)
        played = _arm_index(history) == action
        streak = jnp.where(history > 0, jnp.minimum(history + 1, cap), 1)
        idle = jnp.where(history < 0, jnp.maximum(history - 1, -cap), -1)
        return jnp.where(played, streak, idle)

    def payoff(self, tau: Array, params: HistoryParams) -> Array:
        tau = tau.astype(jnp.float32)
        satiated = jnp.exp(-params.rates * jnp.maximum(tau, 0.0))
        phase = 2.0 * math.pi * jnp.abs(tau) / params.knobs["period"]
        seasonal = 1.0 - params.knobs["amplitude"] * 0.5 * (1.0 - jnp.cos(phase))
        return params.base * jnp.where(tau > 0, satiated, seasonal)

    def means(self, history, params):
        return self.payoff(history, params)

    def fixed_arm_means(self, t, params):
        cap = params.knobs["tau_max"].astype(jnp.int32)
        tau = jnp.where(t == 0, -cap, jnp.minimum(t, cap))
        return self.payoff(jnp.broadcast_to(tau, (self.K,)), params)
