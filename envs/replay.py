"""Replay evaluation on logged bandit feedback.

Li, Chu, Langford and Wang (2011), "Unbiased Offline Evaluation of Contextual-bandit-based News
Article Recommendation Algorithms" (WSDM), Algorithm 1 ("Policy_Evaluator"): a log of events
(context x_i, logged arm a_i, reward r_i) collected by a uniformly random logging policy is
streamed past the learner; on an event where the learner's choice equals a_i the event is
added to the learner's history and r_i to the evaluation total, otherwise the event is skipped.
Their Theorem 1: with uniform logging the events the learner keeps are distributed as in a live
run, so the mean kept reward is an unbiased estimate of the learner's per-round reward.

The log is a table (Parquet, CSV or NPZ, read by ``envs.dataset.read_table``) with columns named
by ``features`` (default: every other column), ``action`` (the logged arm, 0 .. K-1),
``reward`` and, optionally, ``propensity`` (the logging probability p_i of a_i given x_i, in
(0, 1]; without the column the log is taken as uniform, p_i = 1/K). K is ``arms`` or, by
default, 1 + the largest logged action.

Fixed-shape adaptation (docs/design.md, "The two protocols"): each round draws one row
(``sampling``: 'permutation', default, walks a per-run random order of the rows and starts a
new order after the last one; 'replacement' draws uniform rows; both from counter-based keys,
``envs.dataset.draw_row``, so nothing depends on batch size). The learner sees the row's
context (``arm_features`` layout and ``bias``, envs/contexts.py) and acts; the Feedback item
holds the logged reward and is valid (mask True) only when the action equals the logged one,
so a learner's masked-feedback handling leaves its state unchanged on every other round.

What differs from Li et al.: the runner's round counter t advances on every round, matched or
not, so a learner whose rule depends on t (log t in UCB indices, EXP3's or a decaying epsilon's
schedule, a refit every n rounds) sees about K times as many rounds as it has kept events, where
in Algorithm 1 its clock counts kept events only; with 'permutation' and a horizon of at most the
number of rows, the rows are Algorithm 1's stream in random order; beyond that rows repeat (a new
order each pass), which Li et al. do not do.

Reported (``metrics``; w_i = 1 / (K p_i), so w_i = 1 under uniform logging):
- ``replay_value``: the self-normalised importance-weighted mean of the kept rewards,
  sum_i [A_i = a_i] w_i r_i / sum_i [A_i = a_i] w_i, over the rounds up to t: under uniform
  logging exactly Algorithm 1's estimate (the mean reward of the matched rounds); with other
  propensities the self-normalised estimator (SNIPS) of the value of a fixed policy; Li et al.'s
  unbiasedness for learning policies holds for uniform logging only. NaN until a round matches.
- ``effective_samples``: Kish's effective sample size (sum w)^2 / sum w^2 of the matched rounds:
  the number of matched rounds under uniform logging.
- ``regret``: regret is not observable from a log (only the logged arm's reward is known), so
  this column is the inverse-propensity (Horvitz and Thompson 1952) estimate of the cumulative
  regret against the best single arm of the log: per round, v* - [A_t = a_i] r_i / p_i, where
  v* = max_a (1/N) sum_i [a_i = a] r_i / p_i is the best arm's IPS value over the whole table.
  Each term is unbiased given the past; a single term is negative when the learner matches a
  rewarding row, so the column can decrease, and it is negative for a learner that beats the
  best single arm (``logged_feedback`` tells the rest of the suite so).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
from flax import struct

from envs import contexts, randomness
from envs.core import (Array, ConfigError, EnvSpec, Environment, Metric, Observation, Setting,
                       StepInfo, immediate_feedback, register_env)
from envs.dataset import (MAX_TABLE_BYTES, SAMPLINGS, draw_row, feature_matrix, numeric_columns,
                          read_table, require_columns, standardised)

DEFAULT_PROPENSITY = "propensity"


@dataclasses.dataclass(frozen=True)
class Log:
    """A log as arrays: the static structure of one ``replay`` environment."""

    features: np.ndarray        # [N, c] float32 (standardised when asked; no bias)
    actions: np.ndarray         # [N] int32 logged arm
    rewards: np.ndarray         # [N] float32 logged reward
    propensities: np.ndarray    # [N] float32 logging probability of the logged arm
    num_arms: int
    feature_names: tuple = ()

    @property
    def rows(self) -> int:
        return int(self.actions.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in (self.features, self.actions, self.rewards,
                                           self.propensities))

    def arm_values(self) -> np.ndarray:
        """[K] IPS value of always playing each arm: (1/N) sum_i [a_i = a] r_i / p_i."""
        ips = self.rewards.astype(np.float64) / self.propensities.astype(np.float64)
        return np.bincount(self.actions, weights=ips, minlength=self.num_arms) / self.rows


def _first_bad(bad: np.ndarray, values: np.ndarray) -> str:
    row = int(np.argmax(bad))
    return f"{int(bad.sum())} rows (first: row {row}, value {values[row]:g})"


def load_log(values: Mapping[str, Any], where: str = "env") -> Log:
    """The log a ``replay`` config names, under its column mapping (one-line ConfigErrors)."""
    path = values.get("path")
    if path is None:
        raise ConfigError(f"{where}.path: required (a Parquet, CSV or NPZ log with feature, "
                          f"action, reward and optionally propensity columns)")
    frame = read_table(path, where)
    action, reward = values["action"], values["reward"]
    propensity = values.get("propensity")
    if propensity is None and DEFAULT_PROPENSITY in frame.columns:
        propensity = DEFAULT_PROPENSITY
    require_columns(frame, "action", [action], where)
    require_columns(frame, "reward", [reward], where)
    if propensity is not None:
        require_columns(frame, "propensity", [propensity], where)
    used = [action, reward] + ([propensity] if propensity is not None else [])
    if len(set(used)) != len(used):
        raise ConfigError(f"{where}: action, reward and propensity name the same column "
                          f"({', '.join(repr(u) for u in used)}); give three different columns")

    logged = numeric_columns(frame, "action", [action], where)[:, 0]
    fractional = logged != np.round(logged)
    if fractional.any():
        raise ConfigError(f"{where}.action: column {action!r} has non-integer values in "
                          f"{_first_bad(fractional, logged)}; actions are arm indices 0 .. K-1")
    arms = values.get("arms")
    k = int(arms) if arms is not None else int(logged.max()) + 1
    outside = (logged < 0) | (logged >= k)
    if outside.any():
        raise ConfigError(f"{where}.action: column {action!r} has values outside [0, {k}) in "
                          f"{_first_bad(outside, logged)}; actions are arm indices 0 .. K-1"
                          + ("" if arms is None else f" (arms = {k})"))
    if k < 2:
        raise ConfigError(f"{where}.action: column {action!r} logs only arm 0; a bandit needs "
                          f"at least 2 arms (set arms when the log never shows the others)")
    rewards = numeric_columns(frame, "reward", [reward], where)[:, 0]
    if propensity is not None:
        p = numeric_columns(frame, "propensity", [propensity], where)[:, 0]
        bad = ~((p > 0) & (p <= 1))
        if bad.any():
            raise ConfigError(f"{where}.propensity: column {propensity!r} has values outside "
                              f"(0, 1] in {_first_bad(bad, p)}; a propensity is the "
                              f"probability with which the logging policy chose the logged arm")
    else:
        p = np.full(len(frame), 1.0 / k)

    features, x = feature_matrix(frame, values.get("features"), used, where,
                                 "the action, reward or propensity column; a feature must "
                                 "not reveal them")
    if len(frame) < 2:
        raise ConfigError(f"{where}.path = {path!r}: the log has {len(frame)} rows; at least 2 "
                          f"are needed")
    if values.get("standardise"):
        x = standardised(x)
    log = Log(features=x.astype(np.float32), actions=logged.astype(np.int32),
              rewards=rewards.astype(np.float32), propensities=p.astype(np.float32),
              num_arms=k, feature_names=tuple(features))
    if log.nbytes > MAX_TABLE_BYTES:
        raise ConfigError(f"{where}: the log takes {log.nbytes / 2 ** 20:.0f} MiB as float32, "
                          f"more than the {MAX_TABLE_BYTES / 2 ** 20:.0f} MiB a compiled round "
                          f"may hold; use fewer rows or features")
    return log


@struct.dataclass
class ReplayState:
    t: Array
    row: Array          # this round's row of the log
    order_key: Array    # the run's permutation key ('permutation')


@register_env("replay")
class Replay(Environment):
    """Li et al. (2011) replay of a uniformly logged table: feedback only on matched rounds."""

    settings = (
        Setting("path", None, "the log: a Parquet, CSV or NPZ table (relative paths: from the "
                "config file's folder)", kind="path", static=True, optional=True),
        Setting("features", None, "context columns (default: every column that is not the "
                "action, reward or propensity column)", kind="names", static=True,
                optional=True),
        Setting("action", "action", "the logged arm's column (integers 0 .. K-1)", kind=str,
                static=True),
        Setting("reward", "reward", "the logged reward's column", kind=str, static=True),
        Setting("propensity", None, "the logging probability's column, values in (0, 1] "
                "(default: 'propensity' if the log has it, else uniform logging, 1/K)",
                kind=str, static=True, optional=True),
        Setting("arms", None, "K, the number of arms (default: 1 + the largest logged action)",
                kind=int, static=True, optional=True, low=2),
        Setting("sampling", "permutation", "rows: 'permutation' (each pass a per-run random "
                "order; one pass is Li et al.'s stream) or 'replacement' (i.i.d. uniform)",
                kind=str, static=True, choices=SAMPLINGS),
        Setting("standardise", False, "centre and scale every feature column", kind=bool,
                static=True),
        contexts.BIAS,
        contexts.ARM_FEATURES,
    )
    metric_names = ("matched_weight", "matched_reward", "matched_weight_squared")
    metrics = (Metric("regret", "replay (IPS) estimate of cumulative regret against the best "
                      "single arm of the log", figure=True),
               Metric("replay_value", "replay estimate of the per-round reward up to t",
                      figure=True),
               Metric("effective_samples", "effective sample size of the replay estimate "
                      "(matched rounds under uniform logging)"))
    logged_feedback = True

    def __init__(self, **static: Any):
        super().__init__(**static)
        self.log = load_log(static)
        weights = 1.0 / (self.log.num_arms * self.log.propensities.astype(np.float64))
        self.weights = weights.astype(np.float32)                    # w_i = 1 / (K p_i)
        self.best_value = np.float32(self.log.arm_values().max())    # v*

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        load_log(values, where)            # every column error, before anything is traced

    @property
    def spec(self) -> EnvSpec:
        k = self.log.num_arms
        d = contexts.feature_dim(self.log.features.shape[1], k, self.arm_features, self.bias)
        low, high = float(self.log.rewards.min()), float(self.log.rewards.max())
        bernoulli = bool(np.isin(self.log.rewards, (0.0, 1.0)).all())
        reward_range = (0.0, 1.0) if bernoulli or (low >= 0.0 and high <= 1.0) else None
        return EnvSpec(num_arms=k, feature_dim=d, reward_range=reward_range,
                       bernoulli_rewards=bernoulli)

    def row_features(self, row: Array) -> Array:
        return contexts.arm_features(jnp.asarray(self.log.features)[row], self.log.num_arms,
                                     self.arm_features, self.bias)

    # -- protocol -------------------------------------------------------------------------------
    def sample_params(self, key: Array, settings: Mapping[str, Array]) -> Array:
        return jnp.zeros((), jnp.float32)       # nothing is drawn: the log is the instance

    def reset(self, key: Array, params: Any) -> ReplayState:
        order_key = randomness.subkey(key, 0)
        t = jnp.zeros((), jnp.int32)
        return ReplayState(t=t, row=draw_row(key, order_key, t, self.log.rows, self.sampling),
                           order_key=order_key)

    def observe(self, key: Array, state: ReplayState, params: Any) -> Observation:
        return Observation(features=self.row_features(state.row), t=state.t)

    def step(self, key: Array, state: ReplayState, action: Array, params: Any):
        row = state.row
        matched = jnp.asarray(action, jnp.int32) == jnp.asarray(self.log.actions)[row]
        reward = jnp.asarray(self.log.rewards)[row]
        propensity = jnp.asarray(self.log.propensities)[row]
        weight = jnp.where(matched, jnp.asarray(self.weights)[row], 0.0)
        feedback = immediate_feedback(action, self.row_features(row),
                                      jnp.where(matched, reward, 0.0), state.t)
        feedback = feedback.replace(mask=matched.reshape(1))
        ips_reward = jnp.where(matched, reward / propensity, 0.0)
        info = StepInfo(regret=self.best_value - ips_reward,
                        metrics={"matched_weight": weight, "matched_reward": weight * reward,
                                 "matched_weight_squared": weight * weight})
        t = state.t + 1
        next_state = ReplayState(t=t, row=draw_row(key, state.order_key, t, self.log.rows,
                                                   self.sampling), order_key=state.order_key)
        return next_state, feedback, info

    def metric_columns(self, sums: Mapping[str, np.ndarray], t: np.ndarray
                       ) -> dict[str, np.ndarray]:
        """regret: the summed IPS terms; replay_value and effective_samples from the sums of
        w, w r and w^2 over matched rounds (module docstring)."""
        weight = np.asarray(sums["matched_weight"], np.float64)
        squares = np.asarray(sums["matched_weight_squared"], np.float64)
        some = weight > 0
        value = np.where(some, sums["matched_reward"] / np.where(some, weight, 1.0), np.nan)
        samples = np.where(squares > 0, weight * weight / np.where(squares > 0, squares, 1.0),
                           0.0)
        return {"regret": sums["regret"], "replay_value": value, "effective_samples": samples}
