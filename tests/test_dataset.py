"""The ``dataset`` environment (envs/dataset.py), its presets, ``banditjax export``
(experiments/export.py) and routing tables through the command line.

Tables: tests/data/classes.csv (150 rows, 4 features, classes 'a', 'b', 'c'; written by
tests/data/make_classes.py), experiments/configs/data/routing_table.csv (200 rows exported from
the routing preset at one sample per call), and small tables written by the tests. The expected
values come from the tables read with pandas, never from the environment's own output.
"""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from envs import dataset as dataset_lib
from envs import randomness
from envs.core import ConfigError
from experiments import cli
from experiments import config as config_lib
from experiments import runner
from experiments.experiment import simulate_experiment
from experiments.export import export_frame, write_table
from tests.reference import cheap_jit, environment_trace

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ROOT / "tests" / "data" / "classes.csv"
ROUTING_TABLE = ROOT / "experiments" / "configs" / "data" / "routing_table.csv"


def group_of(env: dict, learner: str = "uniform", seeds: int = 2, horizon: int = 20):
    config = {"run": {"horizon": horizon, "seeds": seeds, "record": 3},
              "env": {"name": "dataset", **env}, "learner": [{"name": learner}]}
    return config_lib.build(config).groups[0]


def rollout(group, actions: np.ndarray):
    """Per round (state before the step, observation, feedback, step info) of every run of a
    group, with the given actions ([T] arms, the same for every run) and the runner's keys."""
    trace = jax.vmap(environment_trace(group.env), in_axes=(0, 0, 0, None))
    return jax.device_get(cheap_jit(trace)(
        jnp.asarray(group.run_keys), jnp.asarray(group.instance_keys), group.env_settings,
        jnp.asarray(actions, jnp.int32)))


# ---------------------------------------------------------------------------------------------
# Column mapping.
# ---------------------------------------------------------------------------------------------
# One rollout of the class table shared by two tests (compile time dominates this module):
# 3 runs, 3 permutation passes over the 150 rows, arm t mod 3 in round t.
CLASS_PASSES = 3
_CLASS_ROLLOUT: dict = {}


def class_rollout():
    if not _CLASS_ROLLOUT:
        group = group_of({"path": str(CLASSES), "label": "class", "sampling": "permutation",
                          "label_reward": 2.0, "label_penalty": -1.0}, seeds=3)
        actions = np.arange(CLASS_PASSES * 150) % 3
        _CLASS_ROLLOUT.update(group=group, actions=actions, out=rollout(group, actions))
    return _CLASS_ROLLOUT


def test_label_table_maps_rows_to_features_and_one_hot_rewards():
    frame = pd.read_csv(CLASSES)
    data = class_rollout()
    env, actions = data["group"].env, data["actions"]
    assert env.spec.num_arms == 3 and env.spec.feature_dim == 5     # f0..f3 and the bias
    assert env.table.arm_names == ("a", "b", "c")
    assert env.spec.reward_range == (-1.0, 2.0) and not env.spec.bernoulli_rewards
    state, obs, feedback, info = data["out"]
    for run in range(3):
        row = state.row[run]
        expected_x = frame[["f0", "f1", "f2", "f3"]].to_numpy(np.float32)[row]
        features = obs.features[run]                              # [T, K, d]
        np.testing.assert_allclose(features[:, :, :4],
                                   np.repeat(expected_x[:, None], 3, axis=1), rtol=1e-6)
        assert np.all(features[:, :, 4] == 1.0)
        right = frame["class"].map({"a": 0, "b": 1, "c": 2}).to_numpy()[row]
        expected_reward = np.where(actions == right, 2.0, -1.0)
        np.testing.assert_array_equal(feedback.reward[run, :, 0], expected_reward)
        np.testing.assert_array_equal(info.regret[run], 2.0 - expected_reward)
        np.testing.assert_array_equal(obs.expected_rewards[run],
                                      np.where(np.arange(3)[None] == right[:, None], 2.0, -1.0))


