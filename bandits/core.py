"""The learner protocol and the pieces every learner shares.

    Learner: init(key, hparams) -> LState
             act(key, lstate, obs, hparams) -> Action
             update(lstate, obs, action, feedback, hparams) -> LState

``hparams`` is a dict of arrays (the dynamic hyper-parameters of one run); static ones (network
widths, iteration counts, variants) are attributes of the learner object. Feedback arrives as a
masked batch (``envs.core.Feedback``): ``update`` must leave the state untouched for items whose
mask is False. The default ``update`` folds ``update_one`` over the batch and keeps the old state
wherever the mask is off, so a learner that only writes ``update_one`` gets masking for free;
learners that override ``update`` for speed are checked against the same contract by the tests.

Shared pieces live here once: random tie-breaking argmax, per-arm statistics with elementwise
updates, both unrolled over a short arm axis (docs/design.md, "The round"), and the masked fold.
"""
from __future__ import annotations

import abc
import functools
from typing import Any, ClassVar, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import struct

from envs import randomness
from envs.core import (UNROLL_ARMS, Array, ConfigError, Configurable, EnvSpec, Feedback, Metric,
                       Observation, Registry, Setting, arm_columns, arm_max, join_arms,
                       split_arms)

LEARNERS = Registry("learner")
register_learner = LEARNERS.register


class Learner(Configurable, abc.ABC):
    """Base class of every learner.

    Class attributes say what the learner needs from an environment; ``check_spec`` turns a
    mismatch into a ConfigError before anything is traced.
    """

    action_arity: ClassVar[int] = 1          # 2 for dueling learners (pair actions)
    needs_features: ClassVar[bool] = False   # contextual learners need feature_dim > 0
    needs_bounded_rewards: ClassVar[bool] = False   # rewards in [0, 1]
    needs_bernoulli_rewards: ClassVar[bool] = False
    needs_extras: ClassVar[tuple[str, ...]] = ()    # Feedback.extras it reads (``needed_extras``)
    needs_expected_rewards: ClassVar[bool] = False  # reads Observation.expected_rewards (oracles)
    # What the rest of the suite reads about the learner (docs/design.md, "Layout"); read with
    # ``declared``, so a subclass registered under another name does not inherit them.
    theory: ClassVar[Any] = None             # bandits.theory.Theory: regret rate, upper bound
    colour: ClassVar[str | None] = None      # its colour in every figure (None: a free one)
    role: ClassVar[str | None] = None        # 'reference' (a single fixed arm), 'oracle' or
    #                                          'baseline' (what regret is normalised to: uniform)
    # Values the learner reports about its own state (``report``), recorded as they are at every
    # recorded round and become result columns (docs/design.md, "Results"); inherited, like
    # ``report``, by subclasses.
    metrics: ClassVar[tuple[Metric, ...]] = ()

    def __init__(self, spec: EnvSpec, horizon: int, **static: Any):
        self.spec = spec
        self.horizon = int(horizon)
        self.num_arms = spec.num_arms
        for s in self.static_settings():
            setattr(self, s.name, static.get(s.name, s.default))

    @classmethod
    def declared(cls, name: str) -> Any:
        """The declaration ``name`` (``theory``, ``colour``, ``role``) made on this class itself,
        None when it makes none: a registered subclass is another algorithm."""
        return cls.__dict__.get(name)

    @classmethod
    def needed_extras(cls, values: Mapping[str, Any]) -> tuple[str, ...]:
        """The ``Feedback.extras`` this learner reads with the (settled) settings ``values``.
        Default: ``needs_extras``; override when a static setting changes them
        (``budgeted_linucb``'s ``target``)."""
        return cls.needs_extras

    @classmethod
    def check_spec(cls, spec: EnvSpec, where: str, values: Mapping[str, Any] | None = None
                   ) -> None:
        """Raises ConfigError when this learner cannot run on an environment with ``spec``.

        Called by the config layer before the sweeps are expanded (``values`` None: what does
        not depend on settings) and again with each combination's static settings (then the
        feedback extras too, ``needed_extras(values)``), so that every capability the learner
        lacks (arity, features, reward range, feedback extras, an oracle's expected rewards) is
        a one-line error before anything is traced.
        """
        problem = None
        needed = () if values is None else cls.needed_extras(values)
        missing = [n for n in needed if n not in spec.feedback_extras]
        if spec.action_arity != cls.action_arity:
            kind = "pairs of arms (dueling)" if cls.action_arity == 2 else "single arms"
            problem = f"it plays {kind}, the environment expects arity {spec.action_arity}"
        elif cls.needs_features and spec.feature_dim == 0:
            problem = "it needs per-arm features and the environment has none (d = 0)"
        elif cls.needs_bounded_rewards and spec.reward_range != (0.0, 1.0):
            problem = "it needs rewards in [0, 1] and the environment's are unbounded"
        elif cls.needs_bernoulli_rewards and not spec.bernoulli_rewards:
            problem = "it needs 0/1 rewards and the environment's are not"
        elif missing:
            reported = ", ".join(repr(n) for n in spec.feedback_extras) or "none"
            problem = (f"it reads the feedback signal(s) {', '.join(repr(n) for n in missing)} "
                       f"and the environment reports {reported} (Feedback.extras)")
        elif cls.needs_expected_rewards and not spec.expected_rewards:
            problem = ("it reads the expected reward of every arm (Observation.expected_rewards) "
                       "and the environment does not expose it")
        if problem:
            raise ConfigError(f"{where} = {cls.name!r} cannot run here: {problem}")

    @classmethod
    def from_environment(cls, values: dict, env_values: Mapping[str, Any]) -> dict:
        """Run by run, after sweeps are expanded: hyper-parameters that follow the environment.

        ``env_values`` are the run's environment settings, wrapper ones as "delay.mean". The
        default changes nothing; LDB-DF (``bandits/dueling/delayed.py``) fills its unset delay_*
        settings from ``[env.delay]`` so that a sweep over the delay keeps the learner told the
        true law.
        """
        return values

    @abc.abstractmethod
    def init(self, key: Array, hparams: Mapping[str, Array]) -> Any:
        """The learner's state before round 0."""

    @abc.abstractmethod
    def act(self, key: Array, state: Any, obs: Observation, hparams: Mapping[str, Array]) -> Array:
        """The action for this round: an int32 arm, or an int32 [2] pair for dueling."""

    def update(self, state: Any, obs: Observation, action: Array, feedback: Feedback,
               hparams: Mapping[str, Array]) -> Any:
        """Folds ``update_one`` over the feedback batch, skipping masked-out items."""
        return fold_feedback(lambda s, item: self.update_one(s, item, hparams), state, feedback)

    def update_one(self, state: Any, item: Feedback, hparams: Mapping[str, Array]) -> Any:
        """Learns from one feedback item (unbatched leaves). Override this or ``update``."""
        raise ConfigError(f"learner {self.name!r} defines neither update nor update_one")

    def report(self, state: Any) -> Mapping[str, Array]:
        """One scalar per declared ``metrics`` name, read from one run's state after its update
        (e.g. the cumulative number of restarts); recorded as it is, not summed. Called by the
        runner only when ``metrics`` is not empty."""
        return {}


