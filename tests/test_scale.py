"""Scale (docs/design.md, "The runner"): sharding over devices and processes, checkpoint and
resume, memory.

- 1, 2 and 4 devices (forced host devices, in a subprocess) give identical results, with the run
  axis padded to a multiple of the device count and the padding dropped;
- two processes on 127.0.0.1 joined by jax.distributed.initialize() give the results of one;
- an experiment interrupted at any point (a chunk, a batch or a group boundary) and resumed from
  its checkpoint gives the numbers of an uninterrupted run; so does one killed with SIGKILL at a
  random instant (a subprocess); a checkpoint of another config is refused;
- the carried state and the compiled chunk's memory do not grow with the horizon.
"""
from __future__ import annotations

import copy
import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.core import ConfigError
from experiments import checkpoint as checkpoint_lib
from experiments import config as config_lib
from experiments import experiment as experiment_lib
from experiments.config import dump_toml
from experiments.runner import record_grid

ROOT = Path(__file__).resolve().parents[1]

# Two cheap groups (two learners), batches of 4 runs (7 runs: one padded run) and eight chunks
# per batch: interruption points inside a batch, between batches and between groups.
CONFIG = {
    "run": {"horizon": 200, "seeds": 7, "record": 10, "chunk": 25, "batch": 4,
            "checkpoint_every": 1},
    "env": {"name": "bernoulli", "K": 5, "generator": "uniform"},
    "learner": [{"name": "ucb1"}, {"name": "epsilon_greedy", "epsilon": [0.05, 0.2]}],
}
CHUNKS_PER_GROUP = 2 * 8         # the first group: 7 runs in 2 batches, 8 chunks each
TOTAL_CHUNKS = CHUNKS_PER_GROUP + 4 * 8    # the second: 14 runs (2 epsilons) in 4 batches


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "experiments", "run", *map(str, args)]


@pytest.fixture(scope="module")
def experiment():
    return config_lib.build(copy.deepcopy(CONFIG))


