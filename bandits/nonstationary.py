"""Forgetting learners for K-armed bandits whose means change with time (envs/changing.py).

Each learner names its paper, the equation it implements and where its defaults come from. T is
the horizon, K the number of arms, Upsilon_T (``changes``) the number of breakpoints (rounds
where some mean changes); by default ``changes`` is what the environment says (``piecewise``
with ``change_points``: their number; with a hazard rate h: its expectation h (T - 1), from the
first setting of a sweep), else 1 (see ``default_changes``).

- ``discounted_ucb``: D-UCB, Garivier and Moulines (2011), "On upper-confidence bound policies
  for switching bandit problems" (ALT), sec. 3: discounted counts and sums
  N_t(gamma, i) = gamma N_{t-1}(gamma, i) + 1{I_t = i}, index
  mean_t(gamma, i) + 2 B sqrt(xi ln n_t(gamma) / N_t(gamma, i)), n_t(gamma) = sum_{s <= t}
  gamma^{t - s} (= sum_i N_t(gamma, i) when no feedback is missing), with t the rounds including
  this one (the suite's convention, ``rounds_played``; with gamma = 1 the index is UCB1's with
  c = 4 B^2 xi). Default gamma = 1 - sqrt(Upsilon_T / T) / (4 B) (their Theorem 1 choice),
  xi = 0.6 (their sec. 5 experiments; the theorem needs xi > 1/2), B = 1.
- ``sliding_window_ucb``: SW-UCB, Garivier and Moulines (2011), sec. 4: statistics of the last
  tau rounds (``bandits.core.WindowStats``, a ring buffer of static ``capacity``), index
  mean_t(tau, i) + B sqrt(xi ln min(t, tau) / N_t(tau, i)). Default
  tau = ceil(2 B sqrt(T ln T / Upsilon_T)) (their Theorem 2 choice), xi = 0.6, B = 1; with
  tau >= T the index is UCB1's with c = B^2 xi.
- ``discounted_thompson``: dTS, Raj and Kalyani (2017), "Taming non-stationary bandits: a
  Bayesian approach" (arXiv:1707.09727), Algorithm 2: S_i <- gamma S_i + 1{I_t = i} r_t,
  F_i <- gamma F_i + 1{I_t = i} (1 - r_t), theta_i ~ Beta(S_i + alpha_0, F_i + beta_0). The
  paper states no regret bound to tune gamma from; the default borrows D-UCB's,
  gamma = 1 - sqrt(Upsilon_T / T) / 4. Fractional rewards in [0, 1] update S and F directly.
- ``exp3s``: EXP3.S, Auer, Cesa-Bianchi, Freund and Schapire (2002), "The nonstochastic
  multiarmed bandit problem" (SIAM J. Comput.), fig. 8: EXP3's probabilities and gains, then
  w_i(t + 1) = w_i(t) exp(gamma x_hat_i / K) + (e alpha / K) sum_j w_j(t) (kept as log-weights).
  Default alpha = 1 / T and gamma = min(1, sqrt(K (S ln(K T) + e) / ((e - 1) T))) with S the
  hardness (number of switches) of the comparison sequence, S = Upsilon_T (their Corollary 8.3).
- ``rexp3``: Rexp3, Besbes, Gur and Zeevi (2014), "Stochastic multi-armed-bandit problem with
  non-stationary rewards" (NeurIPS), Algorithm 1: EXP3 restarted every Delta rounds, with
  gamma = min(1, sqrt(K ln K / ((e - 1) Delta))). Default Delta =
  ceil((K ln K)^(1/3) (T / V_T)^(2/3)) (their Theorem 2), V_T the variation budget
  sum_t max_i |mu_i(t + 1) - mu_i(t)|; default V_T = Upsilon_T (each breakpoint moves a mean in
  [0, 1] by at most 1).

Discounting happens once per round (each ``update``), then the valid feedback items are added:
with delayed feedback an item weighs 1 when it arrives. Masked items change nothing.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import struct

from bandits.core import (DiscountedStats, WindowStats, register_learner, rounds_played,
                          tree_where, untried_first)
from bandits.mab import EXP3, BetaThompson, IndexPolicy, WeightsState
from bandits.theory import Theory
from envs.core import Array, ConfigError, Setting


# ---------------------------------------------------------------------------------------------
# Defaults from the theorems.
# ---------------------------------------------------------------------------------------------
def default_changes(values: Mapping[str, Any], context: Mapping[str, Any]) -> float:
    """Upsilon_T as the environment states it: the number of given change points, the expected
    number h (T - 1) of a hazard rate h (the first value of a sweep), else 1."""
    env = context.get("env", {})
    if env.get("change_points") is not None:
        return float(max(len(env["change_points"]), 1))
    if env.get("hazard") is not None:
        return max(env["hazard"] * (context["horizon"] - 1), 1.0)
    return 1.0


def changes_setting() -> Setting:
    return Setting("changes", None, "number of breakpoints Upsilon_T the defaults are tuned for "
                   "(default: the environment's, len(change_points) or hazard (T - 1), else 1)",
                   low=1.0, optional=True, default_from=default_changes)


def discount_default(values: Mapping[str, Any], context: Mapping[str, Any]) -> float:
    """gamma = 1 - sqrt(Upsilon_T / T) / (4 B) (Garivier and Moulines 2011, Theorem 1)."""
    bound = values.get("bound", 1.0)
    return max(1e-6, 1.0 - math.sqrt(values["changes"] / context["horizon"]) / (4.0 * bound))


def window_default(values: Mapping[str, Any], context: Mapping[str, Any]) -> int:
    """tau = ceil(2 B sqrt(T ln T / Upsilon_T)) (Garivier and Moulines 2011, Theorem 2)."""
    horizon = context["horizon"]
    return max(1, math.ceil(2.0 * values["bound"] * math.sqrt(
        horizon * math.log(max(horizon, 2)) / values["changes"])))


def gap_free_gamma(num_arms: int, rounds: float) -> float:
    """min(1, sqrt(K ln K / ((e - 1) n))): EXP3's gamma for n rounds (Auer et al. 2002,
    Corollary 3.2), Rexp3's within a batch of n rounds."""
    return min(1.0, math.sqrt(num_arms * math.log(num_arms) / ((math.e - 1.0) * rounds)))


