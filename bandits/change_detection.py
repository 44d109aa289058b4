"""Change-detection learners for piecewise-stationary K-armed bandits: a stationary index policy
on the samples since the last restart, a per-arm change detector, and restarts when it fires.

- ``cusum_ucb``: Liu, Lee and Shroff (2018), "A change-detection based framework for
  piecewise-stationary multi-armed bandit problem", Algorithm 1 (CD-UCB) with the two-sided
  CUSUM of their Algorithm 2 (eqs. 4-5). UCB index mean + sqrt(xi ln n_t / N_a) over the samples
  since each arm's restart, n_t = sum_a N_a (eq. 1); with probability alpha a uniform arm
  (eq. 3). The CUSUM of an arm takes the mean u0 of its first M samples after a restart, then
  g+ = max(0, g+ + y - u0 - eps), g- = max(0, g- + u0 - y - eps); an alarm when g+ >= h or
  g- >= h restarts that arm only (local restarts, as the paper's CD-UCB). Defaults from their
  Theorem 2 / Corollary 2 with the constants set to 1: h = ln(T / U), alpha =
  sqrt(U ln(T / U) / T) for U changes; M = 200 and eps = 0.1 are the tuning Besson et al. (2022)
  use for it in their experiments (the paper needs M and eps from prior knowledge).
- ``m_ucb``: Cao, Wen, Kveton and Xie (2019), "Nearly optimal adaptive procedure with change
  detection for piecewise-stationary bandit", Algorithm 1 (M-UCB) with the change detection of
  their Algorithm 2: the last w samples of the arm just played, in a ring buffer of static size
  w + 1 per arm (written before it is read, so XLA updates it in place: O(1) a sample); an alarm when |sum of the newer w/2 - sum of the older w/2| > b restarts every arm
  (global restart). Uniform exploration by schedule: arm (t - tau) mod floor(K / gamma) when that
  is below K (tau: the last restart). UCB index mean + sqrt(2 ln(t - tau) / n_a). Defaults from
  their Theorem 1 / Remark 1 for changes of size at least delta: w = (4 / delta^2)
  (sqrt(ln(2 K T^2)) + sqrt(ln(2 T)))^2 (rounded up to even, at most T), b = sqrt(w ln(2 K T^2)
  / 2), gamma = sqrt(U K min(w / 2, ceil(b / delta) + 3 sqrt(w)) / (2 T)) for U changes.
- ``glr_klucb``: Besson, Kaufmann, Maillard and Seznec (2022), "Efficient change-point detection
  for tackling piecewise-stationary bandits" (JMLR), Algorithm 1 with the Bernoulli GLR test: an
  alarm on an arm with n samples since its restart when some split s has
  s kl(mu_{1:s}, mu_{1:n}) + (n - s) kl(mu_{s+1:n}, mu_{1:n}) > beta(n, delta), with
  beta(n, delta) = ln(n^{3/2} / delta) (the threshold of the paper's experiments). kl-UCB index
  with exploration ln(t - tau_a) + c ln ln(t - tau_a) (``bandits.mab.kl_index``), uniform
  exploration by schedule (arm t mod floor(K / alpha) when below K). ``restart = "local"`` (the
  default, the variant the paper finds best in its experiments) restarts the arm whose test fired;
  ``"global"`` restarts every arm. Defaults from their Corollaries for U changes: local
  alpha = sqrt(K U ln T / T), delta = 1 / sqrt(K U T); global alpha = sqrt(U ln T / T),
  delta = 1 / sqrt(U T).

  The bounded test (the paper's speed-up of testing every Delta_n samples at splits on a grid of
  step Delta_s, made static): an arm is tested when its count n is a multiple of
  ``test_every`` (Delta_n), over the split points kept in a grid of at most ``max_splits`` (L)
  prefix sums per arm: the prefix sum at every ``split_step`` (Delta_s) samples; when the L
  slots are full, every other one is dropped and the step doubles, so the splits always cover
  the whole segment, spaced by at most Delta_s max(1, 2 n / L). Memory: K (L + 2) numbers per
  run; cost per update: O(L) for the arm that got feedback (a row of L prefix sums read and
  written, 4 L logarithms for the test); under ``vmap`` the test is evaluated every round and
  applied on the schedule (a per-run predicate cannot skip work in a batch).

Shared here (docs/design.md, "The two protocols"): the state (arm statistics since each arm's
restart, the restart rounds, the detections so far, the detector's per-arm statistics), the
masked update (``ChangeDetection.update``: each feedback item in order, its detector statistics
written only where the item is valid; large buffers are never cleared but read only within the
arm's count since its restart, so a restart costs O(K)), the restart, and the forced exploration.
Every learner reports ``detections`` (cumulative restarts; ``Learner.metrics``). Rewards must be
in [0, 1]: the thresholds are calibrated for bounded rewards.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from bandits.core import (ArmStats, Learner, random_argmax, register_learner, rounds_played,
                          scan_feedback, untried_first)
from bandits.mab import bernoulli_kl, kl_index
from bandits.nonstationary import changes_setting
from bandits.theory import Theory
from envs import randomness
from envs.core import Array, ConfigError, Feedback, Metric, Setting, take_arm

DETECTIONS = Metric("detections", "cumulative restarts (change detections)", summary=True,
                    figure=True)


# The number of changes U the defaults are tuned for, as the forgetting learners declare it
# (bandits/nonstationary.py, ``default_changes``): the environment's number of change points, the
# expected number h (T - 1) for a hazard rate h, else 1.
CHANGES = changes_setting()


@struct.dataclass
class DetectionState:
    """What every change-detection learner keeps (one run)."""

    stats: ArmStats      # counts and reward sums of each arm since its last restart
    restarted: Array     # [K] int32: first round (0-based) of each arm's current segment
    detections: Array    # float32: restarts so far (a global restart counts once)
    detector: Any        # the learner's per-arm test statistics (a struct.dataclass)


def periodic_exploration(offset: Array, rate: Array, num_arms: int) -> tuple[Array, Array]:
    """(forced, arm): the uniform exploration by schedule of Cao et al. (2019), Algorithm 1, and
    Besson et al. (2022), Algorithm 1: arm r = offset mod floor(K / rate) when r < K (a fraction
    ``rate`` of the rounds, each arm in turn); never when rate is 0."""
    period = jnp.floor(num_arms / jnp.maximum(rate, 1e-9))
    period = jnp.clip(period, num_arms, 2.0 ** 30).astype(jnp.int32)
    arm = jnp.asarray(offset, jnp.int32) % period
    return (rate > 0) & (arm < num_arms), arm


class ChangeDetection(Learner):
    """Shared by the change-detection learners: state, masked update, restarts, ``detections``.

    A subclass gives ``init_detector(hparams)``, ``detect(detector, stats, arm, reward, valid,
    hparams) -> (detector, alarm)`` (the test on the arm that got the item, its statistics
    unchanged where ``valid`` is False), ``choose(key, state, obs, hparams) -> arm`` and
    ``global_restart``. Detector fields named in ``lazy_fields`` are buffers that a restart does
    not clear (O(K) restarts): the detector reads them only within the arm's count since its
    restart.
    """

    needs_bounded_rewards = True
    metrics = (DETECTIONS,)
    theory = Theory("sqrt")
    global_restart: ClassVar[bool] = False
    lazy_fields: ClassVar[tuple[str, ...]] = ()

    def init(self, key, hparams) -> DetectionState:
        return DetectionState(stats=ArmStats.zeros(self.num_arms),
                              restarted=jnp.zeros((self.num_arms,), jnp.int32),
                              detections=jnp.float32(0.0),
                              detector=self.init_detector(hparams))

    def report(self, state: DetectionState):
        return {"detections": state.detections}

    def act(self, key, state: DetectionState, obs, hparams):
        return self.choose(key, state, obs, hparams).astype(jnp.int32)

    def update(self, state: DetectionState, obs, action, feedback: Feedback,
               hparams) -> DetectionState:
        t = jnp.asarray(obs.t, jnp.int32)
        return scan_feedback(lambda s, item: self._observe(s, item, t, hparams), state, feedback)

    def _observe(self, state: DetectionState, item: Feedback, t, hparams) -> DetectionState:
        """One feedback item (a no-op when masked): statistics, the arm's test, the restart."""
        arm = item.action.reshape(())
        valid = item.mask
        detector, alarm = self.detect(state.detector, state.stats, arm, item.reward, valid,
                                      hparams)
        stats = state.stats.add(jax.tree_util.tree_map(lambda x: x[None], item))
        return self.restart_arms(state.replace(stats=stats, detector=detector), arm,
                                 alarm & valid, t)

    def restart_arms(self, state: DetectionState, arm, alarm, t) -> DetectionState:
        """After an alarm on ``arm`` in round t: its statistics (every arm's, for a global
        restart) start again from round t + 1; ``detections`` grows by one."""
        arms = jnp.arange(self.num_arms)
        reset = alarm & ((arms == arm) | self.global_restart)
        return DetectionState(stats=state.stats.reset_where(reset),
                              restarted=jnp.where(reset, t + 1, state.restarted),
                              detections=state.detections + alarm.astype(jnp.float32),
                              detector=self.reset_detector(state.detector, reset))

    def reset_detector(self, detector, reset: Array):
        """Every per-arm detector field back to zero where ``reset`` ([K]), but lazy buffers."""
        changes = {}
        for field in dataclasses.fields(detector):
            if field.name in self.lazy_fields:
                continue
            value = getattr(detector, field.name)
            where = reset.reshape((-1,) + (1,) * (value.ndim - 1))
            changes[field.name] = jnp.where(where, jnp.zeros_like(value), value)
        return detector.replace(**changes)

    def rounds_since_restart(self, state: DetectionState, obs) -> Array:
        """[K] rounds in each arm's current segment, this one included (>= 1)."""
        return rounds_played(obs) - state.restarted.astype(jnp.float32)

    # -- what a subclass gives -----------------------------------------------------------
    @abc.abstractmethod
    def init_detector(self, hparams):
        """The detector's state before round 0."""

    @abc.abstractmethod
    def detect(self, detector, stats: ArmStats, arm, reward, valid, hparams):
        """(detector after one item, whether it fires) for ``arm``'s new ``reward``."""

    @abc.abstractmethod
    def choose(self, key, state: DetectionState, obs, hparams) -> Array:
        """The arm played this round."""


