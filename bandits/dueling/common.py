"""What the dueling learners share: pair actions, win counts, the preference bounds of
Zoghi, Whiteson, Munos and de Rijke (2014), "Relative Upper Confidence Bound for the K-Armed
Dueling Bandit Problem" (Algorithm 1, line 3), and the Kaplan-Meier delay estimate held in the
state of the contextual learners (used by ``ipw = "estimated"``, ``bandits/dueling/delayed.py``).

Every learner plays a pair [first, second] (int32 [2]) and learns from ``Feedback.reward`` = 1.0
when ``first`` won. Masked-out feedback items never change the state.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from bandits.core import Learner, tree_where
from envs.core import Array, Feedback

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


# ---------------------------------------------------------------------------------------------
# Kaplan-Meier delay estimate (in every contextual state; filled only by ipw = "estimated").
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
