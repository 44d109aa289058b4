"""Regret normalised to the baseline policy (analysis/showdown.py; Riquelme, Tucker and Snoek
2018, tables 2-3), on hand-made frames whose answer is computed here by hand, and the showdown
configs (experiments/configs/showdown*.toml) build."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.showdown import markdown_table, normalised_regret
from envs.core import ConfigError
from experiments import config as config_lib

ROOT = Path(__file__).resolve().parents[1]


def frame_of(finals: dict[tuple[str, float], list[float]]) -> pd.DataFrame:
    """A tidy frame: for (learner, delta) the given final regrets (t = 10) and t = 1 rows."""
    rows, run = [], 0
    for (learner, delta), values in finals.items():
        for value in values:
            for t, regret in ((1, 0.5), (10, value)):
                rows.append({"learner": learner, "setting": f"{learner} | delta={delta:g}",
                             "run": run, "t": t, "regret": regret, "env.delta": delta,
                             "env.noise": 0.01})
            run += 1
    return pd.DataFrame(rows)


def test_normalised_to_the_uniform_baseline_with_delta_method_intervals():
    uniform, learner = [100.0, 120.0, 80.0], [10.0, 30.0]
    frame = frame_of({("uniform", 0.5): uniform, ("linucb", 0.5): learner,
                      ("uniform", 0.9): [40.0, 40.0], ("linucb", 0.9): [20.0, 20.0]})
    table = normalised_regret(frame).set_index(["environment", "setting"])
    assert set(table.index.get_level_values("environment")) == {"delta=0.5", "delta=0.9"}
    row = table.loc[("delta=0.5", "linucb")]
    ratio = 20.0 / 100.0
    # sd(learner) = sqrt(200), sd(uniform) = 20: relative variances 200/(2*400), 400/(3*10^4).
    se = ratio * math.sqrt(200.0 / (2 * 20.0 ** 2) + 400.0 / (3 * 100.0 ** 2))
    assert row["normalised"] == pytest.approx(ratio)
    assert row["lower"] == pytest.approx(ratio - 1.959964 * se, rel=1e-5)
    assert row["upper"] == pytest.approx(ratio + 1.959964 * se, rel=1e-5)
    assert row["runs"] == 2 and row["regret"] == pytest.approx(20.0)
    base = table.loc[("delta=0.5", "uniform")]
    assert (base["normalised"], base["lower"], base["upper"]) == (1.0, 1.0, 1.0)
    # No spread: a zero-width interval at exactly 0.5.
    other = table.loc[("delta=0.9", "linucb")]
    assert other["normalised"] == other["lower"] == other["upper"] == pytest.approx(0.5)
    text = markdown_table(normalised_regret(frame))
    assert "| learner | delta=0.5 | delta=0.9 |" in text
    assert f"| linucb | {ratio:.3f} [" in text and "| uniform | 1.000 [1.000, 1.000]" in text


def test_a_setting_without_the_baseline_is_refused():
    frame = frame_of({("linucb", 0.5): [1.0, 2.0], ("uniform", 0.9): [3.0, 4.0]})
    with pytest.raises(ValueError, match="delta=0.5.*no baseline"):
        normalised_regret(frame)


def test_showdown_configs_build():
    experiment = config_lib.build(config_lib.load(ROOT / "experiments" / "configs" /
                                                  "showdown.toml"))
    learners = {g.runs["learner"].iloc[0] for g in experiment.groups}
    assert "uniform" in learners and len(learners) >= 4
    assert sorted(set(experiment.groups[0].runs["env.delta"])) == [0.5, 0.7, 0.9, 0.95, 0.99]
    datasets = config_lib.load(ROOT / "experiments" / "configs" / "showdown_datasets.toml")
    if importlib.util.find_spec("sklearn") is None:
        # Without the optional extra a preset is a one-line error naming it.
        with pytest.raises(ConfigError, match="datasets"):
            config_lib.build(datasets)
    else:
        presets = {g.env.preset for g in config_lib.build(datasets).groups}
        assert presets == {"iris", "wine", "breast_cancer", "digits"}