def test_permutation_visits_every_row_once_per_pass():
    state = class_rollout()["out"][0]
    rows = state.row.reshape(3, CLASS_PASSES, 150)          # [run, pass, position]
    for run in range(3):
        for p in range(CLASS_PASSES):
            assert sorted(rows[run, p].tolist()) == list(range(150))
        assert not np.array_equal(rows[run, 0], rows[run, 1])     # a new order every pass
    assert not np.array_equal(rows[0, 0], rows[1, 0])             # and every run


def test_reward_and_cost_columns_give_the_routing_objective(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"u": rng.normal(size=12), "v": rng.normal(size=12),
                          "reward.cheap": rng.uniform(size=12),
                          "reward.dear": rng.uniform(size=12),
                          "cost.cheap": rng.uniform(0.0, 0.1, 12),
                          "cost.dear": rng.uniform(0.5, 1.0, 12)})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    group = group_of({"path": str(path), "cost_weight": 0.5, "sampling": "permutation",
                      "features": ["v"], "bias": False}, seeds=1, horizon=12)
    env = group.env
    assert env.table.arm_names == ("cheap", "dear")            # 'reward.' stripped
    assert env.spec.feature_dim == 1 and env.spec.reward_range is None
    assert set(env.metric_names) == {"quality", "cost", "share.cheap", "share.dear"}
    actions = np.array([0, 1] * 6)
    state, obs, feedback, info = rollout(group, actions)
    row = state.row[0]
    q = frame[["reward.cheap", "reward.dear"]].to_numpy(np.float32)[row]
    c = frame[["cost.cheap", "cost.dear"]].to_numpy(np.float32)[row]
    objective = q - 0.5 * c
    chosen = objective[np.arange(12), actions]
    np.testing.assert_allclose(obs.features[0, :, :, 0], frame["v"].to_numpy()[row][:, None]
                               * np.ones(2), rtol=1e-6)
    np.testing.assert_allclose(feedback.reward[0, :, 0], chosen, rtol=1e-6)
    np.testing.assert_allclose(feedback.extras["quality"][0, :, 0], q[np.arange(12), actions])
    np.testing.assert_allclose(feedback.extras["cost"][0, :, 0], c[np.arange(12), actions])
    np.testing.assert_allclose(info.regret[0], objective.max(axis=1) - chosen, atol=1e-6)
    np.testing.assert_array_equal(info.metrics["share.dear"][0], actions == 1)


def test_explicit_columns_standardise_and_block_features(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(3.0, 2.0, 40), "b": rng.normal(size=40),
                          "skip": rng.normal(size=40), "r0": rng.uniform(size=40),
                          "r1": rng.uniform(size=40), "r2": rng.uniform(size=40)})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    group = group_of({"path": str(path), "features": ["a", "b"], "rewards": ["r0", "r1", "r2"],
                      "standardise": True, "arm_features": "block", "sampling": "permutation"},
                     seeds=1, horizon=40)
    env = group.env
    assert env.spec.feature_dim == 3 * 3 and env.table.feature_names == ("a", "b")
    state, obs, _, _ = rollout(group, np.zeros(40, np.int64))
    x = frame[["a", "b"]].to_numpy()
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    features = obs.features[0]                                    # [T, K, 3K]
    for arm in range(3):
        block = features[:, arm, 3 * arm:3 * arm + 3]
        np.testing.assert_allclose(block[:, :2], z[state.row[0]], rtol=1e-5, atol=1e-6)
        assert np.all(block[:, 2] == 1.0)
        others = np.delete(features[:, arm], np.s_[3 * arm:3 * arm + 3], axis=1)
        assert np.all(others == 0.0)