def _one_hot(arm, num_arms: int, valid) -> Array:
    """[K] bool: the arm that got a valid item."""
    return (jnp.arange(num_arms) == arm) & valid


# ---------------------------------------------------------------------------------------------
# CUSUM-UCB (Liu, Lee and Shroff 2018).
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class CusumDetector:
    reference: Array   # [K] u0: the mean of the first M samples since the restart
    upper: Array       # [K] g+ (detects an increase)
    lower: Array       # [K] g- (detects a decrease)


@register_learner("cusum_ucb")
class CusumUCB(ChangeDetection):
    """CUSUM-UCB (Liu, Lee and Shroff 2018): UCB restarted per arm by a two-sided CUSUM."""

    colour = "#EE7733"
    settings = (
        CHANGES,
        Setting("epsilon", 0.1, "CUSUM drift correction eps (about half the smallest change to "
                "detect)", low=0.0),
        Setting("warm_up", 200, "samples of an arm after a restart that estimate its mean u0 "
                "before the CUSUM runs (M)", kind=int, low=1),
        Setting("h", None, "CUSUM threshold (default ln(T / changes), Corollary 2)", low=0.0,
                low_open=True, optional=True,
                default_from=lambda values, context: math.log(
                    max(context["horizon"] / values["changes"], math.e))),
        Setting("alpha", None, "probability of a uniform arm (default sqrt(changes "
                "ln(T / changes) / T), Corollary 2)", low=0.0, high=1.0, optional=True,
                default_from=lambda values, context: min(1.0, math.sqrt(
                    values["changes"] * math.log(max(context["horizon"] / values["changes"],
                                                     1.0)) / context["horizon"]))),
        Setting("xi", 1.0, "exploration constant xi of the UCB index mean + sqrt(xi ln n_t / N)",
                low=0.0),
    )

    def init_detector(self, hparams) -> CusumDetector:
        zero = jnp.zeros((self.num_arms,), jnp.float32)
        return CusumDetector(reference=zero, upper=zero, lower=zero)

    def detect(self, detector: CusumDetector, stats, arm, reward, valid, hparams):
        hot = _one_hot(arm, self.num_arms, valid)
        sample = stats.counts + 1.0                    # 1-based index of this sample, per arm
        warm_up = hparams["warm_up"].astype(jnp.float32)
        reference = jnp.where(hot & (sample == warm_up), (stats.sums + reward) / warm_up,
                              detector.reference)
        active = hot & (sample > warm_up)
        upper = jnp.where(active, jnp.maximum(
            0.0, detector.upper + reward - reference - hparams["epsilon"]), detector.upper)
        lower = jnp.where(active, jnp.maximum(
            0.0, detector.lower + reference - reward - hparams["epsilon"]), detector.lower)
        fired = active & ((upper >= hparams["h"]) | (lower >= hparams["h"]))
        return (CusumDetector(reference=reference, upper=upper, lower=lower),
                take_arm(fired, arm))

    def choose(self, key, state: DetectionState, obs, hparams):
        stats = state.stats
        samples = jnp.maximum(jnp.sum(stats.counts), 1.0)
        bonus = jnp.sqrt(hparams["xi"] * jnp.log(samples) / jnp.maximum(stats.counts, 1.0))
        greedy = random_argmax(randomness.subkey(key, 0),
                               untried_first(stats.means + bonus, stats.counts))
        coin, uniform = randomness.uniform(key, (2,))
        explore = jnp.minimum(jnp.floor(uniform * self.num_arms).astype(jnp.int32),
                              self.num_arms - 1)
        return jnp.where(coin < hparams["alpha"], explore, greedy)


