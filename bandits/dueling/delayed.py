"""Delay-aware dueling learners: ``ldb_df`` (linear) and ``ndb_df`` (neural) follow "Contextual
Dueling Bandits with Stochastic Delayed Feedback" (LDB-DF / NDB-DF). Only that paper's abstract
is public, so the formulation below is OURS (the abstract states an inverse-probability-weighted
loss and O(d sqrt T) regret for the linear case; the details are our reading). At the end of
round t the comparison made in round s, if it has arrived, enters the logistic loss with weight

    w_{s,t} = 1 / P(D_s <= min(t - s, W) | y_s)      (``ipw = "known"``)

(D_s its delay, W the censoring window, y_s its outcome when delays depend on the outcome),
so that E[sum_s 1{arrived by t} w_{s,t} loss_s] = sum_{s <= t} loss_s: the weighted loss is an
unbiased estimate of the full-information loss (tested by Monte Carlo in tests/test_dueling.py).
Weights change with t, so they are recomputed every round from the round s stored with each
item of the bounded history (``glm.History``), never stored. Variants (static ``ipw``):
- ``known``: the delay law is known. The learner's ``delay_*`` settings describe it; in a config
  they default to the environment's own ``[env.delay]`` values, filled in run by run (so a sweep
  over the delay mean stays matched), and giving them explicitly models a learner that believes
  another law (misspecification).
- ``estimated``: P(D <= k) is estimated online by the Kaplan-Meier estimator from the learner's
  own record: every round it has played is "at risk" at elapsed k while its feedback is pending,
  and an arrival at elapsed k is an event (pending comparisons are right-censored, so the
  estimate is consistent where the plain histogram of arrived delays is biased towards short
  delays). The window needs no special care: past W nothing arrives, so the hazard is 0 there.
  Tracked for ``delay_bins`` elapsed values; older comparisons use the last bin. The estimate
  pools both outcomes, so with outcome-dependent delays it corrects only the delay, not the
  outcome bias (use ``known`` there; see the README).
- ``none``: every arrived comparison has weight 1 (the delay-ignoring baseline).
``max_weight`` clips the weights (variance against bias; inf: exact IPW). The waiting baseline
is ``ipw = "none"`` with ``wait`` > 0 (a comparison enters the loss only once ``wait`` rounds
have passed since it was made) or ``wait_quantile`` = q > 0 (only once a fraction q of the
feedback would have arrived under the told law, for both outcomes, or the window has closed).
The design matrix V and the neural Z count every arrived comparison, unweighted.
The state changes only in rounds in which feedback arrives (masked-out feedback leaves it bit
for bit unchanged, as the learner contract requires); the time-dependent weights and the
Kaplan-Meier at-risk counts are brought up to date at the next arrival.
What the weighting buys, measured (README): with outcome-independent delays what has arrived is
a random subset given the features, so ignoring delays is already consistent and the weights
only add variance; with outcome-dependent delays (wins slower than losses) the delay-ignoring
learner is biased and LDB-DF (known) is far better.
Arm selection (static ``selection``): the ``linear_dueling_ucb`` (default) or ``_ts`` rule
(``bandits/dueling/linear.py``), resp. the neural ones (``bandits/dueling/neural.py``); with
``ipw = "none"`` and no delay LDB-DF is exactly ``linear_dueling_ucb``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from bandits import glm
from bandits.core import register_learner
from bandits.dueling.common import IPW_CHOICES, SELECTIONS, DelayEstimate
from bandits.dueling.linear import ALPHA, GLM_SETTINGS, LinearDuelingState, _LinearDueling
from bandits.dueling.linear import greedy_then_optimistic
from bandits.dueling.neural import NeuralDuelingState, _NeuralDueling
from bandits.theory import Theory
from envs import delay_laws as delay_lib
from envs.core import Array, Feedback, Observation, Setting


def _environment_delay_dist(values: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """The delay wrapper's ``dist``; without a wrapper the learner is told there is no delay
    (fixed, d = 0)."""
    return context.get("env", {}).get("delay.dist", "fixed")


def _delay_law_settings() -> tuple[Setting, ...]:
    """``envs.delay.delay_settings()`` renamed delay_*, every one defaulting to the env's."""
    out = []
    for s in delay_lib.delay_settings():
        doc = ("ipw = 'known': the delay law the learner is told -- " + s.doc
               + " (default: the environment's [env.delay] value)")
        # The law's family is static, known when the config is settled (the static settings of
        # the environment's wrapper); its numbers may be swept, so they follow run by run
        # (``from_environment``).
        default_from = _environment_delay_dist if s.name == "dist" else None
        out.append(dataclasses.replace(s, name="delay_" + s.name, default=None, optional=True,
                                       doc=doc, default_from=default_from))
    out.append(Setting("delay_window", None, "ipw = 'known': the censoring window the learner "
                       "is told (default: the environment's)", low=0.0, optional=True))
    return tuple(out)


