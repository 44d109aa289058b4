"""Contextual bandits from full-information tables: classification data and routing tables.

A table holds one row per context: feature columns, and for every arm a reward (and optionally
a cost). Each round one row is drawn; the learner sees its features, plays an arm and observes
that arm's reward in the row; the pseudo-regret is the best arm's reward in the row minus the
chosen arm's (regret against the best arm of the drawn row).

- Classification data as a bandit: Riquelme, Tucker and Snoek (2018), "Deep Bayesian Bandits
  Showdown" (ICLR), their real-data problems (one arm per class, reward 1 for the right label
  and 0 otherwise, or other reward / penalty values), the construction also used by Dudik,
  Langford and Li (2011), "Doubly Robust Policy Evaluation and Learning" (ICML), in their
  multiclass experiments (and by Vowpal Wabbit's ``--cbify``). ``label`` names the class
  column; its sorted distinct values are the arms; the right arm pays ``label_reward``, every
  other arm ``label_penalty``.
- Routing tables (RouterBench, Hu et al. 2024, sec. 3): for every prompt each model's quality
  and cost. With ``costs`` the reward is the objective of envs/routing.py,
  quality - lambda * cost (lambda = ``cost_weight``), Feedback.extras carries 'quality' and
  'cost' (so ``budgeted_linucb`` runs unchanged), Observation.expected_rewards is the row's
  objective (so the ``oracle`` runs), and the metrics ``quality``, ``cost`` and ``share.<arm>``
  feed the Pareto front and AIQ of analysis/routing.py. Costs are used in the table's own unit
  (``banditjax export`` of ``routing`` writes the normalised cost of envs/routing.py).

Rows (``sampling``): ``replacement``: each round an independent uniform row (i.i.d. contexts,
the draw from the step key, so two learners on one run key see the same rows);
``permutation``: pass p over the table visits the rows in the order of a per-run random
permutation (``envs.randomness.permuted_index``: a keyed bijection, nothing stored; a new
permutation every pass). Both are functions of the run key and the round only (docs/design.md,
"Random numbers"): results do not depend on batch size.

Column mapping (defaults): ``rewards`` and ``label`` absent: the reward columns are those named
``reward.<arm>`` (the layout ``banditjax export`` writes) and, when every arm has one,
``cost.<arm>`` are the costs; a ``preset`` uses its class column. ``features`` absent: every
column that is not a reward, cost or label column and not named ``reward.*`` or ``cost.*``. ``standardise``: each feature column minus
its mean, divided by its standard deviation (constant columns are only centred). ``bias``
appends a constant 1.

Features per arm (``arm_features``): ``replicated``: every arm's row is the context (x, 1), the
layout of disjoint LinUCB (Li, Chu, Langford and Schapire 2010, sec. 3.1: one regression per
arm on a shared context; ``linucb``, ``budgeted_linucb``, ``model = 'disjoint'``);
``block``: arm a's row is the context in block a of K blocks and zeros elsewhere
(x e_a^T flattened, dimension K d), so a learner with one shared parameter (``lints`` /
``oful`` in the shared model, ``glm_ucb``, the neural learners) fits one parameter block per
arm; with replicated features such a learner cannot tell the arms apart.

The table is static structure (docs/design.md, "The two protocols"): NumPy arrays on the Python
object, closed over by the compiled round as constants, so they are on the device once per
compiled function and never in the per-run state (which is the round, the row and an 8-byte
permutation key). Tables above ``MAX_TABLE_BYTES`` are refused (README, "Real data").

Files: Parquet, CSV or NPZ (1-D arrays are columns; a 2-D array ``X`` of width m gives columns
``X.0`` ... ``X.<m-1>``). Presets: scikit-learn's bundled datasets (digits, wine,
breast_cancer, iris), behind the optional extra ``datasets``; nothing is downloaded.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import struct

from envs import contexts, randomness
from envs.core import (REGRET, Array, ConfigError, EnvSpec, Environment, Metric, Observation,
                       Setting, StepInfo, arm_max, closest, immediate_feedback, register_env,
                       take_arm)

PRESETS = ("digits", "wine", "breast_cancer", "iris")
PRESET_LABEL = "target"            # the class column of a preset (scikit-learn's as_frame)
SAMPLINGS = ("replacement", "permutation")
EXTENSIONS = (".parquet", ".csv", ".npz")
REWARD_PREFIX, COST_PREFIX, FEATURE_PREFIX = "reward.", "cost.", "x."
# Bytes of the float32 arrays held as constants of the compiled round. Each compiled function
# (the chunk, and a remainder chunk) embeds them, and XLA serialises a program through a
# protocol buffer limited to 2 GiB; compile time grows about 2 s per 100 MB (measured, 2-core
# CPU). 1 GiB keeps well inside both.
MAX_TABLE_BYTES = 2 ** 30


# ---------------------------------------------------------------------------------------------
# Reading a table (host side).
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _read(path: str, stamp: float) -> pd.DataFrame:
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    with np.load(path, allow_pickle=False) as archive:
        columns = {}
        for name in archive.files:
            array = archive[name]
            if array.ndim == 1:
                columns[name] = array
            elif array.ndim == 2:
                columns.update({f"{name}.{j}": array[:, j] for j in range(array.shape[1])})
            else:
                raise ConfigError(f"env.path = {path!r}: array {name!r} has {array.ndim} "
                                  f"dimensions; an NPZ table holds 1-D columns or 2-D blocks")
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ConfigError(f"env.path = {path!r}: its arrays have different lengths "
                              f"{sorted(lengths)}; every column needs one value per row")
        return pd.DataFrame(columns)


def read_table(path: str, where: str = "env") -> pd.DataFrame:
    """The table in a Parquet, CSV or NPZ file (cached per file and modification time)."""
    if Path(path).suffix.lower() not in EXTENSIONS:
        raise ConfigError(f"{where}.path = {path!r}: unsupported file type; expected one of "
                          f"{', '.join(EXTENSIONS)}")
    if not os.path.isfile(path):
        raise ConfigError(f"{where}.path = {path!r}: no such file (a relative path in a config "
                          f"file is relative to the config file's folder)")
    try:
        return _read(os.path.abspath(path), os.path.getmtime(path))
    except ConfigError:
        raise
    except Exception as error:          # a parser's own message, on one line
        message = " ".join(str(error).split())
        raise ConfigError(f"{where}.path = {path!r}: cannot be read: {message}")


def load_preset(name: str, where: str = "env") -> pd.DataFrame:
    """A scikit-learn bundled dataset as a frame (features and the class column 'target')."""
    try:
        from sklearn import datasets
    except ModuleNotFoundError:
        raise ConfigError(f"{where}.preset = {name!r}: needs scikit-learn, the optional extra "
                          f"'datasets' (pip install 'banditjax[datasets]')") from None
    return getattr(datasets, f"load_{name}")(as_frame=True).frame


# ---------------------------------------------------------------------------------------------
# The column mapping.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Table:
    """A table as arrays: the static structure of one ``dataset`` environment."""

    features: np.ndarray            # [N, d] float32 (standardised when asked; no bias)
    rewards: np.ndarray | None      # [N, K] float32 (reward columns), or None (label mode)
    labels: np.ndarray | None       # [N] int32 class index (label mode), or None
    costs: np.ndarray | None        # [N, K] float32, or None
    feature_names: tuple = ()
    arm_names: tuple = ()

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_arms(self) -> int:
        return len(self.arm_names)

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in (self.features, self.rewards, self.labels, self.costs)
                   if a is not None)


def require_columns(frame: pd.DataFrame, field: str, names: list[str], where: str) -> None:
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name not in frame.columns:
            shown = ", ".join(columns[:8]) + (f", ... ({len(columns)} columns)"
                                              if len(columns) > 8 else "")
            raise ConfigError(f"{where}.{field}: column {name!r} is not in the table"
                              f"{closest(name, columns)}; columns: {shown}")


def numeric_columns(frame: pd.DataFrame, field: str, names: list[str], where: str) -> np.ndarray:
    """[N, len(names)] float64 of numeric, finite columns (else a one-line ConfigError)."""
    out = np.zeros((len(frame), len(names)), np.float64)
    for j, name in enumerate(names):
        column = frame[name]
        if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
            raise ConfigError(f"{where}.{field}: column {name!r} is not numeric (dtype "
                              f"{column.dtype}); encode it as numbers or leave it out")
        values = column.to_numpy(np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            raise ConfigError(f"{where}.{field}: column {name!r} has {int(bad.sum())} NaN or "
                              f"infinite values (first at row {int(np.argmax(bad))}); drop or "
                              f"fill them first")
        out[:, j] = values
    return out


def check_unique(field: str, names: list[str], where: str) -> None:
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"{where}.{field}: column(s) {twice} listed twice; list each once")


def feature_matrix(frame: pd.DataFrame, features: list[str] | None, used: list[str], where: str,
                   reveals: str) -> tuple[list[str], np.ndarray]:
    """(names, [rows, d] float matrix) of the feature columns: ``features``, or every column not
    in ``used`` when None; a named column that is also in ``used`` is refused (it is
    ``reveals``)."""
    if features is None:
        features = [str(c) for c in frame.columns if str(c) not in used]
    else:
        check_unique("features", features, where)
        require_columns(frame, "features", features, where)
        overlap = [f for f in features if f in used]
        if overlap:
            raise ConfigError(f"{where}.features: column {overlap[0]!r} is also {reveals}")
    return features, numeric_columns(frame, "features", features, where)


def standardised(x: np.ndarray) -> np.ndarray:
    """Every column minus its mean, divided by its standard deviation (constant columns: 1)."""
    spread = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def table_from_frame(frame: pd.DataFrame, values: Mapping[str, Any], where: str = "env"
                     ) -> Table:
    """The arrays of ``frame`` under the column mapping of ``values`` (the env settings)."""
    label, rewards, costs = values.get("label"), values.get("rewards"), values.get("costs")
    if label is None and rewards is None:
        if values.get("preset") is not None:
            label = PRESET_LABEL
        else:
            rewards = [str(c) for c in frame.columns if str(c).startswith(REWARD_PREFIX)]
            if not rewards:
                raise ConfigError(f"{where}.rewards: not given and the table has no "
                                  f"'{REWARD_PREFIX}<arm>' columns; give rewards (one column "
                                  f"per arm) or label (a class column)")
            arms = [r[len(REWARD_PREFIX):] for r in rewards]
            if costs is None and all(COST_PREFIX + a in frame.columns for a in arms):
                costs = [COST_PREFIX + a for a in arms]
    used: list[str] = []
    labels = reward_array = None
    if label is not None:
        require_columns(frame, "label", [label], where)
        column = frame[label]
        if column.isna().any():
            raise ConfigError(f"{where}.label: column {label!r} has {int(column.isna().sum())} "
                              f"missing values (first at row {int(np.argmax(column.isna()))})")
        classes, labels = np.unique(column.to_numpy(), return_inverse=True)
        arm_names = tuple(str(c) for c in classes)
        labels = labels.astype(np.int32)
        used.append(label)
    else:
        check_unique("rewards", rewards, where)
        require_columns(frame, "rewards", rewards, where)
        reward_array = numeric_columns(frame, "rewards", rewards, where).astype(np.float32)
        arm_names = tuple(r[len(REWARD_PREFIX):] if r.startswith(REWARD_PREFIX) else r
                          for r in rewards)
        used += rewards
    k = len(arm_names)
    if k < 2:
        what = f"column {label!r} has one class" if label is not None else "one reward column"
        raise ConfigError(f"{where}.{'label' if label is not None else 'rewards'}: {what}; a "
                          f"bandit needs at least 2 arms")
    cost_array = None
    if costs is not None and len(costs) > 0:
        check_unique("costs", costs, where)
        if len(costs) != k:
            raise ConfigError(f"{where}.costs has {len(costs)} columns but there are {k} arms; "
                              f"give one cost column per arm, in arm order")
        require_columns(frame, "costs", costs, where)
        cost_array = numeric_columns(frame, "costs", costs, where).astype(np.float32)
        used += costs
    named = values.get("features")
    # By default every column not used otherwise, and never an exported reward or cost column.
    hidden = used if named is not None else used + [
        str(c) for c in frame.columns if str(c).startswith((REWARD_PREFIX, COST_PREFIX))]
    features, x = feature_matrix(frame, named, hidden, where,
                                 "a reward, cost or label column; a feature must not "
                                 "reveal the rewards")
    rows = len(frame)
    if rows < max(2, k):
        raise ConfigError(f"{where}: the table has {rows} rows but {k} arms; at least max(2, "
                          f"number of arms) rows are needed")
    if values.get("standardise"):
        x = standardised(x)
    return Table(features=x.astype(np.float32), rewards=reward_array, labels=labels,
                 costs=cost_array, feature_names=tuple(features), arm_names=arm_names)


_MAPPING = ("path", "preset", "features", "rewards", "label", "costs", "standardise")


def load_table(values: Mapping[str, Any], where: str = "env") -> Table:
    """The table a ``dataset`` config names (``path`` or ``preset``) under its mapping (cached:
    the config layer checks every combination of a sweep, then builds one object per group)."""
    key = tuple(tuple(v) if isinstance(v, list) else v
                for v in (values.get(name) for name in _MAPPING))
    path = values.get("path")
    stamp = os.path.getmtime(path) if path is not None and os.path.isfile(path) else None
    table = _load_table(key + (stamp,), where)
    if table.nbytes > MAX_TABLE_BYTES:
        raise ConfigError(f"{where}: the table takes {table.nbytes / 2 ** 20:.0f} MiB as float32, "
                          f"more than the {MAX_TABLE_BYTES / 2 ** 20:.0f} MiB a compiled round "
                          f"may hold; use fewer rows or features")
    return table


@functools.lru_cache(maxsize=8)
def _load_table(key: tuple, where: str) -> Table:
    values = dict(zip(_MAPPING, (list(v) if isinstance(v, tuple) else v for v in key)))
    return _load_uncached(values, where)


def _load_uncached(values: Mapping[str, Any], where: str) -> Table:
    path, preset = values.get("path"), values.get("preset")
    if (path is None) == (preset is None):
        raise ConfigError(f"{where}: give exactly one of path (a Parquet, CSV or NPZ file) or "
                          f"preset (one of {', '.join(PRESETS)})"
                          + ("" if path is None else f"; both given: {path!r}, {preset!r}"))
    if preset is not None and values.get("rewards") is not None:
        raise ConfigError(f"{where}.rewards: a preset is a classification dataset; use label "
                          f"(default {PRESET_LABEL!r}), not rewards")
    if values.get("label") is not None and values.get("rewards") is not None:
        raise ConfigError(f"{where}: give rewards (one column per arm) or label (a class "
                          f"column), not both")
    frame = read_table(path, where) if path is not None else load_preset(preset, where)
    return table_from_frame(frame, values, where)


def draw_row(key: Array, order_key: Array, t: Array, rows: int, sampling: str) -> Array:
    """The row of round t of a table of ``rows`` rows (shared with envs/replay.py):
    'replacement': uniform from ``key``; 'permutation': position t mod rows of the per-run
    permutation of pass t // rows (``randomness.permuted_index`` under ``order_key``)."""
    if sampling == "replacement":
        return (randomness.words(key, 1)[0] % np.uint32(rows)).astype(jnp.int32)
    t = jnp.asarray(t, jnp.uint32)
    return randomness.permuted_index(order_key, t % np.uint32(rows), rows, t // np.uint32(rows))


# ---------------------------------------------------------------------------------------------
# The environment.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class DatasetParams:
    cost_weight: Array          # [] lambda (used with costs only)


@struct.dataclass
class DatasetState:
    t: Array                    # [] round
    row: Array                  # [] int32, the row of this round
    order_key: Array            # [2] uint32, the key of this run's permutations


@register_env("dataset")
class Dataset(Environment):
    """A full-information table, one row a round (Riquelme et al. 2018; Li et al. 2010).

    Regret is against the drawn row's best arm."""

    settings = (
        Setting("path", None, "a Parquet, CSV or NPZ table (relative paths: from the config "
                "file's folder)", kind="path", static=True, optional=True),
        Setting("preset", None, "a scikit-learn bundled dataset (needs the 'datasets' extra)",
                kind=str, static=True, optional=True, choices=PRESETS),
        Setting("features", None, "feature columns (default: every column that is not a "
                "reward, cost or label column, nor named 'reward.*' or 'cost.*')", kind="names",
                static=True, optional=True),
        Setting("rewards", None, "one reward column per arm (default: the 'reward.<arm>' "
                "columns)", kind="names", static=True, optional=True),
        Setting("label", None, "a class column: one arm per class, label_reward for the right "
                "one (default for a preset: 'target')", kind=str, static=True, optional=True),
        Setting("label_reward", 1.0, "reward of the right arm (label mode)", static=True),
        Setting("label_penalty", 0.0, "reward of every wrong arm (label mode)", static=True),
        Setting("costs", None, "one cost column per arm: reward = quality - cost_weight * "
                "cost (default: the 'cost.<arm>' columns when every arm has one; [] for none)",
                kind="names", static=True, optional=True),
        Setting("cost_weight", 0.1, "lambda: objective = quality - lambda * cost (with costs)",
                low=0.0),
        Setting("sampling", "replacement", "rows: 'replacement' (i.i.d. uniform) or "
                "'permutation' (each pass a per-run random order)", kind=str, static=True,
                choices=SAMPLINGS),
        Setting("standardise", False, "centre and scale every feature column", kind=bool,
                static=True),
        contexts.BIAS,
        contexts.ARM_FEATURES,
    )
    metrics = (REGRET, Metric("quality", "mean quality up to t"),
               Metric("cost", "mean cost up to t"))
    figures = ("analysis.routing:plot_routing",)   # Pareto front and AIQ (tables with costs)

    def __init__(self, **static: Any):
        super().__init__(**static)
        self.table = load_table(static)
        self.costed = self.table.costs is not None
        self.metric_names = (("quality", "cost") + tuple(
            f"share.{a}" for a in self.table.arm_names)) if self.costed else ()

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        if values["label_reward"] <= values["label_penalty"]:
            raise ConfigError(f"{where}.label_reward = {values['label_reward']!r}: must be "
                              f"greater than label_penalty = {values['label_penalty']!r}")
        load_table(values, where)            # every column error, before anything is traced

    # -- static facts ---------------------------------------------------------------------------
    @property
    def num_arms(self) -> int:
        return self.table.num_arms

    @property
    def context_dim(self) -> int:
        """d: the feature columns, plus one with ``bias``."""
        return self.table.features.shape[1] + int(self.bias)

    @property
    def spec(self) -> EnvSpec:
        k, d = self.num_arms, self.context_dim
        if self.costed:
            reward_range, bernoulli = None, False
        elif self.table.labels is not None:
            reward_range = (float(self.label_penalty), float(self.label_reward))
            bernoulli = reward_range == (0.0, 1.0)
        else:
            low, high = float(self.table.rewards.min()), float(self.table.rewards.max())
            reward_range = (low, high) if high > low else None
            bernoulli = bool(np.isin(self.table.rewards, (0.0, 1.0)).all())
        return EnvSpec(num_arms=k, feature_dim=d * k if self.arm_features == "block" else d,
                       reward_range=reward_range, bernoulli_rewards=bernoulli,
                       feedback_extras=("quality", "cost") if self.costed else (),
                       expected_rewards=True)

    # -- rows -----------------------------------------------------------------------------------
    def draw_row(self, key: Array, order_key: Array, t: Array) -> Array:
        """The row of round t (``draw_row`` of this table's rows and ``sampling``)."""
        return draw_row(key, order_key, t, self.table.rows, self.sampling)

    def row_quality(self, row: Array) -> Array:
        """The reward (quality) of every arm in a row ([K])."""
        if self.table.labels is not None:
            right = jnp.asarray(self.table.labels)[row]
            return jnp.where(jnp.arange(self.num_arms) == right,
                             jnp.float32(self.label_reward), jnp.float32(self.label_penalty))
        return jnp.asarray(self.table.rewards)[row]

    def row_cost(self, row: Array) -> Array:
        return jnp.asarray(self.table.costs)[row]

    def row_objective(self, row: Array, params: DatasetParams) -> Array:
        """quality - lambda * cost of every arm (the quality alone without costs) ([K])."""
        if not self.costed:
            return self.row_quality(row)
        return self.row_quality(row) - params.cost_weight * self.row_cost(row)

    def row_features(self, row: Array) -> Array:
        """[K, d] (replicated) or [K, K d] (block) features of a row."""
        return contexts.arm_features(jnp.asarray(self.table.features)[row], self.num_arms,
                                     self.arm_features, self.bias)

    # -- protocol -------------------------------------------------------------------------------
    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> DatasetParams:
        return DatasetParams(cost_weight=jnp.asarray(settings.get("cost_weight", 0.0),
                                                     jnp.float32))

    def reset(self, key: Array, params: DatasetParams) -> DatasetState:
        order_key = randomness.subkey(key, 0)
        t = jnp.zeros((), jnp.int32)
        return DatasetState(t=t, row=self.draw_row(key, order_key, t), order_key=order_key)

    def observe(self, key: Array, state: DatasetState, params: DatasetParams) -> Observation:
        return Observation(features=self.row_features(state.row), t=state.t,
                           expected_rewards=self.row_objective(state.row, params))

    def step(self, key: Array, state: DatasetState, action: Array, params: DatasetParams):
        objective = self.row_objective(state.row, params)
        chosen = take_arm(objective, action)
        extras, metrics = {}, {}
        if self.costed:
            quality = take_arm(self.row_quality(state.row), action)
            cost = take_arm(self.row_cost(state.row), action)
            extras = {"quality": quality, "cost": cost}
            hot = jax.nn.one_hot(action, self.num_arms)
            metrics = {"quality": quality, "cost": cost}
            metrics.update({f"share.{a}": hot[i] for i, a in enumerate(self.table.arm_names)})
        feedback = immediate_feedback(action, self.row_features(state.row), chosen, state.t,
                                      extras=extras)
        info = StepInfo(regret=arm_max(objective) - chosen, metrics=metrics)
        t = state.t + 1
        next_state = DatasetState(t=t, row=self.draw_row(key, state.order_key, t),
                                  order_key=state.order_key)
        return next_state, feedback, info