def learner_metrics(names: Sequence[str]) -> tuple[Metric, ...]:
    """The ``metrics`` the registered learners ``names`` declare, in order, each name once
    (unregistered names are skipped); what analysis prints and plots beside the environment's."""
    out: dict[str, Metric] = {}
    for name in names:
        if name in LEARNERS:
            for metric in LEARNERS.get(name, "learner").metrics:
                out.setdefault(metric.name, metric)
    return tuple(out.values())


def the_horizon(values: Mapping[str, Any], context: Mapping[str, Any]) -> int:
    """``Setting.default_from`` of a buffer that holds every round's item: the horizon T."""
    return int(context["horizon"])


def tree_where(condition: Array, new: Any, old: Any) -> Any:
    """``new`` where condition holds, else ``old``, leaf by leaf (condition is a scalar)."""
    return jax.tree_util.tree_map(lambda n, o: jnp.where(condition, n, o), new, old)


def fold_feedback(update_one, state: Any, feedback: Feedback) -> Any:
    """Applies ``update_one(state, item)`` to each valid item of a masked batch, in order."""
    return scan_feedback(lambda state, item: tree_where(item.mask, update_one(state, item), state),
                         state, feedback)


def scan_feedback(update_item, state: Any, feedback: Feedback) -> Any:
    """Applies ``update_item(state, item)`` to every item of a batch, masked or not, in order
    (unbatched leaves, ``item.mask`` a scalar): ``update_item`` must itself leave the state
    unchanged for a masked item. For states holding large buffers, where ``fold_feedback``'s
    select over the whole state would cost a pass over every buffer per item."""
    def body(state, item):
        return update_item(state, item), None

    if feedback.size == 1:
        return body(state, jax.tree_util.tree_map(lambda x: x[0], feedback))[0]
    return jax.lax.scan(body, state, feedback)[0]


