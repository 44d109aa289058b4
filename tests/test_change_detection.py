"""The change-detection learners (bandits/change_detection.py) and learner-reported metrics
(``Learner.metrics`` / ``Learner.report``, experiments/runner.py).

Learners, through the config layer and the runner, on fixed seeds:
- after a large abrupt change of the arm they play (0.9 -> 0.1, the other arm 0.5 throughout)
  each learner restarts within a delay that follows from its test's threshold, and not before
  the change;
- on that piecewise instance they have far less regret after the change than UCB1, which keeps
  playing the arm whose long history still looks best;
- on a stationary instance they restart rarely (slow);
- the defaults are the papers' formulas (recomputed here from the formulas, not read back);
- the GLR statistic over the split grid equals a NumPy scan over every split when the grid keeps
  every split.
Masked feedback is checked for them by tests/test_contract.py (registry-driven).

Learner-reported values: a test learner (UCB1 reporting its pulls of arm 1, not registered)
through ``runner.simulate``: the value is recorded as it is (pulls x gap = regret on a two-armed
instance, an identity independent of the runner), learners declaring none get no column, and a
run resumed from a mid-run checkpoint gives the same columns. In an experiment frame the
``detections`` column is NaN for UCB1, and analysis prints and draws it from the declarations.
"""
from __future__ import annotations

import copy
import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from analysis.metrics import declared_metrics, final_summary
from bandits.change_detection import GLRklUCB
from bandits.mab import UCB1
from envs.core import ConfigError, Metric
from experiments import cli
from experiments import config as config_lib
from experiments import runner
from experiments.experiment import run_experiment, simulate_experiment

CHANGE = 1000          # the change point (0-based round)
HORIZON = 2000
SEEDS = 20
DETECTORS = ("cusum_ucb", "m_ucb", "glr_klucb")

PIECEWISE = {
    "run": {"horizon": HORIZON, "seeds": SEEDS, "record": 1000, "seed": 3},
    # Arm 0 (played before the change) drops from 0.9 to 0.1; arm 1 stays at 0.5.
    "env": {"name": "piecewise", "K": 2, "means": [[0.9, 0.5], [0.1, 0.5]],
            "change_points": [CHANGE]},
    # M-UCB's window, threshold and exploration are tuned to the smallest change delta (its
    # Remark 1): delta = 0.8, the change here. The others take their defaults (changes = 1, the
    # environment's number of change points).
    "learner": [{"name": "ucb1"}, {"name": "cusum_ucb"}, {"name": "m_ucb", "delta": 0.8},
                {"name": "glr_klucb"}],
}

# Upper bounds on the rounds from the change to the restart, from each test's threshold (arm 0
# is played in about 1 - alpha/2 of the rounds; its samples after the change are 0 w.p. 0.9):
# - CUSUM-UCB: u0 = 0.9 (200 samples), each 0 adds u0 - 0 - eps = 0.8 to g-, each 1 takes 0.2
#   off; h = ln 2000 = 7.6 needs 10 zeros, about 12 samples: 24 rounds allows 12 more rounds
#   of ones and exploration.
# - M-UCB: w = 304, b = sqrt(w ln(2 K T^2) / 2) = 50.2; with k post-change samples in the newer
#   half the gap is 0.8 k, so k >= 63 (+- 6 for the noise of the older half, sd 3.7), 0.88 of the
#   rounds (gamma = 0.24): 72-80 rounds; 100 allows 20 more.
# - GLR-klUCB: tests every 10 samples; at n = 900 the grid step is 20 (64 slots of 10 filled at
#   640 samples, then halved), so a split lies within 20 samples before the change; with that
#   split, 20 post-change samples give a statistic of 40 kl(0.5, 0.89) = 19 > ln(n^1.5 / delta)
#   = 14.4 (delta = 1 / sqrt(2 T)): at most 20 + 10 samples, 40 rounds.
DELAY_BOUND = {"cusum_ucb": 24, "m_ucb": 100, "glr_klucb": 40}


@pytest.fixture(scope="module")
def piecewise_frame() -> pd.DataFrame:
    frame, _ = simulate_experiment(config_lib.build(PIECEWISE), progress=False)
    return frame


def _first_restart_round(part: pd.DataFrame) -> pd.Series:
    """Per run: the first recorded t (rounds played) by which a restart happened (inf: none).
    ``detections`` at recorded t counts the restarts in rounds < t, so the restart happened in a
    round before that t: the recorded grid (spacing about 8 rounds here) can only overstate."""
    hit = part[part["detections"] >= 1].groupby("run")["t"].min()
    return hit.reindex(part["run"].unique(), fill_value=np.inf)


