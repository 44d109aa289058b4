"""Paper tables (analysis/tables.py, ``banditjax table``) on small hand-made results frames.

The expected numbers are computed by hand in the tests (mean, sample standard deviation,
1.959964 sd / sqrt(n)), not copied from the code's output.
"""
from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from analysis.tables import cell, make_table, paper_table, render, table_metrics
from envs.core import Metric


def frame_of(finals: dict[str, list[float]], env: str = "bernoulli", extra=None) -> pd.DataFrame:
    """A tidy frame: every setting's runs at t = 10 (regret 1) and t = 100 (the given values)."""
    rows, run = [], 0
    for setting, values in finals.items():
        learner = setting.split(" (")[0]
        for value in values:
            for t, regret in ((10, 1.0), (100, value)):
                row = {"learner": learner, "run": run, "env": env, "setting": setting,
                       "t": t, "regret": regret}
                row.update((extra or {}).get(setting, {}))
                rows.append(row)
            run += 1
    return pd.DataFrame(rows)


FINALS = {"ucb1 (c=0.5)": [1.0, 2.0, 3.0], "ucb1 (c=2)": [4.0, 6.0, 8.0],
          "thompson": [0.5, 1.5, 1.0]}
HP = {"ucb1 (c=0.5)": {"hp.c": 0.5}, "ucb1 (c=2)": {"hp.c": 2.0}, "thompson": {"hp.c": None}}


def test_mean_and_interval_match_a_hand_computation():
    table = paper_table(frame_of(FINALS, extra=HP)).set_index("setting")
    # [1, 2, 3]: mean 2, sd 1; [4, 6, 8]: mean 6, sd 2; [0.5, 1.5, 1]: mean 1, sd 0.5.
    z = 1.959963984540054
    for setting, mean, sd in (("ucb1 (c=0.5)", 2.0, 1.0), ("ucb1 (c=2)", 6.0, 2.0),
                              ("thompson", 1.0, 0.5)):
        assert table.loc[setting, "regret_mean"] == pytest.approx(mean)
        assert table.loc[setting, "regret_ci95"] == pytest.approx(z * sd / math.sqrt(3))
        assert table.loc[setting, "runs"] == 3 and table.loc[setting, "t"] == 100
    assert table["hp.c"].loc["ucb1 (c=2)"] == 2.0                 # the swept value is kept
    assert list(table["regret_best"]) == [False, False, True]


def test_markdown_marks_the_best_in_bold():
    text = make_table(frame_of(FINALS, extra=HP), "markdown")
    lines = text.strip().splitlines()
    assert lines[0] == "| setting | runs | regret at t = 100 |"
    # 1.96 * 0.5 / sqrt(3) = 0.566 -> two significant digits: 1.00 +- 0.57
    assert "| thompson | 3 | **1.00 ± 0.57** |" in lines
    assert "| ucb1 (c=0.5) | 3 | 2.0 ± 1.1 |" in lines               # 1.96 / sqrt(3) = 1.13
    assert text.count("**") == 2


def test_latex_and_csv_formats():
    frame = frame_of(FINALS, extra=HP)
    latex = make_table(frame, "latex")
    assert latex.startswith("\\begin{tabular}{lrr}") and "\\bottomrule" in latex
    assert "thompson & 3 & \\textbf{1.00 $\\pm$ 0.57} \\\\" in latex
    assert latex.count("\\textbf") == 1
    csv = pd.read_csv(io.StringIO(make_table(frame, "csv")))
    assert list(csv["setting"]) == list(FINALS)
    assert csv.loc[csv["setting"] == "ucb1 (c=2)", "regret_mean"].item() == pytest.approx(6.0)
    assert csv["regret_best"].tolist() == [False, False, True]
    with pytest.raises(ValueError, match="--format 'html'"):
        render(paper_table(frame), table_metrics(frame), "html")


def test_at_reports_an_earlier_round():
    table = paper_table(frame_of(FINALS), at=50)
    assert set(table["t"]) == {10} and set(table["regret_mean"]) == {1.0}
    assert table["regret_best"].all()                              # a three-way tie
    with pytest.raises(ValueError, match="before the first recorded round"):
        paper_table(frame_of(FINALS), at=5)


def test_best_follows_the_declared_direction_per_environment_setting():
    # Routing declares quality (higher is better) and cost (lower); the best is chosen within
    # each value of the swept environment setting, never across problems.
    finals = {"a | cost_weight=0": [1.0, 1.0], "b | cost_weight=0": [2.0, 2.0],
              "a | cost_weight=1": [5.0, 5.0], "b | cost_weight=1": [3.0, 3.0]}
    extra = {s: {"env.cost_weight": float(s[-1]), "quality": q, "cost": c}
             for s, q, c in zip(finals, (0.5, 0.7, 0.4, 0.3), (0.2, 0.1, 0.3, 0.4))}
    frame = frame_of(finals, env="routing", extra=extra)
    names = [m.name for m in table_metrics(frame)]
    assert names == ["regret", "quality", "cost"]
    table = paper_table(frame).set_index("setting")
    assert list(table["regret_best"]) == [True, False, False, True]
    assert list(table["quality_best"]) == [False, True, True, False]
    assert list(table["cost_best"]) == [False, True, True, False]


def test_metric_direction_is_checked():
    assert Metric("x", "x").better == "lower"
    with pytest.raises(ValueError, match="better = 'sideways'"):
        Metric("x", "x", better="sideways")


def test_cells_show_two_significant_digits_of_the_interval():
    assert cell(5408.3, 437.2, "markdown") == "5408 ± 437"
    assert cell(0.86853, 0.0452, "markdown") == "0.869 ± 0.045"
    assert cell(0.0, 0.0, "markdown") == "0"
