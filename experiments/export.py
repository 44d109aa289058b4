"""``banditjax export``: a synthetic environment written as a full-information table.

The table is what the ``dataset`` environment (envs/dataset.py) reads: one row per context,
columns ``x.<j>`` (the context), ``reward.<arm>`` (the expected reward, or quality, of every arm
in that context) and, for environments with a cost, ``cost.<arm>``. Replaying such a table
through ``dataset`` (sampling with replacement) is the environment again with its contexts
drawn from the table's empirical distribution instead of the generator, and the reward noise
removed (the observed reward is the expected one): the regret of a policy that does not learn
(uniform, a fixed arm, the oracle) has the same expectation on both, and that of a learner the
same up to the noise it no longer sees (tests/test_dataset.py checks the first on
``routing`` and the second on noise-free ``linear``).

What can be exported is declared by the environment (``Environment.export_support`` and
``export_row``; docs/design.md, "Layout"). The rows are the contexts of the config's first run
(seed 0, instance 0, first value of every sweep; ``config.first_environment``;
the learners are not read): the instance is drawn from its
instance key and the contexts follow the runner's key scheme (envs/randomness.py), so row t is
the context of round t of that run. The action played while drawing them is arm 0; exportable
environments' contexts do not depend on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from envs import randomness
from envs.core import ConfigError
from envs.dataset import COST_PREFIX, EXTENSIONS, FEATURE_PREFIX, REWARD_PREFIX
from experiments import config as config_lib


def export_frame(config: Mapping, rows: int) -> pd.DataFrame:
    """The first run's first ``rows`` contexts as a table (columns above)."""
    if rows < 1:
        raise ConfigError(f"--rows = {rows}: expected a positive number of rows")
    env, settings, run_key, instance_key = config_lib.first_environment(config)
    reason = env.export_support(settings)
    if reason is not None:
        raise ConfigError(f"env.name = {config['env']['name']!r}: cannot be exported as a "
                          f"table: {reason}")

    def contexts(run_key, instance_key, settings):
        params = env.sample_params(instance_key, settings)
        reset_key, _, round_key = jax.random.split(run_key, 3)
        state = env.reset(reset_key, params)

        def body(state, t):
            row = env.export_row(state, params)
            env.observe(randomness.consumer_key(round_key, t, randomness.OBSERVE), state, params)
            state, _, _ = env.step(randomness.consumer_key(round_key, t, randomness.STEP),
                                   state, jnp.zeros((), jnp.int32), params)
            return state, row

        return jax.lax.scan(body, state, jnp.arange(rows, dtype=jnp.int32))[1]

    settings = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], settings)
    table = jax.device_get(jax.jit(contexts)(jnp.asarray(run_key), jnp.asarray(instance_key),
                                             settings))
    arms = env.export_arm_names()
    columns = {f"{FEATURE_PREFIX}{j}": np.asarray(table.features)[:, j]
               for j in range(np.shape(table.features)[1])}
    columns.update({f"{REWARD_PREFIX}{a}": np.asarray(table.rewards)[:, k]
                    for k, a in enumerate(arms)})
    if table.costs is not None:
        columns.update({f"{COST_PREFIX}{a}": np.asarray(table.costs)[:, k]
                        for k, a in enumerate(arms)})
    return pd.DataFrame(columns)


def write_table(frame: pd.DataFrame, out: str | Path) -> Path:
    """Writes ``frame`` as Parquet, CSV or NPZ (by the file's extension)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in EXTENSIONS:
        raise ConfigError(f"--out = {str(out)!r}: unsupported file type; expected one of "
                          f"{', '.join(EXTENSIONS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.to_parquet(out, index=False)
    elif suffix == ".csv":
        frame.to_csv(out, index=False, float_format="%.9g")
    else:
        np.savez(out, **{c: frame[c].to_numpy() for c in frame.columns})
    return out


def export_table(config: Mapping, rows: int, out: str | Path) -> Path:
    """``banditjax export``: the table of ``export_frame`` written to ``out``."""
    if Path(out).suffix.lower() not in EXTENSIONS:
        raise ConfigError(f"--out = {str(out)!r}: unsupported file type; expected one of "
                          f"{', '.join(EXTENSIONS)}")
    return write_table(export_frame(config, rows), out)
