"""Learners: importing this package registers every learner."""
from bandits import core, mab  # noqa: F401
from bandits import linear  # noqa: F401
from bandits import drifting_linear  # noqa: F401
from bandits import neural  # noqa: F401
from bandits import dueling  # noqa: F401
from bandits import routing  # noqa: F401
from bandits import delayed  # noqa: F401
from bandits import nonstationary  # noqa: F401
from bandits import change_detection  # noqa: F401
from bandits.core import LEARNERS, Learner  # noqa: F401
