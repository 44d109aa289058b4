"""Environments: importing this package registers every environment and wrapper."""
from envs import core, mab  # noqa: F401
from envs import linear  # noqa: F401
from envs import nonlinear  # noqa: F401
from envs import dueling  # noqa: F401
from envs import delay  # noqa: F401
from envs import routing  # noqa: F401
from envs import history  # noqa: F401
from envs import changing  # noqa: F401
from envs import dataset  # noqa: F401
from envs import replay  # noqa: F401
from envs import wheel  # noqa: F401
from envs.core import ENVS, WRAPPERS, ConfigError, Environment, EnvSpec  # noqa: F401
