"""Figures (analysis/plotting.py, analysis/sensitivity.py) on small hand-made results frames:
the sensitivity plot's points and axis decisions, distinct shades per setting, the log-y
decision, single-arm baselines summarised and named by the environment (routing: model@budget),
and final_summary keeping the swept columns. The CLI side is in tests/test_cli.py.
"""
from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis.metrics import final_summary, swept_columns, with_arm_labels
from analysis.plotting import (plot_sensitivity, regret_figure, sensitivity_figure,
                               setting_styles, wants_logy)
from analysis.sensitivity import (resolve_axis, sensitivity_axis, sensitivity_points,
                                  wants_logx, x_scale)
from analysis.tables import make_table

C_VALUES = (0.25, 0.5, 1.0, 2.0, 4.0)


def sweep_frame() -> pd.DataFrame:
    """ucb1 with c swept (final regret 10 c + run), thompson without c (final 5 + run); 3 runs
    each, recorded at t = 1, 10, 100."""
    rows, run = [], 0
    settings = [(f"ucb1 (c={c:g})", "ucb1", c, 10 * c) for c in C_VALUES]
    settings.append(("thompson", "thompson", np.nan, 5.0))
    for setting, learner, c, final in settings:
        for i in range(3):
            for t in (1, 10, 100):
                rows.append({"learner": learner, "run": run, "env": "bernoulli",
                             "setting": setting, "hp.c": c, "env.K": 5, "t": t,
                             "regret": (final + i) * t / 100})
            run += 1
    return pd.DataFrame(rows)


def test_sensitivity_points_are_the_swept_values_and_hand_means():
    frame = sweep_frame()
    assert sensitivity_axis(frame) == "hp.c" and resolve_axis(frame, "c") == "hp.c"
    points = sensitivity_points(frame, "hp.c")
    ucb = points[points["line"] == "ucb1"]
    assert list(ucb["value"]) == list(C_VALUES)
    # runs of c: 10c, 10c + 1, 10c + 2 -> mean 10c + 1, sd 1, 95% half-width 1.96 / sqrt(3)
    np.testing.assert_allclose(ucb["mean"], [10 * c + 1 for c in C_VALUES])
    np.testing.assert_allclose(ucb["upper"] - ucb["mean"], 1.959964 / math.sqrt(3), rtol=1e-6)
    flat = points[points["line"] == "thompson"]
    assert len(flat) == 1 and np.isnan(flat["value"].item()) and flat["mean"].item() == 6.0
    at = sensitivity_points(frame, "hp.c", at=50)                  # last recorded t <= 50: 10
    assert set(at["t"]) == {10}
    np.testing.assert_allclose(at[at["line"] == "ucb1"]["mean"],
                               [(10 * c + 1) / 10 for c in C_VALUES])


def test_sensitivity_axis_names_and_errors():
    frame = sweep_frame()
    assert resolve_axis(frame, "hp.c") == "hp.c"
    with pytest.raises(ValueError, match="--vs K: .* swept numeric axes: c"):
        resolve_axis(frame, "K")                                   # env.K is not swept
    frame["env.K"] = np.where(frame["setting"] == "thompson", 7, 5)
    assert sensitivity_axis(frame) is None                         # two numeric axes
    assert resolve_axis(frame, "K") == "env.K"


def test_log_x_when_the_values_span_a_decade(tmp_path):
    assert wants_logx(C_VALUES)                                    # 4 / 0.25 = 16
    assert not wants_logx([1.0, 2.0, 5.0]) and not wants_logx([-1.0, 10.0])
    assert x_scale([0.0, 0.01, 0.1, 1.0]) == "symlog"            # a 0 among decades
    assert x_scale(C_VALUES) == "log" and x_scale(C_VALUES, logx=False) is None
    fig = sensitivity_figure(sweep_frame(), "hp.c")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["ucb1"].get_xdata(), C_VALUES)
    assert "thompson (no c)" in lines                              # the baseline, flat
    plt.close(fig)
    narrow = sweep_frame()
    narrow = narrow[narrow["hp.c"].isin([1.0, 2.0]) | narrow["hp.c"].isna()]
    fig = sensitivity_figure(narrow, "hp.c")
    assert fig.axes[0].get_xscale() == "linear"
    plt.close(fig)
    paths = plot_sensitivity(sweep_frame(), "hp.c", tmp_path / "sensitivity_c.png")
    assert all(p.stat().st_size > 5000 for p in paths)