def test_parquet_csv_and_npz_give_the_same_table(tmp_path):
    frame = pd.read_csv(CLASSES)
    frame["class"] = frame["class"].map({"a": 0, "b": 1, "c": 2})
    frame.to_parquet(tmp_path / "t.parquet")
    np.savez(tmp_path / "t.npz", X=frame[["f0", "f1", "f2", "f3"]].to_numpy(),
             y=frame["class"].to_numpy())
    tables = [group_of({"path": str(tmp_path / "t.parquet"), "label": "class"}).env.table,
              group_of({"path": str(tmp_path / "t.npz"), "label": "y"}).env.table,
              group_of({"path": str(CLASSES), "label": "class"}).env.table]
    assert tables[1].feature_names == ("X.0", "X.1", "X.2", "X.3")
    for table in tables[:2]:
        np.testing.assert_array_equal(table.features, tables[2].features)
        np.testing.assert_array_equal(table.labels, tables[2].labels)


# ---------------------------------------------------------------------------------------------
# Errors: one line, naming the field, the value and what is allowed.
# ---------------------------------------------------------------------------------------------
def _bad_tables(tmp_path: Path) -> dict[str, Path]:
    good = pd.DataFrame({"x": [0.1, 0.2, 0.3], "reward.a": [1.0, 0.0, 1.0],
                         "reward.b": [0.0, 1.0, 0.5]})
    nan = good.copy()
    nan.loc[1, "x"] = np.nan
    text = good.assign(x=["low", "high", "low"])
    short = good.iloc[:1]
    out = {}
    for name, frame in (("good", good), ("nan", nan), ("text", text), ("short", short)):
        out[name] = tmp_path / f"{name}.csv"
        frame.to_csv(out[name], index=False)
    return out


@pytest.mark.parametrize("env, message", [
    ({}, "give exactly one of path"),
    ({"path": "{good}", "preset": "iris"}, "give exactly one of path"),
    ({"path": "{missing}"}, "no such file"),
    ({"path": "{txt}"}, "unsupported file type"),
    ({"path": "{good}", "features": ["y"]}, "column 'y' is not in the table"),
    ({"path": "{good}", "rewards": ["reward.a", "reward.z"]}, "column 'reward.z' is not in"),
    ({"path": "{good}", "label": "klass"}, "column 'klass' is not in the table"),
    ({"path": "{good}", "costs": ["x", "nope"]}, "column 'nope' is not in the table"),
    ({"path": "{good}", "costs": ["x"]}, "has 1 columns but there are 2 arms"),
    ({"path": "{good}", "features": ["reward.a"]}, "is also a reward, cost or label"),
    ({"path": "{good}", "rewards": ["reward.a"]}, "at least 2 arms"),
    ({"path": "{good}", "label": "x", "rewards": ["reward.a"]}, "not both"),
    ({"path": "{good}", "label_reward": 0.0}, "must be greater than label_penalty"),
    ({"path": "{nan}"}, "column 'x' has 1 NaN or infinite values (first at row 1)"),
    ({"path": "{text}"}, "column 'x' is not numeric"),
    ({"path": "{short}"}, "has 1 rows but 2 arms"),
    ({"path": "{good}", "sampling": "shuffle"}, "expected one of 'replacement', 'permutation'"),
    ({"path": "{good}", "features": "x"}, "expected a list of strings"),
])
def test_config_errors_are_one_line(tmp_path, env, message):
    paths = _bad_tables(tmp_path)
    paths.update(missing=tmp_path / "missing.csv", txt=tmp_path / "good.txt")
    env = {k: (v.format(**{n: str(p) for n, p in paths.items()}) if isinstance(v, str) else v)
           for k, v in env.items()}
    with pytest.raises(ConfigError) as error:
        group_of(env)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith("env")


