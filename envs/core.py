"""The environment protocol, the pytrees that cross it, settings and registries.

Everything here follows ``docs/design.md`` ("The two protocols"): static structure (number of
arms, feature dimension, buffer capacities) lives on the Python object and is fixed at trace
time; everything that may be swept lives in pytrees of arrays, so a sweep is a ``vmap``.

    Env:  sample_params(key, settings) -> Params        one problem instance (vmappable)
          reset(key, params) -> EnvState
          observe(key, state, params) -> Observation    this round's context (may be empty)
          step(key, state, action, params) -> (EnvState, Feedback, StepInfo)

``settings`` is the dict of an environment's swept (dynamic) settings as arrays; it is how a
sweep over, say, a gap or a noise level reaches ``sample_params`` without a recompile.

``Feedback`` is a fixed-shape batch with a validity mask: immediate feedback is a batch of one
always-valid item, delayed feedback (``envs.delay.Delayed``) a batch of whatever has arrived.
``StepInfo`` carries what regret needs and never reaches the learner.
"""
from __future__ import annotations

import abc
import contextlib
import contextvars
import dataclasses
import difflib
import functools
import math
from typing import Any, Callable, ClassVar, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

Array = jax.Array


class ConfigError(ValueError):
    """A user error in a config or a parameter, raised on the host before anything is traced."""


# ---------------------------------------------------------------------------------------------
# Pytrees crossing the protocol.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class Observation:
    """What the learner sees before acting.

    features: [K, d] per-arm feature vectors (d = 0 for plain multi-armed bandits).
    t: the round index (0-based), filled in by the runner.
    expected_rewards: optional [K] expected reward of every arm this round, set only by
        environments that support an oracle baseline (``EnvSpec.expected_rewards``); None
        elsewhere. Only an oracle baseline (``Learner.needs_expected_rewards``) may read it.
    """

    features: Array
    t: Array = 0
    expected_rewards: Array | None = None


@struct.dataclass
class Feedback:
    """A fixed-size batch of B feedback items; only items with ``mask`` set are real.

    action:   [B] int32 arm (or [B, 2] for a pair action in dueling bandits).
    features: [B, A, d] features of the A arms of that action when it was taken.
    reward:   [B] float32 observed reward (dueling: 1.0 when action[..., 0] won the duel).
    round:    [B] int32 round in which the action was taken.
    mask:     [B] bool, True for an item that arrived this round.
    extras:   optional environment-specific signals, name -> [B] array (empty for most
              environments; ``routing`` reports 'quality', the observed quality outcome, and
              'cost', the normalised cost, beside the scalarised ``reward``).
    """

    action: Array
    features: Array
    reward: Array
    round: Array
    mask: Array
    extras: dict = struct.field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.mask.shape[0]


@struct.dataclass
class TableRow:
    """One round's context as a row of a full-information table (``banditjax export``, read back
    by the ``dataset`` environment, envs/dataset.py).

    features: [d] the context (without a bias feature).
    rewards:  [K] the expected reward (quality) of every arm in this context.
    costs:    [K] the cost of every arm (environments with a cost), or None.
    """

    features: Array
    rewards: Array
    costs: Array | None = None


@struct.dataclass
class StepInfo:
    """What the runner records; never shown to the learner.

    regret:  this round's pseudo-regret (expected reward of the best action minus that of the
             chosen one), summed by the runner into the cumulative ``regret`` column.
    metrics: further per-round scalars, each summed by the runner; ``Environment.metric_columns``
             turns the sums into result columns (running means, fractions, ...).
    """

    regret: Array
    metrics: dict = struct.field(default_factory=dict)


