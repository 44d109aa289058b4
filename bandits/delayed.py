"""Learners for delayed (and censored) feedback, for use with the ``delay`` wrapper (envs/delay.py).

- ``joulani``: the queue-based black-box reduction of Joulani, Gyorgy and Szepesvari (2013),
  "Online Learning under Delayed Feedback", ICML, sec. 3.2: QPM-D ("queued partial monitoring
  with delays"). Any plain (non-contextual, single-arm) learner, the ``base``,
  runs in its own clock on an undelayed stream: it asks for an arm J; while a reward of J is
  waiting in J's FIFO queue, the reduction pops it and feeds it to the base at once (without
  playing), and the base asks again; when J's queue is empty, J is played for real. Every
  arriving reward goes to the back of its arm's queue. Their analysis of QPM-D for stochastic
  bandits: the regret is the base's undelayed regret plus a term of order
  sum_a gap_a E[outstanding feedback] (an additive, not multiplicative, delay penalty).
- ``otf_linucb`` and ``otf_lints``: Vernade, Carpentier, Lattimore, Zappella, Ermis and Brueckner
  (2020), "Linear Bandits with Stochastic Delayed Feedback", ICML, Algorithm 1 (OTFLinUCB) and its
  Thompson-sampling variant (OTFLinTS, same paper), for rewards that may arrive late or never (the
  conversions of a display campaign). With window m:
      V_t = lambda I + sum_{s<t} A_s A_s^T            (every action, as soon as it is played)
      b_t = sum_{s<t} A_s Y_s 1{D_s <= min(m, t - s)}   (rewards arrived within m rounds)
      theta_hat = V_t^{-1} b_t                          (estimates tau_m theta, tau_m = P(D <= m))
  OTFLinUCB plays argmax_a <a, theta_hat> + alpha f_t ||a||_{V_t^{-1}}
  + sum_{s=t-m}^{t-1} |a^T V_t^{-1} A_s|, where the last sum bounds the bias from the m most
  recent actions whose rewards may still be on their way and f_t is the OFUL radius
  (``linalg.oful_radius``: noise R, failure probability delta, norm bound S). OTFLinTS draws
  theta_tilde ~ N(theta_hat, v^2 V_t^{-1}) and plays argmax_a <a, theta_tilde> plus the same bias
  sum (our reading of the paper's sketch: the randomised width replaces f_t's, the bias term
  stays). The ridge pieces (Sherman-Morrison on V at play time, b only at arrival) are
  ``bandits/linalg.py``'s ``add_design`` / ``add_target``.

Configuring ``joulani``: ``base`` (static) names the plain learner, and the base's own
hyper-parameters are given flat in the same table, sweeps included::

    [[learner]]
    name = "joulani"
    base = "ucb1"
    c = [1.0, 2.0]      # ucb1's c: columns hp.base = "ucb1", hp.c

(``Joulani.specialise`` builds, per base, a subclass whose settings are joulani's plus the
base's, so validation, defaults, sweeps and ``hp.*`` columns work as for the base itself.)
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import struct

from bandits import linalg
from bandits.core import LEARNERS, Learner, random_argmax, register_learner
from envs.core import Array, ConfigError, EnvSpec, Feedback, Observation, Setting


# ---------------------------------------------------------------------------------------------
# Joulani et al. (2013): QPM-D around any plain learner.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class QueueState:
    """QPM-D state: the base learner in its own clock and one FIFO reward queue per arm."""

    base: Any              # the base learner's state
    rewards: Array         # [K, Q] float32 ring buffers of waiting rewards
    head: Array            # [K] int32 position of each queue's oldest reward
    size: Array            # [K] int32 rewards waiting per arm
    request: Array         # int32: the arm the base asks for (queue empty, or `steps` ran out)
    base_steps: Array      # int32: rewards fed to the base so far (the base's clock)
    key: Array             # PRNG key for the base's choices made inside ``update``
    overflow: Array        # int32: rewards lost because their arm's queue was full


JOULANI_SETTINGS = (
    Setting("base", "ucb1", "the plain (non-contextual) learner to make delay-robust; its "
            "hyper-parameters go in the same table", kind=str, static=True),
    Setting("steps", None, "most rewards fed to the base per round (default: the feedback "
            "batch size + 1; more are fed in later rounds)", kind=int, static=True, low=1,
            optional=True),
    Setting("queue", 256, "capacity of each arm's reward queue (a reward arriving at a full "
            "queue is dropped and counted in the state)", kind=int, static=True, low=1),
)


@register_learner("joulani")
class Joulani(Learner):
    """QPM-D (Joulani, Gyorgy and Szepesvari 2013, sec. 3.2) around the learner ``base``."""

    settings = JOULANI_SETTINGS
    base_cls: type[Learner] | None = None     # set on specialised subclasses

    # -- configuration ----------------------------------------------------------------------
    @classmethod
    def base_class(cls, name: Any, where: str) -> type[Learner]:
        base_cls = LEARNERS.get(name, f"{where}.base")
        if base_cls.needs_features or base_cls.action_arity != 1 or issubclass(base_cls, Joulani):
            raise ConfigError(f"{where}.base = {name!r}: joulani wraps plain learners (one arm "
                              f"per round, no features); {name!r} is not one")
        clash = {s.name for s in base_cls.settings} & {s.name for s in JOULANI_SETTINGS}
        if clash:
            raise ConfigError(f"{where}.base = {name!r}: its settings {sorted(clash)} clash "
                              f"with joulani's own")
        return base_cls

    @classmethod
    def specialise(cls, table: Mapping[str, Any], where: str) -> type:
        name = table.get("base", cls.setting("base").default)
        if isinstance(name, (list, tuple)):
            raise ConfigError(f"{where}.base = {name!r}: one base learner per [[learner]] table "
                              f"(write one table per base to compare several)")
        base_cls = cls.base_class(name, where)
        return type(f"Joulani_{name}", (cls,), {
            "settings": JOULANI_SETTINGS + tuple(base_cls.settings),
            "base_cls": base_cls,
            "name": cls.name,
        })

    @classmethod
    def resolve(cls, values: dict, context: Mapping[str, Any]) -> dict:
        """The base learner's own ``resolve``, if it has one (its declared defaults are filled
        already: its settings are this class's). Not a declaration: which hook runs depends on
        the ``base`` chosen in the table."""
        if cls.base_cls is None:
            return values
        return cls.base_cls.resolve(values, context)

    @classmethod
    def check_cross(cls, values: Mapping[str, Any], where: str) -> None:
        if cls.base_cls is not None:
            cls.base_cls.check_cross(values, where)

    @classmethod
    def check_spec(cls, spec: EnvSpec, where: str, values: Mapping[str, Any] | None = None
                   ) -> None:
        super().check_spec(spec, where, values)
        if cls.base_cls is not None:
            cls.base_cls.check_spec(spec, where, values)

    def __init__(self, spec: EnvSpec, horizon: int, **static: Any):
        super().__init__(spec, horizon, **static)
        base_cls = self.base_cls or self.base_class(self.base, "learner")
        base_static = {s.name: static.get(s.name, s.default) for s in base_cls.static_settings()}
        self.base_learner = base_cls(dataclasses.replace(spec, feedback_size=1), horizon,
                                     **base_static)
        if self.steps is None:
            self.steps = spec.feedback_size + 1

    # -- protocol ---------------------------------------------------------------------------
    def _base_observation(self, steps: Array) -> Observation:
        return Observation(features=jnp.zeros((self.num_arms, 0), jnp.float32), t=steps)

    def init(self, key, hparams) -> QueueState:
        init_key, act_key, stream_key = jax.random.split(key, 3)
        base = self.base_learner.init(init_key, hparams)
        zero = jnp.zeros((), jnp.int32)
        request = self.base_learner.act(act_key, base, self._base_observation(zero), hparams)
        return QueueState(base=base,
                          rewards=jnp.zeros((self.num_arms, self.queue), jnp.float32),
                          head=jnp.zeros((self.num_arms,), jnp.int32),
                          size=jnp.zeros((self.num_arms,), jnp.int32),
                          request=jnp.asarray(request, jnp.int32), base_steps=zero,
                          key=stream_key, overflow=zero)

    def act(self, key, state: QueueState, obs, hparams) -> Array:
        return state.request

    def update(self, state: QueueState, obs, action, feedback: Feedback, hparams) -> QueueState:
        state = self._enqueue(state, feedback)

        def waiting(carry):            # a reward of the requested arm is queued, steps remain
            i, s = carry
            return (i < self.steps) & (s.size[s.request] > 0)

        def feed(carry):
            i, s = carry
            return i + 1, self._feed_base(s, hparams)

        # A while loop: under vmap it runs while any run still has a reward to feed (at most
        # ``steps`` times) and leaves the finished runs unchanged, the same as ``steps`` masked
        # steps but usually far fewer.
        return jax.lax.while_loop(waiting, feed, (jnp.int32(0), state))[1]

    # -- pieces -----------------------------------------------------------------------------
    def _enqueue(self, state: QueueState, feedback: Feedback) -> QueueState:
        """Appends every valid arrived reward to its arm's queue (one scatter for the batch)."""
        arms = feedback.action.reshape(-1).astype(jnp.int32)
        valid = feedback.mask
        size = feedback.size
        earlier = jnp.tril(jnp.ones((size, size), bool), k=-1)          # j' < j
        same_arm = (arms[:, None] == arms[None, :]) & valid[None, :] & earlier
        offset = jnp.sum(same_arm, axis=1).astype(jnp.int32)          # earlier items, same arm
        position = state.size[arms] + offset
        fits = valid & (position < self.queue)
        slot = (state.head[arms] + position) % self.queue
        rewards = state.rewards.at[jnp.where(fits, arms, self.num_arms), slot].set(
            feedback.reward.astype(jnp.float32), mode="drop")
        added = jnp.sum(jax.nn.one_hot(arms, self.num_arms, dtype=jnp.int32)
                        * fits[:, None].astype(jnp.int32), axis=0)
        overflow = state.overflow + jnp.sum(valid & ~fits).astype(jnp.int32)
        return state.replace(rewards=rewards, size=state.size + added, overflow=overflow)

    def _feed_base(self, state: QueueState, hparams) -> QueueState:
        """If the requested arm has a waiting reward: pop it, update the base, ask again."""
        arm = state.request
        hot = jax.nn.one_hot(arm, self.num_arms, dtype=jnp.int32)
        available = jnp.sum(state.size * hot) > 0
        reward = state.rewards[arm, jnp.sum(state.head * hot)]
        item = Feedback(action=arm.reshape(1), features=jnp.zeros((1, 1, 0), jnp.float32),
                        reward=reward.reshape(1), round=state.base_steps.reshape(1),
                        mask=available.reshape(1))
        obs = self._base_observation(state.base_steps)
        base = self.base_learner.update(state.base, obs, arm, item, hparams)
        steps = state.base_steps + available.astype(jnp.int32)
        ask = self.base_learner.act(jax.random.fold_in(state.key, steps), base,
                                    self._base_observation(steps), hparams)
        popped = hot * available.astype(jnp.int32)
        return state.replace(base=base, base_steps=steps,
                             request=jnp.where(available, ask, arm).astype(jnp.int32),
                             head=(state.head + popped) % self.queue, size=state.size - popped)