def test_a_table_too_large_for_the_compiled_round_is_refused(monkeypatch):
    monkeypatch.setattr(dataset_lib, "MAX_TABLE_BYTES", 1000)
    with pytest.raises(ConfigError, match=r"MiB as float32, more than"):
        group_of({"path": str(CLASSES), "label": "class"})


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    (folder / "data").mkdir(parents=True)
    pd.read_csv(CLASSES).to_csv(folder / "data" / "t.csv", index=False)
    config_path = folder / "c.toml"
    config_path.write_text('[env]\nname = "dataset"\npath = "data/t.csv"\nlabel = "class"\n'
                           '[[learner]]\nname = "uniform"\n')
    monkeypatch.chdir(tmp_path)                     # not the config's folder
    config = config_lib.load(config_path)
    assert config["env"]["path"] == str((folder / "data" / "t.csv").resolve())
    assert config_lib.build(config).groups[0].env.table.rows == 150
    # A --set value is relative to the working directory.
    config = config_lib.load(config_path, ["env.path=configs/data/t.csv"])
    assert config["env"]["path"] == "configs/data/t.csv"
    assert config_lib.build(config).groups[0].env.table.rows == 150


# ---------------------------------------------------------------------------------------------
# Presets (scikit-learn, the optional extra 'datasets').
# ---------------------------------------------------------------------------------------------
def test_a_preset_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)      # import sklearn now fails
    with pytest.raises(ConfigError) as error:
        # (standardise: a mapping no other test loads, so no cached table answers instead)
        group_of({"preset": "digits", "standardise": True})
    assert "banditjax[datasets]" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("preset, rows, arms, features", [
    ("digits", 1797, 10, 64), ("wine", 178, 3, 13), ("breast_cancer", 569, 2, 30),
    ("iris", 150, 3, 4)])
def test_presets_are_scikit_learns_bundled_datasets(preset, rows, arms, features):
    pytest.importorskip("sklearn")
    env = group_of({"preset": preset}).env
    assert env.table.rows == rows and env.spec.num_arms == arms
    assert env.spec.feature_dim == features + 1 and env.spec.bernoulli_rewards


# ---------------------------------------------------------------------------------------------
# Rows: determinism, batch size, permutation passes.
# ---------------------------------------------------------------------------------------------
def test_results_are_deterministic_and_independent_of_batch_size():
    config = {"run": {"horizon": 30, "seeds": 5, "record": 3},
              "env": {"name": "dataset", "path": str(CLASSES), "label": "class",
                      "sampling": "permutation"},
              "learner": [{"name": "uniform"}]}
    results = {}
    for batch in (None, 2):
        config["run"]["batch"] = batch
        frame, _ = simulate_experiment(config_lib.build(config), progress=False)
        results[batch] = frame.sort_values(["run", "t"])["regret"].to_numpy()
    np.testing.assert_array_equal(results[None], results[2])
    final = frame[frame["t"] == 30].sort_values("run")["regret"].to_numpy()
    assert len(set(final.tolist())) > 2            # other seeds, other rows and draws


def test_permuted_index_is_a_uniform_permutation():
    # 4000 keys, size 5: each (position, element) count is Binomial(4000, 1/5), mean 800,
    # sd 25.3; 5 sd (126) bounds all 25 counts with probability > 0.9999 for a uniform shuffle,
    # while a bias of one element by 4 percentage points (160) fails.
    keys = np.random.default_rng(0).integers(0, 2 ** 32, (4000, 2), dtype=np.uint32)
    perms = np.asarray(cheap_jit(jax.vmap(lambda k: jax.vmap(
        lambda i: randomness.permuted_index(k, i, 5))(jnp.arange(5))))(keys))
    assert all(sorted(p) == list(range(5)) for p in perms.tolist())
    counts = np.stack([np.bincount(perms[:, i], minlength=5) for i in range(5)])
    assert np.abs(counts - 800).max() < 126, counts


def test_the_table_is_not_in_the_per_run_state(tmp_path):
    sizes = {}
    for rows in (10, 2000):
        rng = np.random.default_rng(rows)
        frame = pd.DataFrame(rng.normal(size=(rows, 6)), columns=[f"x{j}" for j in range(6)])
        frame["label"] = np.arange(rows) % 3
        frame.to_csv(tmp_path / f"t{rows}.csv", index=False)
        group = group_of({"path": str(tmp_path / f"t{rows}.csv"), "label": "label",
                          "sampling": "permutation"}, learner="linucb")
        sim = runner.Simulation(group.env, group.learner, 20, np.array([20], np.int32), 20)
        sizes[rows] = sim.bytes_per_run(group.run_keys, group.instance_keys,
                                        group.env_settings, group.hparams)
    assert sizes[10] == sizes[2000]