# ---------------------------------------------------------------------------------------------
# Action selection.
# ---------------------------------------------------------------------------------------------
def random_argmax(key: Array, values: Array) -> Array:
    """Index of a maximum of ``values`` ([K]), uniform among ties, from one random word of key.

    The j-th tied index is taken with j = floor(u * number_of_ties): exactly uniform among ties
    and one word instead of K draws. Up to ``envs.core.UNROLL_ARMS`` arms the reductions are
    unrolled into elementwise operations over runs (docs/design.md, "The round").
    """
    if values.shape[0] > UNROLL_ARMS:
        u = randomness.uniform(key)
        is_max = values >= jnp.max(values)
        ties = jnp.cumsum(is_max.astype(jnp.int32))
        count = ties[-1]
        choice = jnp.minimum(jnp.floor(u * count).astype(jnp.int32), count - 1)
        return jnp.argmax(is_max & (ties == choice + 1)).astype(jnp.int32)
    return random_argmax_of_arms(key, arm_columns(values))


def random_argmax_of_arms(key: Array, values: Sequence[Array]) -> Array:
    """``random_argmax`` of the K values given one per arm (scalars): the same draw, the same
    arm. For indices computed arm by arm (``ArmStats.arm``)."""
    u = randomness.uniform(key)
    best = arm_max(tuple(values))
    is_max = [value >= best for value in values]
    count = functools.reduce(jnp.add, [m.astype(jnp.int32) for m in is_max])
    choice = jnp.minimum(jnp.floor(u * count).astype(jnp.int32), count - 1)
    seen = jnp.zeros((), jnp.int32)
    chosen = jnp.zeros((), jnp.int32)
    for k, m in enumerate(is_max):
        chosen = jnp.where(m & (seen == choice), jnp.int32(k), chosen)
        seen = seen + m.astype(jnp.int32)
    return chosen


def argmax_of_index(key: Array, stats: "ArmStats", index) -> Array:
    """``random_argmax(key, index(stats))`` for an ``index`` made of elementwise operations on
    the statistics: computed arm by arm (``index(stats.arm(k))``, scalars) when the statistics
    are stored by arm, which keeps every operation on contiguous [runs] vectors under ``vmap``;
    the same numbers either way."""
    if stats.by_arm:
        return random_argmax_of_arms(
            key, [index(stats.arm(k)) for k in range(len(stats.stored_counts))])
    return random_argmax(key, index(stats))


def sample_from_probabilities(key: Array, probabilities: Array) -> Array:
    """One draw from a categorical distribution given as probabilities ([K]), one random word."""
    u = randomness.uniform(key)
    num_arms = probabilities.shape[0]
    if num_arms > UNROLL_ARMS:
        cdf = jnp.cumsum(probabilities)
        return jnp.minimum(jnp.sum(cdf <= u * cdf[-1]), num_arms - 1).astype(jnp.int32)
    columns = arm_columns(probabilities)
    threshold = u * functools.reduce(jnp.add, columns)
    cumulative = jnp.zeros((), probabilities.dtype)
    below = jnp.zeros((), jnp.int32)
    for column in columns:
        cumulative = cumulative + column
        below = below + (cumulative <= threshold).astype(jnp.int32)
    return jnp.minimum(below, num_arms - 1)


