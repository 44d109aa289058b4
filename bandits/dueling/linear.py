"""Linear contextual dueling learners (``envs.dueling.ContextualDueling``), all on the logistic
MLE of ``bandits/glm.py`` (theta_hat: ``iterations`` warm-started Newton steps on the regularised
logistic loss over z_s = x_first - x_second, y_s = 1 when first won) and the design matrix
V = lambda I + sum_s z_s z_s^T of ``bandits/linalg.py`` (Sherman-Morrison;
w_ij = ||x_i - x_j||_{V^-1}); each Newton step is clipped to ``max_step`` (a trust region):
- ``maxinp``: Saha (2021), "Optimal Algorithms for Stochastic Contextual Preference Bandits",
  Algorithm 1 (MaxInP): the arms not yet ruled out, C = {i : theta^T (x_i - x_j) + alpha w_ij >= 0
  for all j}, and the pair of C x C with the largest w_ij ("maximum informative pair").
- ``colstim``: Bengs, Saha and Hullermeier (2022), "Stochastic Contextual Dueling Bandits under
  Linear Stochastic Transitivity Models", Algorithm 1 (CoLSTIM): first arm argmax_i theta^T x_i +
  eps_i ||x_i||_{V^-1} with eps_i ~ Gumbel clipped to [-threshold, threshold] (the logistic link's
  perturbation); second arm argmax_j theta^T (x_j - x_first) + alpha w_j,first. Defaults
  threshold = alpha = sqrt(d ln T).
- ``linear_dueling_ucb`` / ``linear_dueling_ts``: the linear case of Verma, Dai, Lin, Jaillet and
  Low (2024), "Neural Dueling Bandits" (their NDB-UCB / NDB-TS with f(x) = theta^T x, g(x) = x):
  first arm greedy, argmax_i theta^T x_i; second arm argmax_j theta^T x_j + alpha w_j,first (UCB)
  or argmax_j of r_j ~ N(theta^T (x_j - x_first), alpha^2 w_j,first^2) (TS).
"""
from __future__ import annotations

import abc
import math

import jax
import jax.numpy as jnp
from flax import struct

from bandits import glm, linalg
from bandits.core import random_argmax, register_learner, the_horizon, tree_where
from bandits.dueling.common import DelayEstimate, _PairLearner, make_pair
from bandits.theory import Theory
from envs.core import Array, Feedback, Setting


# ---------------------------------------------------------------------------------------------
# Linear contextual dueling learners.
# ---------------------------------------------------------------------------------------------
@struct.dataclass
class LinearDuelingState:
    history: glm.History       # (x_first - x_second, first won, round) of arrived comparisons
    theta: Array               # [d] the MLE (warm start of the next fit)
    design: linalg.RidgeState  # V = lambda I + sum z z^T over arrived comparisons (b unused)
    delays: DelayEstimate      # Kaplan-Meier statistics (ipw = 'estimated'; else 1 bin)


REGULARISER = Setting("regulariser", 1.0, "ridge lambda of the MLE and of V = lambda I + sum z "
                      "z^T", low=0.0, low_open=True)
ALPHA = Setting("alpha", 1.0, "confidence width multiplier", low=0.0)
GLM_SETTINGS = (
    REGULARISER,
    Setting("iterations", 2, "warm-started Newton steps of the MLE per refit", kind=int,
            static=True, low=1),
    Setting("max_step", 1.0, "trust region of the MLE: each Newton step's norm is clipped here "
            "(plain Newton diverges from a far warm start when large IPW weights make the data "
            "nearly separable)", low=0.0, low_open=True),
    Setting("refit_every", 1, "refit the MLE every this many rounds (static: a real branch on "
            "the round index)", kind=int, static=True, low=1),
    Setting("capacity", None, "history buffer size (default: the horizon; the oldest items are "
            "overwritten when it is full)", kind=int, static=True, low=1, optional=True,
            default_from=the_horizon),
)


class _LinearDueling(_PairLearner):
    """The logistic MLE over pair differences, V, and a pair-selection rule (``select``)."""

    needs_features = True
    settings = (ALPHA,) + GLM_SETTINGS
    iterations: int
    capacity: int | None

    def init(self, key, hparams) -> LinearDuelingState:
        d = self.spec.feature_dim
        capacity = self.capacity if self.capacity is not None else self.horizon
        return LinearDuelingState(history=glm.History.create(capacity, d),
                                  theta=jnp.zeros((d,), jnp.float32),
                                  design=linalg.RidgeState.create(d, hparams["regulariser"]),
                                  delays=self.init_delays())

    def init_delays(self) -> DelayEstimate:
        return DelayEstimate.create(1)

    def update_delays(self, delays, obs, feedback):
        return delays

    def weights(self, state: LinearDuelingState, t: Array, hparams) -> Array:
        """Per-slot weights of the MLE at round t (1 for every arrived comparison)."""
        return state.history.valid.astype(jnp.float32)

    def update(self, state: LinearDuelingState, obs, action, feedback: Feedback,
               hparams) -> LinearDuelingState:
        old = state
        differences = feedback.features[:, 0, :] - feedback.features[:, 1, :]
        history = state.history.append(differences, feedback.reward, feedback.round,
                                       feedback.mask, obs.t)
        design = linalg.add_batch(state.design, differences, jnp.zeros_like(feedback.reward),
                                  feedback.mask)
        state = LinearDuelingState(history=history, theta=state.theta, design=design,
                                   delays=self.update_delays(state.delays, obs, feedback))

        def refit(theta):
            return glm.fit_history(theta, history, self.weights(state, obs.t, hparams),
                                   hparams["regulariser"], self.iterations,
                                   hparams["max_step"])

        due = (jnp.asarray(obs.t, jnp.int32) + 1) % self.refit_every == 0
        theta = jax.lax.cond(due, refit, lambda theta: theta, state.theta)
        # Only when something arrived: masked-out feedback leaves the state bit for bit
        # unchanged (time-dependent weights are brought up to date at the next arrival).
        return tree_where(jnp.any(feedback.mask), state.replace(theta=theta), old)

    def act(self, key, state: LinearDuelingState, obs, hparams):
        return self.select(key, state.theta, state.design.inverse, obs.features, hparams)

    @abc.abstractmethod
    def select(self, key, theta, inverse, features, hparams) -> Array:
        """Defined by each subclass."""