DELAY_LAW_SETTINGS = _delay_law_settings()
DELAY_LAW_NAMES = tuple(s.name[len("delay_"):] for s in DELAY_LAW_SETTINGS)

DELAY_SETTINGS = (
    Setting("ipw", "known", "inverse-probability weighting: 'known' (the delay law), "
            "'estimated' (Kaplan-Meier, online) or 'none' (delay-ignoring baseline)",
            kind=str, static=True, choices=IPW_CHOICES),
    Setting("wait", 0, "use a comparison only once this many rounds have passed since it was "
            "made (> 0 with ipw = 'none': the waiting baseline)", kind=int, low=0),
    Setting("wait_quantile", 0.0, "wait also until this fraction of the feedback has arrived "
            "under the delay law (both outcomes), or the window has closed: the waiting "
            "baseline that follows the delay (0: off)", low=0.0, high=1.0, high_open=True),
    Setting("max_weight", 100.0, "clip the inverse-probability weights here (inf: exact IPW)",
            low=1.0),
    Setting("delay_bins", None, "ipw = 'estimated': elapsed rounds tracked by the delay "
            "estimate (static; default min(horizon, 1024))", kind=int, static=True, low=1,
            optional=True, default_from=lambda values, context: int(min(context["horizon"],
                                                                        1024))),
) + DELAY_LAW_SETTINGS


