"""The command line end to end on a tiny config (experiments/cli.py, experiments/experiment.py).

One `banditjax run` (through ``experiments.cli.main``) with ``--set`` overrides is shared by the
tests of this module: files written, columns present, the overrides applied, the printed table,
`banditjax plot` redrawing, the resolved config.toml re-running to identical results, and
`banditjax list` naming every registered learner, environment and wrapper.
"""
from __future__ import annotations

import contextlib
import io
import json
import tomllib

import numpy as np
import pandas as pd
import pytest

from analysis.metrics import final_summary, mean_band
from experiments import cli
from experiments.config import dump_toml
from experiments.runner import record_grid

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HORIZON = 300          # set with --set over the tiny config's 200
SEEDS = 4


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, make_tiny_config):
    """Runs the tiny config (ucb1 with c swept by --set, uniform) once for the module."""
    folder = tmp_path_factory.mktemp("cli")
    config_path = folder / "tiny.toml"
    config_path.write_text(dump_toml(make_tiny_config()))
    out = folder / "results"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["run", str(config_path), "--out", str(out), "--quiet",
                         "--set", f"run.horizon={HORIZON}", "--set", "learner.ucb1.c=[1, 2]"])
    return {"code": code, "out": out, "stdout": stdout.getvalue(), "config_path": config_path,
            "frame": pd.read_parquet(out / "results.parquet") if code == 0 else None}