class EpsilonExploration:
    """Mixin for epsilon-greedy learners: a uniform arm with probability eps_t, else greedy.

    Sutton and Barto (2018), sec. 2.2; ``schedule = "decaying"`` uses eps_t = min(1, epsilon K / t),
    the epsilon_n-greedy of Auer, Cesa-Bianchi and Fischer (2002), sec. 3, with c / d^2 folded
    into ``epsilon``. The learner supplies ``greedy_action(key, state, obs, hparams)``.
    """

    exploration_settings = (
        Setting("epsilon", 0.1, "exploration probability (fixed) or the constant c of "
                "eps_t = min(1, c K / t) (decaying)", low=0.0),
        Setting("schedule", "fixed", "'fixed' or 'decaying'", kind=str, static=True,
                choices=("fixed", "decaying")),
    )

    @classmethod
    def check_cross(cls, values, where):
        if values["schedule"] == "fixed" and values["epsilon"] > 1:
            raise ConfigError(f"{where}.epsilon = {values['epsilon']}: a fixed exploration "
                              f"probability must be in [0, 1]")

    def act(self, key, state, obs, hparams):
        coin, arm = randomness.uniform(key, (2,))
        epsilon = hparams["epsilon"]
        if self.schedule == "decaying":
            epsilon = jnp.minimum(1.0, epsilon * self.num_arms / rounds_played(obs))
        greedy = self.greedy_action(randomness.subkey(key, 0), state, obs, hparams)
        explore = jnp.minimum(jnp.floor(arm * self.num_arms).astype(jnp.int32), self.num_arms - 1)
        return jnp.where(coin < epsilon, explore, greedy).astype(jnp.int32)


# ---------------------------------------------------------------------------------------------
# Per-arm statistics, stored arm by arm, with mask-aware batch updates.
# ---------------------------------------------------------------------------------------------
def _per_arm(function, stored):
    """``function(k, value)`` on a statistic stored by ``split_arms``: arm by arm, or once on
    the whole [K] array (k None)."""
    if isinstance(stored, tuple):
        return tuple(function(k, value) for k, value in enumerate(stored))
    return function(None, stored)