class DelayAware:
    """Mixin of LDB-DF and NDB-DF: the delay settings, their config link and the weights."""

    ipw: str
    delay_bins: int | None
    delay_dist: str | None

    def __init__(self, spec, horizon, **static):
        super().__init__(spec, horizon, **static)
        if self.delay_dist is None:          # direct use without a config: no delay
            self.delay_dist = "fixed"
        if self.delay_bins is None:
            self.delay_bins = int(min(self.horizon, 1024))

    @classmethod
    def from_environment(cls, values: dict, env_values: Mapping[str, Any]) -> dict:
        """Run by run: every delay_* setting left unset takes the environment's value (used by
        ipw = 'known' and by wait_quantile)."""
        values = dict(values)
        for name in DELAY_LAW_NAMES:
            if name == "dist":
                continue
            if values.get("delay_" + name) is None and env_values.get("delay." + name) is not None:
                values["delay_" + name] = env_values["delay." + name]
        return values

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        law = {name: values.get("delay_" + name) for name in DELAY_LAW_NAMES}
        if law["dist"] == "uniform" and law["lo"] is not None and law["hi"] is not None:
            delay_lib.check_delay_values({k: v for k, v in law.items()}, where + ".delay")

    def delay_params(self, hparams: Mapping[str, Array]) -> delay_lib.DelayParams:
        law = {name: hparams.get("delay_" + name) for name in DELAY_LAW_NAMES if name != "dist"}
        return delay_lib.DelayParams.from_settings(law)

    def init_delays(self) -> DelayEstimate:
        return DelayEstimate.create(self.delay_bins if self.ipw == "estimated" else 1)

    def update_delays(self, delays: DelayEstimate, obs: Observation,
                      feedback: Feedback) -> DelayEstimate:
        if self.ipw != "estimated":
            return delays
        return delays.update(obs.t, feedback)

    def comparison_weights(self, rounds: Array, targets: Array, valid: Array, t: Array,
                           delays: DelayEstimate, hparams) -> Array:
        """w_{s,t} for the items of a history (rounds [N], targets [N], valid [N]) at round t."""
        elapsed = jnp.asarray(t, jnp.int32) - rounds
        if self.ipw == "known":
            probability = delay_lib.arrival_probability(
                self.delay_dist, self.delay_params(hparams), elapsed, targets > 0)
            weights = glm.inverse_probability_weights(probability, valid, hparams["max_weight"])
        elif self.ipw == "estimated":
            probability = delays.arrival_probability(elapsed)
            weights = glm.inverse_probability_weights(probability, valid, hparams["max_weight"])
        else:
            weights = valid.astype(jnp.float32)
        return jnp.where(elapsed >= self.waiting_lag(hparams), weights, 0.0)

    def waiting_lag(self, hparams) -> Array:
        """max(wait, the smallest k with P(D <= min(k, W)) >= wait_quantile for both outcomes,
        or k = W): how long a comparison waits before it is used (bisection, 32 steps)."""
        params = self.delay_params(hparams)
        quantile = hparams["wait_quantile"]

        def reached(k):
            elapsed = jnp.minimum(k, params.window)
            both = jnp.minimum(
                delay_lib.delay_cdf(self.delay_dist, params.positive, elapsed),
                delay_lib.delay_cdf(self.delay_dist, params.negative, elapsed))
            return (both >= quantile) | (k >= params.window)

        def body(_, bounds):
            low, high = bounds                    # reached(high) holds, reached(low - 1) not
            middle = jnp.floor(0.5 * (low + high))
            ok = reached(middle)
            return jnp.where(ok, low, middle + 1.0), jnp.where(ok, middle, high)

        limit = jnp.float32(self.horizon)
        _, lag = jax.lax.fori_loop(0, 32, body, (jnp.float32(0.0), limit))
        return jnp.maximum(hparams["wait"], lag.astype(jnp.int32))


SELECTION = Setting("selection", "ucb", "second-arm rule: 'ucb' (optimistic) or 'ts' (sampled)",
                    kind=str, static=True, choices=SELECTIONS)


@register_learner("ldb_df")
class LDBDF(DelayAware, _LinearDueling):
    """LDB-DF: the linear dueling learner on the inverse-probability-weighted loss (ours)."""
    theory = Theory("sqrt")
    colour = "#44AA99"

    settings = (ALPHA,) + GLM_SETTINGS + (SELECTION,) + DELAY_SETTINGS

    def weights(self, state: LinearDuelingState, t, hparams) -> Array:
        history = state.history
        return self.comparison_weights(history.rounds, history.targets, history.valid, t,
                                       state.delays, hparams)

    def select(self, key, theta, inverse, features, hparams):
        return greedy_then_optimistic(key, theta, inverse, features, hparams["alpha"],
                                      self.selection == "ts")


@register_learner("ndb_df")
class NDBDF(DelayAware, _NeuralDueling):
    """NDB-DF: the neural dueling learner on the inverse-probability-weighted loss (ours)."""
    theory = Theory("sqrt")

    settings = _NeuralDueling.settings + (SELECTION,) + DELAY_SETTINGS

    def uses_sampling(self) -> bool:
        return self.selection == "ts"

    def slot_weights(self, state: NeuralDuelingState, t, hparams) -> Array:
        buffer = state.net.buffer
        return self.comparison_weights(buffer.rounds, buffer.targets, buffer.valid, t,
                                       state.delays, hparams)
