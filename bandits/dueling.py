"""Dueling-bandit learners: K-armed, linear contextual, neural, and delay-aware (LDB-DF, NDB-DF).

Every learner plays a pair [first, second] (int32 [2]) and learns from ``Feedback.reward`` = 1.0
when ``first`` won. Masked-out feedback items never change the state.

K-armed (``envs.dueling.Dueling``); W[i, j] = number of duels i won against j, N = W + W^T:
- ``rucb``: Zoghi, Whiteson, Munos and de Rijke (2014), "Relative Upper Confidence Bound for the
  K-Armed Dueling Bandit Problem", Algorithm 1: U = W / N + sqrt(alpha ln t / N) (x / 0 := 1,
  U_ii = 1/2); candidates C = {c : U_cj >= 1/2 for all j} (all arms when empty); the hypothesised
  best arm B (at most one) is kept while it stays in C and set when |C| = 1; c is drawn from C
  with probability 1/2 on B and the rest spread evenly over C \\ B (uniform on C without B);
  d = argmax_j U_jc (ties at random).
- ``double_ts``: Wu and Liu (2016), "Double Thompson Sampling for Dueling Bandits", Algorithm 1:
  U and L as above (L = W / N - sqrt(alpha ln t / N), x / 0 := 0); first candidate: among the
  arms with the largest upper Copeland score sum_j 1(U_ij > 1/2), the one winning most duels under
  theta^(1)_ij ~ Beta(W_ij + 1, W_ji + 1); second: argmax over {i : L_i,first <= 1/2} of
  theta^(2)_i,first ~ Beta(W_i,first + 1, W_first,i + 1), theta^(2)_first,first = 1/2 (Beta
  draws by ``envs.distributions.beta``).
- ``uniform_pair``: two distinct arms uniformly at random (the baseline; also contextual).

Linear contextual (``envs.dueling.ContextualDueling``), all on the logistic MLE of
``bandits/glm.py`` (theta_hat: ``iterations`` warm-started Newton steps on the regularised
logistic loss over z_s = x_first - x_second, y_s = 1 when first won) and the design matrix
V = lambda I + sum_s z_s z_s^T of ``bandits/linalg.py`` (Sherman-Morrison;
w_ij = ||x_i - x_j||_{V^-1}); each Newton step is clipped to ``max_step`` (a trust region):
- ``maxinp``: Saha (2021), "Optimal Algorithms for Stochastic Contextual Preference Bandits",
  Algorithm 1 (MaxInP): the arms not yet ruled out, C = {i : theta^T (x_i - x_j) + alpha w_ij >= 0
  for all j}, and the pair of C x C with the largest w_ij ("maximum informative pair").
- ``colstim``: Bengs, Saha and Hullermeier (2022), "Stochastic Contextual Dueling Bandits under
  Linear Stochastic Transitivity Models", Algorithm 1 (CoLSTIM): first arm argmax_i theta^T x_i +
  eps_i ||x_i||_{V^-1} with eps_i ~ Gumbel clipped to [-threshold, threshold] (the logistic link's
  perturbation); second arm argmax_j theta^T (x_j - x_first) + alpha w_j,first. Defaults
  threshold = alpha = sqrt(d ln T).
- ``linear_dueling_ucb`` / ``linear_dueling_ts``: the linear case of Verma, Dai, Lin, Jaillet and
  Low (2024), "Neural Dueling Bandits" (their NDB-UCB / NDB-TS with f(x) = theta^T x, g(x) = x):
  first arm greedy, argmax_i theta^T x_i; second arm argmax_j theta^T x_j + alpha w_j,first (UCB)
  or argmax_j of r_j ~ N(theta^T (x_j - x_first), alpha^2 w_j,first^2) (TS).

Neural (Verma et al. 2024, Algorithm 1 NDB-UCB and NDB-TS): the same two rules with f a flax MLP
trained on the logistic preference loss sum_s softplus(f(x_s1) - f(x_s2)) - y_s (f(x_s1) - f(x_s2))
(with the ``bandits/neural.py`` regulariser m lambda ||theta - theta_0||^2 / 2), and
the gradient-based width sigma_j = sqrt(lambda (g_j - g_first)^T Z^{-1} (g_j - g_first)),
Z = lambda I + sum_s (g_s1 - g_s2)(g_s1 - g_s2)^T kept diagonal, g = grad f / sqrt(m) (the shared
pieces of ``bandits/neural.py``): ``neural_dueling_ucb``, ``neural_dueling_ts``.

Delayed feedback: ``ldb_df`` (linear) and ``ndb_df`` (neural) follow "Contextual Dueling Bandits
with Stochastic Delayed Feedback" (LDB-DF / NDB-DF). Only that paper's abstract is public, so
the formulation below is OURS (the abstract states an inverse-probability-weighted loss and
O(d sqrt T) regret for the linear case; the details are our reading). At the end of round t the
comparison made in round s, if it has arrived, enters the logistic loss with weight

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
Arm selection (static ``selection``): the ``linear_dueling_ucb`` (default) or ``_ts`` rule above,
resp. the neural ones; with ``ipw = "none"`` and no delay LDB-DF is exactly
``linear_dueling_ucb``.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import struct

from bandits import glm, linalg, neural
from bandits.core import Learner, random_argmax, register_learner, rounds_played, tree_where
from bandits.core import sample_from_probabilities
from bandits.theory import Theory
from envs import delay_laws as delay_lib
from envs import distributions
from envs.core import Array, Feedback, Observation, Setting

IPW_CHOICES = ("known", "estimated", "none")
SELECTIONS = ("ucb", "ts")


# ---------------------------------------------------------------------------------------------
# Shared: pair actions and win counts.
# ---------------------------------------------------------------------------------------------
def make_pair(first: Array, second: Array) -> Array:
    return jnp.stack([first, second]).astype(jnp.int32)


def random_distinct_pair(key: Array, num_arms: int) -> Array:
    """A uniformly random ordered pair of distinct arms."""
    first_key, second_key = jax.random.split(key)
    first = jax.random.randint(first_key, (), 0, num_arms)
    offset = jax.random.randint(second_key, (), 1, num_arms)
    return make_pair(first, (first + offset) % num_arms)


def add_duels(wins: Array, feedback: Feedback) -> Array:
    """W[i, j] += 1 for every valid item in which i beat j (one-hot outer products)."""
    num_arms = wins.shape[0]
    first = jax.nn.one_hot(feedback.action[:, 0], num_arms)
    second = jax.nn.one_hot(feedback.action[:, 1], num_arms)
    won = jnp.where(feedback.mask, feedback.reward, 0.0)
    lost = jnp.where(feedback.mask, 1.0 - feedback.reward, 0.0)
    return (wins + jnp.einsum("b,bi,bj->ij", won, first, second)
            + jnp.einsum("b,bi,bj->ij", lost, second, first))


def preference_bounds(wins: Array, t: Array, alpha: Array) -> tuple[Array, Array]:
    """Upper and lower confidence bounds on P(i beats j) (Zoghi et al. 2014, Algorithm 1, line 3).

    U = W / N + sqrt(alpha ln t / N) with x / 0 := 1 and L = W / N - ... with x / 0 := 0;
    the diagonal is 1/2 in both.
    """
    n = wins + wins.T
    seen = n > 0
    safe = jnp.where(seen, n, 1.0)
    mean = wins / safe
    radius = jnp.sqrt(alpha * jnp.log(t) / safe)
    diagonal = jnp.eye(wins.shape[0], dtype=bool)
    upper = jnp.where(diagonal, 0.5, jnp.where(seen, mean + radius, 1.0))
    lower = jnp.where(diagonal, 0.5, jnp.where(seen, mean - radius, 0.0))
    return upper, lower


class _PairLearner(Learner):
    action_arity = 2


@register_learner("uniform_pair")
class UniformPair(_PairLearner):
    """Two distinct arms uniformly at random each round (keeps the win counts W, unused)."""

    def init(self, key, hparams) -> Array:
        return jnp.zeros((self.num_arms, self.num_arms), jnp.float32)

    def act(self, key, wins, obs, hparams):
        return random_distinct_pair(key, self.num_arms)

    def update(self, wins, obs, action, feedback, hparams):
        return add_duels(wins, feedback)


ALPHA_RUCB = Setting("alpha", 0.51, "exploration alpha in sqrt(alpha ln t / N) (> 1/2 in the "
                     "theorems)", low=0.0, low_open=True)


@struct.dataclass
class RUCBState:
    wins: Array   # [K, K]
    best: Array   # [K] bool: the hypothesised best arm B (at most one True)


@register_learner("rucb")
class RUCB(_PairLearner):
    """Relative Upper Confidence Bound (Zoghi et al. 2014, Algorithm 1)."""

    settings = (ALPHA_RUCB,)

    def init(self, key, hparams) -> RUCBState:
        k = self.num_arms
        return RUCBState(wins=jnp.zeros((k, k), jnp.float32), best=jnp.zeros((k,), bool))

    def _round_sets(self, state: RUCBState, obs: Observation, hparams):
        """(U, C, B) of this round; C is all arms when no arm is a candidate."""
        upper, _ = preference_bounds(state.wins, rounds_played(obs), hparams["alpha"])
        candidates = jnp.all(upper >= 0.5, axis=1)
        candidates = jnp.where(jnp.any(candidates), candidates, True)
        single = jnp.sum(candidates) == 1
        best = jnp.where(single, candidates, state.best & candidates)
        return upper, candidates, best

    def act(self, key, state: RUCBState, obs, hparams):
        first_key, second_key = jax.random.split(key)
        upper, candidates, best = self._round_sets(state, obs, hparams)
        others = candidates & ~best
        n_others = jnp.maximum(jnp.sum(others), 1)
        has_best, has_others = jnp.any(best), jnp.any(others)
        p_best = jnp.where(has_others, 0.5, 1.0)
        probabilities = jnp.where(
            has_best,
            jnp.where(best, p_best, 0.0) + jnp.where(others, (1.0 - p_best) / n_others, 0.0),
            candidates / jnp.sum(candidates))
        first = sample_from_probabilities(first_key, probabilities)
        second = random_argmax(second_key, upper[:, first])
        return make_pair(first, second)

    def update(self, state: RUCBState, obs, action, feedback, hparams) -> RUCBState:
        _, _, best = self._round_sets(state, obs, hparams)
        wins = add_duels(state.wins, feedback)
        # B is a property of the round played; keep the old B when nothing arrived and
        # nothing changed, so an all-masked batch leaves the state bit for bit unchanged.
        arrived = jnp.any(feedback.mask)
        return RUCBState(wins=wins, best=jnp.where(arrived, best, state.best))


@register_learner("double_ts")
class DoubleTS(_PairLearner):
    """Double Thompson Sampling (Wu and Liu 2016, Algorithm 1)."""

    settings = (ALPHA_RUCB,)

    def init(self, key, hparams) -> Array:
        return jnp.zeros((self.num_arms, self.num_arms), jnp.float32)

    def act(self, key, wins: Array, obs, hparams):
        k = self.num_arms
        theta1_key, theta2_key, tie1_key, tie2_key = jax.random.split(key, 4)
        upper, lower = preference_bounds(wins, rounds_played(obs), hparams["alpha"])
        copeland = jnp.sum(upper > 0.5, axis=1)
        contenders = copeland == jnp.max(copeland)
        # theta^(1): one Beta draw per unordered pair, theta_ji = 1 - theta_ij.
        draws = distributions.beta(theta1_key, wins + 1.0, wins.T + 1.0)
        upper_tri = jnp.triu(jnp.ones((k, k), bool), 1)
        theta1 = jnp.where(upper_tri, draws, jnp.where(upper_tri.T, 1.0 - draws.T, 0.5))
        score = jnp.sum(theta1 > 0.5, axis=1).astype(jnp.float32)
        first = random_argmax(tie1_key, jnp.where(contenders, score, -jnp.inf))
        theta2 = distributions.beta(theta2_key, wins[:, first] + 1.0, wins[first, :] + 1.0)
        theta2 = jnp.where(jnp.arange(k) == first, 0.5, theta2)
        eligible = lower[:, first] <= 0.5
        second = random_argmax(tie2_key, jnp.where(eligible, theta2, -jnp.inf))
        return make_pair(first, second)

    def update(self, wins, obs, action, feedback, hparams):
        return add_duels(wins, feedback)


# ---------------------------------------------------------------------------------------------
# Delay-aware weighting (LDB-DF / NDB-DF).
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class DelayEstimate:
    """Kaplan-Meier statistics of the delay over the elapsed values k = 0..M-1.

    pending: [M] bool, slot s % M: the comparison of round s (last - M < s <= last) has not
             arrived.
    at_risk: [M] number of (comparison, round) pairs in which a comparison was still pending at
             elapsed k (so its delay is >= k).
    events:  [M] comparisons that arrived at elapsed k.
    last:    [] int32 the round of the last update (-1 before any).

    Updated only in rounds in which feedback arrives (so masked-out feedback leaves it bit for
    bit unchanged); the rounds in between are accounted for at the next arrival: every round
    since ``last`` was played (one comparison a round) and every comparison pending then was at
    risk at each elapsed value it went through. Comparisons more than M - 1 rounds old are no
    longer tracked.
    """

    pending: Array
    at_risk: Array
    events: Array
    last: Array

    @classmethod
    def create(cls, bins: int) -> "DelayEstimate":
        z = jnp.zeros((bins,), jnp.float32)
        return cls(pending=jnp.zeros((bins,), bool), at_risk=z, events=z,
                   last=jnp.full((), -1, jnp.int32))

    def update(self, t: Array, feedback: Feedback) -> "DelayEstimate":
        """The state at the end of round t, when the valid items of ``feedback`` arrived."""
        bins = self.pending.shape[0]
        t = jnp.asarray(t, jnp.int32)
        span = jnp.minimum(t - self.last, bins)             # rounds since the last update
        elapsed_of_slot = (t - jnp.arange(bins)) % bins
        pending = self.pending | (elapsed_of_slot < span)   # rounds last+1..t were played
        by_elapsed = pending[(t - jnp.arange(bins)) % bins].astype(jnp.float32)   # [k]
        # A comparison at elapsed e now was at risk at e - span + 1 .. e: window sums.
        cumulative = jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.cumsum(by_elapsed)])
        k = jnp.arange(bins)
        top = jnp.minimum(k + span - 1, bins - 1)
        at_risk = self.at_risk + cumulative[top + 1] - cumulative[k]
        elapsed = t - feedback.round
        tracked = feedback.mask & (elapsed >= 0) & (elapsed < bins)
        hits = jax.nn.one_hot(jnp.where(tracked, elapsed, 0), bins) * tracked[:, None]
        arrived = jnp.any((((feedback.round % bins)[:, None] == jnp.arange(bins)[None, :])
                           & tracked[:, None]), axis=0)
        new = DelayEstimate(pending=pending & ~arrived, at_risk=at_risk,
                            events=self.events + jnp.sum(hits, axis=0), last=t)
        return tree_where(jnp.any(feedback.mask), new, self)

    def cdf(self) -> Array:
        """P(D <= k) for k = 0..M-1: 1 - prod_{j <= k} (1 - events_j / at_risk_j)."""
        hazard = self.events / jnp.maximum(self.at_risk, 1.0)
        return 1.0 - jnp.cumprod(1.0 - jnp.clip(hazard, 0.0, 1.0))

    def arrival_probability(self, elapsed: Array) -> Array:
        """The estimated P(D <= elapsed), the last bin's for elapsed >= M."""
        bins = self.pending.shape[0]
        return self.cdf()[jnp.clip(elapsed, 0, bins - 1)]