@pytest.mark.parametrize("name", DETECTORS)
def test_restart_within_the_stated_delay_after_a_large_change(piecewise_frame, name):
    part = piecewise_frame[piecewise_frame["learner"] == name]
    first = _first_restart_round(part)
    assert (first > CHANGE).all(), f"{name} restarted before the change: {first.min()}"
    delay = first - CHANGE
    assert delay.max() <= DELAY_BOUND[name], (
        f"{name}: restart delays {sorted(delay)}, bound {DELAY_BOUND[name]}")


def test_detection_learners_have_far_less_regret_than_ucb1_after_the_change(piecewise_frame):
    # After the change UCB1 keeps playing arm 0 until its mean over ~1000 samples of 0.9 falls
    # to arm 1's index: about 240 regret over the last 1000 rounds. A learner restarting within
    # the delays above loses 0.4 a round until then, plus its forced exploration (at most
    # alpha/2 or gamma/2 of the rounds at gap 0.4: 12-48) and the re-exploration after the
    # restart. Stated margin: at most 0.4 x UCB1's regret over the rounds after the change (the
    # worst, M-UCB with its large gamma, was at 0.30 when written: 75 against 253).
    final = piecewise_frame[piecewise_frame["t"] == HORIZON].set_index(["learner", "run"])
    before = piecewise_frame[piecewise_frame["t"] <= CHANGE]
    at_change = before[before["t"] == before["t"].max()].set_index(["learner", "run"])
    after = (final["regret"] - at_change["regret"]).groupby(level="learner").mean()
    assert after["ucb1"] > 150, f"UCB1 should suffer after the change: {after['ucb1']:.1f}"
    for name in DETECTORS:
        assert after[name] <= 0.4 * after["ucb1"], (
            f"{name}: {after[name]:.1f} regret after the change, UCB1 {after['ucb1']:.1f}")


