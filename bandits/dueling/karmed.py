"""K-armed dueling learners (``envs.dueling.Dueling``); W[i, j] = number of duels i won against
j, N = W + W^T:
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
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from bandits.core import random_argmax, register_learner, rounds_played
from bandits.core import sample_from_probabilities
from bandits.dueling.common import _PairLearner, add_duels, make_pair, preference_bounds
from bandits.dueling.common import random_distinct_pair
from envs import distributions
from envs.core import Array, Observation, Setting


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