def _delay_law_settings() -> tuple[Setting, ...]:
    """``envs.delay.delay_settings()`` renamed delay_*, every one defaulting to the env's."""
    out = []
    for s in delay_lib.delay_settings():
        doc = ("ipw = 'known': the delay law the learner is told -- " + s.doc
               + " (default: the environment's [env.delay] value)")
        out.append(dataclasses.replace(s, name="delay_" + s.name, default=None, optional=True,
                                       doc=doc))
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
            optional=True),
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
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        values = dict(super().resolve(values, context))
        if values.get("delay_bins") is None:
            values["delay_bins"] = int(min(context["horizon"], 1024))
        if values.get("delay_dist") is None:
            env = context.get("env", {})
            # No delay wrapper: the learner is told there is no delay (fixed, d = 0).
            values["delay_dist"] = env.get("delay.dist", "fixed")
        return values

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


# ---------------------------------------------------------------------------------------------
# Linear contextual dueling learners.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class LinearDuelingState:
    history: glm.History       # (x_first - x_second, first won, round) of arrived comparisons
    theta: Array               # [d] the MLE (warm start of the next fit)
    design: linalg.RidgeState  # V = lambda I + sum z z^T over arrived comparisons (b unused)
    delays: DelayEstimate      # Kaplan-Meier statistics (ipw = 'estimated'; else 1 bin)


