"""Cost-aware routing learners and the routing baselines.

- ``budgeted_linucb``: LinUCB (Li, Chu, Langford and Schapire 2010, Algorithm 1, disjoint
  models) with a second ridge regression per arm for the cost, sharing the design matrix, and a
  Lagrange multiplier mu on cost paced by dual (sub)gradient descent:

      index_a = UCB_a(target) - mu_t * max(LCB_a(cost), 0),
      UCB_a = theta_a . x + alpha ||x||_{V_a^-1},  LCB_a = phi_a . x - alpha ||x||_{V_a^-1},
      mu_{t+1} = clip(mu_t + eta (c_t - rho), 0, 1 / rho),

  the primal-dual scheme of Agrawal and Devanur (2016), "Linear Contextual Bandits with
  Knapsacks", NeurIPS (optimistic reward, pessimistic-for-the-constraint i.e. optimistic cost,
  a multiplier on the budget), with the pacing update of Balseiro and Gur (2019), "Learning in
  Repeated Auctions with Budgets: Regret Minimization and Equilibrium", Management Science,
  Algorithm 1 (mu_{k+1} = P_[0, mu_bar](mu_k - eps (rho - z_k)), mu_bar = r_bar / rho,
  step eps ~ 1 / sqrt(T)). rho = ``budget`` is the target spend per round (normalised cost,
  as the ``routing`` environment reports it). Without a budget mu stays 0.
  ``target`` (static) says what the reward regression learns: ``objective``, the scalarised
  reward quality - lambda * cost that the environment returns (cost-aware), or ``quality``, the
  observed quality only (Feedback.extras['quality']). With ``target = 'quality'`` and no budget
  the learner ignores cost entirely: the router one gets by training on correctness labels
  alone, the cost-ignoring baseline of the tests. With a budget it is the classic bandits-with-
  knapsacks router (maximise quality subject to average spend <= rho).
- ``fixed_arm``: always the same arm (hyper-parameter ``arm``): each single (model, budget).
- ``oracle``: the per-request oracle, argmax_a E[objective_a | x_t]; it reads
  ``Observation.expected_rewards``, which only environments with an oracle fill in (``routing``).
  Its regret is zero by construction.

The random router is ``uniform`` (``bandits/mab.py``); cost-aware LinUCB on the scalarised reward
(the UniScale formulation) is plain ``linucb`` (``bandits/linear.py``) run on ``routing``, whose
Feedback.reward is the scalarised objective.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
from flax import struct

from bandits import linalg
from bandits.core import Learner, random_argmax, register_learner
from bandits.linear import ALPHA, REGULARISER, RidgeLearner
from envs.core import Array, ConfigError, Feedback, Observation, Setting

TARGETS = ("objective", "quality")


def _require_extras(feedback: Feedback, names: tuple[str, ...], learner: str) -> None:
    """Trace-time check that the environment reports the signals a learner needs."""
    missing = [n for n in names if n not in feedback.extras]
    if missing:
        raise ConfigError(f"learner {learner!r} needs an environment that reports "
                          f"{', '.join(missing)} in its feedback (e.g. 'routing'); this one "
                          f"reports {sorted(feedback.extras) or 'none'}")


def add_targets_per_arm(targets: Array, arms: Array, features: Array, values: Array,
                        mask: Array) -> Array:
    """b_a += sum over valid items with arm a of value * x (one-hot, [K, d]).

    The target half of ``linalg.add_batch_per_arm`` for a second regression on the same design
    (b is a sum, so the order of the items does not matter).
    """
    num_arms = targets.shape[0]
    hot = (arms.reshape(-1)[:, None] == jnp.arange(num_arms)[None, :]) & mask[:, None]
    values = jnp.where(mask, values, 0.0)
    return targets + jnp.einsum("bk,b,bd->kd", hot.astype(jnp.float32), values, features)


@struct.dataclass
class BudgetedState:
    ridge: linalg.RidgeState    # per arm [K, ...]: design and the target regression
    cost_target: Array          # [K, d]: sum of cost * x per arm (the cost regression's b)
    multiplier: Array           # [] mu


@register_learner("budgeted_linucb")
class BudgetedLinUCB(RidgeLearner):
    """LinUCB with a cost regression and a paced multiplier (Agrawal and Devanur 2016).

    The multiplier follows the pacing update of Balseiro and Gur (2019)."""
    colour = "#882255"

    model = "disjoint"
    settings = (
        ALPHA,
        REGULARISER,
        Setting("budget", None, "target spend per round rho (normalised cost); none: no "
                "pacing (mu = 0)", optional=True, low=0.0, low_open=True),
        Setting("step", None, "dual step size eta (default 1 / sqrt(T))", optional=True,
                low=0.0, default_from=lambda values, context: 1.0 / math.sqrt(
                    context["horizon"])),
        Setting("target", "objective", "what the reward regression learns: 'objective' "
                "(the scalarised reward) or 'quality' (quality only: cost-ignoring without a "
                "budget)", kind=str, static=True, choices=TARGETS),
    )

    def init(self, key, hparams) -> BudgetedState:
        ridge = linalg.RidgeState.create(self.spec.feature_dim, hparams["regulariser"],
                                         self.num_arms)
        return BudgetedState(ridge=ridge,
                             cost_target=jnp.zeros_like(ridge.target),
                             multiplier=jnp.zeros((), jnp.float32))

    def ridge(self, state: BudgetedState) -> linalg.RidgeState:
        return state.ridge

    def index(self, key, state: BudgetedState, obs: Observation, hparams) -> Array:
        x = obs.features
        width = hparams["alpha"] * self.widths(state.ridge, x)
        upper = self.means(state.ridge, x) + width
        cost_theta = jnp.einsum("kij,kj->ki", state.ridge.inverse, state.cost_target)
        cost_lower = jnp.maximum(self.predictions(cost_theta, x) - width, 0.0)
        return upper - state.multiplier * cost_lower

    def update(self, state: BudgetedState, obs, action, feedback: Feedback, hparams):
        needed = ("cost", "quality") if self.target == "quality" else ("cost",)
        _require_extras(feedback, needed, self.name)
        signal = feedback.extras["quality"] if self.target == "quality" else feedback.reward
        ridge = self.add_feedback(state.ridge, feedback.replace(reward=signal))
        cost = feedback.extras["cost"]
        cost_target = add_targets_per_arm(state.cost_target, feedback.action,
                                          feedback.features[:, 0, :], cost, feedback.mask)
        multiplier = state.multiplier
        if "budget" in hparams:
            budget = hparams["budget"]
            overshoot = jnp.sum(jnp.where(feedback.mask, cost - budget, 0.0))
            multiplier = jnp.clip(multiplier + hparams["step"] * overshoot, 0.0, 1.0 / budget)
        return BudgetedState(ridge=ridge, cost_target=cost_target, multiplier=multiplier)


@register_learner("fixed_arm")
class FixedArm(Learner):
    """Always the arm ``arm``: the single-model (single-budget) baseline."""
    role = "reference"

    settings = (Setting("arm", None, "the arm played every round (0 to K - 1)", kind=int,
                        low=0),)

    @classmethod
    def resolve(cls, values, context):
        arm, k = values.get("arm"), context["num_arms"]
        if arm is not None and arm >= k:
            raise ConfigError(f"learner.arm = {arm}: out of range, the environment has "
                              f"{k} arms (0 to {k - 1})")
        return values

    def init(self, key, hparams) -> Array:
        return jnp.zeros((), jnp.int32)

    def act(self, key, state, obs, hparams) -> Array:
        return jnp.asarray(hparams["arm"], jnp.int32)

    def update(self, state, obs, action, feedback, hparams):
        return state


@register_learner("oracle")
class Oracle(Learner):
    """The per-request oracle: the arm with the highest expected objective this round."""
    colour = "#999933"
    role = "oracle"
    needs_expected_rewards = True

    def init(self, key, hparams) -> Array:
        return jnp.zeros((), jnp.int32)

    def act(self, key, state, obs: Observation, hparams) -> Array:
        if obs.expected_rewards is None:
            raise ConfigError("learner 'oracle' needs an environment that exposes the expected "
                              "reward of every arm (Observation.expected_rewards), e.g. "
                              "'routing'")
        return random_argmax(key, obs.expected_rewards)

    def update(self, state, obs, action, feedback, hparams):
        return state