# ---------------------------------------------------------------------------------------------
# Export and replay.
# ---------------------------------------------------------------------------------------------
ROUTING_SMALL = {"name": "routing", "models": 3, "budgets": [1.0], "dim": 4, "topics": 4,
                 "abilities": [-1.0, 0.0, 1.0], "price_in": [0.1, 1.0, 3.0],
                 "price_out": [0.4, 4.0, 15.0], "cost_weight": 0.3}


def test_export_writes_contexts_qualities_and_costs(tmp_path):
    config = {"run": {"horizon": 10}, "env": ROUTING_SMALL,
              "learner": [{"name": "fixed_arm", "arm": 99}]}     # learners are not read
    out = tmp_path / "t.parquet"
    assert cli.main(["export", _write(tmp_path, config), "--rows", "30", "--out",
                     str(out)]) == 0
    frame = pd.read_parquet(out)
    arms = ["m0@k1", "m1@k1", "m2@k1"]
    assert list(frame.columns) == ([f"x.{j}" for j in range(4)] + [f"reward.{a}" for a in arms]
                                   + [f"cost.{a}" for a in arms])
    assert len(frame) == 30
    np.testing.assert_allclose(np.linalg.norm(frame[[f"x.{j}" for j in range(4)]], axis=1),
                               1.0, rtol=1e-5)                # unit embeddings z
    quality = frame[[f"reward.{a}" for a in arms]].to_numpy()
    assert np.all((quality >= 0) & (quality <= 1))
    assert np.all(np.diff(quality.mean(axis=0)) > 0)    # abilities -1 < 0 < 1


def test_written_tables_read_back_the_same_in_every_format(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x.0": rng.normal(size=20), "reward.a": rng.uniform(size=20),
                          "reward.b": rng.uniform(size=20), "cost.a": rng.uniform(size=20),
                          "cost.b": rng.uniform(size=20)}).astype(np.float32)
    tables = [group_of({"path": str(write_table(frame, tmp_path / f"t{suffix}"))}).env.table
              for suffix in (".parquet", ".csv", ".npz")]
    for table in tables:
        assert table.arm_names == ("a", "b") and table.feature_names == ("x.0",)
        np.testing.assert_array_equal(table.features[:, 0], frame["x.0"])
        np.testing.assert_array_equal(table.rewards, frame[["reward.a", "reward.b"]])
        np.testing.assert_array_equal(table.costs, frame[["cost.a", "cost.b"]])


def test_export_errors(tmp_path):
    config = {"run": {"horizon": 10}, "env": {"name": "bernoulli"},
              "learner": [{"name": "uniform"}]}
    path = _write(tmp_path, config)
    with pytest.raises(ConfigError, match="cannot be exported as a table: it declares no"):
        export_frame(config_lib.load(path), 5)
    assert cli.main(["export", path, "--rows", "5", "--out", str(tmp_path / "t.xlsx")]) == 2
    linear = {"run": {"horizon": 10}, "env": {"name": "linear"}, "learner": [{"name": "oful"}]}
    with pytest.raises(ConfigError, match="use model = 'disjoint'"):
        export_frame(linear, 5)


def _write(folder: Path, config: dict) -> str:
    path = folder / "config.toml"
    path.write_text(config_lib.dump_toml(config))
    return str(path)


def _final_regret(config: dict) -> pd.Series:
    frame, _ = simulate_experiment(config_lib.build(config), progress=False)
    horizon = config["run"]["horizon"]
    return frame[frame["t"] == horizon].groupby("learner")["regret"]


