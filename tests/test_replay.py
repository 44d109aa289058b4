"""Replay evaluation on logged bandit feedback (envs/replay.py; Li, Chu, Langford and Wang 2011,
Algorithm 1).

- One pass over the checked-in log (tests/data/logged.csv) in permuted order is Algorithm 1
  exactly: a fixed arm's replay value is the mean logged reward of that arm, its effective
  samples are its rows and its regret column is N (v* - v_a), all computed here from the CSV
  with pandas.
- Unbiasedness against the known truth of a generated log (``true_values``: Monte Carlo over the
  generating model, independent of the code under test): uniform logging (fixed arms and the
  uniform policy), and context-dependent logging propensities, where the unweighted matched mean
  is biased and the self-normalised weights remove the bias (slow).
- Li et al.'s Theorem 1 end to end (slow): LinUCB replayed on a uniform log of a
  full-information table earns, on its matched rounds, what it earns live on that table
  through the ``dataset`` environment.
- Masks: the feedback item is valid exactly when the action matches the logged arm, with the
  logged reward; masked items carry no reward.
- Determinism: the same config gives the same numbers, whatever the batch size; other seeds
  other rows.
- Config errors: one line naming the field for a missing file or column, propensities outside
  (0, 1], actions outside [0, K) or not integers, a feature that is the reward.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from envs.core import ConfigError
from envs.replay import ReplayState
from experiments import config as config_lib
from experiments.runner import record_grid, simulate

LOG = Path(__file__).parent / "data" / "logged.csv"
THETA = np.array([[1.5, 0.0], [0.0, 1.5], [-1.0, -1.0]])
BIAS = np.array([0.0, 0.3, -0.3])


def build(env: dict, learners: list[dict], horizon: int, seeds: int, **run):
    config = {"run": {"horizon": horizon, "seeds": seeds, "record": 4, **run},
              "env": {"name": "replay", **env}, "learner": learners}
    return config_lib.build(config)


def final_columns(experiment, horizon: int, **kwargs) -> list[dict]:
    """Per group: the columns at the last recorded round ([runs] each)."""
    out = []
    for group in experiment.groups:
        result = simulate(group.env, group.learner, run_keys=group.run_keys,
                          instance_keys=group.instance_keys, env_settings=group.env_settings,
                          hparams=group.hparams, horizon=horizon,
                          record=record_grid(horizon, 4), **kwargs)
        columns = {name: values[:, -1] for name, values in result.columns.items()}
        columns["runs"] = group.runs.reset_index(drop=True)
        out.append(columns)
    return out


def mean_rewards(x: np.ndarray) -> np.ndarray:
    """[N, 3] E[r | x, a] of the generating model: sigmoid(<theta_a, x> + b_a)."""
    return 1.0 / (1.0 + np.exp(-(x @ THETA.T + BIAS)))


def true_values() -> np.ndarray:
    """V(a) = E_x[sigmoid(<theta_a, x> + b_a)], x ~ N(0, I): Monte Carlo over 2 * 10^6 contexts
    (standard error below 3e-4)."""
    x = np.random.default_rng(12345).normal(size=(2_000_000, 2))
    return mean_rewards(x).mean(axis=0)


def write_log(path: Path, rows: int, logging_logits: float, seed: int) -> pd.DataFrame:
    """A log from the model above; the logging policy is softmax(logging_logits * x0 * (1, 0,
    -1)) (uniform when logging_logits = 0), its probability of the logged arm the propensity."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    logits = logging_logits * x[:, :1] * np.array([1.0, 0.0, -1.0])
    policy = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    action = (rng.random((rows, 1)) > np.cumsum(policy, axis=1)).sum(axis=1)
    reward = (rng.random(rows) < mean_rewards(x)[np.arange(rows), action]).astype(np.float32)
    frame = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "arm": action, "click": reward,
                          "p": policy[np.arange(rows), action]})
    frame.to_parquet(path)
    return frame


def test_one_permuted_pass_is_algorithm_1_on_the_checked_in_log():
    log = pd.read_csv(LOG)
    rows = len(log)
    per_arm = log.groupby("action")["reward"].agg(["mean", "count", "sum"])
    ips = per_arm["sum"] / (1 / 3) / rows                    # (1/N) sum [a_i = a] r_i / p_i
    experiment = build({"path": str(LOG)}, [{"name": "fixed_arm", "arm": [0, 1, 2]}],
                       horizon=rows, seeds=2)
    (final,) = final_columns(experiment, rows)
    arms = final["runs"]["hp.arm"].to_numpy()
    # Every row once: the estimate is that arm's mean logged reward (float32 sums).
    np.testing.assert_allclose(final["replay_value"], per_arm["mean"].to_numpy()[arms],
                               rtol=1e-5)
    np.testing.assert_allclose(final["effective_samples"], per_arm["count"].to_numpy()[arms],
                               rtol=1e-4)
    # Propensities are written as 0.333333: 1/p differs from 3 by 3e-6 relative.
    np.testing.assert_allclose(final["regret"], rows * (ips.max() - ips.to_numpy()[arms]),
                               rtol=1e-4, atol=2e-3)