@pytest.fixture(scope="module")
def reference(experiment, tmp_path_factory):
    """The uninterrupted run (no checkpoints): the numbers every other run must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    uninterrupted = config_lib.build(dict(CONFIG, run=dict(CONFIG["run"], checkpoint_every=0)))
    frame, meta = experiment_lib.run_experiment(uninterrupted, out, progress=False, plot=False)
    assert not (out / "checkpoint").exists()
    return frame, meta


# ---------------------------------------------------------------------------------------------
# Checkpoint and resume.
# ---------------------------------------------------------------------------------------------
class Interrupt(Exception):
    pass


def _interrupted_run(experiment, out: Path, after_chunks: int, monkeypatch) -> None:
    """Runs until ``after_chunks`` chunks are done, then raises (as a crash would)."""
    calls = [0]

    def count(self, steps):
        calls[0] += 1
        if calls[0] > after_chunks + 1:      # the first call reports the steps already done
            raise Interrupt
    with monkeypatch.context() as patch:
        patch.setattr(experiment_lib.Progress, "__call__", count)
        with pytest.raises(Interrupt):
            experiment_lib.run_experiment(experiment, out, progress=False, plot=False)


@pytest.mark.parametrize("after_chunks, group, batch, rounds", [
    (3, 0, 0, 75),                       # inside the first batch of the first group
    (CHUNKS_PER_GROUP + 8, 1, 1, 0),     # at a batch boundary of the second group
])
def test_interrupted_then_resumed_equals_uninterrupted(experiment, reference, tmp_path,
                                                       monkeypatch, after_chunks, group, batch,
                                                       rounds):
    _interrupted_run(experiment, tmp_path, after_chunks, monkeypatch)
    assert not (tmp_path / "results.parquet").exists()
    state = checkpoint_lib.load(tmp_path / "checkpoint", experiment.config)
    # The checkpoint is where the run stopped: groups done, batch and round of the one in progress.
    assert (state.group, state.progress.batch, state.progress.rounds) == (group, batch, rounds)
    assert len(state.done) == group
    assert (state.progress.carry is None) == (rounds == 0)

    chunks = [0]
    original = experiment_lib.Progress.__call__

    def count(self, steps):
        chunks[0] += 1
        original(self, steps)
    monkeypatch.setattr(experiment_lib.Progress, "__call__", count)
    frame, meta = experiment_lib.run_experiment(experiment, tmp_path, progress=False, plot=False,
                                                resume=True)
    pd.testing.assert_frame_equal(frame, reference[0])
    assert meta["resumed"] is True
    # Only the rest was simulated (one more call reports the steps already done).
    assert chunks[0] == 1 + TOTAL_CHUNKS - after_chunks
    assert not (tmp_path / "checkpoint").exists()        # deleted once results are written
    assert not list(tmp_path.glob(".checkpoint.tmp-*"))
    written = pd.read_parquet(tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(written, reference[0])


def test_checkpoint_of_another_config_is_refused(experiment, tmp_path, monkeypatch):
    _interrupted_run(experiment, tmp_path, 2, monkeypatch)
    other = dict(CONFIG, run=dict(CONFIG["run"], horizon=300))
    with pytest.raises(ConfigError, match=r"different config.*run\.horizon: 200 in the "
                                          r"checkpoint, 300 now"):
        experiment_lib.run_experiment(config_lib.build(other), tmp_path, progress=False,
                                      plot=False, resume=True)
    learner = dict(CONFIG, learner=[{"name": "ucb1", "c": 1.0}, CONFIG["learner"][1]])
    with pytest.raises(ConfigError, match=r"learner\[0\]\.c"):
        experiment_lib.run_experiment(config_lib.build(learner), tmp_path, progress=False,
                                      plot=False, resume=True)
    # Settings that change no number (devices, checkpoint interval, plot) do not block a resume.
    same = dict(CONFIG, run=dict(CONFIG["run"], checkpoint_every=3, devices=1),
                plot={"logx": True})
    state = checkpoint_lib.load(tmp_path / "checkpoint", config_lib.build(same).config)
    assert state.group == 0


def test_unreadable_checkpoint_gives_a_clear_error(experiment, tmp_path):
    (tmp_path / "checkpoint").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable banditjax checkpoint"):
        checkpoint_lib.load(tmp_path / "checkpoint", experiment.config)


def test_checkpoint_write_is_atomic_and_round_trips(tmp_path):
    from experiments.runner import GroupProgress
    path = tmp_path / "checkpoint"
    carry = [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2, 3], np.int32)]
    state = checkpoint_lib.ExperimentState(
        fingerprint="f", config={}, group=1,
        done=[checkpoint_lib.GroupResult(runs=np.arange(3), t=np.array([1, 5]),
                                         columns={"regret": np.ones((3, 2))},
                                         timing={"runs": 3})],
        progress=GroupProgress(batch=2, rounds=40, carry=carry, rows=np.array([0, 1, 2]),
                               finished=[(np.array([0, 1]), np.zeros((2, 3, 1)))],
                               run_seconds=1.5))
    checkpoint_lib.save(path, state)
    checkpoint_lib.save(path, state)                      # replaces the file in one rename
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    fingerprint, relevant = checkpoint_lib.fingerprint_config({})
    state.fingerprint, state.config = fingerprint, relevant
    checkpoint_lib.save(path, state)
    back = checkpoint_lib.load(path, {})
    assert (back.group, back.progress.batch, back.progress.rounds) == (1, 2, 40)
    for a, b in zip(back.progress.carry, carry):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(back.done[0].columns["regret"], np.ones((3, 2)))
    assert back.done[0].timing == {"runs": 3}
    np.testing.assert_array_equal(back.progress.finished[0][0], [0, 1])


def test_killed_with_sigkill_then_resumed_equals_uninterrupted(tmp_path):
    # A longer run (2 groups x 100 chunks, a checkpoint after every chunk) in a subprocess,
    # killed with SIGKILL at a random instant after its first checkpoint, then resumed.
    config = {"run": {"horizon": 2000, "seeds": 6, "record": 12, "chunk": 20,
                      "checkpoint_every": 1},
              "env": {"name": "bernoulli", "K": 4, "generator": "uniform"},
              "learner": [{"name": "ucb1"}, {"name": "moss"}]}
    path = tmp_path / "config.toml"
    path.write_text(dump_toml(config))
    out = tmp_path / "out"
    rng = random.Random(6)
    process = subprocess.Popen(_cli(path, "--out", out, "--quiet"), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 1.0))
    killed = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert killed, "the run finished before the kill: make it longer"
    assert not (out / "results.parquet").exists()
    resumed = subprocess.run(_cli(path, "--out", out, "--quiet", "--resume"), env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    frame = pd.read_parquet(out / "results.parquet")
    assert json.loads((out / "meta.json").read_text())["resumed"] is True
    reference, _ = experiment_lib.simulate_experiment(
        config_lib.build(dict(config, run=dict(config["run"], checkpoint_every=0))),
        progress=False)
    pd.testing.assert_frame_equal(frame, reference)
    assert not (out / "checkpoint").exists()


def test_resume_refuses_finished_results_and_foreign_folders(tmp_path, write_config,
                                                             tiny_config, capsys):
    from experiments import cli
    path = write_config(tiny_config)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "results.parquet").write_bytes(b"x")
    assert cli.main(["run", str(path), "--out", str(tmp_path / "done"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="holds no checkpoint"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "notes.txt").write_text("mine")
        experiment_lib.prepare_resume(tmp_path / "other")


# ---------------------------------------------------------------------------------------------
# Devices and processes.
# ---------------------------------------------------------------------------------------------
def test_one_two_and_four_devices_give_identical_results(tmp_path):
    # Four host devices need a fresh process (XLA reads the flag at start-up). 7 runs: padded to
    # 8 on 2 and 4 devices; batch 3 rounds up to a multiple of the device count (4 runs a batch).
    script = textwrap.dedent("""
        import json, sys
        import jax, numpy as np
        from experiments import config as config_lib, experiment as experiment_lib
        config = {"run": {"horizon": 120, "seeds": 7, "record": 9, "chunk": 50},
                  "env": {"name": "bernoulli", "K": 4, "generator": "uniform"},
                  "learner": [{"name": "epsilon_greedy", "epsilon": 0.2}]}
        out = {"devices": len(jax.devices())}
        for n, batch in ((1, None), (2, None), (4, None), (4, 3)):
            config["run"]["batch"] = batch
            frame, _ = experiment_lib.simulate_experiment(
                config_lib.build(config), progress=False, devices=jax.devices()[:n])
            out[f"{n}-{batch}"] = frame[["run", "t", "regret"]].values.tolist()
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"),
                          timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.pop("devices") == 4
    reference = np.asarray(result["1-None"])
    assert reference.shape[0] == 7 * len(record_grid(120, 9))   # padding dropped
    assert np.all(np.isfinite(reference)) and reference[:, 2].max() > 0
    for name, values in result.items():
        np.testing.assert_array_equal(np.asarray(values), reference, err_msg=name)