def test_final_summary_keeps_the_swept_hyper_parameter():
    summary = final_summary(sweep_frame()).set_index("setting")
    assert "hp.c" in summary and "env.K" not in summary            # K is not swept
    assert summary.loc["ucb1 (c=0.5)", "hp.c"] == 0.5
    assert np.isnan(summary.loc["thompson", "hp.c"])
    assert swept_columns(sweep_frame()) == ["hp.c"]


def test_settings_of_one_learner_get_distinct_colours():
    styles = setting_styles(sweep_frame())
    ucb = [styles[f"ucb1 (c={c:g})"][0] for c in C_VALUES]
    assert len(set(ucb)) == len(C_VALUES)
    assert styles["thompson"][0] not in ucb


def test_log_y_when_the_final_regret_spans_a_decade():
    frame = sweep_frame()                                          # finals 3.5 .. 41: > 10x
    assert wants_logy(frame)
    fig = regret_figure(frame)
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)
    close = frame[frame["hp.c"] >= 1.0]                            # finals 11 .. 41: < 10x
    assert not wants_logy(close)
    fig = regret_figure(close, logy=None)
    assert fig.axes[0].get_yscale() == "linear"
    plt.close(fig)
    fig = regret_figure(close, logy=True)                          # an explicit choice wins
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)


def routing_frame() -> pd.DataFrame:
    """A routing-shaped frame: two lambdas, a router and 18 single arms (fixed_arm, hp.arm);
    arm a has final regret 100 + a except arm 7, the best (regret 1)."""
    rows, run = [], 0
    env = {"env.models": 6, "env.budgets": json.dumps([1.0, 4.0, 16.0]),
           "env.scaling": "majority"}
    for weight in (0.0, 1.0):
        for learner, arm in [("linucb", np.nan)] + [("fixed_arm", a) for a in range(18)]:
            setting = (learner if np.isnan(arm) else f"fixed_arm (arm={arm})") + \
                f" | cost_weight={weight:g}"
            final = 50.0 if np.isnan(arm) else (1.0 if arm == 7 else 100.0 + arm)
            for seed in range(2):
                for t in (10, 100):
                    rows.append({"learner": learner, "run": run, "env": "routing",
                                 "setting": setting, "hp.arm": arm, "env.cost_weight": weight,
                                 **env, "t": t, "regret": (final + seed) * t / 100,
                                 "quality": 0.5, "cost": 0.1})
                run += 1
    return pd.DataFrame(rows)


def test_routing_single_arms_are_summarised_and_named_by_model_and_budget():
    frame = routing_frame()
    named = with_arm_labels(frame)
    # arm = model * 3 + budget index: arm 7 is the third model at the second budget.
    assert "mixtral-8x7b@k4 | cost_weight=0" in set(named["setting"])
    assert not named["setting"].str.contains("fixed_arm").any()
    fig = regret_figure(frame)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) <= 4, labels                               # not 19 entries
    assert sorted(labels) == ["best single arm", "linucb", "other single arms (17)"]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("mixtral-8x7b@k4") == 2                    # named in both panels
    assert [ax.get_title() for ax in fig.axes[:2]] == ["cost_weight=0", "cost_weight=1"]
    plt.close(fig)
    table = make_table(frame)
    assert "mixtral-8x7b@k4 \\| cost_weight=1" in table and "fixed_arm" not in table
    fig = sensitivity_figure(frame, resolve_axis(frame, "cost_weight"))
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert sorted(labels) == ["best single arm: mixtral-8x7b@k4", "linucb",
                              "other single arms (17)"]
    plt.close(fig)
