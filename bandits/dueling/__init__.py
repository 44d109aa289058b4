"""Dueling-bandit learners, one module per family: K-armed (``karmed``), linear contextual
(``linear``), neural (``neural``) and delay-aware (``delayed``: LDB-DF, NDB-DF), with what they
share in ``common`` (pair actions, win counts, preference bounds, the Kaplan-Meier delay
estimate). Importing the package registers every learner; the public names are re-exported here.
"""
from bandits.dueling.common import (IPW_CHOICES, SELECTIONS, DelayEstimate, add_duels,
                                    make_pair, preference_bounds, random_distinct_pair)
from bandits.dueling.karmed import ALPHA_RUCB, RUCB, DoubleTS, RUCBState, UniformPair
from bandits.dueling.linear import (ALPHA, GLM_SETTINGS, REGULARISER, CoLSTIM,
                                    LinearDuelingState, LinearDuelingTS, LinearDuelingUCB,
                                    MaxInP, greedy_then_optimistic, pair_widths)
from bandits.dueling.neural import (NeuralDuelingState, NeuralDuelingTS, NeuralDuelingUCB,
                                    logistic_preference_loss)
from bandits.dueling.delayed import (DELAY_LAW_NAMES, DELAY_LAW_SETTINGS, DELAY_SETTINGS,
                                     LDBDF, NDBDF, SELECTION, DelayAware)

__all__ = [
    "IPW_CHOICES", "SELECTIONS", "DelayEstimate", "add_duels", "make_pair", "preference_bounds",
    "random_distinct_pair", "ALPHA_RUCB", "RUCB", "DoubleTS", "RUCBState", "UniformPair",
    "ALPHA", "GLM_SETTINGS", "REGULARISER", "CoLSTIM", "LinearDuelingState", "LinearDuelingTS",
    "LinearDuelingUCB", "MaxInP", "greedy_then_optimistic", "pair_widths", "NeuralDuelingState",
    "NeuralDuelingTS", "NeuralDuelingUCB", "logistic_preference_loss", "DELAY_LAW_NAMES",
    "DELAY_LAW_SETTINGS", "DELAY_SETTINGS", "LDBDF", "NDBDF", "SELECTION", "DelayAware",
]