# ---------------------------------------------------------------------------------------------
# Vernade et al. (2020): OTFLinUCB and OTFLinTS.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class OnTheFlyState:
    ridge: linalg.RidgeState   # V: every played action; b: rewards arrived within the window
    recent: Array              # [m, d] the last m played actions (row t mod m; zeros at first)


OTF_COMMON = (
    Setting("window", 50, "m: rewards count only if they arrive within m rounds, and the bias "
            "term sums over the m most recent actions", kind=int, static=True, low=1),
    Setting("regulariser", 1.0, "ridge regularisation lambda (V_0 = lambda I)", low=0.0,
            low_open=True),
    Setting("compensated", False, "keep V^{-1} and b in double-float32 (see bandits/linalg.py)",
            kind=bool, static=True),
)


class _OnTheFlyLinear(Learner):
    """Shared by OTFLinUCB and OTFLinTS: the windowed ridge state and the bias term."""

    needs_features = True

    def init(self, key, hparams) -> OnTheFlyState:
        d = self.spec.feature_dim
        return OnTheFlyState(
            ridge=linalg.RidgeState.create(d, hparams["regulariser"],
                                           compensated=self.compensated),
            recent=jnp.zeros((self.window, d), jnp.float32))

    def act(self, key, state: OnTheFlyState, obs: Observation, hparams) -> Array:
        index_key, tie_key = jax.random.split(key)
        return random_argmax(tie_key, self.index(index_key, state, obs, hparams)
                             + self.bias(state, obs.features))

    def update(self, state: OnTheFlyState, obs, action, feedback: Feedback, hparams):
        played = jax.nn.one_hot(action, self.num_arms, dtype=jnp.float32) @ obs.features
        ridge = linalg.add_design(state.ridge, played)
        row = jnp.asarray(obs.t, jnp.int32) % self.window
        recent = jnp.where((jnp.arange(self.window) == row)[:, None], played[None], state.recent)
        elapsed = jnp.asarray(obs.t, jnp.int32) - feedback.round
        counted = feedback.mask & (elapsed <= self.window)
        weights = jnp.where(counted, feedback.reward, 0.0)
        arrived = weights @ feedback.features[:, 0, :]          # sum of r x over counted items
        ridge = linalg.add_target(ridge, arrived, 1.0, jnp.any(counted))
        return OnTheFlyState(ridge=ridge, recent=recent)

    def bias(self, state: OnTheFlyState, features: Array) -> Array:
        """sum_{s=t-m}^{t-1} |x_a^T V^{-1} A_s| for every arm ([K])."""
        projected = state.recent @ linalg.inverse_matrix(state.ridge)   # [m, d] (V^{-1} sym.)
        return jnp.sum(jnp.abs(features @ projected.T), axis=1)

    @abc.abstractmethod
    def index(self, key, state: OnTheFlyState, obs: Observation, hparams) -> Array:
        """The index without the bias term ([K])."""


