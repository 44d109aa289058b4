"""The research workflow (README, "Your own learner" and "Python API"): a learner written in a
file outside the repository runs through ``banditjax run``, ``bounds``, ``plot``, ``list`` and
``--resume`` (``[run] imports`` / ``--import``, experiments/user_code.py), and through the Python
API (``banditjax.run``, experiments/api.py) with classes passed directly."""
from __future__ import annotations

import re
import shlex
import sys
import textwrap
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from envs.core import ConfigError
from experiments import cli
from experiments import experiment as experiment_lib
from experiments import user_code

ROOT = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    """The learner of the README's "Writing an environment or a learner" section, as written."""
    section = (ROOT / "README.md").read_text().split("## Writing an environment or a learner")[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def clean_registries():
    """Whatever a test registers or imports from user files is forgotten afterwards."""
    from bandits.core import LEARNERS
    from envs.core import ENVS
    learners, environments = dict(LEARNERS._entries), dict(ENVS._entries)
    modules, loaded, path = set(sys.modules), dict(user_code._LOADED), list(sys.path)
    yield
    LEARNERS._entries.clear()
    LEARNERS._entries.update(learners)
    ENVS._entries.clear()
    ENVS._entries.update(environments)
    for name in set(sys.modules) - modules:        # user modules only (not the suite's)
        file = getattr(sys.modules[name], "__file__", None) or ""
        if file and ROOT not in Path(file).resolve().parents and not file.startswith(
                (sys.prefix, sys.base_prefix)):
            sys.modules.pop(name, None)
    user_code._LOADED.clear()
    user_code._LOADED.update(loaded)
    sys.path[:] = path


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the repository holding the README's learner as my_learners.py."""
    assert ROOT not in tmp_path.parents
    (tmp_path / "my_learners.py").write_text(readme_example())
    return tmp_path


def readme_config() -> str:
    """The config of the README's "Running your own code": the example learner beside ucb1."""
    section = (ROOT / "README.md").read_text().split("### Running your own code")[1]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


# Small and chunked: a checkpoint after every chunk of 25 rounds.
SMALLER = ["--set", "run.horizon=200", "--set", "run.seeds=3", "--set", "run.record=12",
           "--set", "run.chunk=25", "--set", "run.checkpoint_every=1"]


def test_readme_learner_in_a_file_of_ones_own_runs_through_the_cli(outside, clean_registries,
                                                                   monkeypatch, capsys):
    config = outside / "compare.toml"
    config.write_text(readme_config())
    out = outside / "out"

    # Interrupted by Ctrl-C after three chunks: the message gives the exact resume command.
    calls = [0]
    original = experiment_lib.Progress.__call__

    def interrupt(self, steps):
        calls[0] += 1
        if calls[0] > 4:                   # the first call reports the steps already done
            raise KeyboardInterrupt
        original(self, steps)
    monkeypatch.setattr(experiment_lib.Progress, "__call__", interrupt)
    assert cli.main(["run", str(config), "--out", str(out), "--quiet", *SMALLER]) == 130
    err = capsys.readouterr().err
    assert "Continue it with:" in err
    command = err.strip().splitlines()[-1].strip()
    assert command == (f"banditjax run {shlex.quote(str(config))} --out "
                       f"{shlex.quote(str(out))} --quiet {shlex.join(SMALLER)} --resume")
    assert (out / "checkpoint").exists() and not (out / "results.parquet").exists()
    # Running it again without --resume is refused, naming --resume.
    monkeypatch.setattr(experiment_lib.Progress, "__call__", original)
    assert cli.main(["run", str(config), "--out", str(out), "--quiet", *SMALLER]) == 2
    assert "--resume" in capsys.readouterr().err

    # The printed command continues it; the results folder records the import, absolute.
    assert cli.main(shlex.split(command)[1:]) == 0
    printed = capsys.readouterr().out
    assert "optimistic_greedy" in printed and "ucb1" in printed
    recorded = tomllib.loads((out / "config.toml").read_text())["run"]["imports"]
    assert recorded == [str((outside / "my_learners.py").resolve())]
    frame = pd.read_parquet(out / "results.parquet")
    assert set(frame["learner"]) == {"optimistic_greedy", "ucb1"}
    assert frame.groupby("setting")["run"].nunique().to_dict() == {
        "optimistic_greedy (bonus=0.5)": 3, "optimistic_greedy (bonus=1)": 3,
        "optimistic_greedy (bonus=2)": 3, "ucb1": 3}
    assert set(frame["env.K"]) == {5}                     # K follows from the means

    # bounds and plot read the folder in a process that has not imported the learner yet.
    from bandits.core import LEARNERS
    LEARNERS.unregister("optimistic_greedy")
    user_code._LOADED.clear()
    sys.modules.pop("my_learners", None)
    assert cli.main(["bounds", str(out), "--bootstrap", "20", "--no-plot"]) == 0
    table = pd.read_csv(out / "bounds.csv")
    # Its declared rate (Theory("logarithmic")) reaches the theory exponent of its 3 settings.
    mine = table[table["learner"] == "optimistic_greedy"]
    assert len(mine) == 3 and (mine["theory_exponent"] > 0).all()
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "regret.png").exists()

    # banditjax list --import FILE shows it.
    LEARNERS.unregister("optimistic_greedy")
    user_code._LOADED.clear()
    sys.modules.pop("my_learners", None)
    capsys.readouterr()
    assert cli.main(["list", "optimistic", "--import", str(outside / "my_learners.py")]) == 0
    assert "optimistic_greedy" in capsys.readouterr().out