REGULARISER = Setting("regulariser", 1.0, "ridge lambda of the MLE and of V = lambda I + sum z "
                      "z^T", low=0.0, low_open=True)
ALPHA = Setting("alpha", 1.0, "confidence width multiplier", low=0.0)
GLM_SETTINGS = (
    REGULARISER,
    Setting("iterations", 2, "warm-started Newton steps of the MLE per refit", kind=int,
            static=True, low=1),
    Setting("max_step", 1.0, "trust region of the MLE: each Newton step's norm is clipped here "
            "(plain Newton diverges from a far warm start when large IPW weights make the data "
            "nearly separable)", low=0.0, low_open=True),
    Setting("refit_every", 1, "refit the MLE every this many rounds (static: a real branch on "
            "the round index)", kind=int, static=True, low=1),
    Setting("capacity", None, "history buffer size (default: the horizon; the oldest items are "
            "overwritten when it is full)", kind=int, static=True, low=1, optional=True),
)


class _LinearDueling(_PairLearner):
    """The logistic MLE over pair differences, V, and a pair-selection rule (``select``)."""

    needs_features = True
    settings = (ALPHA,) + GLM_SETTINGS
    iterations: int
    capacity: int | None

    @classmethod
    def resolve(cls, values, context):
        if values.get("capacity") is None:
            values = dict(values, capacity=int(context["horizon"]))
        return values

    def init(self, key, hparams) -> LinearDuelingState:
        d = self.spec.feature_dim
        capacity = self.capacity if self.capacity is not None else self.horizon
        return LinearDuelingState(history=glm.History.create(capacity, d),
                                  theta=jnp.zeros((d,), jnp.float32),
                                  design=linalg.RidgeState.create(d, hparams["regulariser"]),
                                  delays=self.init_delays())

    def init_delays(self) -> DelayEstimate:
        return DelayEstimate.create(1)

    def update_delays(self, delays, obs, feedback):
        return delays

    def weights(self, state: LinearDuelingState, t: Array, hparams) -> Array:
        """Per-slot weights of the MLE at round t (1 for every arrived comparison)."""
        return state.history.valid.astype(jnp.float32)

    def update(self, state: LinearDuelingState, obs, action, feedback: Feedback,
               hparams) -> LinearDuelingState:
        old = state
        differences = feedback.features[:, 0, :] - feedback.features[:, 1, :]
        history = state.history.append(differences, feedback.reward, feedback.round,
                                       feedback.mask, obs.t)
        design = linalg.add_batch(state.design, differences, jnp.zeros_like(feedback.reward),
                                  feedback.mask)
        state = LinearDuelingState(history=history, theta=state.theta, design=design,
                                   delays=self.update_delays(state.delays, obs, feedback))

        def refit(theta):
            return glm.fit_history(theta, history, self.weights(state, obs.t, hparams),
                                   hparams["regulariser"], self.iterations,
                                   hparams["max_step"])

        due = (jnp.asarray(obs.t, jnp.int32) + 1) % self.refit_every == 0
        theta = jax.lax.cond(due, refit, lambda theta: theta, state.theta)
        # Only when something arrived: masked-out feedback leaves the state bit for bit
        # unchanged (time-dependent weights are brought up to date at the next arrival).
        return tree_where(jnp.any(feedback.mask), state.replace(theta=theta), old)

    def act(self, key, state: LinearDuelingState, obs, hparams):
        return self.select(key, state.theta, state.design.inverse, obs.features, hparams)

    @abc.abstractmethod
    def select(self, key, theta, inverse, features, hparams) -> Array:
        """Defined by each subclass."""