def immediate_feedback(action: Array, features: Array, reward: Array, t: Array,
                       extras: Mapping[str, Array] | None = None) -> Feedback:
    """The batch of one always-valid item that a non-delayed environment returns each round.

    extras: optional name -> scalar signals, returned as [1] arrays in ``Feedback.extras``.
    """
    action = jnp.asarray(action, jnp.int32)
    arms = action.reshape(-1)
    return Feedback(
        action=action[None],
        features=jnp.stack([take_arm(jnp.asarray(features, jnp.float32), arms[i])
                            for i in range(arms.shape[0])])[None],
        reward=jnp.asarray(reward, jnp.float32).reshape(1),
        round=jnp.asarray(t, jnp.int32).reshape(1),
        mask=jnp.ones((1,), bool),
        extras={k: jnp.asarray(v, jnp.float32).reshape(1) for k, v in (extras or {}).items()},
    )


# ---------------------------------------------------------------------------------------------
# Reductions over the (short) arm axis, written for the batched layout the runner produces.
# ---------------------------------------------------------------------------------------------
# ``vmap`` over runs puts the run axis first ([runs, K]); XLA:CPU then runs a reduction over the
# short minor arm axis as a scalar loop per run, which measured as the largest cost of a K-armed
# round (docs/design.md, "Measured facts"). Up to this many arms the reductions below are unrolled
# into K elementwise operations on [runs] vectors, which vectorise over runs on every backend.
UNROLL_ARMS = 32


# Whether ``split_arms`` stores per-arm vectors arm by arm in the code being traced (the runner
# sets it from the batch size: ``arm_layout``).
_BY_ARM = contextvars.ContextVar("banditjax_by_arm", default=True)


@contextlib.contextmanager
def arm_layout(by_arm: bool):
    """Within it, ``split_arms`` stores per-arm vectors arm by arm (True, the default) or keeps
    [K] arrays (False). A trace-time choice: the runner traces a batch's initial state and its
    rounds inside it, chosen from the batch size (``experiments.runner.arms_by_column``), so
    both agree; the numbers are the same either way."""
    token = _BY_ARM.set(bool(by_arm))
    try:
        yield
    finally:
        _BY_ARM.reset(token)


def split_arms(values: Array) -> tuple[Array, ...] | Array:
    """A per-arm vector ([K]) stored arm by arm: K scalars up to ``UNROLL_ARMS`` arms (under
    ``vmap`` K contiguous [runs] vectors instead of one [runs, K] array whose columns XLA:CPU
    reads with strided loads; docs/design.md, "The round"), the array itself above, for one
    arm's scalar, and inside ``arm_layout(False)``. ``arm_columns``, ``arm_max`` and
    ``take_arm`` accept both forms; ``join_arms`` gives the [K] vector back."""
    values = jnp.asarray(values)
    if values.ndim == 0 or values.shape[0] > UNROLL_ARMS or not _BY_ARM.get():
        return values
    return tuple(values[k] for k in range(values.shape[0]))


def join_arms(stored: tuple[Array, ...] | Array) -> Array:
    """The per-arm vector that ``split_arms`` stored: [K] for one run ([..., K] for a batch)."""
    return jnp.stack(stored, axis=-1) if isinstance(stored, tuple) else stored


def arm_columns(values: Array | tuple[Array, ...]) -> list[Array]:
    """The K entries of ``values`` ([K, ...], or stored by ``split_arms``) as a list (one
    [runs] vector each under vmap)."""
    if isinstance(values, tuple):
        return list(values)
    return [values[k] for k in range(values.shape[0])]


def _unrolled(values: Array | tuple[Array, ...]) -> bool:
    return isinstance(values, tuple) or values.shape[0] <= UNROLL_ARMS


def arm_max(values: Array | tuple[Array, ...]) -> Array:
    """max_k values[k] over the leading (arm) axis."""
    if not _unrolled(values):
        return jnp.max(values, axis=0)
    return functools.reduce(jnp.maximum, arm_columns(values))


def take_arm(values: Array | tuple[Array, ...], arm: Array) -> Array:
    """values[arm] for a traced scalar ``arm`` (a chain of selects: no gather, exact)."""
    if not _unrolled(values):
        return jnp.take(values, arm, axis=0)
    columns = arm_columns(values)
    chosen = columns[0]
    for k in range(1, len(columns)):
        chosen = jnp.where(arm == k, columns[k], chosen)
    return chosen