def test_import_option_resolves_relative_to_the_working_folder(outside, clean_registries,
                                                               monkeypatch, capsys):
    from bandits.core import LEARNERS
    monkeypatch.chdir(outside)
    assert cli.main(["list", "--import", "my_learners.py", "optimistic"]) == 0
    assert "optimistic_greedy" in LEARNERS
    # Imported once per process however often it is asked for (no "registered twice").
    user_code.load(["my_learners.py"])
    assert cli.main(["list", "--import", "./my_learners.py", "optimistic"]) == 0


@pytest.mark.parametrize("source, expected", [
    ("x = 1 / 0\n", r"import '/.*/bad\.py' failed: ZeroDivisionError: division by zero"),
    ("def broken(:\n", r"import '/.*/bad\.py' failed: SyntaxError: .*\(line 1\)"),
    ("import no_such_module_anywhere\n", r"failed: ModuleNotFoundError: No module named"),
])
def test_a_failing_import_is_one_error_line(tmp_path, clean_registries, capsys, source,
                                            expected):
    (tmp_path / "bad.py").write_text(source)
    config = tmp_path / "c.toml"
    config.write_text('[run]\nimports = ["bad.py"]\n[env]\nname = "bernoulli"\n'
                      '[[learner]]\nname = "ucb1"\n')
    assert cli.main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert re.search(expected, err), err
    assert "bad" not in sys.modules


