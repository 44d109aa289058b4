"""Linear bandits for a drifting or jumping parameter: forget old observations.

The setting of envs/linear.py with ``drift`` (theta_t moves; B_T = sum_t ||theta_{t+1} -
theta_t||_2 is the variation budget), measured by the dynamic regret. Both learners are the
optimistic index <theta_hat_t, x_a> + beta ||x_a||_W of LinUCB / OFUL (bandits/linear.py,
``RidgeLearner``) over a regression that forgets:

- ``sliding_window_linucb``: SW-LinUCB, Cheung, Simchi-Levi and Zhu (2019), "Learning to
  Optimize under Non-Stationarity", AISTATS, sec. 4 (the SW-UCB algorithm for linear bandits):
  ridge regression on the last w observations only, V_t = lambda I + sum_{s in window} x_s x_s^T,
  index <theta_hat, x> + beta ||x||_{V_t^{-1}} with the window's confidence radius (their Theorem
  1 with the determinant bound over w observations)

      beta = R sqrt(d ln((1 + w L^2 / lambda) / delta)) + sqrt(lambda) S

  (the ``alpha`` default). Default window: w = ceil((d T / B_T)^(2/3)) (capped at T), the choice
  that gives their O~(d^(2/3) B_T^(1/3) T^(2/3)) dynamic regret bound; delta = 1 / T.
  State: a ring buffer of the last w items (static size w, so the state has a fixed shape), and
  the ridge state of ``bandits/linalg.py``. Each arriving item is added by Sherman-Morrison and
  the one it pushes out of the window removed by the downdate ``linalg.remove_observation``;
  every ``refit_every`` rounds (default w) the regression is rebuilt from the buffer
  (``linalg.refit``, one Cholesky factorisation, a real ``lax.cond`` on the round index), so at
  most about 2 w rank-one steps of float32 round-off are ever in the state (tested against a
  float64 solve on the window after 10^5 rounds). With w >= T nothing leaves the window and the
  learner is LinUCB with one shared theta (``linucb_shared``) with alpha = beta.
- ``discounted_linucb``: D-LinUCB, Russac, Vernade and Cappe (2019), "Weighted Linear Bandits for
  Non-Stationary Environments", NeurIPS, Algorithm 1: the weighted ridge regression
  V_t = gamma V_{t-1} + x x^T + (1 - gamma) lambda I, b_t = gamma b_{t-1} + r x, theta_hat =
  V^{-1} b, and its companion tilde V_t (gamma^2 in place of gamma), index
  <theta_hat, x> + beta_t ||x||_{V^{-1} tilde V V^{-1}} with the radius of their Theorem 1,

      beta_t = sqrt(lambda) S + sigma sqrt(2 ln(1 / delta)
               + d ln(1 + L^2 (1 - gamma^(2 t)) / (lambda d (1 - gamma^2)))),

  t the number of observations (the last fraction is t when gamma = 1). Default discount
  gamma = 1 - (B_T / (d T))^(2/3), the choice of their Corollary 1 (O~(d^(2/3) B_T^(1/3)
  T^(2/3)) dynamic regret); delta = 1 / T. ``alpha``, if given, replaces beta_t by a constant
  width (LinUCB's alpha). The matrices are kept and solved by Cholesky each round (O(d^3 + K d^2);
  bandits/linalg.py ``DiscountedRidge``): the update contracts old round-off by gamma, so float32
  stays close to float64 (tested). With gamma = 1, V = tilde V = lambda I + sum x x^T and the
  index is ``linucb_shared``'s (with alpha given).

Both take ``variation_budget`` (B_T; default 1, for example one jump of theta by a distance 1)
only to set their defaults. Later analyses found a gap in the confidence sets that both papers'
regret proofs use (Touati and Vincent 2020; Zhao, Zhang, Jiang and Zhou 2020); the algorithms
are implemented as published.

Feedback is a masked batch: each valid item is one observation, in order (the discount is per
observation; with immediate feedback that is per round); masked items leave the state unchanged.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from bandits import linalg
from bandits.core import register_learner
from bandits.linear import COMPENSATED, REGULARISER, RidgeLearner
from envs.core import Array, Feedback, Setting


def _budget_ratio(values, context) -> float:
    """(d T / B_T): the effective memory of both learners' defaults is its 2/3 power."""
    return context["feature_dim"] * context["horizon"] / values["variation_budget"]