def test_replaying_an_exported_routing_table_reproduces_the_regret(tmp_path):
    """Uniform routing (its pseudo-regret does not depend on the observation noise): live
    ``routing`` on one instance and the ``dataset`` replay of 5000 of its contexts have the same
    expected regret, sum over t of E[max_a obj_a - mean_a obj_a], which the table gives
    directly (an independent reference, computed here with pandas)."""
    horizon, seeds, rows = 40, 300, 5000
    table = export_frame({"run": {"horizon": horizon}, "env": ROUTING_SMALL,
                          "learner": [{"name": "uniform"}]}, rows)
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    live = _final_regret({"run": {"horizon": horizon, "seeds": seeds, "record": 2},
                          "env": ROUTING_SMALL, "learner": [{"name": "uniform"}]})
    replay = _final_regret({"run": {"horizon": horizon, "seeds": seeds, "record": 2},
                            "env": {"name": "dataset", "path": str(path), "cost_weight": 0.3},
                            "learner": [{"name": "uniform"}]})
    quality = table.filter(like="reward.").to_numpy()
    objective = quality - 0.3 * table.filter(like="cost.").to_numpy()
    per_row = objective.max(axis=1) - objective.mean(axis=1)
    expected = horizon * per_row.mean()
    # Tolerances: 4 standard errors of each side (the runs' spread; the live side adds the
    # sampling error of the 5000-row table mean, horizon * sd / sqrt(rows)). Both are a few
    # percent of the mean here, so a 10% error in either the export or the replay fails.
    for result, extra in ((replay, 0.0), (live, horizon * per_row.std() / np.sqrt(rows))):
        mean, se = result.mean()["uniform"], result.sem()["uniform"]
        assert abs(mean - expected) < 4 * np.hypot(se, extra), (mean, expected, se)
        assert 4 * np.hypot(se, extra) < 0.1 * expected


@pytest.mark.slow
def test_replaying_an_exported_linear_table_reproduces_linucb_regret(tmp_path):
    """A learner: noise-free disjoint ``linear`` (observed reward = expected reward, so the
    replay, which observes the table's expected rewards, sees exactly what the live environment
    shows) against its exported table, LinUCB on both with the same features (bias off)."""
    horizon, seeds, rows = 150, 200, 20000
    env = {"name": "linear", "K": 4, "d": 3, "model": "disjoint", "noise": 0.0,
           "context": "gaussian"}
    learner = [{"name": "linucb", "alpha": 0.5}]
    table = export_frame({"run": {"horizon": horizon}, "env": env, "learner": learner}, rows)
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    run = {"horizon": horizon, "seeds": seeds, "record": 2}
    live = _final_regret({"run": run, "env": env, "learner": learner})
    replay = _final_regret({"run": run, "env": {"name": "dataset", "path": str(path),
                                                "bias": False}, "learner": learner})
    # 4 standard errors of the difference of two independent means (each side ~2-3% of the
    # mean at 200 runs): a systematic 15% difference fails.
    difference = live.mean()["linucb"] - replay.mean()["linucb"]
    se = np.hypot(live.sem()["linucb"], replay.sem()["linucb"])
    assert abs(difference) < 4 * se and 4 * se < 0.15 * live.mean()["linucb"], (difference, se)


# ---------------------------------------------------------------------------------------------
# A routing table with costs through `banditjax run` and `banditjax plot`.
# ---------------------------------------------------------------------------------------------
def test_routing_table_runs_and_plots_its_pareto_front(tmp_path, capsys):
    table = pd.read_csv(ROUTING_TABLE)
    config = {"run": {"horizon": 200, "seeds": 2, "record": 3},
              "env": {"name": "dataset", "path": str(ROUTING_TABLE), "sampling": "permutation",
                      "cost_weight": [0.0, 1.0]},
              "learner": [{"name": "uniform"}, {"name": "fixed_arm", "arm": [0, 5]}]}
    out = tmp_path / "out"
    assert cli.main(["run", _write(tmp_path, config), "--out", str(out), "--quiet"]) == 0
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "pareto.png").exists() and (out / "share.png").exists()
    frame = pd.read_parquet(out / "results.parquet")
    final = frame[(frame["t"] == 200) & (frame["learner"] == "fixed_arm")]
    # One permutation pass over the 200 rows: a fixed arm's mean quality and cost are exactly
    # its columns' means.
    for arm, name in ((0, "mistral-7b@k1"), (5, "gpt-4@k1")):
        rows = final[final["hp.arm"] == arm]
        np.testing.assert_allclose(rows["quality"], table[f"reward.{name}"].mean(), rtol=1e-5)
        np.testing.assert_allclose(rows["cost"], table[f"cost.{name}"].mean(), rtol=1e-5)
        assert np.all(rows[f"share.{name}"] == 1.0)