@pytest.fixture(scope="module")
def truth():
    return true_values()


def test_replay_is_unbiased_on_a_uniformly_logged_table(tmp_path, truth):
    path = tmp_path / "uniform.parquet"
    write_log(path, 20_000, 0.0, seed=1)
    horizon, seeds = 1200, 16
    experiment = build({"path": str(path), "action": "arm", "reward": "click",
                        "propensity": "p", "sampling": "replacement"},
                       [{"name": "fixed_arm", "arm": [0, 1, 2]}, {"name": "uniform"}],
                       horizon, seeds)
    fixed, uniform = final_columns(experiment, horizon)
    arms = fixed["runs"]["hp.arm"].to_numpy()
    for arm in range(3):
        values = fixed["replay_value"][arms == arm]
        # Each run keeps about 400 rows (standard error about 0.024); over 16 runs 0.006; the
        # table's own error (6,700 rows per arm) is about 0.006: combined 0.0085, and 4 of them
        # (0.034) against values of 0.46-0.59 (a 40% error is 0.2).
        assert abs(values.mean() - truth[arm]) < 0.034, (arm, values.mean(), truth[arm])
        samples = fixed["effective_samples"][arms == arm]
        assert np.all(np.abs(samples - horizon / 3) < 5 * np.sqrt(horizon * 2 / 9))
    # The uniform policy's value is the mean of the arms' (same tolerance: one third of the
    # rounds matched as above, pooled over arms).
    assert abs(uniform["replay_value"].mean() - truth.mean()) < 0.034
    # Regret against the best arm: per round v* - mean; IPS terms have standard deviation
    # about 3 * 0.5 per round, so over 16 runs x 1200 rounds the mean per round has standard
    # error about 0.011; tolerance 4 of them plus the table's error of v* (0.02).
    best = truth.max()
    per_round = uniform["regret"].mean() / horizon
    assert abs(per_round - (best - truth.mean())) < 0.044 + 0.02


@pytest.mark.slow
def test_self_normalised_weights_remove_the_logging_policys_bias(tmp_path, truth):
    path = tmp_path / "skewed.parquet"
    frame = write_log(path, 20_000, 1.5, seed=2)
    # The logging policy plays arm 0 more where x0 > 0, where arm 0 pays more: the plain mean
    # of arm 0's logged rewards is far above its value (the test has power).
    naive = frame[frame["arm"] == 0]["click"].mean()
    assert naive - truth[0] > 0.1
    horizon, seeds = 1500, 16
    experiment = build({"path": str(path), "action": "arm", "reward": "click",
                        "propensity": "p", "sampling": "replacement"},
                       [{"name": "fixed_arm", "arm": [0, 1, 2]}], horizon, seeds)
    (fixed,) = final_columns(experiment, horizon)
    arms = fixed["runs"]["hp.arm"].to_numpy()
    for arm in range(3):
        values = fixed["replay_value"][arms == arm]
        # Fewer and unequally weighted matches than under uniform logging: about twice the
        # uniform case's standard error (0.017), 4 of them.
        assert abs(values.mean() - truth[arm]) < 0.07, (arm, values.mean(), truth[arm])
        # Kish's effective sample size is below the matched count when weights differ.
        assert np.all(fixed["effective_samples"][arms == arm] < horizon / 2)


def test_feedback_is_valid_exactly_on_matched_rounds():
    log = pd.read_csv(LOG)
    experiment = build({"path": str(LOG)}, [{"name": "uniform"}], horizon=10, seeds=1)
    env = experiment.groups[0].env
    key = jnp.asarray([3, 4], jnp.uint32)
    step = jax.jit(lambda state, action: env.step(key, state, action, jnp.zeros(())))
    for row in (0, 1, 7):
        state = ReplayState(t=jnp.int32(5), row=jnp.int32(row), order_key=key)
        logged, reward = int(log["action"][row]), float(log["reward"][row])
        for arm in range(3):
            _, feedback, info = step(state, jnp.int32(arm))
            assert bool(feedback.mask[0]) == (arm == logged)
            assert int(feedback.action[0]) == arm and int(feedback.round[0]) == 5
            assert float(feedback.reward[0]) == (reward if arm == logged else 0.0)
            assert float(info.metrics["matched_weight"]) == pytest.approx(
                1.0 if arm == logged else 0.0, abs=1e-5)
            np.testing.assert_allclose(np.asarray(feedback.features[0, 0]),
                                       [log["x0"][row], log["x1"][row], 1.0], rtol=1e-5)


def test_same_config_same_numbers_whatever_the_batch_other_seeds_other_rows():
    def run(batch=None, seed=0):
        experiment = build({"path": str(LOG), "sampling": "replacement"},
                           [{"name": "uniform"}], horizon=50, seeds=4, seed=seed)
        return final_columns(experiment, 50, batch=batch)[0]

    first, again, batched, other = run(), run(), run(batch=2), run(seed=1)
    for name in ("regret", "replay_value", "effective_samples"):
        np.testing.assert_array_equal(first[name], again[name])
        np.testing.assert_array_equal(first[name], batched[name])
    assert not np.array_equal(first["regret"], other["regret"])
    assert len(set(first["regret"].tolist())) > 1          # the runs differ from each other