def default_window(values, context) -> int:
    """Cheung et al. (2019): w = ceil((d T / B_T)^(2/3)), within [1, T]."""
    return int(min(context["horizon"], max(1, math.ceil(_budget_ratio(values, context)
                                                        ** (2.0 / 3.0)))))


def default_discount(values, context) -> float:
    """Russac et al. (2019), Corollary 1: gamma = 1 - (B_T / (d T))^(2/3), at least 0."""
    return max(0.0, 1.0 - _budget_ratio(values, context) ** (-2.0 / 3.0))


def window_radius(values, context) -> float:
    """beta = R sqrt(d ln((1 + w L^2 / lambda) / delta)) + sqrt(lambda) S (Cheung et al. 2019)."""
    d, lam = context["feature_dim"], values["regulariser"]
    log_term = math.log((1.0 + values["window"] * values["feature_bound"] ** 2 / lam)
                        / values["delta"])
    return values["noise"] * math.sqrt(d * log_term) + math.sqrt(lam) * values["norm_bound"]


def discounted_radius(count: Array, gamma: Array, noise: Array, delta: Array, regulariser: Array,
                      norm_bound: Array, feature_bound: Array, dim: int) -> Array:
    """beta_t of Russac et al. (2019), Theorem 1 (module docstring); t = ``count``."""
    log_gamma2 = 2.0 * jnp.log(jnp.minimum(gamma, 1.0 - 1e-12))
    geometric = jnp.where(gamma < 1.0, jnp.expm1(count * log_gamma2) / jnp.expm1(log_gamma2),
                          count)       # sum_{s < t} gamma^(2 s) = (1 - gamma^2t) / (1 - gamma^2)
    log_term = dim * jnp.log1p(feature_bound ** 2 * geometric / (regulariser * dim))
    return (jnp.sqrt(regulariser) * norm_bound
            + noise * jnp.sqrt(2.0 * jnp.log(1.0 / delta) + log_term))


VARIATION_BUDGET = Setting("variation_budget", 1.0, "B_T: the variation sum_t ||theta_{t+1} - "
                           "theta_t|| the defaults are tuned for", low=0.0, low_open=True)
NOISE = Setting("noise", 0.1, "R (sigma): sub-Gaussian scale of the reward noise", low=0.0)
DELTA = Setting("delta", None, "failure probability of the confidence set (default 1 / T)",
                low=0.0, high=1.0, low_open=True, high_open=True, optional=True,
                default_from=lambda values, context: 1.0 / max(2, context["horizon"]))
NORM_BOUND = Setting("norm_bound", 1.0, "S: bound on ||theta_t||", low=0.0)
FEATURE_BOUND = Setting("feature_bound", 1.0, "L: bound on ||x||", low=0.0, low_open=True)


@struct.dataclass
class WindowState:
    """SW-LinUCB: the ridge regression of the window and the ring buffer that holds it.

    features [w, d], rewards [w], valid [w] (bool: a slot holds an item); ``added``: items added
    so far (int32), the next item goes to slot added mod w.
    """

    ridge: linalg.RidgeState
    features: Array
    rewards: Array
    valid: Array
    added: Array