def test_detections_column_is_reported_printed_and_drawn(piecewise_frame, tmp_path, capsys):
    frame = piecewise_frame
    ucb1 = frame[frame["learner"] == "ucb1"]
    assert ucb1["detections"].isna().all()             # learners reporting nothing: NaN
    detectors = frame[frame["learner"] != "ucb1"]
    assert detectors["detections"].notna().all()
    # Cumulative: never decreasing along a run (recorded as it is, not summed again).
    steps = detectors.sort_values(["run", "t"]).groupby("run")["detections"].diff().dropna()
    assert (steps >= 0).all()
    names = [m.name for m in declared_metrics(frame)]
    assert names[0] == "regret" and "detections" in names and "changes" in names
    summary = final_summary(frame, tuple(names)).set_index("setting")
    assert math.isnan(summary.loc["ucb1", "detections_mean"])
    assert summary.loc["glr_klucb", "detections_mean"] >= 1.0
    frame.to_parquet(tmp_path / "results.parquet")
    assert cli.main(["plot", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "detections.png") in printed
    assert (tmp_path / "detections.png").stat().st_size > 0


@pytest.mark.slow
def test_restarts_are_rare_on_a_stationary_instance():
    # Bernoulli 0.5 / 0.4 (the largest reward variance), T = 5000, 100 runs, the defaults.
    # - GLR-klUCB: the probability of a false alarm per arm and segment is about delta
    #   (1 / sqrt(K T) = 0.01 local, 1 / sqrt(T) global): bound 0.05 a run.
    # - M-UCB: b makes a false alarm of one test have probability <= 1 / (K T^2): bound 0.05.
    # - CUSUM-UCB: each side of the CUSUM is a random walk with drift -eps = -0.1 and variance
    #   0.25; Siegmund's approximation of its mean run length, sigma^2 / (2 eps^2) (e^x - 1 - x)
    #   with x = 2 eps h / sigma^2 = 6.8 (h = ln 5000), is 11,000 samples a side: about 0.8
    #   false alarms in the ~4,500 monitored samples of the best arm, more with u0 estimated from
    #   200 samples (sd 0.035). Measured 1.22 a run (se 0.11) when written: bound 1.6.
    config = {"run": {"horizon": 5000, "seeds": 100, "record": 5},
              "env": {"name": "bernoulli", "K": 2, "means": [0.5, 0.4]},
              "learner": [{"name": "cusum_ucb"}, {"name": "m_ucb"}, {"name": "glr_klucb"},
                          {"name": "glr_klucb", "restart": "global", "label": "glr_global"}]}
    frame, _ = simulate_experiment(config_lib.build(config), progress=False)
    final = frame[frame["t"] == 5000].groupby("setting")["detections"].mean()
    bounds = {"cusum_ucb": 1.6, "m_ucb": 0.05, "glr_klucb": 0.05, "glr_global": 0.05}
    for setting, bound in bounds.items():
        assert final[setting] <= bound, f"{setting}: {final[setting]:.3f} restarts a run"


@pytest.mark.slow
def test_global_glr_restarts_every_arm_within_the_delay():
    config = dict(PIECEWISE, learner=[{"name": "glr_klucb", "restart": "global"}])
    frame, _ = simulate_experiment(config_lib.build(config), progress=False)
    first = _first_restart_round(frame)
    assert (first > CHANGE).all() and (first - CHANGE).max() <= DELAY_BOUND["glr_klucb"]
    # One restart counts once, however many arms it resets.
    assert (frame[frame["t"] == HORIZON]["detections"] == 1).mean() >= 0.9


# ---------------------------------------------------------------------------------------------
# Defaults and settings.
# ---------------------------------------------------------------------------------------------
def _settled(learner: dict, horizon: int = 10_000, env: dict | None = None) -> dict:
    config = {"run": {"horizon": horizon, "seeds": 1},
              "env": env or {"name": "bernoulli", "K": 4},
              "learner": [learner]}
    runs = config_lib.build(config).groups[0].runs
    return {k[3:]: v for k, v in runs.iloc[0].items() if str(k).startswith("hp.")}


def test_defaults_follow_the_papers_formulas():
    T, K = 10_000, 4
    cusum = _settled({"name": "cusum_ucb", "changes": 5})
    assert cusum["h"] == pytest.approx(math.log(T / 5))
    assert cusum["alpha"] == pytest.approx(math.sqrt(5 * math.log(T / 5) / T))
    glr = _settled({"name": "glr_klucb", "changes": 5})
    assert glr["alpha"] == pytest.approx(math.sqrt(K * 5 * math.log(T) / T))
    assert glr["delta"] == pytest.approx(1 / math.sqrt(K * 5 * T))
    glr = _settled({"name": "glr_klucb", "changes": 5, "restart": "global"})
    assert glr["alpha"] == pytest.approx(math.sqrt(5 * math.log(T) / T))
    assert glr["delta"] == pytest.approx(1 / math.sqrt(5 * T))
    m = _settled({"name": "m_ucb", "changes": 5, "delta": 0.5})
    w = 4 / 0.25 * (math.sqrt(math.log(2 * K * T ** 2)) + math.sqrt(math.log(2 * T))) ** 2
    assert m["w"] in (math.ceil(w), math.ceil(w) + 1) and m["w"] % 2 == 0
    assert m["b"] == pytest.approx(math.sqrt(m["w"] * math.log(2 * K * T ** 2) / 2))
    delay = min(m["w"] / 2, math.ceil(m["b"] / 0.5) + 3 * math.sqrt(m["w"]))
    assert m["gamma"] == pytest.approx(math.sqrt(5 * K * delay / (2 * T)))
    # The number of changes defaults to the environment's (piecewise: its change points).
    env = {"name": "piecewise", "K": 4, "change_points": [100, 200, 300]}
    assert _settled({"name": "glr_klucb"}, env=env)["changes"] == 3
    assert _settled({"name": "glr_klucb"})["changes"] == 1


@pytest.mark.parametrize("learner, field", [
    ({"name": "m_ucb", "w": 301}, "learner[0].w = 301"),
    ({"name": "glr_klucb", "max_splits": 63}, "learner[0].max_splits = 63"),
    ({"name": "glr_klucb", "restart": "sometimes"}, "learner[0].restart = 'sometimes'"),
    ({"name": "cusum_ucb", "changes": 0}, "learner[0].changes = 0"),
])
def test_bad_settings_are_one_line_config_errors(learner, field):
    with pytest.raises(ConfigError) as error:
        _settled(learner)
    assert str(error.value).startswith(field) and "\n" not in str(error.value)


def test_glr_statistic_on_a_full_grid_equals_a_scan_over_every_split():
    # Besson et al. (2022): max_s s kl(mu_{1:s}, mu) + (n - s) kl(mu_{s+1:n}, mu), written
    # here in NumPy (float64) over every split s = 1 .. n - 1.
    rng = np.random.default_rng(0)
    samples = np.concatenate([rng.random(30) < 0.8, rng.random(20) < 0.3]).astype(np.float64)
    n = len(samples)

    def kl(p, q):
        p, q = np.clip(p, 1e-7, 1 - 1e-7), np.clip(q, 1e-7, 1 - 1e-7)
        return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))

    mean = samples.mean()
    expected = max(s * kl(samples[:s].mean(), mean) + (n - s) * kl(samples[s:].mean(), mean)
                   for s in range(1, n))
    prefix = np.zeros(64)
    prefix[:n] = np.cumsum(samples)                 # split s = j + 1 in slot j (step 1)
    got = GLRklUCB.glr_statistic(jnp.asarray(prefix, jnp.float32), jnp.int32(n),
                                 jnp.int32(1), jnp.int32(n), jnp.float32(samples.sum()))
    assert float(got) == pytest.approx(expected, rel=1e-4)    # float32 logs