@struct.dataclass
class ArmStats:
    """Counts, reward sums and (optionally) sums of squared rewards per arm.

    Stored arm by arm: up to ``envs.core.UNROLL_ARMS`` arms each statistic is a tuple of K
    scalars (``split_arms``), so that under ``vmap`` every arm's statistic is one contiguous
    [runs] vector. XLA:CPU then updates and reads each arm with contiguous vector loads instead
    of strided ones from a [runs, K] array (docs/design.md, "The round"). Read them as [K]
    arrays (``counts``, ``sums``, ``squares``, ``means``) or arm by arm (``arm(k)``, whose
    fields are scalars: an index written with elementwise operations works on both).
    ``squares`` is None unless asked for (``zeros(K, squares=True)``, UCB-V's variances): every
    statistic is read and written each round, so state size is speed.
    """

    stored_counts: tuple[Array, ...] | Array
    stored_sums: tuple[Array, ...] | Array
    stored_squares: tuple[Array, ...] | Array | None = None

    @classmethod
    def of(cls, counts: Array, sums: Array, squares: Array | None = None,
           by_arm: bool = True) -> "ArmStats":
        """Statistics from [K] arrays (or one arm's scalars), stored by arm unless ``by_arm``
        is False."""
        store = split_arms if by_arm else jnp.asarray
        return cls(stored_counts=store(counts), stored_sums=store(sums),
                   stored_squares=None if squares is None else store(squares))

    @classmethod
    def zeros(cls, num_arms: int, squares: bool = False, by_arm: bool = True) -> "ArmStats":
        """No observation yet. ``by_arm`` False keeps [K] arrays: for a learner that reads the
        statistics of all arms at once (Thompson sampling's posterior draws), which would
        otherwise put them together again every round."""
        z = jnp.zeros((num_arms,), jnp.float32)
        return cls.of(z, z, z if squares else None, by_arm=by_arm)

    @property
    def counts(self) -> Array:
        return join_arms(self.stored_counts)

    @property
    def sums(self) -> Array:
        return join_arms(self.stored_sums)

    @property
    def squares(self) -> Array | None:
        return None if self.stored_squares is None else join_arms(self.stored_squares)

    @property
    def by_arm(self) -> bool:
        """Whether the statistics are stored arm by arm (K <= ``UNROLL_ARMS``, unless made
        with ``by_arm=False``)."""
        return isinstance(self.stored_counts, tuple)

    def arm(self, k: int) -> "ArmStats":
        """Arm k's statistics (scalar fields)."""
        return ArmStats(stored_counts=self.stored_counts[k], stored_sums=self.stored_sums[k],
                        stored_squares=None if self.stored_squares is None
                        else self.stored_squares[k])

    def _map(self, function) -> "ArmStats":
        """``function(k, value)`` on every stored statistic, arm by arm (k None: whole arrays)."""
        def each(stored):
            return None if stored is None else _per_arm(function, stored)
        return ArmStats(stored_counts=each(self.stored_counts), stored_sums=each(self.stored_sums),
                        stored_squares=each(self.stored_squares))

    def add(self, feedback: Feedback, weights: Array | None = None) -> "ArmStats":
        """Adds every valid item of a feedback batch (single-arm actions), item b with weight
        ``weights[b]`` when given (discounted statistics), else 1.

        Arm by arm and item by item (a compare and a select per arm): no one-hot matrix product.
        """
        actions = feedback.action.reshape(-1)
        if feedback.size > 8:               # large delayed batches: one product, not B passes
            weight = feedback.mask.astype(jnp.float32)
            if weights is not None:
                weight = weight * weights
            hot = (jnp.arange(self.counts.shape[0])[None, :] == actions[:, None]) * weight[:, None]
            reward = jnp.where(feedback.mask, feedback.reward, 0.0)
            return ArmStats.of(self.counts + hot.sum(0), self.sums + reward @ hot,
                               None if self.stored_squares is None
                               else self.squares + (reward * reward) @ hot, by_arm=self.by_arm)
        stats = self
        for b in range(feedback.size):
            weight = None if weights is None else weights[b]
            stats = stats.add_one(actions[b], feedback.reward[b], feedback.mask[b], weight)
        return stats

    def add_one(self, arm: Array, reward: Array, valid: Array,
                weight: Array | float | None = None) -> "ArmStats":
        """One item (``arm``, ``reward``) added where ``valid``, with ``weight`` (default 1; -1
        removes it)."""
        def plays(k):
            if k is None:
                return (jnp.arange(self.counts.shape[0]) == arm) & valid
            return (arm == k) & valid

        def added(k, value, amount):
            hot = plays(k)
            if weight is None and amount is None:
                return value + hot.astype(value.dtype)
            amount = (1.0 if amount is None else amount) * (1.0 if weight is None else weight)
            return value + jnp.where(hot, amount, 0.0)

        return ArmStats(
            stored_counts=_per_arm(lambda k, n: added(k, n, None), self.stored_counts),
            stored_sums=_per_arm(lambda k, x: added(k, x, reward), self.stored_sums),
            stored_squares=None if self.stored_squares is None else _per_arm(
                lambda k, x: added(k, x, reward * reward), self.stored_squares))

    def scale(self, factor: Array) -> "ArmStats":
        """Every statistic times ``factor``: the discount of discounted statistics (Garivier and
        Moulines 2011, sec. 3: N_t = gamma N_{t-1} + 1{I_t = i}, likewise for the sums)."""
        return self._map(lambda k, value: value * factor)

    def reset_where(self, reset: Array) -> "ArmStats":
        """The statistics with every arm where ``reset`` ([K] bool) holds set to zero."""
        return self._map(lambda k, value: jnp.where(reset if k is None else reset[k], 0.0, value))

    @property
    def means(self) -> Array:
        """sums / counts (0 where nothing was seen); counts may be fractional (discounted)."""
        return self.sums / jnp.where(self.counts > 0, self.counts, 1.0)

    @property
    def variances(self) -> Array:
        """Empirical variances (needs a state made with ``squares=True``)."""
        mean = self.means
        return jnp.maximum(self.squares / jnp.maximum(self.counts, 1.0) - mean * mean, 0.0)