def greedy_then_optimistic(key: Array, theta: Array, inverse: Array, features: Array,
                           alpha: Array, sampled: bool) -> Array:
    """Verma et al. (2024) rule, linear case: first = argmax theta^T x; second = argmax of
    theta^T x_j + alpha w_j,first (UCB) or of a draw N(theta^T (x_j - x_first), alpha^2 w^2)."""
    first_key, noise_key, second_key = jax.random.split(key, 3)
    scores = features @ theta
    first = random_argmax(first_key, scores)
    widths = linalg.confidence_widths(inverse, features - features[first])
    bonus = alpha * widths
    if sampled:
        bonus = bonus * jax.random.normal(noise_key, scores.shape)
    second = random_argmax(second_key, scores + bonus)
    return make_pair(first, second)


def pair_widths(inverse: Array, features: Array) -> Array:
    """w_ij = ||x_i - x_j||_{V^-1} for all pairs ([K, K]) from G = X V^-1 X^T."""
    gram = features @ inverse @ features.T
    gram = 0.5 * (gram + gram.T)
    diagonal = jnp.diagonal(gram)
    return jnp.sqrt(jnp.maximum(diagonal[:, None] + diagonal[None, :] - 2.0 * gram, 0.0))


@register_learner("maxinp")
class MaxInP(_LinearDueling):
    """Maximum Informative Pair (Saha 2021, Algorithm 1)."""
    theory = Theory("sqrt")

    def select(self, key, theta, inverse, features, hparams):
        k = self.num_arms
        scores = features @ theta
        widths = pair_widths(inverse, features)
        margins = scores[:, None] - scores[None, :] + hparams["alpha"] * widths
        candidates = jnp.all(margins >= 0.0, axis=1)    # never empty: the argmax is in it
        informative = jnp.where(candidates[:, None] & candidates[None, :], widths, -jnp.inf)
        flat = random_argmax(key, informative.reshape(-1))
        return make_pair(flat // k, flat % k)


@register_learner("colstim")
class CoLSTIM(_LinearDueling):
    """CoLSTIM (Bengs, Saha and Hullermeier 2022, Algorithm 1)."""
    theory = Theory("sqrt")

    settings = (
        Setting("alpha", None, "width multiplier c1 of the second arm (default sqrt(d ln T))",
                low=0.0, optional=True),
        Setting("threshold", None, "clipping threshold of the Gumbel perturbation (default "
                "sqrt(d ln T))", low=0.0, optional=True),
    ) + GLM_SETTINGS

    @classmethod
    def resolve(cls, values, context):
        values = dict(super().resolve(values, context))
        default = math.sqrt(context["feature_dim"] * math.log(max(context["horizon"], 2)))
        for name in ("alpha", "threshold"):
            if values.get(name) is None:
                values[name] = default
        return values

    def select(self, key, theta, inverse, features, hparams):
        noise_key, first_key, second_key = jax.random.split(key, 3)
        scores = features @ theta
        threshold = hparams["threshold"]
        noise = jnp.clip(jax.random.gumbel(noise_key, scores.shape), -threshold, threshold)
        first = random_argmax(first_key, scores + noise * linalg.confidence_widths(
            inverse, features))
        widths = linalg.confidence_widths(inverse, features - features[first])
        second = random_argmax(second_key, scores + hparams["alpha"] * widths)
        return make_pair(first, second)


@register_learner("linear_dueling_ucb")
class LinearDuelingUCB(_LinearDueling):
    """Greedy first arm, optimistic second arm (Verma et al. 2024, NDB-UCB, linear case)."""
    theory = Theory("sqrt")

    def select(self, key, theta, inverse, features, hparams):
        return greedy_then_optimistic(key, theta, inverse, features, hparams["alpha"], False)


@register_learner("linear_dueling_ts")
class LinearDuelingTS(_LinearDueling):
    """Greedy first arm, sampled second arm (Verma et al. 2024, NDB-TS, linear case)."""
    theory = Theory("sqrt")

    def select(self, key, theta, inverse, features, hparams):
        return greedy_then_optimistic(key, theta, inverse, features, hparams["alpha"], True)


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