def test_the_shipped_routing_table_config_builds():
    config = config_lib.load(ROOT / "experiments" / "configs" / "routing_table.toml")
    experiment = config_lib.build(config)
    env = experiment.groups[0].env
    assert env.spec.num_arms == 6 and env.costed
    assert env.table.rows == 200
    # costs = [] drops the default cost columns: a plain table, rewards = qualities.
    plain = group_of({"path": str(ROUTING_TABLE), "costs": []}).env
    assert not plain.costed and plain.metric_names == () and plain.spec.reward_range is not None
    assert plain.table.feature_names == tuple(f"x.{j}" for j in range(8))


@pytest.mark.slow
def test_contextual_learners_learn_on_block_features_and_not_on_replicated_ones():
    """The layout claim of the README: a shared-parameter learner (``lints`` shared, ``glm_ucb``,
    ``neural_ts``) tells the arms apart on ``block`` features and cannot on ``replicated``
    ones, where every arm has the same features. Uniform play has expected regret exactly
    T (1 - 1/3) = 200 on the 3-class table; a learner that separates the classes stays well
    below it (< 60%), one that cannot stays near it (> 80%)."""
    horizon, uniform = 300, 300 * (1 - 1 / 3)
    base = {"name": "dataset", "path": str(CLASSES), "label": "class", "standardise": True}
    run = {"horizon": horizon, "seeds": 4, "record": 2}
    learners = [{"name": "lints"}, {"name": "glm_ucb"},
                {"name": "neural_ts", "train_every": 10}]
    block = _final_regret({"run": run, "env": {**base, "arm_features": "block"},
                           "learner": learners}).mean()
    replicated = _final_regret({"run": run, "env": base,
                                "learner": [{"name": "lints"}]}).mean()
    # Measured (seeds 0-3): lints 71, glm_ucb 72, neural_ts 92 on block; lints 203 replicated.
    assert all(block[name] < 0.6 * uniform for name in ("lints", "glm_ucb", "neural_ts")), block
    assert replicated["lints"] > 0.8 * uniform, replicated


@pytest.mark.slow
def test_routing_learners_run_on_a_routing_table():
    """The routing learners on the packaged table (cost weight 0.1, 400 rounds = 2 passes):
    the oracle reads the row's objective (regret exactly 0), ``budgeted_linucb`` reads the
    'quality' and 'cost' extras; both routers learn (measured, seeds 0-2: linucb 50,
    budgeted_linucb 74 -- its pacing holds spend near 0.1, which costs objective -- uniform
    115). Bounds: linucb below 60% of uniform, budgeted_linucb below uniform."""
    config = {"run": {"horizon": 400, "seeds": 3, "record": 2},
              "env": {"name": "dataset", "path": str(ROUTING_TABLE), "sampling": "permutation",
                      "cost_weight": 0.1},
              "learner": [{"name": "linucb", "alpha": 0.5},
                          {"name": "budgeted_linucb", "alpha": 0.5, "budget": 0.1},
                          {"name": "uniform"}, {"name": "oracle"}]}
    regret = _final_regret(config)
    mean = regret.mean()
    assert regret.max()["oracle"] == 0.0
    assert mean["linucb"] < 0.6 * mean["uniform"], mean
    assert mean["budgeted_linucb"] < mean["uniform"], mean
