"""Per-arm features from one context shared by all arms, in the two layouts learners expect.

Environments whose round shows ONE context x_t (the Wheel bandit, logged tables) still hand the
learner ``Observation.features`` of shape [K, d] (docs/design.md, "The two protocols"). Two
layouts (``arm_features``, a static setting):

- ``replicated``: every arm's row is x_t, the disjoint model of Li, Chu, Langford and Schapire
  (2010), sec. 3.1 (one parameter per arm over a shared context): for learners with one model
  per arm (``linucb``, ``model = "disjoint"``).
- ``block``: arm a's row is e_a (x) x_t, x_t in the a-th block of K d zeros: the encoding with
  which Zhou, Li and Gu (2020), "Neural Contextual Bandits with UCB-based Exploration", sec. 7.2,
  run shared-parameter learners (one network, one theta) on classification data (Riquelme,
  Tucker and Snoek 2018). A shared linear model over the blocks is K disjoint models.

``bias`` appends a constant 1 to x_t before the layout (an intercept, as the routing
environment's (z, 1)).
"""
from __future__ import annotations

import jax.numpy as jnp

from envs.core import Array, Setting

LAYOUTS = ("replicated", "block")

ARM_FEATURES = Setting("arm_features", "replicated", "per-arm features: 'replicated' (the "
                       "context for every arm: disjoint learners) or 'block' (arm a's block of "
                       "K: shared-parameter and neural learners)", kind=str, static=True,
                       choices=LAYOUTS)
BIAS = Setting("bias", True, "append a constant 1 to the context (an intercept)", kind=bool,
               static=True)


def feature_dim(context_dim: int, num_arms: int, layout: str, bias: bool) -> int:
    """d of the [K, d] features made by ``arm_features``."""
    width = context_dim + int(bias)
    return width * num_arms if layout == "block" else width


def arm_features(context: Array, num_arms: int, layout: str, bias: bool) -> Array:
    """[K, d] per-arm features of one shared context ([c], float32)."""
    x = jnp.asarray(context, jnp.float32)
    if bias:
        x = jnp.concatenate([x, jnp.ones((1,), jnp.float32)])
    rows = jnp.broadcast_to(x, (num_arms, x.shape[0]))
    if layout == "replicated":
        return rows
    eye = jnp.eye(num_arms, dtype=jnp.float32)
    return (eye[:, :, None] * rows[:, None, :]).reshape(num_arms, num_arms * x.shape[0])