# ---------------------------------------------------------------------------------------------
# Learner-reported values in the runner.
# ---------------------------------------------------------------------------------------------
class PullCounter(UCB1):
    """UCB1 reporting its pulls of arm 1 (a test learner, not registered)."""

    metrics = (Metric("pulls_of_arm_1", "pulls of arm 1"),)

    def report(self, state):
        return {"pulls_of_arm_1": state.counts[1]}


GAP_CONFIG = {"run": {"horizon": 300, "seeds": 6, "record": 12},
              "env": {"name": "bernoulli", "K": 2, "means": [0.7, 0.45]},
              "learner": [{"name": "ucb1"}]}


def _simulate(learner, **options) -> runner.SimulationResult:
    group = config_lib.build(GAP_CONFIG).groups[0]
    return runner.simulate(group.env, learner, run_keys=group.run_keys,
                           instance_keys=group.instance_keys, env_settings=group.env_settings,
                           hparams=group.hparams, horizon=300,
                           record=runner.record_grid(300, 12), chunk=50, **options)


@pytest.fixture(scope="module")
def counted():
    group = config_lib.build(GAP_CONFIG).groups[0]
    return _simulate(PullCounter(group.env.spec, 300)), group


def test_reported_values_are_recorded_as_they_are(counted):
    result, group = counted
    assert set(result.columns) == {"regret", "pulls_of_arm_1"}
    pulls = result.columns["pulls_of_arm_1"]
    # Every pull of arm 1 costs the gap 0.25: the regret the environment sums is the reported
    # count times the gap at every recorded round (so the count is neither summed nor shifted).
    np.testing.assert_allclose(result.columns["regret"], 0.25 * pulls, rtol=1e-5, atol=1e-5)
    assert (pulls[:, -1] > 0).all() and (np.diff(pulls, axis=1) >= 0).all()
    plain = _simulate(group.learner)
    assert set(plain.columns) == {"regret"}             # nothing declared, no column
    np.testing.assert_array_equal(plain.columns["regret"], result.columns["regret"])


def test_reported_values_survive_a_checkpoint_and_resume(counted):
    result, group = counted
    saved = []             # copies: as a checkpoint written to disk (the run goes on after it)
    _simulate(PullCounter(group.env.spec, 300), checkpoint_every=2,
              on_checkpoint=lambda state: saved.append(copy.deepcopy(state)))
    middle = saved[0]
    assert middle.carry is not None and middle.rounds == 100
    resumed = _simulate(PullCounter(group.env.spec, 300), resume=middle)
    for name, values in result.columns.items():
        np.testing.assert_array_equal(resumed.columns[name], values)


@pytest.mark.slow
def test_experiment_with_a_detection_learner_resumes_to_the_same_frame(tmp_path, monkeypatch):
    from experiments import experiment as experiment_lib
    config = {"run": {"horizon": 400, "seeds": 4, "record": 10, "chunk": 50,
                      "checkpoint_every": 1},
              "env": {"name": "piecewise", "K": 2, "means": [[0.9, 0.5], [0.1, 0.5]],
                      "change_points": [200]},
              "learner": [{"name": "ucb1"}, {"name": "cusum_ucb", "warm_up": 20}]}
    for folder in ("reference", "resumed"):
        (tmp_path / folder).mkdir()
    reference, _ = run_experiment(config_lib.build(config), tmp_path / "reference",
                                  progress=False, plot=False)
    calls = [0]

    class Interrupt(Exception):
        pass

    def count(self, steps):
        calls[0] += 1
        if calls[0] > 12:                  # inside the second group (8 chunks a group)
            raise Interrupt
    with monkeypatch.context() as patch:
        patch.setattr(experiment_lib.Progress, "__call__", count)
        with pytest.raises(Interrupt):
            run_experiment(config_lib.build(config), tmp_path / "resumed", progress=False,
                           plot=False)
    frame, meta = run_experiment(config_lib.build(config), tmp_path / "resumed",
                                 progress=False, plot=False, resume=True)
    assert meta["resumed"] is True
    pd.testing.assert_frame_equal(frame, reference)
    assert frame[frame["learner"] == "cusum_ucb"]["detections"].max() >= 1
