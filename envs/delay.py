"""Stochastic delayed (and censored) feedback around any environment: the ``Delayed`` wrapper.

The feedback of the action taken in round s arrives at the end of round s + D_s, with D_s >= 0 an
integer delay drawn i.i.d. from a configured distribution, and is lost for good ("censored") when
D_s > W, the censoring window. This is the model of Joulani, Gyorgy and Szepesvari (2013,
"Online learning under delayed feedback", sec. 2) with the censoring of Vernade, Cappe and
Perchet (2017, "Stochastic bandit models for delayed conversions") and Vernade, Carpentier,
Lattimore, Zappella, Ermis and Brueckner (2020, "Linear bandits with stochastic delayed feedback",
sec. 2: window m, and only positive outcomes -- conversions -- are ever disclosed). Delays may
depend on the outcome (a positive reward, or the first arm winning a duel, arriving at another
speed than a negative one), the case where learning only from what has arrived is biased.

The delay laws (``dist``: fixed, geometric, uniform, pareto, poisson; outcome-dependent
parameters ``p_negative``), their CDFs and sampling live in ``envs.delay_laws``, shared with the
learners that are told the law; their names are re-exported here.

The pending feedback sits in a fixed-capacity ring buffer in the environment state, a calendar
queue: ``capacity`` rows of ``batch`` slots, row r holding the items due at the end of a round
u = r (mod capacity), each slot a stored ``Feedback`` item with its due round. Each round the
wrapper
1. steps the inner environment with the unchanged key (so zero delay reproduces it exactly),
2. draws one delay per valid feedback item from ``fold_in(key, DELAY_STREAM)`` (one uniform by
   inversion, the same for both outcome laws; Poisson uses JAX's sampler),
3. censors items with D > window, and (``positives_only``) never discloses a reward <= 0,
4. writes each remaining item into the first free slot of row (t + D) mod capacity,
5. releases row t mod capacity: every item due now, the masked ``Feedback`` batch of static size
   ``batch`` (so ``spec.feedback_size = batch``); items with D = 0 go out in the same round.
Per round and run this is O(batch) work (a gather of one row, one scatter per new item), never
O(capacity); each stored item is one packed int32 record (``ItemLayout``). What a long buffer
does cost is cache misses once the buffers of all runs outgrow the caches: measured on the
shared 2-core CPU, 1,000 runs, the wrapper alone (no learner), geometric delays of mean 20,
about 90 ns per run and round at capacity 64 and 220 ns at 1024 (batch 8), 130 ns at 1024 with
batch 2. Set ``capacity`` to what the delays need (a bit above the largest delay that matters).

Buffer full, the documented choice (counted in ``buffer_drops``, never silent): an item is
dropped when it cannot be stored, that is when (a) its delay is >= capacity (the calendar does
not reach that far; with W = infinity the window is in effect capacity - 1, and a finite
W >= capacity is refused as a config error) or (b) ``batch`` items are already due in its
round. Nothing is ever released early or late: an item arrives exactly D rounds after it was
made, or never.

How ``batch`` is chosen: with one feedback item per round, the number due in a given round is a
sum of independent Bernoullis (one per earlier round s, P(D_s = t - s)) with mean at most 1, so
its tail is at most Poisson(1)'s (fixed delays give exactly 1). The default ``batch`` is the
smallest B with P(Poisson(B_in) > B) <= 1e-5 for B_in items per inner round: B = 8 for B_in = 1,
a drop rate of order 1e-6 per item. Learners fold over the batch (B updates a round, masked ones
included), so a smaller ``batch`` is faster at the price of (counted) drops.

Metrics: ``received`` (fraction of the feedback generated up to t that has reached the learner),
``mean_delay`` (mean observed delay of what has arrived; NaN before anything arrived),
``censored`` and ``buffer_drops`` (cumulative counts), beside the inner environment's own
metrics and regret, which are unchanged.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import (Array, ConfigError, EnvSpec, Environment, Feedback, Metric, Setting,
                       StepInfo, register_wrapper)
from envs.delay_laws import (DISTRIBUTIONS, LAW_PARAMETERS, MAX_DELAY,  # noqa: F401
                             NEGATIVE_SUFFIX, DelayLaw, DelayParams, arrival_probability,
                             check_delay_values, check_dist, delay_cdf, delay_settings,
                             mean_delay, sample_delay)

DELAY_STREAM = 0x0DE1A7          # fold_in constant: delay draws never reuse the inner env's key
BATCH_TAIL = 1e-5                # target P(more than `batch` items due in a round)


def default_batch(items_per_round: int, tail: float = BATCH_TAIL) -> int:
    """Smallest B with P(Poisson(items_per_round) > B) <= tail."""
    lam = float(items_per_round)
    term = cdf = math.exp(-lam)
    b = 0
    while 1.0 - cdf > tail:
        b += 1
        term *= lam / b
        cdf += term
    return max(b, 1)


# ---------------------------------------------------------------------------------------------
# The wrapper.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class DelayedParams:
    inner: Any
    delay: DelayParams


@struct.dataclass
class DelayedState:
    inner: Any
    records: Array         # [C, B, F] int32: row r holds the items due in a round = r (mod C);
                           # column 0 is the due round (a slot is pending iff due >= t), the
                           # rest the packed Feedback item (``ItemLayout``)
    t: Array               # int32: the current round


METRICS = ("delay_sent", "delay_arrived", "delay_total", "delay_censored", "buffer_drops")


@register_wrapper("delay")
class Delayed(Environment):
    """Delayed, censored feedback (Joulani et al. 2013; Vernade et al. 2017, 2020) of ``env``.

    The model and the ring buffer are in the module docstring."""

    settings = delay_settings() + (
        Setting("window", math.inf, "censoring window W: feedback with delay > W never arrives "
                "(inf: no censoring; the buffer still holds delays below capacity only)",
                low=0.0),
        Setting("capacity", 1024, "buffer rows (static): delays up to capacity - 1 can wait in "
                "it; a longer one is dropped and counted in buffer_drops", kind=int,
                static=True, low=1),
        Setting("batch", None, "slots per row = most items arriving in one round, the Feedback "
                "batch size (static; default: smallest B with P(Poisson(items per round) > B) "
                "<= 1e-5, 8 for one item per round); an item finding its row full is dropped "
                "and counted in buffer_drops", kind=int, static=True, low=1, optional=True),
        Setting("positives_only", False, "only rewards > 0 are ever disclosed (the conversions "
                "of Vernade et al. 2020); negative feedback never arrives", kind=bool,
                static=True),
    )
    # Added to the wrapped environment's metrics; recorded, not printed or drawn by default.
    metrics = (Metric("received", "fraction of feedback received", summary=False,
                      better="higher"),
               Metric("mean_delay", "mean observed delay", summary=False),
               Metric("censored", "censored feedback items", summary=False),
               Metric("buffer_drops", "items dropped by the buffer", summary=False))

    def __init__(self, env: Environment, **static: Any):
        super().__init__(**static)
        check_dist(self.dist)
        self.env = env
        self.items_per_round = env.spec.feedback_size
        if self.batch is None:
            self.batch = default_batch(self.items_per_round)
        self.metric_names = tuple(env.metric_names) + METRICS

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        check_delay_values(values, where)
        if values.get("positives_only"):
            given = [s.name for s in cls.settings
                     if s.name.endswith(NEGATIVE_SUFFIX) and values.get(s.name) is not None]
            if given:
                raise ConfigError(f"{where}.{given[0]}: has no effect with positives_only = true "
                                  f"(negative feedback is never disclosed)")
        window, capacity = values.get("window"), values.get("capacity")
        if window is not None and capacity is not None and math.isfinite(window) \
                and window >= capacity:
            raise ConfigError(f"{where}.window = {window:g}: the buffer holds delays up to "
                              f"capacity - 1 = {capacity - 1} rounds only; raise "
                              f"{where}.capacity above {window:g} or lower the window")

    @property
    def spec(self) -> EnvSpec:
        return dataclasses.replace(self.env.spec, feedback_size=self.batch)

    # -- protocol -------------------------------------------------------------------------
    def sample_params(self, key: Array, settings: Mapping[str, Any]) -> DelayedParams:
        settings = dict(settings)
        delay = dict(settings.pop("delay", {}))
        for s in self.dynamic_settings():          # defaults for direct (non-config) use
            if s.name not in delay and not s.optional:
                delay[s.name] = s.default
        return DelayedParams(inner=self.env.sample_params(key, settings),
                             delay=DelayParams.from_settings(delay))

    def reset(self, key: Array, params: DelayedParams) -> DelayedState:
        inner_state = self.env.reset(key, params.inner)
        layout = self._layout(key, inner_state, params.inner)
        records = jnp.zeros((self.capacity, self.batch, 1 + layout.width), jnp.int32)
        return DelayedState(inner=inner_state, records=records.at[:, :, 0].set(-1),
                            t=jnp.zeros((), jnp.int32))

    def observe(self, key: Array, state: DelayedState, params: DelayedParams):
        return self.env.observe(key, state.inner, params.inner)

    def step(self, key: Array, state: DelayedState, action: Array, params: DelayedParams):
        t = state.t
        inner_state, fresh, info = self.env.step(key, state.inner, action, params.inner)
        delays = self._draw_delays(jax.random.fold_in(key, DELAY_STREAM), fresh, params.delay)
        disclosed = fresh.mask
        if self.positives_only:
            disclosed = disclosed & (fresh.reward > 0)
        censored = disclosed & (delays.astype(jnp.float32) > params.delay.window)
        too_long = disclosed & ~censored & (delays >= self.capacity)
        kept = disclosed & ~censored & ~too_long

        records, full = self._store(state.records, fresh, delays, kept, t)
        feedback = self._release(records, fresh, t)
        observed_delay = jnp.where(feedback.mask, t - feedback.round, 0)

        metrics = dict(info.metrics)
        metrics.update(
            delay_sent=jnp.sum(fresh.mask).astype(jnp.float32),
            delay_arrived=jnp.sum(feedback.mask).astype(jnp.float32),
            delay_total=jnp.sum(observed_delay).astype(jnp.float32),
            delay_censored=jnp.sum(censored).astype(jnp.float32),
            buffer_drops=(jnp.sum(too_long) + full).astype(jnp.float32),
        )
        new_state = DelayedState(inner=inner_state, records=records, t=t + 1)
        return new_state, feedback, StepInfo(regret=info.regret, metrics=metrics)

    def metric_columns(self, sums: Mapping[str, np.ndarray], t: np.ndarray) -> dict:
        inner = {k: v for k, v in sums.items() if k not in METRICS}
        columns = dict(self.env.metric_columns(inner, t))
        sent, arrived = sums["delay_sent"], sums["delay_arrived"]
        columns["received"] = np.where(sent > 0, arrived / np.maximum(sent, 1), np.nan)
        columns["mean_delay"] = np.where(arrived > 0, sums["delay_total"] / np.maximum(arrived, 1),
                                         np.nan)
        columns["censored"] = sums["delay_censored"]
        columns["buffer_drops"] = sums["buffer_drops"]
        return columns

    @classmethod
    def feedback_delay(cls, settings: Mapping[str, Any], horizon: int) -> float:
        """E[min(D, W + 1, T)] of the configured law (``mean_delay``); 0 without a ``dist``."""
        if settings.get("dist") is None:
            return 0.0
        law = dict(settings)
        window = float(law.pop("window", math.inf))
        dist = law.pop("dist")
        numeric = {k: v for k, v in law.items() if isinstance(v, (int, float, np.number))
                   and not isinstance(v, bool) and k not in ("capacity", "batch")}
        return mean_delay(dist, numeric, window, horizon)

    def arm_means(self, params: DelayedParams):
        return self.env.arm_means(params.inner)

    def pending(self, state: DelayedState) -> Array:
        """The number of stored items still to arrive (int32)."""
        return jnp.sum(state.records[:, :, 0] >= state.t).astype(jnp.int32)

    # -- pieces ---------------------------------------------------------------------------
    def _layout(self, key, inner_state, inner_params) -> "ItemLayout":
        """How the inner environment's Feedback items are packed (shapes via eval_shape)."""
        arity = self.env.spec.action_arity
        action = jnp.zeros(() if arity == 1 else (arity,), jnp.int32)
        shapes = jax.eval_shape(lambda: self.env.step(key, inner_state, action, inner_params)[1])
        return ItemLayout(shapes)

    def _draw_delays(self, key: Array, fresh: Feedback, delay: DelayParams) -> Array:
        positive = fresh.reward > 0
        if self.dist == "fixed":           # no key: the same delay draw without random bits
            d = jnp.where(positive, delay.positive.d, delay.negative.d)
            return jnp.minimum(jnp.maximum(jnp.round(d), 0.0), float(MAX_DELAY)).astype(jnp.int32)
        if fresh.size == 1:
            return sample_delay(self.dist, key, delay.law(positive[0]))[None]
        keys = jax.random.split(key, fresh.size)
        return jax.vmap(lambda k, p: sample_delay(self.dist, k, delay.law(p)))(keys, positive)

    def _store(self, records: Array, fresh: Feedback, delays: Array, kept: Array, t: Array):
        """Writes each kept item into the first free slot of row (t + D) mod C.

        A slot is free when its due round is before t (released, or never used). Returns the
        records and the number of items dropped because their row was full.
        """
        layout = ItemLayout(fresh)
        full = jnp.zeros((), jnp.int32)
        for i in range(fresh.size):        # static: the inner batch size (usually 1)
            arrival = t + delays[i]
            row = arrival % self.capacity
            free = records[row, :, 0] < t                        # [B]
            col = jnp.argmax(free)
            write = kept[i] & free[col]
            full = full + (kept[i] & ~free[col]).astype(jnp.int32)
            row = jnp.where(write, row, self.capacity)           # out of range: no write
            record = jnp.concatenate([arrival.reshape(1), layout.pack(fresh, i)])
            records = records.at[row, col].set(record, mode="drop")
        return records, full

    def _release(self, records: Array, fresh: Feedback, t: Array) -> Feedback:
        """Row t mod C: every item due now (the masked Feedback batch)."""
        rows = records[t % self.capacity]                        # [B, F]: one contiguous read
        return ItemLayout(fresh).unpack(rows[:, 1:]).replace(mask=rows[:, 0] == t)