# ---------------------------------------------------------------------------------------------
# Discounted and sliding-window UCB.
# ---------------------------------------------------------------------------------------------
UCB_SETTINGS = (
    changes_setting(),
    Setting("bound", 1.0, "B, the bound on the rewards in the padding function", low=0.0,
            low_open=True),
    Setting("xi", 0.6, "xi in the padding function (> 1/2 in the theorems)", low=0.0,
            low_open=True),
)


class _Discounted:
    """Mixin for index policies on discounted statistics (``bandits.core.DiscountedStats``,
    discount ``hparams['gamma']``): the index reads them discounted to the previous round."""

    def init(self, key, hparams) -> DiscountedStats:
        return DiscountedStats.zeros(self.num_arms, by_arm=self.stats_by_arm)

    def act(self, key, state: DiscountedStats, obs, hparams):
        return super().act(key, state.before(obs.t, hparams["gamma"]), obs, hparams)

    def update(self, state: DiscountedStats, obs, action, feedback, hparams) -> DiscountedStats:
        return state.add(feedback, obs.t, hparams["gamma"])


@register_learner("discounted_ucb")
class DiscountedUCB(_Discounted, IndexPolicy):
    """Discounted UCB, D-UCB (Garivier and Moulines 2011, sec. 3).

    Discounted means plus 2 B sqrt(xi ln n_t(gamma) / N_t(gamma, i)); see the module docstring."""

    theory = Theory("sqrt")       # O(sqrt(Upsilon_T T) ln T) dynamic regret, tuned gamma
    colour = "#AA3377"
    index_per_arm = True
    settings = UCB_SETTINGS + (
        Setting("gamma", None, "discount factor in (0, 1] (default 1 - sqrt(Upsilon_T / T) / "
                "(4 B), Theorem 1)", low=0.0, high=1.0, low_open=True, optional=True,
                default_from=discount_default),
    )

    def index(self, key, stats, obs, hparams):
        gamma, t = hparams["gamma"], rounds_played(obs)
        # n_t(gamma) = sum_{s=1}^{t} gamma^(t - s) = (1 - gamma^t) / (1 - gamma), t when gamma = 1.
        discounted_rounds = jnp.where(
            gamma < 1.0, -jnp.expm1(t * jnp.log(gamma)) / jnp.maximum(1.0 - gamma, 1e-12), t)
        bonus = 2.0 * hparams["bound"] * jnp.sqrt(
            hparams["xi"] * jnp.log(jnp.maximum(discounted_rounds, 1.0))
            / jnp.where(stats.counts > 0, stats.counts, 1.0))
        return untried_first(stats.means + bonus, stats.counts)


