"""Tests of analysis/bounds.py: theory against hand-computed values, the fits on synthetic curves,
the table of a real (small) results folder, and (slow) the asymptotic constants and UCB1's
finite-time bound on the standard instances."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import bounds, fits
from experiments import bounds_command


# ---------------------------------------------------------------------------------------------
# Theory against values computed by hand.
# ---------------------------------------------------------------------------------------------
def test_lai_robbins_two_arm_bernoulli_by_hand():
    # means (0.6, 0.4): kl(0.4, 0.6) = 0.4 ln(2/3) + 0.6 ln(3/2) = 0.2 ln 1.5 = 0.0810930216;
    # C = gap / kl = 0.2 / 0.0810930216 = 2.4663034623.
    assert bounds.lai_robbins_constant([0.6, 0.4]) == pytest.approx(2.4663034623, rel=1e-9)
    assert bounds.lai_robbins_constant([0.4, 0.6]) == pytest.approx(2.4663034623, rel=1e-9)


def test_lai_robbins_gaussian_and_degenerate_cases():
    # Gaussian, sigma = 1: sum 2 sigma^2 / gap = 2 / 0.5 + 2 / 1 = 6; sigma = 2 multiplies by 4.
    assert bounds.lai_robbins_constant([1.0, 0.5, 0.0], "gaussian") == pytest.approx(6.0)
    assert bounds.lai_robbins_constant([1.0, 0.5, 0.0], "gaussian", 2.0) == pytest.approx(24.0)
    # Optimal duplicates contribute nothing; an all-equal instance has C = 0.
    assert bounds.lai_robbins_constant([0.6, 0.6, 0.4]) == pytest.approx(2.4663034623)
    assert bounds.lai_robbins_constant([0.5, 0.5]) == 0.0
    # A best arm of mean 1 is told apart from any other arm after one 0: kl(mu, 1) = inf, C = 0.
    assert bounds.lai_robbins_constant([1.0, 0.0, 0.6]) == 0.0


def test_ucb1_bound_by_hand():
    # means (0.6, 0.4) at t = e^2: 8 * 2 / 0.2 + (1 + pi^2 / 3) * 0.2 = 80 + 0.857973627
    value = bounds.ucb1_bound([0.6, 0.4], np.array([math.e ** 2]))
    assert value[0] == pytest.approx(80.857973627, rel=1e-9)


def test_exp3_bound_matches_corollary_3_2_at_the_horizon():
    k, horizon = 10, 100_000
    gamma = bounds.exp3_gamma(k, horizon)
    # gamma = sqrt(10 ln 10 / (1.718281828 * 1e5)) = 0.0115761...
    assert gamma == pytest.approx(math.sqrt(10 * 2.302585093 / (1.718281828 * 1e5)), rel=1e-8)
    at_horizon = bounds.exp3_bound(k, np.array([horizon]), gamma)[0]
    assert at_horizon == pytest.approx(2 * math.sqrt(math.e - 1) * math.sqrt(horizon * k *
                                                                              math.log(k)))
    # Theorem 3.1 grows linearly in t for a fixed gamma.
    curve = bounds.exp3_bound(k, np.array([1.0, 2.0, 3.0]), gamma)
    assert np.diff(curve) == pytest.approx([(math.e - 1) * gamma] * 2)


def test_minimax_lower_bound_by_hand():
    # sqrt(10 * 1000) / 20 = 5; at t = 5 < K the bound is t / 20 = 0.25.
    assert bounds.minimax_lower_bound(10, np.array([1000.0, 5.0])) == pytest.approx([5.0, 0.25])


def test_oful_radius_and_bound_by_hand():
    # d = 2, lambda = 1, S = 1, R = 0.1, delta = 0.05, L = 1, t = 100:
    # radius = 0.1 sqrt(2 ln(101 / 0.05)) + 1 = 0.1 * sqrt(2 * 7.610852) + 1 = 1.3901501
    radius = bounds.oful_radius(np.array([100.0]), 2, 1.0, 1.0, 0.1, 0.05)[0]
    assert radius == pytest.approx(1.0 + 0.1 * math.sqrt(2 * math.log(2020.0)), rel=1e-9)
    assert radius == pytest.approx(1.3901501, rel=1e-6)
    # bound = 4 sqrt(100 * 2 * ln(1 + 50)) (1 + 0.1 sqrt(2 ln 20 + 2 ln 51))
    #       = 4 * 28.04220 * (1 + 0.1 * sqrt(5.991465 + 7.863652)) = 4 * 28.04220 * 1.3722246
    #       = 153.9208
    value = bounds.oful_bound(np.array([100.0]), 2, 1.0, 1.0, 0.1, 0.05)[0]
    assert value == pytest.approx(153.9208, rel=1e-5)


def test_delay_additive_term_and_mean_delay():
    # E[tau] * sum of gaps: 10 * (0.2 + 0.4) = 6.
    assert bounds.delay_additive_term([0.6, 0.4, 0.2], 10.0) == pytest.approx(6.0)
    # Fixed delay d has mean d; geometric with mean 5 has mean 5 (tail beyond the horizon is
    # q^(10^4) ~ 0); uniform on {2..6} has mean 4.
    assert bounds.mean_delay("fixed", {"d": 7}) == pytest.approx(7.0)
    assert bounds.mean_delay("geometric", {"mean": 5.0}, horizon=10_000) == pytest.approx(5.0,
                                                                                          rel=1e-4)
    assert bounds.mean_delay("uniform", {"lo": 2, "hi": 6}) == pytest.approx(4.0)


# ---------------------------------------------------------------------------------------------
# Fits on synthetic curves.
# ---------------------------------------------------------------------------------------------
GRID = np.unique(np.round(np.logspace(0, 5, 60))).astype(float)


def synthetic_power_curves(exponent: float, runs: int = 200, seed: int = 1) -> np.ndarray:
    """Runs c_r * t^exponent with c_r lognormal (spread 0.3) around 2: the mean is a power law."""
    rng = np.random.default_rng(seed)
    scale = 2.0 * np.exp(0.3 * rng.standard_normal(runs))
    return scale[:, None] * GRID[None, :] ** exponent


@pytest.mark.parametrize("exponent", [0.5, 0.67, 1.0])
def test_regret_exponent_recovers_a_power_law_and_its_interval_covers_it(exponent):
    estimate, lo, hi = fits.regret_exponent(GRID, synthetic_power_curves(exponent))
    # The mean of c_r t^a is (mean c) t^a exactly: the slope is a up to float rounding.
    assert estimate == pytest.approx(exponent, abs=1e-9)
    assert lo <= exponent <= hi


def test_regret_exponent_interval_reflects_per_run_noise():
    # Per-run exponents vary (a_r ~ 0.5 +- 0.05): the mean curve's slope is near 0.5 and the
    # bootstrap interval over 200 runs has width of order 2 * 1.96 * 0.05 / sqrt(200) = 0.014.
    rng = np.random.default_rng(3)
    slopes = 0.5 + 0.05 * rng.standard_normal(200)
    curves = GRID[None, :] ** slopes[:, None]
    estimate, lo, hi = fits.regret_exponent(GRID, curves)
    assert lo < estimate < hi
    # E[t^a] = exp(0.5 x + 0.05^2 x^2 / 2) with x = ln t: the population curve's least-squares
    # slope over the fit window (about 0.526) lies inside the interval.
    x = np.log(GRID[fits.last_decade(GRID)])
    population = fits.least_squares_slopes(x, 0.5 * x + 0.05 ** 2 * x ** 2 / 2)
    assert population == pytest.approx(0.526, abs=0.002)
    assert lo <= population <= hi
    assert 0.003 < hi - lo < 0.05
    # The bootstrap is seeded: the same call gives the same interval.
    assert fits.regret_exponent(GRID, curves) == (estimate, lo, hi)


def test_log_constant_recovers_the_slope_against_ln_t():
    # Runs 3 ln t + 10 + noise (per-run offsets and per-round noise): slope in ln t is 3.
    rng = np.random.default_rng(4)
    curves = 3.0 * np.log(GRID)[None, :] + 10 + rng.normal(0, 2, (300, 1)) \
        + rng.normal(0, 0.5, (300, GRID.size))
    estimate, lo, hi = fits.log_constant(GRID, curves)
    assert estimate == pytest.approx(3.0, abs=0.1)     # 4+ SE of the fitted slope
    assert lo <= 3.0 <= hi


def test_last_decade_and_validity_fractions():
    t = np.array([1, 10, 100, 1000, 5000, 10000.0])
    assert fits.last_decade(t).tolist() == [False, False, False, True, True, True]
    assert fits.fraction_under(np.array([1, 2, 3, 4.0]), np.array([2, 2, 2, 2.0])) == 0.5
    assert fits.fraction_above(np.array([1, 2, 3, 4.0]), np.array([2, 2, 2, 2.0])) == 0.75


# ---------------------------------------------------------------------------------------------
# The table of a synthetic frame (known curves, known instance).
# ---------------------------------------------------------------------------------------------
def synthetic_frame(curves: np.ndarray, learner: str, means: list[float]) -> pd.DataFrame:
    rows = []
    for r, curve in enumerate(curves):
        for t, value in zip(GRID, curve):
            rows.append({"learner": learner, "run": r, "env": "bernoulli", "setting": learner,
                         "seed": r, "instance": 0, "hp.c": 2.0, "env.K": len(means),
                         "env.generator": "fixed", "env.means": str(list(means)),
                         "t": int(t), "regret": value})
    return pd.DataFrame(rows)


def test_bounds_table_columns_ratio_and_validity_on_synthetic_frame():
    means = [0.6, 0.4]
    constant = 2.4663034623
    rng = np.random.default_rng(5)
    # Regret 1.2 C ln t plus per-run offsets: ratio 1.2, far under the UCB1 bound.
    curves = 1.2 * constant * np.log(GRID)[None, :] + rng.normal(0, 1, (50, 1))
    table = bounds.bounds_table(synthetic_frame(curves, "ucb1", means))
    for column in ("learner", "hp.c", "exponent", "exponent_lo", "exponent_hi",
                   "log_constant_ratio", "upper_bound_holds", "lower_bound_holds",
                   "lai_robbins", "theory_exponent"):
        assert column in table
    row = table.iloc[0]
    assert row["lai_robbins"] == pytest.approx(constant)
    assert row["log_constant_ratio"] == pytest.approx(1.2, abs=1e-9)
    assert row["upper_bound_holds"] == 1.0
    assert row["upper_bound_final"] == pytest.approx(bounds.ucb1_bound(means, [1e5])[0])
    # A curve above the bound: 200 t^0.5 exceeds 8 ln t / 0.2 + 0.86 from t = 2 on.
    over = bounds.bounds_table(synthetic_frame(200 * GRID[None, :] ** 0.5 + np.zeros((5, 1)),
                                               "ucb1", means)).iloc[0]
    assert over["upper_bound_holds"] < 0.05
    # Not UCB1 with c = 2 (here: c = 1): no finite-time bound applies.
    frame = synthetic_frame(curves, "ucb1", means).assign(**{"hp.c": 1.0})
    assert math.isnan(bounds.bounds_table(frame).iloc[0]["upper_bound_holds"])


# ---------------------------------------------------------------------------------------------
# A real results folder: fixed and re-sampled instances, delays, the CLI.
# ---------------------------------------------------------------------------------------------
def _run(tmp_path, name: str, config: dict):
    from experiments import config as config_lib
    from experiments.experiment import run_experiment
    out = tmp_path / name
    out.mkdir()
    run_experiment(config_lib.build(config), out, progress=False, plot=False)
    return out


def test_cli_bounds_on_a_delayed_run_writes_table_and_figure(tmp_path, capsys):
    from experiments.cli import main
    config = {"run": {"horizon": 600, "seeds": 6, "record": 20},
              "env": {"name": "bernoulli", "K": 3, "means": [0.7, 0.5, 0.3],
                      "delay": {"dist": "fixed", "d": [0, 20], "capacity": 64}},
              # Two learners: hp.* columns that one of them lacks (NaN) must not break the table.
              "learner": [{"name": "ucb1"}, {"name": "klucb"}]}
    out = _run(tmp_path, "delayed", config)
    assert main(["bounds", str(out), "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    assert "exponent" in printed and "bounds.csv" in printed
    table = pd.read_csv(out / "bounds.csv")
    for column in ("learner", "hp.c", "exponent", "exponent_lo", "exponent_hi",
                   "log_constant_ratio", "upper_bound_holds", "mean_delay", "delay_cost",
                   "delay_term"):
        assert column in table
    assert (out / "bounds.png").exists() and (out / "bounds.pdf").exists()
    assert sorted(table["learner"]) == ["klucb", "klucb", "ucb1", "ucb1"]
    assert (table.loc[table["learner"] == "klucb", "upper_bound_holds"].isna()).all()
    table = table[table["learner"] == "ucb1"].sort_values("mean_delay")
    assert table["mean_delay"].tolist() == pytest.approx([0.0, 20.0])
    # Joulani's term with d = 20: 20 * (0.2 + 0.4) = 12; the delay cost of the d = 0 row is 0.
    assert table["delay_term"].tolist() == pytest.approx([0.0, 12.0])
    assert table["delay_cost"].iloc[0] == 0.0
    # Delayed UCB1's curve gets the additive term: its final bound exceeds the undelayed one by 12.
    assert table["upper_bound_final"].iloc[1] - table["upper_bound_final"].iloc[0] == \
        pytest.approx(12.0)
    assert (table["lai_robbins"] > 0).all()


def test_resampled_instance_means_are_the_simulated_ones(tmp_path):
    # The uniform learner's expected regret per round is max(mu) - mean(mu) of its instance;
    # over 3000 rounds the per-round pseudo-regret (spread <= 1) averages to within 0.03
    # (> 5 standard errors) of it, so the re-sampled means must be the simulated instance.
    config = {"run": {"horizon": 3000, "seeds": 2, "record": 5, "instances": 3},
              "env": {"name": "bernoulli", "K": 4, "generator": "uniform"},
              "learner": [{"name": "uniform"}]}
    out = _run(tmp_path, "random", config)
    frame = pd.read_parquet(out / "results.parquet")
    instances = bounds_command.instance_means(frame, out)
    final = frame[frame["t"] == 3000].set_index("run")
    assert len(instances) == len(final)
    distinct = {tuple(np.round(m, 6)) for m in instances["means"]}
    assert len(distinct) == 3                     # one instance per instance index
    for run, row in final.iterrows():
        means = instances.loc[run, "means"]
        assert row["regret"] / 3000 == pytest.approx(means.max() - means.mean(), abs=0.03)


def test_gap_instances_are_resampled(tmp_path):
    config = {"run": {"horizon": 50, "seeds": 1, "record": 3, "instances": 2},
              "env": {"name": "bernoulli", "K": 3, "generator": "gap", "best": 0.6, "gap": 0.2},
              "learner": [{"name": "ucb1"}]}
    out = _run(tmp_path, "gap", config)
    frame = pd.read_parquet(out / "results.parquet")
    for means in bounds_command.instance_means(frame, out)["means"]:
        assert sorted(means) == pytest.approx([0.4, 0.4, 0.6])
    table = bounds_command.bounds_table(frame, out, samples=50)
    # C = 2 * 0.2 / kl(0.4, 0.6) = 2 * 2.4663034623
    assert table["lai_robbins"].iloc[0] == pytest.approx(2 * 2.4663034623, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Slow: the asymptotic constants and UCB1's bound on the standard instances.
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_standard_instances_log_constants_and_ucb1_bound():
    from paper_figures.common import bounds_check_table
    # The standard configs (paper_figures/configs/classic.toml, exponents_linear.toml) through
    # the figure cache: reuses `make figures`' runs when present, else runs them (~10 min).
    table = bounds_check_table()
    rows = table.set_index("learner")
    # KL-UCB and Thompson sampling are asymptotically optimal: the slope of their regret in ln t
    # at the largest horizon is within 30% of the Lai-Robbins constant (our tolerance;
    # the bootstrap interval of the ratio is about +-0.1 with the standard 200 seeds).
    for name in ("klucb", "thompson"):
        assert 0.7 <= rows.loc[name, "log_constant_ratio"] <= 1.3, rows.loc[name]
    # UCB1 (c = 2) is under the finite-time bound of Auer et al. (2002) at every recorded round,
    # and its log constant is above Lai-Robbins (UCB1 is not asymptotically optimal).
    assert rows.loc["ucb1", "upper_bound_holds"] == 1.0
    assert rows.loc["ucb1", "log_constant_ratio"] > 1.0
    # The linear learners on the standard low signal-to-noise instance grow like sqrt(T): slopes
    # within 0.15 of 1/2 (measured 0.47-0.58 with bootstrap half-widths of about 0.03), and OFUL
    # under its Theorem 3 bound.
    for name in ("linucb_shared", "lints", "oful"):
        assert abs(rows.loc[name, "exponent"] - 0.5) <= 0.15, rows.loc[name]
    assert rows.loc["oful", "upper_bound_holds"] == 1.0