def unit_rows(x: Array) -> Array:
    """Each row of ``x`` divided by its Euclidean norm (zero rows stay near zero)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static facts about an environment that a learner is built from."""

    num_arms: int
    feature_dim: int = 0
    action_arity: int = 1           # 1: one arm per round, 2: a pair of arms (dueling)
    feedback_size: int = 1          # B, the size of the Feedback batch
    reward_range: tuple[float, float] | None = (0.0, 1.0)   # None: unbounded (Gaussian noise)
    bernoulli_rewards: bool = True  # rewards are 0/1
    preference_feedback: bool = False
    # What the environment provides beyond rewards (a wrapper passes them through): the names
    # of the signals in every ``Feedback.extras``, and whether ``Observation.expected_rewards``
    # is filled (the oracle baseline reads it). Learners declare what they need
    # (``bandits.core.Learner``); ``check_spec`` refuses a mismatch at config time.
    feedback_extras: tuple[str, ...] = ()
    expected_rewards: bool = False


# ---------------------------------------------------------------------------------------------
# Settings: one declaration serves validation, sweeps, `banditjax list` and the docs.
# ---------------------------------------------------------------------------------------------
_KIND_NAMES = {float: "a number", int: "an integer", bool: "true or false", str: "a string",
               "vector": "a list of numbers", "matrix": "a list of rows of numbers",
               "names": "a list of strings", "path": "a file path (a string)"}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting of an environment or hyper-parameter of a learner.

    static: True when the value changes shapes or Python control flow (K, d, a buffer size, a
        choice of variant); static settings are fixed at trace time, so a sweep over one compiles
        once per value. Dynamic settings become arrays and a sweep over them is a ``vmap``.
    kind: float, int, bool, str, "vector" (a list of numbers, e.g. arm means), "matrix" (a
        list of equally long rows of numbers, e.g. one vector of arm means per segment), "names"
        (a list of strings, e.g. column names) or "path" (a file path: a string that
        ``experiments.config.load`` resolves against the config file's folder).
    default_from: for a default that follows the horizon, the environment or another setting:
        ``default_from(values, context)`` gives the value when none is given (the config layer
        then ignores ``default``, which is what a direct construction and ``banditjax list``
        use; e.g. K from the length of ``means``). ``context`` holds
        ``horizon`` (learners also get ``num_arms``, ``feature_dim`` and ``env``, the static
        environment settings); ``values`` the other settings, those declared earlier already
        filled. Applied by ``Configurable.settle`` (docs/design.md, "From a config table to
        objects"), and checked like a given value.
    """

    name: str
    default: Any
    doc: str
    kind: Any = float
    static: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False      # the bound itself is not allowed
    high_open: bool = False
    choices: tuple | None = None
    optional: bool = False      # None is an allowed value (e.g. "not given, draw it")
    default_from: Callable[[Mapping[str, Any], Mapping[str, Any]], Any] | None = None

    def describe_range(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        parts = []
        if self.low is not None:
            parts.append((">" if self.low_open else ">=") + f" {self.low:g}")
        if self.high is not None:
            parts.append(("<" if self.high_open else "<=") + f" {self.high:g}")
        kind = _KIND_NAMES.get(self.kind, str(self.kind))
        return kind + (" " + " and ".join(parts) if parts else "")

    def validate(self, value: Any, where: str) -> Any:
        """Checks one (non-sweep) value; returns it normalised or raises ConfigError."""
        field = f"{where}.{self.name}"
        if value is None:
            if self.optional:
                return None
            raise ConfigError(f"{field}: a value is required ({self.describe_range()})")
        if self.kind == "matrix":
            if not isinstance(value, (list, tuple)) or not value or not all(
                    isinstance(row, (list, tuple)) for row in value):
                raise ConfigError(f"{field} = {value!r}: expected {self.describe_range()}")
            if len({len(row) for row in value}) != 1:
                raise ConfigError(f"{field} = {value!r}: rows of different lengths; every row "
                                  f"must have as many numbers")
            return [self._validate_vector(row, field, value) for row in value]
        if self.kind == "vector":
            return self._validate_vector(value, field, value)
        if self.kind == "names":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{field} = {value!r}: expected {self.describe_range()}")
            return [str(v) for v in value]
        if self.kind == "path":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{field} = {value!r}: expected {self.describe_range()}")
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{field} = {value!r}: expected true or false")
            return value
        if self.kind is int:
            if isinstance(value, bool) or not (isinstance(value, int) or (
                    isinstance(value, float) and value.is_integer())):
                raise ConfigError(f"{field} = {value!r}: expected {self.describe_range()}")
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{field} = {value!r}: expected {self.describe_range()}")
            value = float(value)
            if math.isnan(value):
                raise ConfigError(f"{field} = nan: expected {self.describe_range()}")
        elif self.kind is str:
            if not isinstance(value, str):
                raise ConfigError(f"{field} = {value!r}: expected {self.describe_range()}")
        if self.choices is not None:
            if value not in self.choices:
                hint = closest(str(value), [str(c) for c in self.choices])
                raise ConfigError(f"{field} = {value!r}: expected {self.describe_range()}" + hint)
            return value
        if self.kind in (int, float):
            self._check_range(value, field, value)
        return value

    def _validate_vector(self, value: Any, field: str, shown: Any) -> list[float]:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{field} = {shown!r}: expected {self.describe_range()}")
        for v in value:
            self._check_range(float(v), field, shown)
        return [float(v) for v in value]

    def _check_range(self, v: float, field: str, shown: Any) -> None:
        bad = False
        if self.low is not None:
            bad |= v <= self.low if self.low_open else v < self.low
        if self.high is not None:
            bad |= v >= self.high if self.high_open else v > self.high
        if bad:
            raise ConfigError(f"{field} = {shown!r}: out of range, expected {self.describe_range()}")


def is_sweep(setting: Setting, value: Any) -> bool:
    """A list is a sweep axis, except for list-valued settings (vector, names) where a list of
    lists is (and matrix settings, where a list of lists of lists is)."""
    if setting.kind in ("vector", "names"):
        return isinstance(value, (list, tuple)) and len(value) > 0 and all(
            isinstance(v, (list, tuple)) for v in value)
    if setting.kind == "matrix":
        return isinstance(value, (list, tuple)) and len(value) > 0 and all(
            isinstance(v, (list, tuple)) and len(v) > 0 and all(
                isinstance(row, (list, tuple)) for row in v) for v in value)
    return isinstance(value, (list, tuple))


def closest(name: str, known: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Configurable:
    """Shared by environments, wrappers and learners: a declared tuple of ``Setting``s."""

    settings: ClassVar[tuple[Setting, ...]] = ()
    name: ClassVar[str] = ""

    @classmethod
    def setting(cls, name: str) -> Setting:
        for s in cls.settings:
            if s.name == name:
                return s
        raise KeyError(name)

    @classmethod
    def static_settings(cls) -> tuple[Setting, ...]:
        return tuple(s for s in cls.settings if s.static)

    @classmethod
    def dynamic_settings(cls) -> tuple[Setting, ...]:
        return tuple(s for s in cls.settings if not s.static)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {s.name: s.default for s in cls.settings}

    @classmethod
    def settle(cls, values: Mapping[str, Any], context: Mapping[str, Any],
               where: str = "") -> dict:
        """One combination of validated settings made final, the one path the config layer
        takes (docs/design.md, "From a config table to objects"): the declared defaults that
        follow the horizon or the environment (``Setting.default_from``, in declaration order),
        then ``resolve``, then ``check_cross``."""
        where = where or cls.name
        values = dict(values)
        for s in cls.settings:
            if s.default_from is not None and values.get(s.name) is None:
                values[s.name] = s.validate(s.default_from(values, context), where)
        values = cls.resolve(values, context)
        cls.check_cross(values, where)
        return values

    @classmethod
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        """Fills what a declaration cannot say (a choice that depends on which settings were
        given, e.g. ``generator``); called by ``settle`` after the declared defaults. A default
        that is a formula of the horizon or the environment belongs on the ``Setting``
        (``default_from``), not here."""
        return values

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        """Checks that involve several settings at once (override; raise ConfigError)."""

    @classmethod
    def specialise(cls, table: Mapping[str, Any], where: str) -> type:
        """The class a config table builds: itself, unless the settings it accepts depend on a
        choice in the table (``joulani``'s ``base`` learner, whose hyper-parameters it takes
        too), in which case a subclass declaring them. Called by the config layer."""
        return cls


class Registry:
    """Maps config names to classes; unknown names get the known list and the closest match."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def decorate(cls: type) -> type:
            known = self._entries.get(name)
            # The same class defined again (a notebook cell run twice, a module re-imported)
            # replaces itself; another class under a taken name is an error.
            if known is not None and (known.__module__, known.__qualname__) != (
                    cls.__module__, cls.__qualname__):
                raise ValueError(f"{self.kind} {name!r} registered twice")
            cls.name = name
            self._entries[name] = cls
            return cls
        return decorate

    def get(self, name: Any, where: str) -> type:
        if not isinstance(name, str) or name not in self._entries:
            known = ", ".join(sorted(self._entries))
            hint = closest(str(name), sorted(self._entries))
            raise ConfigError(f"{where} = {name!r}: unknown {self.kind}{hint}; known: {known}")
        return self._entries[name]

    def unregister(self, name: str) -> None:
        """Forgets ``name``: a class registered for one call (``banditjax.run(learners=...)``),
        or a learner defined in a notebook or a test, to define it again."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self):
        return sorted(self._entries.items())

    def __contains__(self, name: str) -> bool:
        return name in self._entries


ENVS = Registry("environment")
WRAPPERS = Registry("environment wrapper")
register_env = ENVS.register
register_wrapper = WRAPPERS.register


# ---------------------------------------------------------------------------------------------
# What analysis and the command line read about an environment's results.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Metric:
    """How one result column is reported (docs/design.md, "Results").

    label: the axis label of its figure (and what it means).
    summary: printed by ``banditjax run`` (mean and standard error at the last round).
    figure: drawn by ``banditjax plot`` as ``<name>.png``: its mean over runs against t per
        learner setting, with 95% bands.
    better: "lower" (regret, cost: the default) or "higher" (quality): which value
        ``banditjax table`` marks as the best of a column.
    """

    name: str
    label: str
    summary: bool = True
    figure: bool = False
    better: str = "lower"

    def __post_init__(self):
        if self.better not in ("lower", "higher"):
            raise ValueError(f"Metric {self.name!r}: better = {self.better!r}; expected "
                             f"'lower' or 'higher'")


REGRET = Metric("regret", "cumulative pseudo-regret", summary=True, figure=True)


def reported_metrics(env: str, wrappers: Sequence[str] = ()) -> tuple[Metric, ...]:
    """The declared metrics of a results frame's environment and its wrappers, in that order
    (regret only when the environment is not registered)."""
    metrics = ENVS.get(env, "env").metrics if env in ENVS else (REGRET,)
    for name in wrappers:
        metrics = metrics + WRAPPERS.get(name, f"env.{name}").metrics
    return metrics


# ---------------------------------------------------------------------------------------------
# The environment base class.
# ---------------------------------------------------------------------------------------------
class Environment(Configurable, abc.ABC):
    """Base class of every environment; subclasses set ``settings`` and the four functions.

    The constructor receives the validated static settings as keyword arguments and stores them
    on the object; the dynamic settings arrive in ``sample_params`` as a dict of arrays.
    """

    metric_names: ClassVar[tuple[str, ...]] = ()
    # Declarations the rest of the suite reads (docs/design.md, "Layout"); a wrapper's are added
    # to those of the environment it wraps.
    metrics: ClassVar[tuple[Metric, ...]] = (REGRET,)   # what to print and plot, in order
    figures: ClassVar[tuple[str, ...]] = ()   # extra figures of `banditjax plot`:
    #                                           "module:function", function(frame, out_dir) -> paths
    reward_family: ClassVar[str | None] = None   # a stochastic K-armed bandit whose arms follow
    #                                              one-parameter laws (envs.theory.REWARD_FAMILIES)
    linear_model: ClassVar[bool] = False   # expected reward <theta, x> with sub-Gaussian noise
    logged_feedback: ClassVar[bool] = False   # replays a log (envs/replay.py): feedback only on
    #                                           rounds whose action matches the logged one (masked
    #                                           otherwise); regret an estimate that may decrease
    monotone_regret: ClassVar[bool] = True   # every per-round regret is >= 0; False for a policy
    #                                          regret against a simulated benchmark policy, whose
    #                                          sum is >= 0 but may fall (envs.history.Rotting)

    def __init__(self, **static: Any):
        for s in self.static_settings():
            setattr(self, s.name, static.get(s.name, s.default))

    @property
    @abc.abstractmethod
    def spec(self) -> EnvSpec:
        """Static facts a learner is built from."""

    @abc.abstractmethod
    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> Any:
        """One problem instance from the dynamic settings."""

    @abc.abstractmethod
    def reset(self, key: Array, params: Any) -> Any:
        """The state at round 0."""

    @abc.abstractmethod
    def observe(self, key: Array, state: Any, params: Any) -> Observation:
        """This round's context."""

    @abc.abstractmethod
    def step(self, key: Array, state: Any, action: Array, params: Any):
        """Plays an action: (new state, feedback, step info)."""

    @classmethod
    def known_arm_means(cls, settings: Mapping[str, Any]) -> tuple[np.ndarray, float] | None:
        """(arm means, noise sigma or NaN) when the settings alone fix them (no random draw);
        None otherwise (then ``arm_means`` reads them from sampled params)."""
        return None

    @classmethod
    def arm_labels(cls, settings: Mapping[str, Any]) -> tuple[str, ...] | None:
        """A display name per arm (arm order) fixed by the settings (as a results frame records
        them: the ``env.*`` columns without the prefix), or None: arms are named by index.
        Tables and legends name single-arm baselines by it (e.g. 'gpt-4@k16')."""
        return None

    @classmethod
    def feedback_delay(cls, settings: Mapping[str, Any], horizon: int) -> float:
        """The mean delay a wrapper with these settings adds to the feedback over ``horizon``
        rounds (0: none); read by ``banditjax bounds`` for the delay term and delay cost."""
        return 0.0

    def arm_means(self, params: Any) -> tuple[Any, Any] | None:
        """(means [..., K], sigma or None) of (a batch of) params, or None: no arm means."""
        return None

    # -- table export (``banditjax export``; docs/design.md, "Layout") -------------------------
    def export_support(self, settings: Mapping[str, np.ndarray]) -> str | None:
        """None when ``export_row`` describes this environment's rounds with these dynamic
        settings ([R, ...] arrays) as rows of a full-information table: contexts i.i.d. and
        untouched by the actions, each arm's expected reward (and cost) a function of the
        context. Otherwise the reason, a phrase ("...: use ...")."""
        return "it declares no table export"

    def export_row(self, state: Any, params: Any) -> TableRow:
        """The context of the round ``state`` is in, as a table row (see ``export_support``)."""
        raise NotImplementedError(f"environment {self.name!r} cannot be exported")

    def export_arm_names(self) -> tuple[str, ...]:
        """Arm names for the table's column names ('reward.<arm>', 'cost.<arm>')."""
        return tuple(str(k) for k in range(self.spec.num_arms))

    def metric_columns(self, sums: Mapping[str, np.ndarray], t: np.ndarray) -> dict[str, np.ndarray]:
        """Turns the cumulative sums of the per-round metrics into result columns.

        ``sums['regret']`` and ``sums[m]`` for each m in ``metric_names`` have shape [R, P];
        ``t`` ([P]) is the number of rounds played at each recorded point. The default keeps the
        cumulative regret and reports every other metric as its running mean up to t.
        """
        columns = {"regret": sums["regret"]}
        for m in self.metric_names:
            columns[m] = sums[m] / t[None, :]
        return columns