def test_run_succeeds_and_writes_every_file(finished_run):
    assert finished_run["code"] == 0
    out = finished_run["out"]
    for name in ("results.parquet", "config.toml", "meta.json", "regret.png", "regret.pdf"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    png = (out / "regret.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000     # a real figure, not a stub
    assert not [p for p in out.iterdir() if ".tmp" in p.name]       # no temporary files left


def test_results_are_tidy_with_every_column(finished_run):
    frame = finished_run["frame"]
    for column in ("learner", "run", "seed", "instance", "t", "regret", "setting", "env",
                   "hp.c", "env.K", "env.means", "env.generator"):
        assert column in frame.columns, column
    grid = record_grid(HORIZON, 10)
    runs = 2 * SEEDS + SEEDS                      # ucb1 with two values of c, then uniform
    assert len(frame) == runs * len(grid)
    assert frame["run"].nunique() == runs
    for _, part in frame.groupby("run"):
        np.testing.assert_array_equal(part["t"].to_numpy(), grid)
        assert np.all(np.diff(part["regret"].to_numpy()) >= 0)
    assert set(frame["learner"]) == {"ucb1", "uniform"}
    assert set(frame["seed"]) == set(range(SEEDS)) and set(frame["instance"]) == {0}
    ucb = frame[frame["learner"] == "ucb1"]
    assert sorted(ucb["hp.c"].unique()) == [1.0, 2.0]                # --set sweep applied
    assert frame["t"].max() == HORIZON                               # --set horizon applied
    assert set(frame["env.K"]) == {3}
    assert json.loads(frame["env.means"].iloc[0]) == [0.2, 0.5, 0.8]


def test_meta_and_printed_table(finished_run):
    meta = json.loads((finished_run["out"] / "meta.json").read_text())
    assert meta["agent_steps"] == 3 * SEEDS * HORIZON
    assert meta["agent_steps_per_second"] > 0 and meta["wall_seconds"] > 0
    assert meta["versions"]["jax"] and meta["device"]["count"] >= 1
    assert {g["learner"] for g in meta["groups"]} == {"ucb1", "uniform"}
    printed = finished_run["stdout"]
    for fragment in ("ucb1 (c=1)", "ucb1 (c=2)", "uniform", "regret_mean", "regret_se",
                     "agent-steps/s", "results.parquet", "regret.png"):
        assert fragment in printed, fragment
    # The printed means are the final regrets' means.
    frame = finished_run["frame"]
    final = frame[frame["t"] == HORIZON]
    uniform_mean = final.loc[final["learner"] == "uniform", "regret"].mean()
    assert f"{uniform_mean:.4g}" in printed


def test_summary_and_bands_match_direct_computation(finished_run):
    frame = finished_run["frame"]
    summary = final_summary(frame).set_index("setting")
    for setting, part in frame[frame["t"] == HORIZON].groupby("setting"):
        values = part["regret"].to_numpy()
        assert summary.loc[setting, "regret_mean"] == pytest.approx(values.mean())
        assert summary.loc[setting, "regret_se"] == pytest.approx(
            values.std(ddof=1) / np.sqrt(len(values)))
        assert summary.loc[setting, "runs"] == SEEDS
    band = mean_band(frame)
    assert np.all(band["lower"] <= band["mean"]) and np.all(band["mean"] <= band["upper"])


def test_resolved_config_is_complete_and_reruns_identically(finished_run, tmp_path, capsys):
    resolved = tomllib.loads((finished_run["out"] / "config.toml").read_text())
    assert resolved["run"]["horizon"] == HORIZON
    assert resolved["learner"][0]["c"] == [1, 2]
    assert {"seeds", "seed", "record", "instances"} <= set(resolved["run"])
    again = tmp_path / "again"
    code = cli.main(["run", str(finished_run["out"] / "config.toml"), "--out", str(again),
                     "--quiet"])
    assert code == 0, capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_parquet(again / "results.parquet"),
                                  finished_run["frame"])


def test_plot_redraws_from_the_folder(finished_run, capsys):
    out = finished_run["out"]
    (out / "regret.png").unlink()
    assert cli.main(["plot", str(out)]) == 0
    png = (out / "regret.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    assert str(out / "regret.png") in capsys.readouterr().out


def test_run_draws_the_sensitivity_plot_of_its_one_swept_axis(finished_run, capsys):
    out = finished_run["out"]
    assert (out / "sensitivity_c.png").read_bytes().startswith(PNG_SIGNATURE)
    (out / "sensitivity_c.png").unlink()
    assert cli.main(["plot", str(out), "--vs", "c", "--at", "100"]) == 0
    assert str(out / "sensitivity_c.png") in capsys.readouterr().out
    assert (out / "sensitivity_c.png").stat().st_size > 5000
    assert cli.main(["plot", str(out), "--vs", "K"]) == 2          # K is not swept
    err = capsys.readouterr().err
    assert err.startswith("error: --vs K") and "swept numeric axes: c" in err


def test_table_prints_every_setting_with_the_best_in_bold(finished_run, capsys, tmp_path):
    out = finished_run["out"]
    assert cli.main(["table", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"| setting | runs | regret at t = {HORIZON} |")
    for setting in ("ucb1 (c=1)", "ucb1 (c=2)", "uniform"):
        assert f"| {setting} | {SEEDS} |" in printed
    assert printed.count("**") == 2                                 # one best
    target = tmp_path / "table.tex"
    assert cli.main(["table", str(out), "--format", "latex", "--out", str(target)]) == 0
    assert target.read_text().count("\\textbf") == 1
    assert cli.main(["table", str(out), "--at", "0"]) == 2
    assert "before the first recorded round" in capsys.readouterr().err


def test_plot_remembers_the_config_plot_table(finished_run, monkeypatch, tmp_path):
    import shutil

    import analysis.plotting

    folder = tmp_path / "copy"
    shutil.copytree(finished_run["out"], folder)
    config = (folder / "config.toml").read_text()
    assert "logy" not in config                                     # unset: decided per figure
    (folder / "config.toml").write_text(config.replace("[plot]", "[plot]\nlogy = true"))
    seen = []
    monkeypatch.setattr(analysis.plotting, "plot_results",
                        lambda frame, out, logx, logy: seen.append((logx, logy)) or [])
    assert cli.main(["plot", str(folder)]) == 0
    assert cli.main(["plot", str(folder), "--no-logy", "--logx"]) == 0
    assert seen == [(False, True), (True, False)]


def test_plot_without_results_is_a_user_error(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "results.parquet" in err and "Traceback" not in err


def test_list_prints_every_learner_environment_and_wrapper(capsys):
    import bandits  # noqa: F401
    import envs  # noqa: F401
    from bandits.core import LEARNERS
    from envs.core import ENVS, WRAPPERS

    assert cli.main(["list", "--settings"]) == 0
    printed = capsys.readouterr().out
    names = {line.split(":")[0].strip() for line in printed.splitlines()
             if line.startswith("  ") and not line.startswith("    ")}
    for registry in (LEARNERS, ENVS, WRAPPERS):
        missing = set(registry.names()) - names
        assert not missing, f"banditjax list misses {missing}"
    # Settings with their defaults and whether a sweep over them recompiles.
    assert "c = 2.0" in printed and "sweepable" in printed and "static" in printed
    assert "K = 10" in printed
