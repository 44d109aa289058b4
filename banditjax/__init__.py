"""banditjax: simulate and benchmark bandit algorithms in JAX, from Python.

The Python API of the suite (README, "Python API"); the command line is ``banditjax`` (the same
code: ``experiments/cli.py``). For scripts and notebooks:

    import banditjax
    results = banditjax.run({"run": {"horizon": 2000, "seeds": 20},
                             "env": {"name": "bernoulli", "means": [0.3, 0.5, 0.7]},
                             "learner": [{"name": "ucb1"}, {"name": "thompson"}]})
    results.summary(); results.table(); results.plot()

``run`` and ``load`` are ``experiments/api.py``; writing a learner or an environment of one's own
uses the base classes and registries re-exported here (``bandits/core.py``, ``envs/core.py``;
README, "Writing an environment or a learner").
"""
from bandits.core import LEARNERS, Learner, register_learner
from envs.core import ENVS, ConfigError, Environment, Setting, register_env
from experiments.api import Results, load, run
from experiments.cli import version

__version__ = version()

__all__ = ["run", "load", "Results", "ConfigError", "Learner", "Environment", "Setting",
           "register_learner", "register_env", "LEARNERS", "ENVS", "__version__"]