class ItemLayout:
    """Packs a Feedback item (every leaf but the mask) into one int32 vector and back.

    One record per slot keeps a stored item in one or two cache lines: the buffers of many runs
    are far larger than the caches, so each access to a random row costs a memory round trip,
    and with one array per field every round paid one per field and run. float32 leaves are
    bit-cast, so nothing is rounded; zero-size leaves (the [A, 0] features of plain bandits)
    take no columns.
    """

    def __init__(self, batch: Feedback):
        leaves, self.treedef = jax.tree_util.tree_flatten(batch.replace(mask=None))
        self.fields = []                     # (offset, size, item shape, dtype) per leaf
        offset = 0
        for leaf in leaves:
            shape = tuple(leaf.shape[1:])
            size = int(np.prod(shape, dtype=int))
            self.fields.append((offset, size, shape, leaf.dtype))
            offset += size
        self.width = offset

    def pack(self, batch: Feedback, i: int) -> Array:
        """Item i of ``batch`` as a [width] int32 vector."""
        leaves = jax.tree_util.tree_leaves(batch.replace(mask=None))
        parts = [_to_int32(leaf[i].reshape(-1)) for leaf, field in zip(leaves, self.fields)
                 if field[1]]
        return jnp.concatenate(parts) if parts else jnp.zeros((0,), jnp.int32)

    def unpack(self, columns: Array) -> Feedback:
        """[B, width] int32 rows back into a Feedback batch (its mask None: set by the caller)."""
        rows = columns.shape[0]
        leaves = [_from_int32(columns[:, offset:offset + size], dtype).reshape((rows,) + shape)
                  for offset, size, shape, dtype in self.fields]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def _to_int32(x: Array) -> Array:
    if x.dtype == jnp.float32:
        return jax.lax.bitcast_convert_type(x, jnp.int32)
    return x.astype(jnp.int32)


def _from_int32(x: Array, dtype) -> Array:
    if dtype == jnp.float32:
        return jax.lax.bitcast_convert_type(x, jnp.float32)
    if dtype == jnp.bool_:
        return x != 0
    return x.astype(dtype)