# ---------------------------------------------------------------------------------------------
# M-UCB (Cao, Wen, Kveton and Xie 2019).
# ---------------------------------------------------------------------------------------------
def _log_ratio(num_arms: int, horizon: int) -> float:
    return math.log(2 * num_arms * horizon ** 2)


def m_ucb_window(values, context) -> int:
    """Cao et al. (2019), Remark 1: w = (4 / delta^2) (sqrt(ln(2 K T^2)) + sqrt(ln(2 T)))^2,
    rounded up to an even number and kept within [2, T]."""
    horizon, num_arms = context["horizon"], context["num_arms"]
    w = 4.0 / values["delta"] ** 2 * (math.sqrt(_log_ratio(num_arms, horizon))
                                       + math.sqrt(math.log(2 * horizon))) ** 2
    w = 2 * math.ceil(w / 2)
    return max(2, min(w, 2 * (horizon // 2)))


def m_ucb_threshold(values, context) -> float:
    """b = sqrt(w ln(2 K T^2) / 2) (Cao et al. 2019, Remark 1)."""
    return math.sqrt(values["w"] * _log_ratio(context["num_arms"], context["horizon"]) / 2)


def m_ucb_gamma(values, context) -> float:
    """gamma = sqrt(U K min(w / 2, ceil(b / delta) + 3 sqrt(w)) / (2 T)) (Remark 1), at most 1."""
    w, b, delta = values["w"], values["b"], values["delta"]
    delay = min(w / 2, math.ceil(b / delta) + 3 * math.sqrt(w))
    return min(1.0, math.sqrt(values["changes"] * context["num_arms"] * delay
                              / (2 * context["horizon"])))


@struct.dataclass
class WindowDetector:
    window: Array   # [K, w + 2]: sample j of the arm's segment in slot j mod (w + 1) (lazy); the
    #                 last column always 0, the target of masked items' writes
    older: Array    # [K] sum of the older half of the last w samples
    newer: Array    # [K] sum of the newer half


@register_learner("m_ucb")
class MUCB(ChangeDetection):
    """M-UCB (Cao, Wen, Kveton and Xie 2019): UCB restarted globally by a windowed mean test."""

    colour = "#EE3377"
    global_restart = True
    lazy_fields = ("window",)
    settings = (
        CHANGES,
        Setting("delta", 0.5, "smallest change in an arm's mean the defaults are tuned to detect",
                low=0.0, high=1.0, low_open=True, static=True),
        Setting("w", None, "window of samples per arm, even (default from delta, T and K, "
                "Remark 1)", kind=int, low=2, static=True, optional=True,
                default_from=m_ucb_window),
        Setting("b", None, "threshold on |sum of newer half - sum of older half| (default "
                "sqrt(w ln(2 K T^2) / 2))", low=0.0, optional=True, default_from=m_ucb_threshold),
        Setting("gamma", None, "fraction of rounds of scheduled uniform exploration (default "
                "sqrt(changes K min(w/2, ceil(b/delta) + 3 sqrt(w)) / (2T)))", low=0.0, high=1.0,
                optional=True, default_from=m_ucb_gamma),
    )

    @classmethod
    def check_cross(cls, values, where):
        if values["w"] % 2:
            raise ConfigError(f"{where}.w = {values['w']}: the window must be even (two halves)")

    def init_detector(self, hparams) -> WindowDetector:
        zero = jnp.zeros((self.num_arms,), jnp.float32)
        return WindowDetector(window=jnp.zeros((self.num_arms, self.w + 2), jnp.float32),
                              older=zero, newer=zero)

    def detect(self, detector: WindowDetector, stats, arm, reward, valid, hparams):
        # The ring holds w + 1 samples, so the one leaving (n - w) is still there after sample n
        # is written: the buffer is only read after the write, which XLA then does in place (a
        # read before it made XLA copy the whole buffer every round). A masked item writes 0 into
        # the last column, which is always 0: the state does not change.
        w, half, ring = self.w, self.w // 2, self.w + 1
        n = take_arm(stats.counts, arm).astype(jnp.int32)     # samples before this one
        slot = jnp.where(valid, n % ring, ring)
        value = jnp.where(valid, reward, 0.0).reshape(1, 1)
        window = jax.lax.dynamic_update_slice(detector.window, value, (arm, slot))

        def read(j):
            return jax.lax.dynamic_slice(window, (arm, j), (1, 1))[0, 0]

        leaving = jnp.where(n >= w, read((n - w) % ring), 0.0)           # sample n - w
        crossing = jnp.where(n >= half, read((n - half) % ring), 0.0)    # sample n - w/2
        hot = _one_hot(arm, self.num_arms, valid)
        newer = jnp.where(hot, detector.newer + reward - crossing, detector.newer)
        older = jnp.where(hot, detector.older + crossing - leaving, detector.older)
        gap = take_arm(newer, arm) - take_arm(older, arm)
        alarm = valid & (n + 1 >= w) & (jnp.abs(gap) > hparams["b"])
        return WindowDetector(window=window, older=older, newer=newer), alarm

    def choose(self, key, state: DetectionState, obs, hparams):
        stats = state.stats
        since = self.rounds_since_restart(state, obs)
        bonus = jnp.sqrt(2.0 * jnp.log(since) / jnp.maximum(stats.counts, 1.0))
        greedy = random_argmax(key, untried_first(stats.means + bonus, stats.counts))
        offset = jnp.asarray(obs.t, jnp.int32) - state.restarted[0]    # global: all equal
        forced, arm = periodic_exploration(offset, hparams["gamma"], self.num_arms)
        return jnp.where(forced, arm, greedy)


# ---------------------------------------------------------------------------------------------
# GLR-klUCB (Besson, Kaufmann, Maillard and Seznec 2022).
# ---------------------------------------------------------------------------------------------
def _glr_scale(values, context) -> float:
    """U (global restarts) or K U (local restarts): what the Corollaries' alpha and delta use."""
    local = values["restart"] == "local"
    return values["changes"] * (context["num_arms"] if local else 1)


@struct.dataclass
class SplitGrid:
    prefix: Array   # [K, L] prefix sums at the split points (lazy: valid below ``points``)
    points: Array   # [K] int32 split points kept
    level: Array    # [K] int32: the grid step is split_step * 2^level


@register_learner("glr_klucb")
class GLRklUCB(ChangeDetection):
    """GLR-klUCB, kl-UCB restarted by a GLR test (Besson, Kaufmann, Maillard, Seznec 2022).

    The Bernoulli GLR test restarts locally (default) or globally."""

    colour = "#CC3311"
    lazy_fields = ("prefix",)
    settings = (
        CHANGES,
        Setting("restart", "local", "'local': restart the arm whose test fired (recommended); "
                "'global': restart every arm", kind=str, static=True,
                choices=("local", "global")),
        Setting("alpha", None, "fraction of rounds of scheduled uniform exploration (default "
                "sqrt(K changes ln T / T) local, sqrt(changes ln T / T) global)", low=0.0,
                high=1.0, optional=True,
                default_from=lambda values, context: min(1.0, math.sqrt(
                    _glr_scale(values, context) * math.log(context["horizon"])
                    / context["horizon"]))),
        Setting("delta", None, "confidence of the GLR test, threshold ln(n^1.5 / delta) "
                "(default 1/sqrt(K changes T) local, 1/sqrt(changes T) global)", low=0.0,
                high=1.0, low_open=True, optional=True,
                default_from=lambda values, context: min(1.0, 1.0 / math.sqrt(
                    _glr_scale(values, context) * context["horizon"]))),
        Setting("test_every", 10, "test an arm every this many of its samples (Delta_n)",
                kind=int, low=1),
        Setting("split_step", 10, "initial spacing of the split points, in samples (Delta_s)",
                kind=int, low=1),
        Setting("max_splits", 64, "split points kept per arm (L, even); the spacing doubles "
                "when they are full", kind=int, low=2, static=True),
        Setting("c", 0.0, "constant c in the exploration ln(t - tau) + c ln ln(t - tau)",
                low=0.0),
        Setting("iterations", 20, "bisection steps for the kl-UCB index", kind=int, low=1,
                static=True),
    )

    @classmethod
    def check_cross(cls, values, where):
        if values["max_splits"] % 2:
            raise ConfigError(f"{where}.max_splits = {values['max_splits']}: must be even (the "
                              f"grid keeps every other split point when full)")

    @property
    def global_restart(self) -> bool:
        return self.restart == "global"

    def init_detector(self, hparams) -> SplitGrid:
        zero = jnp.zeros((self.num_arms,), jnp.int32)
        return SplitGrid(prefix=jnp.zeros((self.num_arms, self.max_splits), jnp.float32),
                         points=zero, level=zero)

    def detect(self, detector: SplitGrid, stats, arm, reward, valid, hparams):
        size = self.max_splits
        slots = jnp.arange(size)
        n = take_arm(stats.counts, arm).astype(jnp.int32) + 1     # samples with this one
        total = take_arm(stats.sums, arm) + reward
        old_row = jax.lax.dynamic_slice(detector.prefix, (arm, 0), (1, size))[0]
        points = take_arm(detector.points, arm)
        level = take_arm(detector.level, arm)
        step = hparams["split_step"] * jnp.left_shift(1, level)
        # The prefix sum of this sample joins the grid when n is a multiple of the step; a full
        # grid keeps its odd slots (every other split point) and the step doubles.
        joins = n % step == 0
        row = jnp.where(joins & (slots == points), total, old_row)
        points = points + joins.astype(jnp.int32)
        full = points == size
        halved = jnp.concatenate([row[1::2], jnp.zeros((size // 2,), row.dtype)])
        row = jnp.where(full, halved, row)
        points = jnp.where(full, size // 2, points)
        level = level + full.astype(jnp.int32)
        step = hparams["split_step"] * jnp.left_shift(1, level)
        alarm = (valid & (n % hparams["test_every"] == 0)
                 & (self.glr_statistic(row, points, step, n, total) > jnp.log(
                     n.astype(jnp.float32) ** 1.5 / hparams["delta"])))
        prefix = jax.lax.dynamic_update_slice(detector.prefix,
                                              jnp.where(valid, row, old_row)[None], (arm, 0))
        hot = _one_hot(arm, self.num_arms, valid)
        return SplitGrid(prefix=prefix, points=jnp.where(hot, points, detector.points),
                         level=jnp.where(hot, level, detector.level)), alarm

    @staticmethod
    def glr_statistic(row, points, step, n, total) -> Array:
        """max over the grid's splits s < n of s kl(mu_{1:s}, mu) + (n - s) kl(mu_{s+1:n}, mu),
        mu the mean of all n samples (Besson et al. 2022, the Bernoulli GLR statistic)."""
        split = ((jnp.arange(row.shape[0]) + 1) * step).astype(jnp.float32)
        count = n.astype(jnp.float32)
        after = jnp.maximum(count - split, 1.0)
        mean = total / count
        statistic = (split * bernoulli_kl(row / split, mean)
                     + after * bernoulli_kl((total - row) / after, mean))
        usable = (jnp.arange(row.shape[0]) < points) & (split < count)
        return jnp.max(jnp.where(usable, statistic, -jnp.inf))

    def choose(self, key, state: DetectionState, obs, hparams):
        log_since = jnp.log(self.rounds_since_restart(state, obs))
        exploration = log_since + hparams["c"] * jnp.log(jnp.maximum(log_since, 1.0))
        index = kl_index(state.stats.means, state.stats.counts, exploration, self.iterations)
        greedy = random_argmax(key, index)
        forced, arm = periodic_exploration(obs.t, hparams["alpha"], self.num_arms)
        return jnp.where(forced, arm, greedy)
