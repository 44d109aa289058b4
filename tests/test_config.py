"""Config files (experiments/config.py): every class of bad input gets its own clear message.

Each bad config is checked twice: ``config.build`` raises ``ConfigError`` with the message, and
the command line (``experiments.cli.main``) prints it as one ``error:`` line on stderr, exits
with status 2, shows no traceback and writes nothing. One real ``python -m experiments``
subprocess checks the same from outside. Nothing here compiles a simulation.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import pytest

from envs.core import ConfigError
from experiments import cli
from experiments import config as config_lib


def _set(section, **values):
    def edit(config):
        config[section].update(values)
    return edit


def _set_learner(index, **values):
    def edit(config):
        config["learner"][index].update(values)
    return edit


def _add_learner(**table):
    def edit(config):
        config["learner"].append(table)
    return edit


def _pop(section, key=None):
    def edit(config):
        if key is None:
            config.pop(section)
        else:
            config[section].pop(key)
    return edit


def _env(**values):
    """Replaces the env table (keeps name unless given)."""
    def edit(config):
        config["env"] = {"name": "bernoulli", **values}
    return edit


# (id, edit of the tiny config, fragments the message must contain)
BAD_CONFIGS = [
    # Unknown names: the known ones are listed, the closest suggested.
    ("unknown-env", _set("env", name="bernouli"),
     ["env.name", "'bernouli'", "unknown environment", "did you mean 'bernoulli'", "known:",
      "gaussian"]),
    ("unknown-learner", _set_learner(0, name="ucb"),
     ["learner[0].name", "'ucb'", "unknown learner", "did you mean 'ucb1'", "known:",
      "thompson", "epsilon_greedy", "exp3_ix"]),
    ("missing-env-name", _pop("env", "name"), ["env.name", "missing", "bernoulli, "]),
    ("no-learner", _pop("learner"), ["no learner", "known learners", "ucb1"]),
    ("unknown-wrapper", _set("env", dealy={"mean": 1}),
     ["env.dealy", "unknown environment wrapper", "did you mean 'delay'"]),
    # Unknown or misspelt keys: the closest allowed key is suggested.
    ("misspelt-run-key", _set("run", horizn=100),
     ["run.horizn", "unknown key", "did you mean 'horizon'", "allowed:"]),
    ("misspelt-env-key", _set("env", meens=[0.1, 0.2, 0.3]),
     ["env.meens", "unknown key", "did you mean 'means'"]),
    ("misspelt-learner-key", _set_learner(1, name="epsilon_greedy", epsilom=0.1),
     ["learner[1].epsilom", "unknown key", "did you mean 'epsilon'"]),
    ("misspelt-section", lambda c: c.update(learners=[{"name": "ucb1"}]),
     ["config.learners", "unknown key", "did you mean 'learner'"]),
    ("misspelt-choice", _set("env", generator="gapp"),
     ["env.generator", "'gapp'", "expected one of", "did you mean 'gap'"]),
    # Probabilities outside [0, 1].
    ("mean-above-one", _set("env", means=[0.2, 0.5, 1.2]),
     ["env.means", "1.2", "out of range", ">= 0 and <= 1"]),
    ("mean-below-zero", _set("env", means=[-0.1, 0.5, 0.8]),
     ["env.means", "-0.1", "out of range", ">= 0 and <= 1"]),
    ("best-above-one", _env(K=3, generator="gap", best=1.5),
     ["env.best", "1.5", "out of range"]),
    ("epsilon-above-one", _add_learner(name="epsilon_greedy", epsilon=1.5),
     ["learner[2].epsilon", "1.5", "[0, 1]"]),
    ("delta-outside", _add_learner(name="successive_elimination", delta=1.5),
     ["learner[2].delta", "1.5", "out of range", "> 0 and < 1"]),
    ("gap-below-zero-mean", _env(K=3, generator="gap", best=0.3, gap=0.5),
     ["env.gap", "0.5", "below the smallest allowed mean"]),
    # K < 2.
    ("one-arm", _set("env", K=1, means=[0.5]), ["env.K", "1", "out of range", ">= 2"]),
    ("zero-arms", _env(K=0), ["env.K", "0", ">= 2"]),
    ("means-length", _set("env", K=4), ["env.means has 3 values but K = 4"]),
    ("means-ignored-by-generator", _set("env", generator="uniform"),
     ["env.means", "generator = 'uniform'", "set generator = 'fixed'"]),
    # Non-positive horizons, seeds, record counts.
    ("zero-horizon", _set("run", horizon=0), ["run.horizon", "0", "out of range", ">= 1"]),
    ("negative-horizon", _set("run", horizon=-5), ["run.horizon", "-5", ">= 1"]),
    ("zero-seeds", _set("run", seeds=0), ["run.seeds", "0", ">= 1"]),
    ("negative-master-seed", _set("run", seed=-1), ["run.seed", "-1", ">= 0"]),
    ("zero-record", _set("run", record=0), ["run.record", "0", ">= 1"]),
    # Wrong types.
    ("horizon-string", _set("run", horizon="100"), ["run.horizon", "'100'", "an integer"]),
    ("horizon-fraction", _set("run", horizon=10.5), ["run.horizon", "10.5", "an integer"]),
    ("seeds-bool", _set("run", seeds=True), ["run.seeds", "True", "an integer"]),
    ("K-string", _set("env", K="ten"), ["env.K", "'ten'", "an integer"]),
    ("means-string", _set("env", means="abc"), ["env.means", "'abc'", "a list of numbers"]),
    ("hparam-string", _set_learner(0, c="big"), ["learner[0].c", "'big'", "a number"]),
    ("env-not-table", lambda c: c.update(env=3), ["[env] must be a table"]),
    ("sweep-in-run", _set("run", horizon=[100, 200]),
     ["run.horizon", "a single value is expected"]),
    ("empty-sweep", _set_learner(0, c=[]), ["learner[0].c", "at least one value"]),
    # Other range and combination checks.
    ("sigma-zero", lambda c: c.update(env={"name": "gaussian", "K": 3, "sigma": 0}),
     ["env.sigma", "0", "> 0"]),
    ("low-above-high", _env(K=3, generator="uniform", low=0.8, high=0.2),
     ["env.low", "0.8", "above high"]),
    ("features-needed", _add_learner(name="linucb"),
     ["learner[2].name", "'linucb'", "cannot run here", "features"]),
    ("bounded-rewards-needed",
     lambda c: c.update(env={"name": "gaussian", "K": 3}, learner=[{"name": "klucb"}]),
     ["learner[0].name", "'klucb'", "cannot run here", "[0, 1]"]),
]


def _bad_config(tiny_config, edit):
    edit(tiny_config)
    return tiny_config


def _toml_text(config: dict) -> str:
    """TOML for a (possibly malformed) config: top-level scalars first, then the tables."""
    scalars = {k: v for k, v in config.items() if not isinstance(v, (dict, list))}
    head = "".join(f"{k} = {config_lib._toml_value(v)}\n" for k, v in scalars.items())
    return head + config_lib.dump_toml({k: v for k, v in config.items() if k not in scalars})


@pytest.mark.parametrize("edit, fragments", [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_refused_with_its_message(tiny_config, edit, fragments):
    config = _bad_config(tiny_config, edit)
    with pytest.raises(ConfigError) as error:
        config_lib.build(config)
    message = str(error.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"message {message!r} lacks {missing}"


@pytest.mark.parametrize("edit, fragments", [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_cli_reports_bad_config_without_traceback(tiny_config, edit, fragments, tmp_path,
                                                  capsys):
    config = _bad_config(tiny_config, edit)
    path = tmp_path / "bad.toml"
    path.write_text(_toml_text(config))
    assert tomllib.loads(path.read_text()) == config          # the file says what we meant
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert all(f in lines[0] for f in fragments), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()                      # refused before anything was written


def test_existing_results_folder_needs_force(tiny_config, write_config, tmp_path, capsys):
    path = write_config(tiny_config)
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.parquet").write_text("earlier results")
    assert cli.main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--force" in err and "already holds files" in err
    assert "Traceback" not in err
    assert (out / "results.parquet").read_text() == "earlier results"    # untouched
    # A path that is a file, not a folder.
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert cli.main(["run", str(path), "--out", str(not_a_folder), "--quiet"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_missing_and_malformed_config_files(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\nhorizon = ")
    assert cli.main(["run", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not valid TOML" in err and "Traceback" not in err


@pytest.mark.parametrize("item, fragments", [
    ("run.horizon", ["expected section.key=value"]),
    ("runs.horizon=10", ["unknown section 'runs'", "did you mean 'run'"]),
    ("learner.c=1", ["learner.<index, label or name>.<key>=value"]),
    ("learner.klucb.c=1", ["no learner 'klucb'", "learner.0 = 'ucb1'; learner.1 = 'uniform'"]),
    ("run.horizon=0", ["run.horizon = 0", "out of range"]),
    ("env.K=1", ["env.K = 1", ">= 2"]),
])
def test_bad_set_overrides(tiny_config, write_config, tmp_path, capsys, item, fragments):
    path = write_config(tiny_config)
    assert cli.main(["run", str(path), "--out", str(tmp_path / "o"), "--set", item]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert all(f in err for f in fragments), err


def test_real_subprocess_exits_2_without_traceback(tiny_config, write_config, tmp_path):
    tiny_config["learner"][0]["name"] = "ucb"
    path = write_config(tiny_config)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-m", "experiments", "run", str(path), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.startswith("error: learner[0].name = 'ucb': unknown learner")
    assert "did you mean 'ucb1'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# Valid configs: sweeps, groups, labels, overrides, the TOML round trip.
# ---------------------------------------------------------------------------------------------
def test_sweeps_expand_into_runs_and_columns(tiny_config):
    tiny_config["run"].update(seeds=3, instances=2)
    tiny_config["learner"] = [{"name": "ucb1", "c": [0.5, 1.0, 2.0]},
                              {"name": "epsilon_greedy", "epsilon": [0.05, 0.1],
                               "schedule": ["fixed", "decaying"], "label": "eg"}]
    experiment = config_lib.build(tiny_config)
    # ucb1: 3 values x 2 instances x 3 seeds, one compiled group (c is sweepable).
    # epsilon-greedy: schedule is static, so 2 groups of 2 x 2 x 3 runs.
    sizes = [len(g.runs) for g in experiment.groups]
    assert sizes == [18, 12, 12]
    assert experiment.total_runs == 42
    runs = [g.runs for g in experiment.groups]
    assert sorted(runs[0]["hp.c"].unique()) == [0.5, 1.0, 2.0]
    assert set(runs[1]["learner"]) == {"eg"}
    assert {g.learner.schedule for g in experiment.groups[1:]} == {"fixed", "decaying"}
    # Run numbers are unique over the whole experiment; hp arrays follow the rows.
    all_runs = [r for table in runs for r in table["run"]]
    assert sorted(all_runs) == list(range(42))
    g = experiment.groups[0]
    assert list(g.hparams["c"]) == list(g.runs["hp.c"])
    assert g.run_keys.shape == (18, 2) and g.instance_keys.shape == (18, 2)
    assert set(g.runs["seed"]) == {0, 1, 2} and set(g.runs["instance"]) == {0, 1}
    # The setting label names what varies.
    assert "ucb1 (c=0.5)" in set(g.runs["setting"])
    assert any(c.startswith("env.") for c in g.runs.columns)


def test_same_seed_gives_same_run_key_across_learners(tiny_config):
    experiment = config_lib.build(tiny_config)
    ucb, uniform = experiment.groups
    assert (ucb.run_keys == uniform.run_keys).all()          # common random numbers
    assert len({tuple(k) for k in ucb.run_keys}) == tiny_config["run"]["seeds"]


def test_set_overrides_apply(tiny_config):
    for item in ["run.horizon=300", "env.K=4", "env.means=[0.1, 0.2, 0.3, 0.9]",
                 "learner.ucb1.c=[1, 2]", "learner.1.label=\"random\"", "plot.logx=true"]:
        config_lib.apply_override(tiny_config, item)
    assert tiny_config["run"]["horizon"] == 300
    assert tiny_config["env"]["means"] == [0.1, 0.2, 0.3, 0.9]
    assert tiny_config["learner"][0]["c"] == [1, 2]
    assert tiny_config["learner"][1]["label"] == "random"
    experiment = config_lib.build(tiny_config)
    assert experiment.run["horizon"] == 300 and experiment.plot["logx"] is True
    assert sorted(experiment.groups[0].runs["hp.c"].unique()) == [1.0, 2.0]
    assert config_lib.parse_value("abc") == "abc"              # bare strings are allowed


def test_resolved_config_round_trips_through_toml(tiny_config):
    tiny_config["learner"][0]["c"] = [0.5, 2.0]
    experiment = config_lib.build(tiny_config)
    text = config_lib.dump_toml(experiment.config)
    loaded = tomllib.loads(text)
    again = config_lib.build(loaded)
    assert again.config == experiment.config
    assert [len(g.runs) for g in again.groups] == [len(g.runs) for g in experiment.groups]
    for a, b in zip(again.groups, experiment.groups):
        assert a.runs.equals(b.runs)
        assert (a.run_keys == b.run_keys).all()
    # Every run setting is written out, defaults included.
    assert set(loaded["run"]) >= {"horizon", "seeds", "seed", "record", "instances"}


# ---------------------------------------------------------------------------------------------
# The declared lifecycle (docs/design.md, "From a config table to objects").
# ---------------------------------------------------------------------------------------------
def test_declared_defaults_are_filled_in_order_checked_and_kept_when_given():
    from envs.core import Configurable, Setting

    class Example(Configurable):
        name = "example"
        settings = (
            Setting("eta", None, "", optional=True, low=0.0, low_open=True,
                    default_from=lambda values, context: 1.0 / context["horizon"]),
            Setting("gamma", None, "", optional=True, low=0.0, high=1.0,
                    default_from=lambda values, context: values["eta"] / 2),
        )

    assert Example.settle({"eta": None, "gamma": None}, {"horizon": 4}) == {"eta": 0.25,
                                                                             "gamma": 0.125}
    assert Example.settle({"eta": 0.5, "gamma": None}, {"horizon": 4})["gamma"] == 0.25
    assert Example.settle({"eta": None, "gamma": 0.9}, {"horizon": 4})["gamma"] == 0.9
    with pytest.raises(ConfigError, match=r"learner\[0\]\.eta = -1\.0: out of range"):
        Example.settle({"eta": None, "gamma": None}, {"horizon": -1}, "learner[0]")


def test_the_config_layer_fills_declared_defaults_and_learners_declare_them():
    from bandits import mab, routing
    exp = config_lib.build({"run": {"horizon": 10_000, "seeds": 1},
                            "env": {"name": "bernoulli", "K": 10},
                            "learner": [{"name": "etc"}, {"name": "exp3_ix", "eta": 0.2}]})
    etc, ix = exp.groups
    assert etc.hparams["m"].tolist() == [100]          # ceil((10^4 / 10)^(2/3))
    assert ix.hparams["eta"].tolist() == pytest.approx([0.2])
    assert ix.hparams["gamma"].tolist() == pytest.approx([0.1])
    # Pure horizon / K formulas are declarations, not resolve overrides.
    for cls in (mab.ExploreThenCommit, mab.EXP3, mab.EXP3IX, routing.BudgetedLinUCB):
        assert "resolve" not in vars(cls), cls
        assert any(s.default_from is not None for s in cls.settings), cls


# ---------------------------------------------------------------------------------------------
# Derived sizes, learners by label, file-level problems (README, "Config files").
# ---------------------------------------------------------------------------------------------
def test_K_follows_means_and_d_follows_theta_unless_given(tiny_config):
    del tiny_config["env"]["K"]
    tiny_config["env"]["means"] = [0.1, 0.2, 0.3, 0.4, 0.5]
    experiment = config_lib.build(tiny_config)
    assert {g.env.spec.num_arms for g in experiment.groups} == {5}
    # config.toml leaves the derived K out, and building it again derives the same.
    again = config_lib.build(tomllib.loads(config_lib.dump_toml(experiment.config)))
    assert "K" not in again.config["env"]
    assert {g.env.spec.num_arms for g in again.groups} == {5}
    # A sweep over means of different lengths: one K (one compiled group) per length.
    tiny_config["env"]["means"] = [[0.2, 0.8], [0.1, 0.5, 0.9]]
    experiment = config_lib.build(tiny_config)
    assert sorted(g.env.spec.num_arms for g in experiment.groups) == [2, 2, 3, 3]
    # An explicit K that disagrees stays an error; without means K is 10.
    tiny_config["env"].update(K=4, means=[0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="env.means has 3 values but K = 4"):
        config_lib.build(tiny_config)
    del tiny_config["env"]["K"], tiny_config["env"]["means"]
    assert {g.env.spec.num_arms for g in config_lib.build(tiny_config).groups} == {10}

    linear = {"run": {"horizon": 50, "seeds": 1},
              "env": {"name": "linear", "theta": [0.6, 0.0, -0.8]},
              "learner": [{"name": "linucb_shared"}]}
    assert config_lib.build(linear).groups[0].env.spec.feature_dim == 3
    linear["env"]["d"] = 4
    with pytest.raises(ConfigError, match="env.theta has 3 values but d = 4"):
        config_lib.build(linear)


def test_set_addresses_learners_by_label_and_refuses_ambiguity(tiny_config):
    tiny_config["learner"] = [{"name": "ucb1", "label": "cautious", "c": 4.0},
                              {"name": "ucb1", "label": "bold", "c": 0.5},
                              {"name": "uniform", "label": "ucb"}]
    config_lib.apply_override(tiny_config, "learner.bold.c=0.25")
    assert [t.get("c") for t in tiny_config["learner"]] == [4.0, 0.25, None]
    config_lib.apply_override(tiny_config, "learner.2.label=\"baseline\"")
    # A name shared by two tables names neither: the error lists both.
    with pytest.raises(ConfigError, match=r"'ucb1' names 2 learners \(learner\.0 = 'ucb1' "
                                          r"\(label 'cautious'\); learner\.1 = 'ucb1' \(label "
                                          r"'bold'\)\)"):
        config_lib.apply_override(tiny_config, "learner.ucb1.c=1")
    # A key that is one table's label and another's name is ambiguous too.
    tiny_config["learner"][2]["label"] = "ucb1"
    with pytest.raises(ConfigError, match=r"names 3 learners"):
        config_lib.apply_override(tiny_config, "learner.ucb1.c=1")
    tiny_config["learner"] = [{"name": "ucb1"}, {"name": "uniform", "label": "ucb1"}]
    with pytest.raises(ConfigError, match=r"learner\.0 = 'ucb1'; learner\.1 = 'uniform' "
                                          r"\(label 'ucb1'\)"):
        config_lib.apply_override(tiny_config, "learner.ucb1.c=1")


@pytest.mark.parametrize("text", ["[0.5,1", "\"unclosed", "1.2.3", "[1, 2,,]"])
def test_an_unparsable_set_value_says_so(tiny_config, write_config, tmp_path, capsys, text):
    path = write_config(tiny_config)
    item = f"learner.ucb1.c={text}"
    assert cli.main(["run", str(path), "--out", str(tmp_path / "o"), "--set", item]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --set {item!r}: cannot parse the value {text!r}"), err
    assert len(err.strip().splitlines()) == 1
    assert config_lib.parse_value("sphere") == "sphere"        # a bare word is still a string


def test_every_file_level_problem_is_one_error_line(tmp_path, capsys):
    cases = {}
    tab = tmp_path / "tab.yaml"
    tab.write_text("run:\n  horizon: 100\n\tseeds: 2\n")
    cases[tab] = r"tab\.yaml: not valid YAML \(line 3, column 1\): found character '\\t'"
    toml = tmp_path / "bad.toml"
    toml.write_text("[run]\nhorizon = 100\nseeds = \n")
    cases[toml] = r"bad\.toml: not valid TOML: .*\(at line 3, column 9\)"
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "config.toml").write_text("[run]\n")
    cases[folder] = (r"config '.*results' is a folder, not a TOML or YAML file; its config is "
                     r"'.*results/config\.toml'")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[run]\n")
    cases[binary] = r"binary\.toml' is not UTF-8 text"
    for path, expected in cases.items():
        assert cli.main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert re.search(expected, err), err
        with pytest.raises(ConfigError):
            config_lib.load(path)
