"""Learners for linear and generalised linear contextual bandits.

Each learner names its paper and the rule it implements (x_{t,a}: arm a's features in round t;
V = lambda I + sum x x^T and b = sum r x the ridge statistics of ``bandits/linalg.py``,
theta_hat = V^{-1} b, ||x||_{V^{-1}} = sqrt(x^T V^{-1} x)):

- ``linucb``: Li, Chu, Langford and Schapire (2010), Algorithm 1 (LinUCB with disjoint linear
  models): one ridge regression per arm (A_a = V_a, with A_a = lambda I initially; the paper has
  lambda = 1) and index p_{t,a} = theta_a^T x_{t,a} + alpha ||x_{t,a}||_{A_a^{-1}}. Arms never
  played get +inf (docs/design.md convention).
- ``linucb_shared``: one theta shared by all arms over per-arm features, the same index with one V
  (Chu, Li, Reyzin and Schapire 2011, "Contextual Bandits with Linear Payoff Functions", the
  LinUCB of their Algorithm 1 without the BaseLinUCB/SupLinUCB staging; Li et al. 2010, eq. 5).
- ``oful``: Abbasi-Yadkori, Pal and Szepesvari (2011), fig. 1 (OFUL) over a finite arm set:
  argmax_a <theta_hat, x_a> + beta_t ||x_a||_{V^{-1}}, beta_t their Theorem 2,
  R sqrt(log(det V_t / det(lambda I)) + 2 log(1 / delta)) + sqrt(lambda) S, with R = ``noise``,
  S = ``norm_bound``.
- ``lints``: Agrawal and Goyal (2013), "Thompson Sampling for Contextual Bandits with Linear
  Payoffs", Algorithm 1: theta_tilde ~ N(theta_hat, v^2 B^{-1}) with B = V, play
  argmax_a <theta_tilde, x_a>. Their theory takes v = R sqrt(24 d ln(1/delta) / epsilon); the
  default here (v = 0.1) is the practical choice of a scale near the noise level.
- ``linear_epsilon_greedy``: the greedy ridge estimate with probability 1 - epsilon_t, a uniform
  arm otherwise (Sutton and Barto 2018, sec. 2.2 on a linear model); ``schedule = 'decaying'``
  uses eps_t = min(1, epsilon K / t) (Auer, Cesa-Bianchi and Fischer 2002, sec. 3).
- ``glm_ucb``: logistic UCB for Bernoulli rewards, Li, Lu and Zhou (2017), "Provably Optimal
  Algorithms for Generalized Linear Contextual Bandits", Algorithm 1 (UCB-GLM):
  argmax_a <theta_mle, x_a> + alpha ||x_a||_{V^{-1}}, with theta_mle the regularised logistic MLE
  (their eq. 3; Filippi, Cappe, Garivier and Szepesvari 2010, GLM-UCB, whose index
  mu(<theta, x>) + rho ||x||_{V^{-1}} has the same form on the link scale). The MLE is
  ``bandits/glm.py``'s: ``iterations`` warm-started Newton steps over a fixed-capacity history,
  refitted every ``refit_every`` rounds (a static count: a real ``lax.cond`` on the round index,
  so rounds without a refit cost O(K d^2)). Li et al.'s initial random-exploration phase is left
  out: the regulariser lambda > 0 makes the MLE well defined from round 0.

``model`` (static, on ``lints``, ``oful``, ``linear_epsilon_greedy``): ``shared`` (one theta,
default) or ``disjoint`` (one regression per arm, as ``linucb``); ``linucb`` is always disjoint
and ``linucb_shared`` always shared. Every learner folds masked feedback through
``bandits/linalg.py``, so masked-out items leave the state unchanged; all arithmetic is float32
with symmetric Sherman-Morrison updates.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from bandits import glm, linalg
from bandits.core import (EpsilonExploration, Learner, random_argmax, register_learner,
                          the_horizon, untried_first)
from bandits.theory import Theory, oful_upper
from envs.core import Array, Feedback, Observation, Setting

MODELS = ("shared", "disjoint")

REGULARISER = Setting("regulariser", 1.0, "ridge regularisation lambda (V_0 = lambda I)",
                      low=0.0, low_open=True)
ALPHA = Setting("alpha", 1.0, "width of the confidence bonus (index = mean + alpha * width)",
                low=0.0)
MODEL = Setting("model", "shared", "'shared': one theta over per-arm features; 'disjoint': one "
                "regression per arm", kind=str, static=True, choices=MODELS)
COMPENSATED = Setting("compensated", True, "keep V^{-1} and b in double-float32 (exact to "
                      "about 1e-4 after 1e5 rounds on a fixed arm set; plain float32 drifts), "
                      "about twice the update cost", kind=bool, static=True)


class RidgeLearner(Learner):
    """A learner whose state is ridge regression(s) and whose action maximises an index.

    ``model`` is 'shared' (one ``RidgeState``) or 'disjoint' (a ``RidgeState`` with an arm axis,
    which keeps theta_a = V_a^{-1} b_a cached and updates only the played arm: bandits/linalg.py).
    Subclasses define ``index(key, state, obs, hparams) -> [K]``; ties are broken at random and,
    in the disjoint model, arms never played come first. ``index_uses_key``: the index is random
    (LinTS); deterministic indices get key None, which saves a threefry hash per round.
    """

    needs_features = True
    model = "shared"
    compensated = True
    index_uses_key = False

    @property
    def disjoint(self) -> bool:
        return self.model == "disjoint"

    def init(self, key, hparams) -> linalg.RidgeState:
        return linalg.RidgeState.create(self.spec.feature_dim, hparams["regulariser"],
                                        self.num_arms if self.disjoint else None,
                                        compensated=self.compensated,
                                        cache_estimate=self.disjoint)

    def act(self, key, state, obs: Observation, hparams):
        index_key, tie_key = jax.random.split(key) if self.index_uses_key else (None, key)
        index = self.index(index_key, state, obs, hparams)
        if self.disjoint:
            index = untried_first(index, self.ridge(state).count)
        return random_argmax(tie_key, index)

    def update(self, state, obs, action, feedback: Feedback, hparams):
        return self.add_feedback(state, feedback)

    # -- shared pieces --------------------------------------------------------------------------
    def ridge(self, state) -> linalg.RidgeState:
        """The ridge statistics inside the state (the state itself here)."""
        return state

    def add_feedback(self, ridge: linalg.RidgeState, feedback: Feedback) -> linalg.RidgeState:
        """Adds the valid items of a feedback batch (the played arm's features, [B, d])."""
        features = feedback.features[:, 0, :]
        if self.disjoint:
            return linalg.add_batch_per_arm(ridge, feedback.action.reshape(-1), features,
                                            feedback.reward, feedback.mask)
        return linalg.add_batch(ridge, features, feedback.reward, feedback.mask)

    def predictions(self, theta: Array, features: Array) -> Array:
        """<theta_a, x_a> for every arm ([K]); theta is [d] (shared) or [K, d] (disjoint)."""
        if self.disjoint:
            return jnp.sum(theta * features, axis=-1)
        return features @ theta

    def means(self, ridge: linalg.RidgeState, features: Array) -> Array:
        """The ridge estimate of every arm's expected reward ([K])."""
        return self.predictions(linalg.estimate(ridge), features)

    def widths(self, ridge: linalg.RidgeState, features: Array) -> Array:
        """||x_a||_{V^{-1}} for every arm ([K])."""
        return linalg.widths(ridge, features)

    def optimistic_index(self, ridge: linalg.RidgeState, features: Array, radius: Array) -> Array:
        """The optimistic index <theta_hat, x_a> + radius ||x_a||_{V^{-1}} of every arm ([K]),
        shared by LinUCB, OFUL and the sliding-window LinUCB (bandits/drifting_linear.py)."""
        return self.means(ridge, features) + radius * self.widths(ridge, features)

    def index(self, key: Array, state, obs: Observation, hparams) -> Array:
        """The per-arm index; the base class plays its argmax (greedy here)."""
        return self.means(self.ridge(state), obs.features)


@register_learner("linucb")
class LinUCB(RidgeLearner):
    """LinUCB with disjoint linear models (Li et al. 2010, Algorithm 1)."""
    theory = Theory("sqrt")
    colour = "#56B4E9"

    model = "disjoint"
    settings = (ALPHA, REGULARISER, COMPENSATED)

    def index(self, key, state, obs, hparams):
        return self.optimistic_index(self.ridge(state), obs.features, hparams["alpha"])


@register_learner("linucb_shared")
class LinUCBShared(LinUCB):
    """LinUCB with one theta shared by all arms (Chu et al. 2011)."""
    theory = Theory("sqrt")

    model = "shared"


@register_learner("oful")
class OFUL(RidgeLearner):
    """OFUL with the confidence radius of Abbasi-Yadkori et al. (2011), Theorem 2."""
    theory = Theory("sqrt", oful_upper)
    colour = "#332288"

    settings = (
        Setting("noise", 0.1, "R: sub-Gaussian scale of the reward noise", low=0.0),
        Setting("delta", 0.05, "failure probability of the confidence set", low=0.0,
                high=1.0, low_open=True, high_open=True),
        Setting("norm_bound", 1.0, "S: bound on ||theta||_2", low=0.0),
        REGULARISER,
        MODEL,
        COMPENSATED,
    )

    def index(self, key, state, obs, hparams):
        radius = linalg.oful_radius(state.log_det_ratio, hparams["noise"], hparams["delta"],
                                    hparams["regulariser"], hparams["norm_bound"])
        return self.optimistic_index(state, obs.features, radius)


@register_learner("lints")
class LinTS(RidgeLearner):
    """Linear Thompson sampling (Agrawal and Goyal 2013, Algorithm 1)."""
    theory = Theory("sqrt")
    colour = "#CC6677"

    index_uses_key = True

    settings = (
        Setting("v", 0.1, "posterior scale: theta ~ N(theta_hat, v^2 V^{-1})", low=0.0),
        REGULARISER,
        MODEL,
        COMPENSATED,
    )

    def index(self, key, state, obs, hparams):
        if self.disjoint:
            keys = jax.random.split(key, self.num_arms)
            theta = jax.vmap(linalg.sample_posterior, in_axes=(0, 0, None))(
                keys, state, hparams["v"])
        else:
            theta = linalg.sample_posterior(key, state, hparams["v"])
        return self.predictions(theta, obs.features)


@register_learner("linear_epsilon_greedy")
class LinearEpsilonGreedy(EpsilonExploration, RidgeLearner):
    """Epsilon-greedy on the ridge estimate (Sutton and Barto 2018, sec. 2.2, linear model).

    A uniform arm with probability epsilon_t, else the greedy arm."""
    theory = Theory("sqrt")

    settings = EpsilonExploration.exploration_settings + (REGULARISER, MODEL, COMPENSATED)

    def greedy_action(self, key, state, obs, hparams):
        return RidgeLearner.act(self, key, state, obs, hparams)


@struct.dataclass
class GLMState:
    ridge: linalg.RidgeState   # V (design) for the widths; b is kept but unused
    history: glm.History       # the observations the MLE is fitted on
    theta: Array               # [d] the current MLE (warm start of the next fit)


@register_learner("glm_ucb")
class GLMUCB(RidgeLearner):
    """UCB-GLM with the logistic link (Li, Lu and Zhou 2017, Algorithm 1; Filippi et al. 2010)."""
    theory = Theory("sqrt")

    needs_bernoulli_rewards = True
    settings = (
        ALPHA,
        REGULARISER,
        Setting("capacity", None, "history buffer size for the MLE (default: the horizon; "
                "older items are overwritten when it is full)", kind=int, static=True, low=1,
                optional=True, default_from=the_horizon),
        Setting("iterations", 2, "warm-started Newton steps per refit", kind=int, static=True,
                low=1),
        Setting("refit_every", 1, "refit the MLE every this many rounds", kind=int,
                static=True, low=1),
        COMPENSATED,
    )

    def init(self, key, hparams) -> GLMState:
        d = self.spec.feature_dim
        capacity = self.capacity if self.capacity is not None else self.horizon
        return GLMState(ridge=linalg.RidgeState.create(d, hparams["regulariser"],
                                                       compensated=self.compensated),
                        history=glm.History.create(capacity, d),
                        theta=jnp.zeros((d,), jnp.float32))

    def ridge(self, state: GLMState) -> linalg.RidgeState:
        return state.ridge

    def index(self, key, state: GLMState, obs, hparams):
        features = obs.features
        return (self.predictions(state.theta, features)
                + hparams["alpha"] * self.widths(state.ridge, features))

    def update(self, state: GLMState, obs, action, feedback: Feedback, hparams) -> GLMState:
        ridge = self.add_feedback(state.ridge, feedback)
        history = state.history.append(feedback.features[:, 0, :], feedback.reward,
                                       feedback.round, feedback.mask, obs.t)
        arrived = jnp.any(feedback.mask)

        def refit(theta):
            weights = jnp.ones((history.capacity,), jnp.float32)
            fitted = glm.fit_history(theta, history, weights, hparams["regulariser"],
                                     self.iterations)
            return jnp.where(arrived, fitted, theta)

        due = (jnp.asarray(obs.t, jnp.int32) + 1) % self.refit_every == 0
        theta = jax.lax.cond(due, refit, lambda theta: theta, state.theta)
        return GLMState(ridge=ridge, history=history, theta=theta)