@register_learner("sliding_window_linucb")
class SlidingWindowLinUCB(RidgeLearner):
    """SW-LinUCB (Cheung, Simchi-Levi and Zhu 2019): LinUCB on the last ``window`` observations."""
    colour = "#117733"

    settings = (
        VARIATION_BUDGET,
        Setting("window", None, "w: observations kept (default ceil((d T / B_T)^(2/3)), at "
                "most T; Cheung et al. 2019)", kind=int, static=True, low=1,
                optional=True, default_from=default_window),
        NOISE, DELTA, NORM_BOUND, FEATURE_BOUND, REGULARISER,
        Setting("alpha", None, "confidence width beta (default R sqrt(d ln((1 + w L^2 / "
                "lambda) / delta)) + sqrt(lambda) S, Cheung et al. 2019)", low=0.0,
                optional=True, default_from=window_radius),
        Setting("refit_every", None, "rebuild the regression from the buffer every this many "
                "rounds (default: the window; 0: never, downdates only)", kind=int, static=True,
                low=0, optional=True, default_from=lambda values, context: values["window"]),
        COMPENSATED,
    )

    def init(self, key, hparams) -> WindowState:
        d, w = self.spec.feature_dim, self.window
        return WindowState(ridge=super().init(key, hparams),
                           features=jnp.zeros((w, d), jnp.float32),
                           rewards=jnp.zeros((w,), jnp.float32),
                           valid=jnp.zeros((w,), bool), added=jnp.zeros((), jnp.int32))

    def ridge(self, state: WindowState) -> linalg.RidgeState:
        return state.ridge

    def index(self, key, state, obs, hparams):
        return self.optimistic_index(state.ridge, obs.features, hparams["alpha"])

    def add_item(self, state: WindowState, x: Array, reward: Array, valid: Array) -> WindowState:
        """One item in, the oldest out once the window is full (both no-ops if not valid)."""
        slot = state.added % self.window
        leaving = state.valid[slot] & valid
        ridge = linalg.remove_observation(state.ridge, state.features[slot],
                                          state.rewards[slot], leaving)
        ridge = linalg.add_observation(ridge, x, reward, valid)
        return WindowState(
            ridge=ridge,
            features=jnp.where(valid, state.features.at[slot].set(x), state.features),
            rewards=jnp.where(valid, state.rewards.at[slot].set(reward), state.rewards),
            valid=state.valid | ((jnp.arange(self.window) == slot) & valid),
            added=state.added + valid.astype(jnp.int32))

    def update(self, state: WindowState, obs, action, feedback: Feedback, hparams) -> WindowState:
        items = (feedback.features[:, 0, :], feedback.reward, feedback.mask)
        if feedback.size == 1:
            state = self.add_item(state, *(item[0] for item in items))
        else:
            state = jax.lax.scan(lambda s, item: (self.add_item(s, *item), None), state,
                                 items)[0]
        if not self.refit_every:
            return state

        def rebuild(ridge):
            return linalg.refit(state.features, state.rewards, state.valid,
                                hparams["regulariser"], compensated=self.compensated)

        due = (jnp.asarray(obs.t, jnp.int32) + 1) % self.refit_every == 0
        return state.replace(ridge=jax.lax.cond(due, rebuild, lambda ridge: ridge, state.ridge))


@register_learner("discounted_linucb")
class DiscountedLinUCB(RidgeLearner):
    """D-LinUCB (Russac, Vernade and Cappe 2019, Algorithm 1): discounted ridge regression."""
    colour = "#AA4499"

    settings = (
        VARIATION_BUDGET,
        Setting("gamma", None, "discount (default 1 - (B_T / (d T))^(2/3), Russac et al. 2019, "
                "Corollary 1; 1: no forgetting)", low=0.0, high=1.0,
                optional=True, default_from=default_discount),
        NOISE, DELTA, NORM_BOUND, FEATURE_BOUND, REGULARISER,
        Setting("alpha", None, "a constant confidence width replacing beta_t (default: beta_t of "
                "Russac et al. 2019, Theorem 1)", low=0.0, optional=True),
    )

    def init(self, key, hparams) -> linalg.DiscountedRidge:
        return linalg.DiscountedRidge.create(self.spec.feature_dim, hparams["regulariser"])

    def index(self, key, state: linalg.DiscountedRidge, obs, hparams):
        theta, widths = linalg.discounted_estimate_and_widths(state, obs.features)
        if "alpha" in hparams:
            radius = hparams["alpha"]
        else:
            radius = discounted_radius(state.count, hparams["gamma"], hparams["noise"],
                                       hparams["delta"], hparams["regulariser"],
                                       hparams["norm_bound"], hparams["feature_bound"],
                                       self.spec.feature_dim)
        return self.predictions(theta, obs.features) + radius * widths

    def update(self, state, obs, action, feedback: Feedback, hparams):
        def add(s, item):
            x, reward, valid = item
            return linalg.discounted_add(s, x, reward, hparams["gamma"], hparams["regulariser"],
                                         valid), None

        items = (feedback.features[:, 0, :], feedback.reward, feedback.mask)
        if feedback.size == 1:
            return add(state, tuple(item[0] for item in items))[0]
        return jax.lax.scan(add, state, items)[0]