def test_cli_devices_flag(tmp_path, write_config, tiny_config, capsys):
    # --devices N is run.devices: more devices than visible is a user error before tracing.
    from experiments import cli
    path = write_config(tiny_config)
    code = cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--devices", "3",
                     "--quiet"])
    assert code == 2
    assert "run.devices = 3: only 1 device(s) visible" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


USER_MODULE = '''
"""A learner of one's own (UCB1 under another name), imported by every process."""
from bandits.core import register_learner
from bandits.mab import UCB1


@register_learner("ucb1_of_mine")
class UCB1OfMine(UCB1):
    """UCB1 in a user module (Auer, Cesa-Bianchi and Fischer 2002)."""
'''


@pytest.fixture
def user_learner(tmp_path):
    """A user module outside the repository; forgotten by this process afterwards."""
    from bandits.core import LEARNERS
    from experiments import user_code
    path = tmp_path / "user_learners.py"
    path.write_text(USER_MODULE)
    yield path
    LEARNERS.unregister("ucb1_of_mine")
    user_code._LOADED.pop(path.resolve(), None)
    sys.modules.pop("user_learners", None)


def test_two_processes_on_localhost_equal_one(tmp_path, write_config, user_learner):
    # jax.distributed.initialize() with a coordinator on 127.0.0.1: the run axis is sharded over
    # the two processes' CPU devices, each process writes its shard of results, process 0 merges.
    # The learner comes from a user module ([run] imports) that each process imports after
    # joining the others.
    config = {"run": {"horizon": 150, "seeds": 5, "record": 8, "imports": [str(user_learner)]},
              "env": {"name": "bernoulli", "K": 4, "generator": "uniform"},
              "learner": [{"name": "ucb1_of_mine", "c": [1.0, 2.0]}]}
    path = write_config(config)
    out = tmp_path / "out"
    port = _free_port()
    processes = [subprocess.Popen(
        _cli(path, "--out", out, "--quiet", "--coordinator", f"127.0.0.1:{port}",
             "--num-processes", 2, "--process-id", i), env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    frame = pd.read_parquet(out / "results.parquet")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["device"]["processes"] == 2 and meta["device"]["count"] == 2
    assert [p["process"] for p in meta["processes"]] == [0, 1]
    assert not (out / "shards").exists()
    reference, _ = experiment_lib.simulate_experiment(config_lib.build(config), progress=False)
    pd.testing.assert_frame_equal(frame, reference)


def test_launch_settings_from_flags_and_environment(monkeypatch):
    from experiments import distributed
    for name in sum(distributed.ENV_NAMES.values(), ()):
        monkeypatch.delenv(name, raising=False)
    assert distributed.launch_settings() is None
    assert distributed.launch_settings("127.0.0.1:1234", 2, 1) == {
        "coordinator_address": "127.0.0.1:1234", "num_processes": 2, "process_id": 1}
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:99")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "3")
    monkeypatch.setenv("JAX_PROCESS_ID", "2")
    assert distributed.launch_settings() == {"coordinator_address": "127.0.0.1:99",
                                             "num_processes": 3, "process_id": 2}
    with pytest.raises(ConfigError, match="--process-id 5: must be in"):
        distributed.launch_settings(process_id=5)
    monkeypatch.delenv("JAX_PROCESS_ID")
    with pytest.raises(ConfigError, match="missing: --process-id"):
        distributed.launch_settings()


# ---------------------------------------------------------------------------------------------
# Memory.
# ---------------------------------------------------------------------------------------------
def _chunk_memory(horizon: int) -> tuple[int, int]:
    """(bytes of the carried state, bytes the compiled chunk needs) for 1,000 UCB1 runs."""
    import jax
    from experiments.runner import Simulation
    config = {"run": {"horizon": horizon, "seeds": 1000, "record": 20},
              "env": {"name": "bernoulli", "K": 10}, "learner": [{"name": "ucb1"}]}
    group = config_lib.build(config).groups[0]
    grid = record_grid(horizon, 20)
    assert len(grid) == 20
    sim = Simulation(group.env, group.learner, horizon, grid, chunk=100)
    carry, consts = sim.initial(group.run_keys, group.instance_keys, group.env_settings,
                                group.hparams)
    state = sum(x.nbytes for x in jax.tree_util.tree_leaves(carry))
    compiled, _ = sim.compile(carry, consts)
    analysis = compiled[100].memory_analysis()
    needed = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
              + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)
    return state, needed


def test_memory_does_not_grow_with_the_horizon():
    # Same record grid size and chunk, horizons 1e4 and 1e7: the state and the compiled chunk's
    # buffers are the same size (metrics live on the record grid, never per round).
    small, large = _chunk_memory(10**4), _chunk_memory(10**7)
    assert small[0] == large[0]
    assert small[1] == large[1]
    # 1,000 runs x (20 arm statistics: counts and sums of K = 10 arms + 20 records (one per
    # recorded round) + sums + t) 4-byte numbers: 168 kB.
    assert small[0] == 1000 * (20 + 20 + 1 + 1) * 4


def test_meta_reports_peak_memory(reference):
    import resource
    _, meta = reference
    now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 50 < meta["peak_memory_mib"] <= now + 1


# ---------------------------------------------------------------------------------------------
# The runner's XLA:CPU measures change speed, not numbers, and nothing outside the runner.
# ---------------------------------------------------------------------------------------------
def test_importing_banditjax_leaves_other_programs_lowered_as_before():
    # A user's own JAX program must compile the same before and after banditjax is imported
    # and has run (no process-wide re-registration of JAX internals).
    script = """
import jax, jax.numpy as jnp
def user_program(key):
    return jax.random.uniform(key, (3,)), jax.random.normal(jax.random.fold_in(key, 1), (2,))
key = jax.random.PRNGKey(0)
before = jax.jit(user_program).lower(key).as_text()
import bandits, envs, experiments.cli, experiments.runner
from experiments import config as config_lib
from experiments.runner import record_grid, simulate
group = config_lib.build({"run": {"horizon": 5, "seeds": 2, "record": 3},
                          "env": {"name": "bernoulli", "K": 3},
                          "learner": [{"name": "ucb1"}]}).groups[0]
simulate(group.env, group.learner, run_keys=group.run_keys, instance_keys=group.instance_keys,
         env_settings=group.env_settings, hparams=group.hparams, horizon=5,
         record=record_grid(5, 3))
after = jax.jit(user_program).lower(key).as_text()
assert before == after, "banditjax changed how another program lowers"
print("same")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("same")


CASES = {
    "ucb1": {"name": "bernoulli", "K": 10},
    "thompson": {"name": "bernoulli", "K": 10},
    "klucb": {"name": "bernoulli", "K": 10},
    "linucb": {"name": "linear", "K": 6, "d": 4, "model": "disjoint"},
    "neural_ucb": {"name": "nonlinear"},
}


@pytest.mark.parametrize("learner", [
    "ucb1", *[pytest.param(name, marks=pytest.mark.slow) for name in CASES if name != "ucb1"]])
def test_materialised_round_leaves_results_unchanged(learner):
    # The CPU runner computes each round's choice and the environment's answer behind a
    # conditional (experiments/runner.py, ``materialise``); GPUs run the round as it is. Both
    # must compute the same numbers.
    from experiments.runner import simulate
    config = {"run": {"horizon": 60, "seeds": 8, "record": 10},
              "env": CASES[learner], "learner": [{"name": learner}]}
    group = config_lib.build(config).groups[0]
    results = []
    for materialise in (False, True):
        results.append(simulate(group.env, group.learner, run_keys=group.run_keys,
                                instance_keys=group.instance_keys,
                                env_settings=group.env_settings, hparams=group.hparams,
                                horizon=60, record=record_grid(60, 10),
                                materialise=materialise).columns)
    assert results[0].keys() == results[1].keys()
    for name in results[0]:
        if CASES[learner]["name"] == "bernoulli":
            # Integer-valued statistics: every bit the same.
            np.testing.assert_array_equal(results[0][name], results[1][name])
        else:
            # Same random numbers, but XLA fuses the float code around them differently, which
            # may move the last float32 bit (seen: 1 ulp, 1e-7 relative, in LinUCB's regret).
            np.testing.assert_allclose(results[0][name], results[1][name], rtol=1e-5,
                                       atol=1e-5)
    assert results[0]["regret"][:, -1].mean() > 0