def test_a_missing_import_names_the_file_or_module(tmp_path, clean_registries, capsys):
    assert cli.main(["list", "--import", str(tmp_path / "nowhere.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["list", "--import", "no_such_package.learners"]) == 2
    err = capsys.readouterr().err
    assert "no module named 'no_such_package'" in err and len(err.strip().splitlines()) == 1


def test_a_results_folder_whose_recorded_import_moved_says_so(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "config.toml").write_text('[run]\nimports = ["/nowhere/my_learners.py"]\n')
    for command in ("plot", "bounds"):
        assert cli.main([command, str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
        assert "run.imports names '/nowhere/my_learners.py', which does not exist" in err


# ---------------------------------------------------------------------------------------------
# The Python API.
# ---------------------------------------------------------------------------------------------
SMALL = {"run": {"horizon": 150, "seeds": 4, "record": 10},
         "env": {"name": "bernoulli", "means": [0.8, 0.5, 0.2]},
         "learner": [{"name": "ucb1"}]}


def test_import_banditjax_exposes_the_api():
    import banditjax
    assert callable(banditjax.run) and callable(banditjax.load)
    assert banditjax.ConfigError is ConfigError
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", banditjax.__version__)


def readme_api_example() -> str:
    """The README's notebook learner passed to ``banditjax.run`` ("Running your own code")."""
    section = (ROOT / "README.md").read_text().split("### Running your own code")[1]
    return next(block for block in re.findall(r"```python\n(.*?)```", section, re.S)
                if "banditjax.run(" in block)


def test_api_runs_a_class_passed_directly_in_memory(clean_registries, capsys):
    import matplotlib.figure

    import banditjax
    from bandits.core import LEARNERS
    namespace: dict = {}
    exec(compile(readme_api_example(), "README", "exec"), namespace)   # runs it, as written
    assert "greedy_bonus" not in LEARNERS                  # registered for the call only
    results, learner = namespace["results"], namespace["GreedyBonus"]
    assert "greedy_bonus (bonus=0.5)" in capsys.readouterr().out      # it printed the table
    assert results.out is None
    frame = results.frame
    assert set(frame["learner"]) == {"greedy_bonus", "ucb1"}
    runs = frame.groupby("setting")["run"].nunique().to_dict()
    assert runs == {"greedy_bonus (bonus=0.5)": 10, "greedy_bonus (bonus=2)": 10, "ucb1": 10}
    assert results.meta["agent_steps"] == 30 * 1000
    summary = results.summary()
    final = frame[frame["t"] == 1000].groupby("setting")["regret"]
    assert list(summary["setting"]) == ["greedy_bonus (bonus=0.5)", "greedy_bonus (bonus=2)",
                                        "ucb1"]
    assert summary.set_index("setting")["regret_mean"].to_dict() == pytest.approx(
        final.mean().to_dict())
    table = results.table().set_index("setting")
    assert table["regret_mean"].to_dict() == pytest.approx(final.mean().to_dict())
    assert table["regret_ci95"].to_dict() == pytest.approx((1.959963984540054 * final.std()
                                                             / 10 ** 0.5).to_dict())
    assert set(table["runs"]) == {10} and set(table["t"]) == {1000}
    early = results.table(at=500).set_index("setting")        # the last recorded t <= 500
    recorded = frame.loc[frame["t"] <= 500, "t"].max()
    assert set(early["t"]) == {recorded} and recorded < 1000
    assert early["regret_mean"].to_dict() == pytest.approx(
        frame[frame["t"] == recorded].groupby("setting")["regret"].mean().to_dict())
    figure = results.plot(logy=True)
    assert isinstance(figure, matplotlib.figure.Figure)
    assert figure.axes[0].get_yscale() == "log" and len(figure.axes[0].get_lines()) == 3
    # The class itself as the table's name: checked as that class (its bonus must be >= 0).
    with pytest.raises(ConfigError, match=r"learner\[0\]\.bonus = -1.0: out of range"):
        banditjax.run(dict(SMALL, learner=[{"name": learner, "bonus": -1.0}]))
    # By its snake-case name with learners=[...].
    with pytest.raises(ConfigError, match=r"learner\[0\]\.bonus = -2.0: out of range"):
        banditjax.run(dict(SMALL, learner=[{"name": "greedy_bonus", "bonus": -2.0}]),
                      learners=[learner])
    assert "greedy_bonus" not in LEARNERS


def test_api_writes_a_folder_the_cli_reads(outside, clean_registries, capsys):
    import banditjax
    sys.path.insert(0, str(outside))
    import my_learners                               # a module of one's own, registered
    out = outside / "api-out"
    results = banditjax.run(dict(SMALL, learner=[{"name": "optimistic_greedy"}]),
                            learners=[my_learners.OptimisticGreedy], out=out,
                            overrides=["run.seeds=2"])
    assert results.out == out and (out / "results.parquet").exists()
    assert (out / "regret.png").exists()
    assert results.frame["run"].nunique() == 2
    recorded = tomllib.loads((out / "config.toml").read_text())["run"]["imports"]
    assert recorded == [str((outside / "my_learners.py").resolve())]
    loaded = banditjax.load(out)
    pd.testing.assert_frame_equal(loaded.frame, results.frame)
    with pytest.raises(ConfigError, match="already holds files"):
        banditjax.run(dict(SMALL), out=out)
    assert cli.main(["plot", str(out)]) == 0


def test_api_raises_the_cli_errors(tmp_path, clean_registries):
    import banditjax
    with pytest.raises(ConfigError, match=r"learner\[0\]\.name = 'nope': unknown learner"):
        banditjax.run(dict(SMALL, learner=[{"name": "nope"}]))
    with pytest.raises(ConfigError, match="does not exist"):
        banditjax.run(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not a subclass"):
        banditjax.run(SMALL, learners=[dict])
    from bandits.mab import UCB1

    class UCB1Copy(UCB1):
        """A class claiming a taken name."""
        name = "ucb1"
    with pytest.raises(ConfigError, match="would be registered as 'ucb1'"):
        banditjax.run(SMALL, learners=[UCB1Copy])
    # A config file path with overrides, as the CLI takes it.
    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent("""
        [run]
        horizon = 100
        seeds = 2
        [env]
        name = "bernoulli"
        [[learner]]
        name = "ucb1"
    """))
    with pytest.raises(ConfigError, match=r"learner\[0\]\.c = -1.0: out of range"):
        banditjax.run(path, overrides=["run.seeds=3", "learner.ucb1.c=-1"])


# ---------------------------------------------------------------------------------------------
# Long runs: warnings, the Ctrl-C message, wall-clock checkpoints, the time estimate.
# ---------------------------------------------------------------------------------------------
def test_warning_before_a_run_with_too_few_recorded_rounds(tmp_path, write_config, tiny_config,
                                                           capsys):
    path = write_config(tiny_config)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")             # the run stops right after the warnings
    assert cli.main(["run", str(path), "--out", str(not_a_folder), "--set",
                     "run.record=1"]) == 2
    err = capsys.readouterr().err
    assert "warning: run.record = 1: only 2 recorded round(s) of 200" in err   # 1 and 200
    assert cli.main(["run", str(path), "--out", str(not_a_folder), "--set",
                     "run.record=10"]) == 2
    assert "warning:" not in capsys.readouterr().err
    # A very large run says so, with a rough time range, before it starts.
    assert cli.main(["run", str(path), "--out", str(not_a_folder), "--set",
                     "run.horizon=1000000000", "--set", "run.seeds=200"]) == 2
    assert re.search(r"warning: 4e\+11 agent-steps \(400 runs x 1000000000 rounds\).* h",
                     capsys.readouterr().err)


def _interrupt_after(monkeypatch, calls_allowed: int) -> None:
    """Ctrl-C (KeyboardInterrupt) at the progress report after ``calls_allowed`` reports (the
    first reports the steps already done; then one per chunk)."""
    calls = [0]
    original = experiment_lib.Progress.__call__

    def interrupt(self, steps):
        calls[0] += 1
        if calls[0] > calls_allowed:
            raise KeyboardInterrupt
        original(self, steps)
    monkeypatch.setattr(experiment_lib.Progress, "__call__", interrupt)


def test_interrupted_before_any_checkpoint_says_there_is_nothing_to_resume(
        tmp_path, write_config, tiny_config, monkeypatch, capsys):
    path = write_config(tiny_config)
    _interrupt_after(monkeypatch, 0)
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "interrupted before the first checkpoint" in err and "--resume" not in err


def test_checkpoints_on_a_wall_clock_interval(tmp_path, write_config, tiny_config, monkeypatch,
                                              capsys):
    from experiments import checkpoint as checkpoint_lib
    from experiments import config as config_lib
    tiny_config["run"].update(chunk=25, checkpoint_every=0)
    tiny_config["learner"] = [{"name": "ucb1"}]
    path = write_config(tiny_config)
    out = tmp_path / "out"
    # A tiny interval: every chunk is past it, so the state after chunk 2 is on disk when the
    # report of chunk 3 is interrupted.
    _interrupt_after(monkeypatch, 3)
    assert cli.main(["run", str(path), "--out", str(out), "--quiet",
                     "--checkpoint-minutes", "1e-9"]) == 130
    assert "--checkpoint-minutes 1e-9 --resume" in capsys.readouterr().err
    state = checkpoint_lib.load(out / "checkpoint", config_lib.build(tiny_config).config)
    assert (state.group, state.progress.rounds) == (0, 50)


def test_a_long_run_announces_its_estimated_time(monkeypatch, capsys):
    # Measured from the second report on (the first chunk carries the compile time): 10 steps
    # per report, whatever the clock says, leave 10^12 steps = far more than LONG_RUN seconds.
    monkeypatch.setattr(experiment_lib, "ESTIMATE_AFTER", 0.0)
    times = iter([100.0, 101.0, 102.0, 103.0])
    monkeypatch.setattr(experiment_lib.time, "perf_counter", lambda: next(times))
    bar = experiment_lib.Progress(10 ** 12, enabled=True, long_run_hint="; Ctrl-C")
    for steps in (0, 10, 10):
        bar(steps)
    bar.close()
    err = capsys.readouterr().err
    # 10 steps in 1 s: (10^12 - 20) / 10 s to go, shown in hours.
    assert re.search(r"note: about 27777777 h \d\d min to go at 10 agent-steps/s; Ctrl-C", err)


# ---------------------------------------------------------------------------------------------
# banditjax list and --version.
# ---------------------------------------------------------------------------------------------
# Baselines that implement no paper: a description, but no citation, is required of them.
BASELINES = {"uniform", "uniform_pair", "fixed_arm", "oracle"}


def test_every_registered_class_has_a_one_line_description_with_its_paper():
    import bandits  # noqa: F401
    import envs  # noqa: F401
    from bandits.core import LEARNERS
    from envs.core import ENVS, WRAPPERS
    for registry in (ENVS, WRAPPERS, LEARNERS):
        for name, cls in registry.items():
            text = cli.description(cls)
            assert len(text) >= 20 and text.endswith("."), (name, text)
            assert len(text) <= 100, (name, text)       # one line of `banditjax list`
            if name not in BASELINES:
                # A year (the paper's) or the suite's own formulation ("ours", docs/design.md).
                assert re.search(r"\b(19|20)\d\d\b", text) or "(ours)" in text, (name, text)


def test_list_is_one_line_per_entry_and_filters_by_name(capsys):
    import bandits  # noqa: F401
    import envs  # noqa: F401
    from bandits.core import LEARNERS
    from envs.core import ENVS, WRAPPERS
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    entries = [line for line in lines if line.startswith("  ")]
    assert len(entries) == len(ENVS.names()) + len(WRAPPERS.names()) + len(LEARNERS.names())
    assert not any(line.startswith("      ") for line in lines)       # no settings
    ucb1 = next(line for line in entries if line.startswith("  ucb1: "))
    assert "Auer, Cesa-Bianchi and Fischer 2002" in ucb1

    assert cli.main(["list", "UCB"]) == 0                  # case-insensitive substring
    printed = capsys.readouterr().out
    names = {line.split(":")[0].strip() for line in printed.splitlines()
             if line.startswith("  ") and not line.startswith("    ")}
    assert names == {n for n in LEARNERS.names() if "ucb" in n}
    assert "c = 2.0  [a number >= 0; sweepable]" in printed      # filtered: with settings
    assert cli.main(["list", "bernoulli", "delay"]) == 0
    printed = capsys.readouterr().out
    assert "  bernoulli: " in printed and "  delay: " in printed and "Learners:" not in printed
    assert cli.main(["list", "nosuchthing"]) == 2
    assert "nothing is named like 'nosuchthing'" in capsys.readouterr().err


def test_list_says_where_each_learner_runs_from_its_spec_check(capsys):
    """Computed by ``check_spec`` against every environment's default spec, not by names."""
    from bandits.core import LEARNERS
    from experiments.config import default_environments
    environments = default_environments()
    assert {"bernoulli", "linear", "dueling", "contextual_dueling"} <= set(environments)
    assert cli.main(["list"]) == 0
    printed = capsys.readouterr().out
    for name, cls in LEARNERS.items():
        line = next(line for line in printed.splitlines() if line.startswith(f"  {name}: "))
        shown = re.search(r"\[runs on: (.*)\]$", line).group(1).split(", ")
        expected = []
        for env_name, env in environments.items():
            try:
                cls.check_spec(env.spec, "learner")
                expected.append(env_name)
            except ConfigError:
                pass
        assert shown == (expected or ["none"]), name
    # Facts the declarations imply: a dueling learner runs on dueling environments only, a
    # contextual one needs features, KL-UCB needs bounded rewards (not Gaussian ones).
    runs = {name: re.search(r"\[runs on: (.*)\]$", line).group(1) for name, line in (
        (line.split(":")[0].strip(), line) for line in printed.splitlines()
        if line.startswith("  ") and "[runs on:" in line)}
    assert runs["rucb"] == "contextual_dueling, dueling"
    assert "bernoulli" not in runs["linucb"] and "linear" in runs["linucb"]
    assert "gaussian" not in runs["klucb"] and "bernoulli" in runs["klucb"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert re.fullmatch(r"banditjax \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)