def write_csv(tmp_path, **columns) -> str:
    base = {"x0": [0.1, 0.2, 0.3, 0.4], "action": [0, 1, 2, 1], "reward": [1.0, 0.0, 1.0, 0.0],
            "propensity": [1 / 3] * 4}
    base.update(columns)
    path = tmp_path / "log.csv"
    pd.DataFrame(base).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("columns, env, field", [
    ({}, {"action": "arm"}, "env.action"),
    ({}, {"reward": "click"}, "env.reward"),
    ({}, {"propensity": "p"}, "env.propensity"),
    ({}, {"features": ["x0", "x9"]}, "env.features"),
    ({}, {"features": ["x0", "reward"]}, "env.features"),
    ({"propensity": [0.5, 0.0, 0.5, 0.5]}, {}, "env.propensity"),
    ({"propensity": [0.5, 1.5, 0.5, 0.5]}, {}, "env.propensity"),
    ({"action": [0, 1, -1, 1]}, {}, "env.action"),
    ({"action": [0, 1, 3, 1]}, {"arms": 3}, "env.action"),
    ({"action": [0, 1, 1.5, 1]}, {}, "env.action"),
    ({"action": [0, 0, 0, 0]}, {}, "env.action"),
    ({"reward": [1.0, None, 0.0, 1.0]}, {}, "env.reward"),
])
def test_bad_logs_are_one_line_config_errors(tmp_path, columns, env, field):
    path = write_csv(tmp_path, **columns)
    with pytest.raises(ConfigError) as error:
        build({"path": path, **env}, [{"name": "uniform"}], horizon=5, seeds=1)
    message = str(error.value)
    assert message.startswith(field) and "\n" not in message, message


def test_missing_file_and_missing_path_are_config_errors(tmp_path):
    for env, text in (({"path": str(tmp_path / "nothing.csv")}, "no such file"),
                      ({}, "env.path: required")):
        with pytest.raises(ConfigError, match=text):
            build(env, [{"name": "uniform"}], horizon=5, seeds=1)


@pytest.mark.slow
def test_replaying_a_learner_matches_its_live_run(tmp_path):
    # Li et al.'s Theorem 1 end to end: a full-information table (every arm's reward drawn for
    # every row) is the live environment through ``dataset``; a uniform log of the same rows
    # keeps one random arm's reward per row. LinUCB's index does not depend on the round
    # counter, so its ~1,000 matched rounds out of 3,000 replayed ones are distributed as 1,000
    # live rounds, and the replay value must equal its live mean reward.
    rows, k, seeds = 20_000, 3, 20
    rng = np.random.default_rng(3)
    x = rng.normal(size=(rows, 2))
    rewards = (rng.random((rows, k)) < mean_rewards(x)).astype(np.float32)
    table = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1]})
    for arm in range(k):
        table[f"reward.{arm}"] = rewards[:, arm]
    table.to_parquet(tmp_path / "full.parquet")
    logged = rng.integers(0, k, size=rows)
    pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "action": logged,
                  "reward": rewards[np.arange(rows), logged]}).to_parquet(tmp_path / "log.parquet")

    live_horizon = 1000
    live = config_lib.build({"run": {"horizon": live_horizon, "seeds": seeds, "record": 4},
                             "env": {"name": "dataset", "path": str(tmp_path / "full.parquet")},
                             "learner": [{"name": "linucb"}]})
    (live_final,) = final_columns(live, live_horizon)
    # Sum of rewards = sum of the drawn rows' best rewards - regret; the first has expectation
    # T * (mean row maximum) under sampling with replacement.
    live_value = rewards.max(axis=1).mean() - live_final["regret"] / live_horizon
    replay = build({"path": str(tmp_path / "log.parquet"), "sampling": "replacement"},
                   [{"name": "linucb"}], horizon=k * live_horizon, seeds=seeds)
    (replay_final,) = final_columns(replay, k * live_horizon)
    # Per run both are means of about 1,000 rewards (measured: sd 0.016 for the replay, 0.010
    # live); the tolerance is 4 standard errors of the difference of the two means over 20 runs
    # (about 0.017), against values near 0.78 (the best arm of each context earns 0.785, the
    # best single arm 0.555: a learner that did not learn from the matched rounds, or learned
    # from the masked ones, would be far off).
    replay_value = replay_final["replay_value"]
    standard_error = np.sqrt((replay_value.var(ddof=1) + live_value.var(ddof=1)) / seeds)
    assert abs(replay_value.mean() - live_value.mean()) < 4 * standard_error, (
        replay_value.mean(), live_value.mean(), standard_error)
    assert np.all(np.abs(replay_final["effective_samples"] - live_horizon) < 5 * np.sqrt(
        k * live_horizon * 2 / 9))