@register_learner("otf_linucb")
class OTFLinUCB(_OnTheFlyLinear):
    """OTFLinUCB (Vernade et al. 2020, Algorithm 1)."""

    settings = OTF_COMMON + (
        Setting("alpha", 1.0, "multiplier of the confidence radius f_t", low=0.0),
        Setting("noise", 0.5, "R: sub-Gaussian scale of the rewards (1/2 for 0/1 rewards)",
                low=0.0),
        Setting("delta", 0.05, "failure probability of the confidence set", low=0.0, high=1.0,
                low_open=True, high_open=True),
        Setting("norm_bound", 1.0, "S: bound on ||theta||_2", low=0.0),
    )

    def index(self, key, state, obs, hparams):
        ridge = state.ridge
        radius = linalg.oful_radius(ridge.log_det_ratio, hparams["noise"], hparams["delta"],
                                    hparams["regulariser"], hparams["norm_bound"])
        return (obs.features @ linalg.estimate(ridge)
                + hparams["alpha"] * radius * linalg.widths(ridge, obs.features))


@register_learner("otf_lints")
class OTFLinTS(_OnTheFlyLinear):
    """OTFLinTS (Vernade et al. 2020, sec. 6): a posterior draw plus the bias term."""

    settings = OTF_COMMON + (
        Setting("v", 0.1, "posterior scale: theta ~ N(theta_hat, v^2 V^{-1})", low=0.0),
    )

    def index(self, key, state, obs, hparams):
        return obs.features @ linalg.sample_posterior(key, state.ridge, hparams["v"])