@register_learner("sliding_window_ucb")
class SlidingWindowUCB(IndexPolicy):
    """Sliding-window UCB, SW-UCB (Garivier and Moulines 2011, sec. 4).

    Means over the last tau rounds plus B sqrt(xi ln min(t, tau) / N_t(tau, i)); the window in a
    ring buffer of static size."""

    theory = Theory("sqrt")       # O(sqrt(Upsilon_T T ln T)) dynamic regret, tuned tau
    colour = "#4477AA"
    index_per_arm = True
    settings = UCB_SETTINGS + (
        Setting("window", None, "tau, the rounds remembered (default "
                "ceil(2 B sqrt(T ln T / Upsilon_T)), Theorem 2)", kind=int, low=1,
                optional=True, default_from=window_default),
        Setting("capacity", None, "size of the ring buffer, >= window (static: a shape; "
                "default min(window, T), a window beyond T being the whole run; set it to the "
                "largest window of a sweep to keep the sweep in one compile)", kind=int, static=True, low=1, optional=True,
                default_from=lambda values, context: min(values["window"],
                                                         context["horizon"])),
    )

    @classmethod
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        """A window beyond the horizon remembers the whole run: recorded as T (same learner)."""
        return {**values, "window": min(values["window"], context["horizon"])}

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        if values["capacity"] < values["window"]:
            raise ConfigError(f"{where}.capacity = {values['capacity']}: below window = "
                              f"{values['window']}; the ring buffer must hold the window")

    def init(self, key, hparams) -> WindowStats:
        return WindowStats.empty(self.num_arms, self.capacity)

    def act(self, key, state: WindowStats, obs, hparams):
        return super().act(key, state.stats, obs, hparams)

    def update(self, state: WindowStats, obs, action, feedback, hparams) -> WindowStats:
        return state.advance(feedback, obs.t, hparams["window"])

    def index(self, key, stats, obs, hparams):
        remembered = jnp.minimum(rounds_played(obs), hparams["window"].astype(jnp.float32))
        bonus = hparams["bound"] * jnp.sqrt(hparams["xi"] * jnp.log(remembered)
                                            / jnp.maximum(stats.counts, 1.0))
        return untried_first(stats.means + bonus, stats.counts)


# ---------------------------------------------------------------------------------------------
# Discounted Thompson sampling.
# ---------------------------------------------------------------------------------------------
@register_learner("discounted_thompson")
class DiscountedThompson(_Discounted, BetaThompson):
    """Discounted Thompson sampling, dTS (Raj and Kalyani 2017, Algorithm 2).

    Beta-Bernoulli Thompson sampling on discounted successes and failures; ``thompson``'s index
    on discounted statistics."""

    theory = Theory(None)         # the paper proves no regret bound
    colour = "#228833"
    settings = BetaThompson.settings + (
        changes_setting(),
        Setting("gamma", None, "discount factor in (0, 1] (default 1 - sqrt(Upsilon_T / T) / 4, "
                "D-UCB's Theorem 1 choice: the paper gives no bound to tune it)", low=0.0,
                high=1.0, low_open=True, optional=True, default_from=discount_default),
    )



