"""Learners: importing this package registers every learner."""
from bandits import core, mab  # noqa: F401
from bandits.core import LEARNERS, Learner  # noqa: F401