# ---------------------------------------------------------------------------------------------
# Discounted statistics.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class DiscountedStats:
    """Per-arm discounted statistics (Garivier and Moulines 2011, sec. 3):
    N_t(gamma, i) = sum_{s <= t} gamma^(t - s) 1{I_s = i}, likewise for the reward sums.

    Kept lazily: ``stats`` are the sums as of round ``as_of`` (the last round whose update had a
    valid item), and are brought forward by gamma^(elapsed rounds) when read (``before``) or
    added to (``add``), so an all-masked round changes nothing (docs/design.md, "The two
    protocols") and the numbers equal discounting every round. An item of round r added in
    round t weighs gamma^(t - r): delayed feedback counts with its age.
    """

    stats: ArmStats
    as_of: Array     # int32 round the stats are discounted to (-1 before any feedback)

    @classmethod
    def zeros(cls, num_arms: int, by_arm: bool = True) -> "DiscountedStats":
        return cls(stats=ArmStats.zeros(num_arms, by_arm=by_arm), as_of=jnp.int32(-1))

    def add(self, feedback: Feedback, t: Array, gamma: Array) -> "DiscountedStats":
        """The statistics after round ``t``'s update with the valid items of ``feedback``."""
        t = jnp.asarray(t, jnp.int32)
        decay = jnp.power(gamma, (t - self.as_of).astype(jnp.float32))
        ages = (t - feedback.round).astype(jnp.float32)
        stats = self.stats.scale(decay).add(feedback, weights=jnp.power(gamma, ages))
        return tree_where(jnp.any(feedback.mask), DiscountedStats(stats=stats, as_of=t), self)

    def before(self, t: Array, gamma: Array) -> ArmStats:
        """The statistics a learner acting in round ``t`` uses: discounted to round t - 1."""
        elapsed = (jnp.asarray(t, jnp.int32) - 1 - self.as_of).astype(jnp.float32)
        return self.stats.scale(jnp.power(gamma, elapsed))


# ---------------------------------------------------------------------------------------------
# Statistics over a sliding window of rounds: a ring buffer of static size.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class WindowStats:
    """Per-arm statistics of the feedback of the last ``window`` rounds (Garivier and Moulines
    2011, sec. 4: N_t(tau, i) = sum_{s = t - tau + 1}^{t} 1{I_s = i}, likewise for the sums).

    A ring buffer of static ``capacity`` >= window (window may be a swept, dynamic number) holds
    the arm and reward of round r in slot r mod capacity, with its round (-1: empty); ``stats``
    are the sums over the window, kept incrementally: in the update of round t the item of round
    t - window leaves (one slot read), then the valid items of the feedback batch whose round is
    still inside the window enter (one slot written each). A round whose feedback never arrived
    (masked) stores nothing. O(K) work per round whatever the window; one feedback item per
    played round (single-arm actions). Delayed items arriving after their round left the window
    are dropped. The window moves with time, not with feedback: an all-masked round stores
    nothing but still lets the round t - window leave (the statistics are of rounds, as in the
    paper).
    """

    stats: ArmStats
    arms: Array      # [capacity] int32
    rewards: Array   # [capacity] float32
    rounds: Array    # [capacity] int32, -1 for an empty slot

    @classmethod
    def empty(cls, num_arms: int, capacity: int) -> "WindowStats":
        return cls(stats=ArmStats.zeros(num_arms), arms=jnp.zeros((capacity,), jnp.int32),
                   rewards=jnp.zeros((capacity,), jnp.float32),
                   rounds=jnp.full((capacity,), -1, jnp.int32))

    def advance(self, feedback: Feedback, t: Array, window: Array) -> "WindowStats":
        """The statistics of rounds t - window + 1 .. t: the item of round t - window out, the
        valid items of ``feedback`` (rounds inside the window) in."""
        capacity = self.rounds.shape[0]
        t = jnp.asarray(t, jnp.int32)
        window = jnp.asarray(window, jnp.int32)
        leaving = t - window
        slot = jnp.mod(leaving, capacity)
        gone = (self.rounds[slot] == leaving) & (leaving >= 0)
        stats = self.stats.add_one(self.arms[slot], self.rewards[slot], gone, -1.0)
        arms, rewards, rounds = self.arms, self.rewards, self.rounds
        for b in range(feedback.size):
            round_b = feedback.round[b]
            enter = feedback.mask[b] & (round_b > leaving)
            arm = feedback.action.reshape(-1)[b]
            stats = stats.add_one(arm, feedback.reward[b], enter)
            at = jnp.where(enter, jnp.mod(round_b, capacity), capacity)   # capacity: no write
            arms = arms.at[at].set(arm, mode="drop")
            rewards = rewards.at[at].set(feedback.reward[b], mode="drop")
            rounds = rounds.at[at].set(round_b, mode="drop")
        return WindowStats(stats=stats, arms=arms, rewards=rewards, rounds=rounds)


def untried_first(index: Array, counts: Array) -> Array:
    """docs/design.md convention: an arm never tried has index +inf."""
    return jnp.where(counts > 0, index, jnp.inf)


def rounds_played(obs: Observation) -> Array:
    """t as used by index formulas: the number of rounds including this one (1-based)."""
    return jnp.asarray(obs.t, jnp.float32) + 1.0