# ---------------------------------------------------------------------------------------------
# Adversarial learners for switching and drifting rewards.
# ---------------------------------------------------------------------------------------------
@register_learner("exp3s")
class EXP3S(EXP3):
    """EXP3.S, EXP3 tracking a switching best arm (Auer et al. 2002, fig. 8).

    EXP3 whose weights share e alpha / K of the total weight with every arm each round."""

    theory = Theory("sqrt")       # O(sqrt(S K T ln(K T))) against S-switch sequences
    colour = "#CCBB44"
    settings = (
        changes_setting(),
        Setting("alpha", None, "weight sharing (default 1 / T, Corollary 8.3)", low=0.0,
                optional=True, default_from=lambda values, context: 1.0 / context["horizon"]),
        Setting("gamma", None, "exploration rate in (0, 1] (default min(1, sqrt(K (S ln(K T) + "
                "e) / ((e - 1) T))), S = changes, Corollary 8.3)", low=0.0, high=1.0,
                low_open=True, optional=True, default_from=lambda values, context: min(
                    1.0, math.sqrt(context["num_arms"] * (
                        values["changes"] * math.log(context["num_arms"] * context["horizon"])
                        + math.e) / ((math.e - 1.0) * context["horizon"])))),
    )

    def update_one(self, state, item, hparams):
        gained = super().update_one(state, item, hparams).log_weights
        share = jnp.log(math.e * hparams["alpha"] / self.num_arms) + jax.nn.logsumexp(
            state.log_weights)
        log_weights = jnp.logaddexp(gained, share)
        return WeightsState(log_weights=log_weights - jnp.max(log_weights))


@register_learner("rexp3")
class Rexp3(EXP3):
    """Rexp3, EXP3 restarted in batches (Besbes, Gur and Zeevi 2014, Algorithm 1).

    The weights are reset to uniform at every round that is a multiple of ``batch`` (0-based)."""

    theory = Theory(None)         # O((K ln K)^(1/3) V_T^(1/3) T^(2/3)): no 'sqrt' or 'log' rate
    colour = "#33BBEE"
    settings = (
        changes_setting(),
        Setting("variation", None, "variation budget V_T the batch is tuned for (default "
                "changes: each breakpoint moves a mean in [0, 1] by at most 1)", low=0.0,
                low_open=True, optional=True,
                default_from=lambda values, context: values["changes"]),
        Setting("batch", None, "rounds between restarts Delta (default ceil((K ln K)^(1/3) "
                "(T / V_T)^(2/3)), Theorem 2)", kind=int, low=1, optional=True,
                default_from=lambda values, context: max(1, math.ceil(
                    (context["num_arms"] * math.log(context["num_arms"])) ** (1 / 3)
                    * (context["horizon"] / values["variation"]) ** (2 / 3)))),
        Setting("gamma", None, "EXP3's exploration rate within a batch (default min(1, "
                "sqrt(K ln K / ((e - 1) Delta))))", low=0.0, high=1.0, low_open=True,
                optional=True, default_from=lambda values, context: gap_free_gamma(
                    context["num_arms"], values["batch"])),
    )

    def init(self, key, hparams) -> RestartState:
        return RestartState(log_weights=jnp.zeros((self.num_arms,), jnp.float32),
                            epoch=jnp.int32(0))

    def act(self, key, state: RestartState, obs, hparams):
        return super().act(key, self.weights_in(state, obs.t, hparams), obs, hparams)

    def update(self, state: RestartState, obs, action, feedback, hparams) -> RestartState:
        epoch = jnp.asarray(obs.t, jnp.int32) // hparams["batch"]
        fresh = self.weights_in(state, obs.t, hparams)
        learnt = super().update(fresh, obs, action, feedback, hparams)
        new = RestartState(log_weights=learnt.log_weights, epoch=epoch)
        return tree_where(jnp.any(feedback.mask), new, state)

    @staticmethod
    def weights_in(state: RestartState, t, hparams) -> WeightsState:
        """The weights in round ``t``: uniform (zeros) once a new batch has begun (lazy restart:
        an all-masked round changes nothing)."""
        same = state.epoch == jnp.asarray(t, jnp.int32) // hparams["batch"]
        return WeightsState(log_weights=jnp.where(same, state.log_weights, 0.0))


@struct.dataclass
class RestartState:
    """Rexp3: EXP3's log-weights and the batch (epoch) they belong to."""

    log_weights: Array
    epoch: Array     # int32 floor(round / batch) of the last update with feedback
