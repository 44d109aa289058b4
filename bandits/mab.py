"""Learners for stochastic and adversarial K-armed bandits.

Each learner names its paper and the equation it implements:
- ``uniform``: a uniformly random arm each round (the baseline every learner must beat).
- ``epsilon_greedy``: Sutton and Barto (2018), sec. 2.2; ``schedule = "decaying"`` uses
  eps_t = min(1, epsilon * K / t), the epsilon_n-greedy of Auer, Cesa-Bianchi and Fischer (2002),
  sec. 3, with c / d^2 folded into ``epsilon``.
- ``etc``: explore-then-commit, Lattimore and Szepesvari (2020), Algorithm 1 (ch. 6): arm
  t mod K in rounds t < m K (0-based), then the empirical best (ties at random), frozen for the
  rest of the run. Under delayed feedback it commits at the first update after which every arm
  has m observations, playing the current empirical best until then. Default
  m = ceil((T / K)^(2/3)), the gap-free choice of their eq. 6.5 up to the log factor.
- ``ucb1``: Auer, Cesa-Bianchi and Fischer (2002), fig. 1: mean + sqrt(c ln t / n) with c = 2.
- ``ucb_v``: Audibert, Munos and Szepesvari (2009), eq. (2): mean + sqrt(2 V zeta ln t / n)
  + 3 b zeta ln t / n, with V the empirical variance and b the reward range.
- ``moss``: Audibert and Bubeck (2009), eq. (4): mean + sqrt(max(ln(T / (K n)), 0) / n).
- ``klucb``: Garivier and Cappe (2011), eq. (3) for Bernoulli rewards: the largest q with
  n kl(mean, q) <= ln t + c ln ln t, found by ``iterations`` bisection steps (jittable, fixed
  cost; 20 steps resolve q to 1e-6).
- ``thompson``: Beta-Bernoulli Thompson sampling, Agrawal and Goyal (2012), Algorithm 1, with a
  Beta(prior_alpha, prior_beta) prior; fractional rewards in [0, 1] update the counts directly.
  Posterior draws by ``envs.distributions.beta`` (Marsaglia and Tsang 2000 gammas, exact).
- ``gaussian_thompson``: Agrawal and Goyal (2013), Algorithm 2: theta_a ~ N(S_a / (n_a + 1),
  sigma^2 / (n_a + 1)), the normals from ``envs.distributions.normal`` (Box-Muller).
- ``exp3``: Auer, Cesa-Bianchi, Freund and Schapire (2002b), fig. 1, with the gamma of their
  Corollary 3.2, min(1, sqrt(K ln K / ((e - 1) T))), when none is given.
- ``exp3_ix``: Neu (2015), "Explore no more", Algorithm 1: implicit exploration, loss estimates
  l / (p + gamma), with eta = sqrt(2 ln K / (K T)) and gamma = eta / 2 (his Theorem 1) by default.
- ``successive_elimination``: Even-Dar, Mannor and Mansour (2006), Algorithm 3: sample the active
  arms in turn, drop an arm whose upper confidence bound falls below another's lower bound, with
  radius sqrt(ln(4 K n^2 / delta) / (2 n)).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from bandits.core import (ArmStats, EpsilonExploration, Learner, argmax_of_index, random_argmax,
                          register_learner, rounds_played, sample_from_probabilities,
                          untried_first)
from bandits.theory import Theory, exp3_upper, ucb1_upper
from envs import distributions, randomness
from envs.core import Array, Feedback, Observation, Setting


class IndexPolicy(Learner):
    """A learner whose state is per-arm statistics and whose action maximises an index.

    Subclasses define ``index(key, stats, obs, hparams) -> [K]``; ties are broken at random.
    ``index_uses_key``: the index is random (Thompson sampling); deterministic indices take no
    key, which saves two threefry hashes per round (the dominant cost of small learners).
    ``index_per_arm``: the index of each arm is computed from that arm's statistics alone, with
    elementwise operations (UCB1, UCB-V, MOSS): the base then computes it arm by arm on the
    statistics stored by arm (``bandits.core.argmax_of_index``), the same numbers on contiguous
    vectors. An index that mixes arms (a sum over arms, a [K]-shaped constant) leaves it False.
    ``stats_by_arm``: False keeps the statistics as [K] arrays (``ArmStats.zeros``), for an
    index that reads all arms at once (Thompson sampling's posterior draws).
    A random index draws from ``randomness.subkey(key, 0)`` through ``envs.distributions``, whose
    samplers read the subkey's own words first (``randomness.words``): it must not be ``key``,
    whose first word breaks the tie. (A ``jax.random.split`` here cost 2.3 ms a round at 10,000
    runs, more than the Beta sampler's fallback: its [runs, 2, 2] output ran as scalar code.)
    """

    index_uses_key = False
    index_per_arm = False
    stats_by_arm = True

    def init(self, key, hparams) -> ArmStats:
        return ArmStats.zeros(self.num_arms, by_arm=self.stats_by_arm)

    def act(self, key, state: ArmStats, obs, hparams):
        # The tie is broken with the key's own words; a random index draws from a subkey.
        index_key = randomness.subkey(key, 0) if self.index_uses_key else None
        if self.index_per_arm:
            return argmax_of_index(key, state,
                                   lambda stats: self.index(index_key, stats, obs, hparams))
        return random_argmax(key, self.index(index_key, state, obs, hparams))

    def update(self, state: ArmStats, obs, action, feedback: Feedback, hparams) -> ArmStats:
        return state.add(feedback)

    def index(self, key: Array, stats: ArmStats, obs: Observation, hparams) -> Array:
        """The per-arm index; the base class plays its argmax."""
        return stats.means


@register_learner("uniform")
class Uniform(IndexPolicy):
    """A uniformly random arm every round: the baseline regret is normalised to.

    The normalisation of Riquelme, Tucker and Snoek (2018) (``analysis/showdown.py``)."""
    theory = Theory("linear")
    colour = "#000000"
    role = "baseline"

    def index(self, key, stats, obs, hparams):
        return jnp.zeros((self.num_arms,))


@register_learner("epsilon_greedy")
class EpsilonGreedy(EpsilonExploration, IndexPolicy):
    """Epsilon-greedy (Sutton and Barto 2018, sec. 2.2; decaying: Auer et al. 2002, sec. 3)."""

    colour = "#DDCC77"
    settings = EpsilonExploration.exploration_settings

    def greedy_action(self, key, state, obs, hparams):
        return argmax_of_index(key, state, lambda stats: untried_first(stats.means, stats.counts))


@struct.dataclass
class CommitState:
    """Explore-then-commit: the statistics, the committed arm (-1 before) and its tie-break key."""

    stats: ArmStats
    committed: Array   # int32 scalar: the arm played for ever once >= 0
    tie_key: Array     # raw PRNG key (the init key): breaks ties among the empirical best at commit


@register_learner("etc")
class ExploreThenCommit(Learner):
    """Explore-then-commit (Lattimore and Szepesvari 2020, Algorithm 1).

    A_t = (t mod K) + 1 for t <= m K (1-based), then argmax_i mu_i(m K) for ever.

    Exploration goes by plays (the round index ``obs.t``), commitment by observations: the arm is
    chosen in the first ``update`` after which every arm has been observed at least m times and is
    never changed afterwards. Without delays that is the update of round m K - 1 (0-based), on
    exactly m rewards per arm, as in the book. With delayed feedback the rounds between m K and
    the commitment play the empirical best of what has arrived (ties at random, not committed);
    feedback that never arrives (censored, dropped) keeps it greedy. Statistics keep counting after
    commitment but the action no longer depends on them.
    """

    settings = (Setting("m", None, "pulls of each arm before committing "
                        "(default ceil((T/K)^(2/3)))", kind=int, low=1, optional=True,
                        default_from=lambda values, context: max(1, math.ceil(
                            (context["horizon"] / context["num_arms"]) ** (2 / 3)))),)

    def init(self, key, hparams) -> CommitState:
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        return CommitState(stats=ArmStats.zeros(self.num_arms), committed=jnp.int32(-1),
                           tie_key=key)

    def act(self, key, state: CommitState, obs, hparams):
        t = jnp.asarray(obs.t, jnp.int32)
        exploring = t < hparams["m"] * self.num_arms
        greedy = random_argmax(key, state.stats.means)
        played = jnp.where(state.committed >= 0, state.committed, greedy)
        return jnp.where(exploring, t % self.num_arms, played).astype(jnp.int32)

    def update(self, state: CommitState, obs, action, feedback: Feedback, hparams) -> CommitState:
        # Masked items leave stats unchanged (ArmStats.add). Commitment happens in the update that
        # completes the m observations of the last arm, so a state with every count >= m is
        # always committed and an all-masked batch cannot trigger it.
        stats = state.stats.add(feedback)
        ready = (state.committed < 0) & jnp.all(stats.counts >= hparams["m"])
        best = random_argmax(state.tie_key, stats.means)
        return CommitState(stats=stats, committed=jnp.where(ready, best, state.committed),
                           tie_key=state.tie_key)


@register_learner("ucb1")
class UCB1(IndexPolicy):
    """UCB1: mean + sqrt(c ln t / n) (Auer, Cesa-Bianchi and Fischer 2002, fig. 1)."""

    theory = Theory("logarithmic", ucb1_upper)
    colour = "#0072B2"
    settings = (Setting("c", 2.0, "exploration constant in mean + sqrt(c ln t / n)", low=0.0),)
    index_per_arm = True

    def index(self, key, stats, obs, hparams):
        n = jnp.maximum(stats.counts, 1.0)
        bonus = jnp.sqrt(hparams["c"] * jnp.log(rounds_played(obs)) / n)
        return untried_first(stats.means + bonus, stats.counts)


@register_learner("ucb_v")
class UCBV(IndexPolicy):
    """UCB-V, the empirical-variance index (Audibert, Munos and Szepesvari 2009, eq. 2)."""

    theory = Theory("logarithmic")
    colour = "#88CCEE"
    index_per_arm = True

    def init(self, key, hparams) -> ArmStats:
        return ArmStats.zeros(self.num_arms, squares=True)

    settings = (
        Setting("zeta", 1.2, "exploration factor zeta (> 1 in the paper's theorem)", low=0.0,
                low_open=True),
        Setting("b", 1.0, "range of the rewards", low=0.0, low_open=True),
    )

    def index(self, key, stats, obs, hparams):
        n = jnp.maximum(stats.counts, 1.0)
        explore = hparams["zeta"] * jnp.log(rounds_played(obs))
        bonus = jnp.sqrt(2.0 * stats.variances * explore / n) + 3.0 * hparams["b"] * explore / n
        return untried_first(stats.means + bonus, stats.counts)


@register_learner("moss")
class MOSS(IndexPolicy):
    """MOSS, the horizon-aware minimax index (Audibert and Bubeck 2009, eq. 4)."""

    theory = Theory("logarithmic")
    colour = "#CC79A7"
    index_per_arm = True

    def index(self, key, stats, obs, hparams):
        n = jnp.maximum(stats.counts, 1.0)
        bonus = jnp.sqrt(jnp.maximum(jnp.log(self.horizon / (self.num_arms * n)), 0.0) / n)
        return untried_first(stats.means + bonus, stats.counts)


def bernoulli_kl(p: Array, q: Array) -> Array:
    """kl(p, q) between Bernoulli distributions, clipped away from 0 and 1."""
    eps = 1e-7
    p = jnp.clip(p, eps, 1 - eps)
    q = jnp.clip(q, eps, 1 - eps)
    return p * jnp.log(p / q) + (1 - p) * jnp.log((1 - p) / (1 - q))


def kl_upper_bound(mean: Array, level: Array, iterations: int) -> Array:
    """max{q in [mean, 1] : kl(mean, q) <= level}, by bisection (elementwise).

    The bracket [low, low + (1 - mean) 2^-k] halves each step, so only ``low`` is carried (one
    output per step: XLA:CPU would otherwise evaluate the test once per carried value), and the
    terms of kl(p, q) that do not depend on q are computed once: a step costs two logarithms.
    """
    eps = 1e-7
    p = jnp.clip(mean, eps, 1 - eps)
    negative_entropy = p * jnp.log(p) + (1 - p) * jnp.log1p(-p)
    width = 1.0 - mean

    def body(step, low):
        mid = low + width * jnp.ldexp(jnp.float32(1.0), -(step + 1))
        q = jnp.clip(mid, eps, 1 - eps)
        kl = negative_entropy - p * jnp.log(q) - (1 - p) * jnp.log1p(-q)
        return jnp.where(kl <= level, mid, low)

    return jax.lax.fori_loop(0, iterations, body, mean)


def kl_index(means: Array, counts: Array, exploration: Array, iterations: int) -> Array:
    """The kl-UCB index of Garivier and Cappe (2011), eq. (3), of every arm: the largest q with
    n kl(mean, q) <= exploration (e.g. ln t + c ln ln t), +inf for an arm never tried. Shared by
    ``klucb`` and the kl-UCB learners restarted by change detection
    (bandits/change_detection.py), whose exploration counts the rounds since a restart."""
    level = exploration / jnp.maximum(counts, 1.0)
    return untried_first(kl_upper_bound(means, level, iterations), counts)


@register_learner("klucb")
class KLUCB(IndexPolicy):
    """KL-UCB for Bernoulli rewards (Garivier and Cappe 2011, eq. 3), by bisection."""

    theory = Theory("logarithmic")
    colour = "#D55E00"
    needs_bounded_rewards = True
    settings = (
        Setting("c", 0.0, "constant c in the exploration level ln t + c ln ln t", low=0.0),
        Setting("iterations", 20, "bisection steps for the KL upper bound", kind=int,
                static=True, low=1),
    )

    def index(self, key, stats, obs, hparams):
        log_t = jnp.log(rounds_played(obs))
        exploration = log_t + hparams["c"] * jnp.log(jnp.maximum(log_t, 1.0))
        return kl_index(stats.means, stats.counts, exploration, self.iterations)


@register_learner("thompson")
class BetaThompson(IndexPolicy):
    """Beta-Bernoulli Thompson sampling (Agrawal and Goyal 2012, Algorithm 1)."""

    theory = Theory("logarithmic")
    colour = "#009E73"
    needs_bounded_rewards = True
    index_uses_key = True
    stats_by_arm = False
    settings = (
        Setting("prior_alpha", 1.0, "Beta prior: pseudo-successes", low=0.0, low_open=True),
        Setting("prior_beta", 1.0, "Beta prior: pseudo-failures", low=0.0, low_open=True),
    )

    def index(self, key, stats, obs, hparams):
        return distributions.beta(key, hparams["prior_alpha"] + stats.sums,
                                  hparams["prior_beta"] + stats.counts - stats.sums)


@register_learner("gaussian_thompson")
class GaussianThompson(IndexPolicy):
    """Gaussian Thompson sampling (Agrawal and Goyal 2013, Algorithm 2)."""

    theory = Theory("logarithmic")
    index_uses_key = True
    stats_by_arm = False
    settings = (Setting("sigma", 1.0, "assumed reward noise standard deviation", low=0.0,
                        low_open=True),)

    def index(self, key, stats, obs, hparams):
        n = stats.counts + 1.0
        noise = distributions.normal(key, (self.num_arms,))
        return stats.sums / n + hparams["sigma"] * noise / jnp.sqrt(n)


@struct.dataclass
class WeightsState:
    log_weights: Array   # [K]


class _Exponential(Learner):
    """Shared by EXP3 and EXP3-IX: sample from a distribution over arms, importance weights."""

    needs_bounded_rewards = True

    def init(self, key, hparams) -> WeightsState:
        return WeightsState(log_weights=jnp.zeros((self.num_arms,), jnp.float32))

    def act(self, key, state, obs, hparams):
        return sample_from_probabilities(key, self.probabilities(state, hparams))

    def probabilities(self, state: WeightsState, hparams) -> Array:
        """The distribution the learner samples its arm from."""
        return jax.nn.softmax(state.log_weights)


@register_learner("exp3")
class EXP3(_Exponential):
    """EXP3 for adversarial bandits (Auer, Cesa-Bianchi, Freund and Schapire 2002, fig. 1)."""

    theory = Theory("sqrt", exp3_upper)
    colour = "#E69F00"
    settings = (Setting("gamma", None, "exploration rate in (0, 1] (default: Corollary 3.2)",
                        low=0.0, high=1.0, low_open=True, optional=True,
                        default_from=lambda values, context: min(1.0, math.sqrt(
                            context["num_arms"] * math.log(context["num_arms"])
                            / ((math.e - 1) * context["horizon"])))),)

    def probabilities(self, state, hparams):
        gamma = hparams["gamma"]
        return (1 - gamma) * jax.nn.softmax(state.log_weights) + gamma / self.num_arms

    def update_one(self, state, item, hparams):
        arm = item.action.reshape(())
        p = self.probabilities(state, hparams)[arm]
        gain = hparams["gamma"] * item.reward / (p * self.num_arms)
        return WeightsState(log_weights=state.log_weights
                            + gain * jax.nn.one_hot(arm, self.num_arms))


@register_learner("exp3_ix")
class EXP3IX(_Exponential):
    """EXP3-IX, implicit exploration (Neu 2015, "Explore no more", Algorithm 1)."""

    theory = Theory("sqrt")
    settings = (
        Setting("eta", None, "learning rate (default sqrt(2 ln K / (K T)))", low=0.0,
                low_open=True, optional=True,
                default_from=lambda values, context: math.sqrt(
                    2 * math.log(context["num_arms"])
                    / (context["num_arms"] * context["horizon"]))),
        Setting("gamma", None, "implicit exploration (default eta / 2)", low=0.0,
                optional=True, default_from=lambda values, context: values["eta"] / 2),
    )

    def update_one(self, state, item, hparams):
        # log_weights = -eta * cumulative estimated loss.
        arm = item.action.reshape(())
        p = self.probabilities(state, hparams)[arm]
        loss = (1.0 - item.reward) / (p + hparams["gamma"])
        return WeightsState(log_weights=state.log_weights
                            - hparams["eta"] * loss * jax.nn.one_hot(arm, self.num_arms))


@struct.dataclass
class EliminationState:
    stats: ArmStats
    active: Array   # [K] bool


@register_learner("successive_elimination")
class SuccessiveElimination(Learner):
    """Successive elimination (Even-Dar, Mannor and Mansour 2006, Algorithm 3)."""

    theory = Theory("logarithmic")
    needs_bounded_rewards = True
    settings = (Setting("delta", 0.05, "failure probability of the confidence bounds",
                        low=0.0, high=1.0, low_open=True, high_open=True),)

    def init(self, key, hparams):
        return EliminationState(stats=ArmStats.zeros(self.num_arms),
                                active=jnp.ones((self.num_arms,), bool))

    def act(self, key, state, obs, hparams):
        return random_argmax(key, jnp.where(state.active, -state.stats.counts, -jnp.inf))

    def update(self, state, obs, action, feedback, hparams):
        stats = state.stats.add(feedback)
        n = jnp.maximum(stats.counts, 1.0)
        radius = jnp.sqrt(jnp.log(4.0 * self.num_arms * n * n / hparams["delta"]) / (2.0 * n))
        radius = jnp.where(stats.counts > 0, radius, jnp.inf)
        best_lower = jnp.max(jnp.where(state.active, stats.means - radius, -jnp.inf))
        active = state.active & (stats.means + radius >= best_lower)
        return EliminationState(stats=stats, active=active)