def greedy_then_optimistic(key: Array, theta: Array, inverse: Array, features: Array,
                           alpha: Array, sampled: bool) -> Array:
    """Verma et al. (2024) rule, linear case: first = argmax theta^T x; second = argmax of
    theta^T x_j + alpha w_j,first (UCB) or of a draw N(theta^T (x_j - x_first), alpha^2 w^2)."""
    first_key, noise_key, second_key = jax.random.split(key, 3)
    scores = features @ theta
    first = random_argmax(first_key, scores)
    widths = linalg.confidence_widths(inverse, features - features[first])
    bonus = alpha * widths
    if sampled:
        bonus = bonus * jax.random.normal(noise_key, scores.shape)
    second = random_argmax(second_key, scores + bonus)
    return make_pair(first, second)


def pair_widths(inverse: Array, features: Array) -> Array:
    """w_ij = ||x_i - x_j||_{V^-1} for all pairs ([K, K]) from G = X V^-1 X^T."""
    gram = features @ inverse @ features.T
    gram = 0.5 * (gram + gram.T)
    diagonal = jnp.diagonal(gram)
    return jnp.sqrt(jnp.maximum(diagonal[:, None] + diagonal[None, :] - 2.0 * gram, 0.0))


@register_learner("maxinp")
class MaxInP(_LinearDueling):
    """Maximum Informative Pair (Saha 2021, Algorithm 1)."""
    theory = Theory("sqrt")

    def select(self, key, theta, inverse, features, hparams):
        k = self.num_arms
        scores = features @ theta
        widths = pair_widths(inverse, features)
        margins = scores[:, None] - scores[None, :] + hparams["alpha"] * widths
        candidates = jnp.all(margins >= 0.0, axis=1)    # never empty: the argmax is in it
        informative = jnp.where(candidates[:, None] & candidates[None, :], widths, -jnp.inf)
        flat = random_argmax(key, informative.reshape(-1))
        return make_pair(flat // k, flat % k)


def colstim_scale(context) -> float:
    """sqrt(d ln T) (ln T at least ln 2): the default of CoLSTIM's c1 and of its Gumbel
    threshold (see the module docstring)."""
    return math.sqrt(context["feature_dim"] * math.log(max(context["horizon"], 2)))


@register_learner("colstim")
class CoLSTIM(_LinearDueling):
    """CoLSTIM (Bengs, Saha and Hullermeier 2022, Algorithm 1)."""
    theory = Theory("sqrt")

    settings = (
        Setting("alpha", None, "width multiplier c1 of the second arm (default sqrt(d ln T))",
                low=0.0, optional=True, default_from=lambda values, context: colstim_scale(
                    context)),
        Setting("threshold", None, "clipping threshold of the Gumbel perturbation (default "
                "sqrt(d ln T))", low=0.0, optional=True,
                default_from=lambda values, context: colstim_scale(context)),
    ) + GLM_SETTINGS

    def select(self, key, theta, inverse, features, hparams):
        noise_key, first_key, second_key = jax.random.split(key, 3)
        scores = features @ theta
        threshold = hparams["threshold"]
        noise = jnp.clip(jax.random.gumbel(noise_key, scores.shape), -threshold, threshold)
        first = random_argmax(first_key, scores + noise * linalg.confidence_widths(
            inverse, features))
        widths = linalg.confidence_widths(inverse, features - features[first])
        second = random_argmax(second_key, scores + hparams["alpha"] * widths)
        return make_pair(first, second)


@register_learner("linear_dueling_ucb")
class LinearDuelingUCB(_LinearDueling):
    """Greedy first arm, optimistic second arm (Verma et al. 2024, NDB-UCB, linear case)."""
    theory = Theory("sqrt")

    def select(self, key, theta, inverse, features, hparams):
        return greedy_then_optimistic(key, theta, inverse, features, hparams["alpha"], False)


@register_learner("linear_dueling_ts")
class LinearDuelingTS(_LinearDueling):
    """Greedy first arm, sampled second arm (Verma et al. 2024, NDB-TS, linear case)."""
    theory = Theory("sqrt")

    def select(self, key, theta, inverse, features, hparams):
        return greedy_then_optimistic(key, theta, inverse, features, hparams["alpha"], True)
