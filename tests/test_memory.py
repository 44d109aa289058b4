"""Memory-aware batching (experiments/memory.py): state size, budgets, batch choice, messages.

Pure functions on shapes and numbers: nothing is compiled or allocated (sizes come from
``jax.eval_shape``), devices are stand-ins with a ``platform`` and ``memory_stats``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.core import ConfigError
from experiments import memory

GIB = 2 ** 30
MIB = 2 ** 20


class FakeDevice:
    def __init__(self, platform="gpu", stats=None, name="cuda:0"):
        self.platform, self._stats, self._name = platform, stats, name

    def memory_stats(self):
        return self._stats

    def __str__(self):
        return self._name


@pytest.fixture
def no_budget_variable(monkeypatch):
    monkeypatch.delenv(memory.BUDGET_VARIABLE, raising=False)


# ---------------------------------------------------------------------------------------------
# Bytes per run.
# ---------------------------------------------------------------------------------------------
def test_state_bytes_sum_leaf_sizes_times_itemsize():
    def init(key, x):
        return {"a": jnp.zeros((3, 4), jnp.float32),                   # 48
                "b": (jnp.zeros((5,), jnp.int8), x * 2),                # 5 + 7 * 2
                "c": jnp.zeros((), jnp.int32),                          # 4
                "key": jax.random.split(key, 3)}                        # 3 raw keys: 24

    args = (jax.ShapeDtypeStruct((2,), jnp.uint32), jax.ShapeDtypeStruct((7,), jnp.bfloat16))
    assert memory.state_bytes_per_run(init, *args) == 48 + 5 + 14 + 4 + 24
    # Concrete arguments give the same number.
    concrete = (jax.random.PRNGKey(0), jnp.ones((7,), jnp.bfloat16))
    assert memory.state_bytes_per_run(init, *concrete) == 95


def test_state_bytes_of_typed_keys_count_their_data():
    size = memory.state_bytes_per_run(lambda: jax.random.split(jax.random.key(0), 5))
    assert size == 5 * 8            # threefry: two uint32 words per key


def test_state_bytes_allocate_nothing():
    # 4 TB of float32 would fail to allocate; eval_shape only looks at shapes.
    size = memory.state_bytes_per_run(lambda: jnp.zeros((10 ** 6, 10 ** 6), jnp.float32))
    assert size == 4 * 10 ** 12


def test_one_run_shapes_strip_the_run_axis():
    batched = ({"m": np.zeros((100,), np.int32), "v": np.zeros((100, 3), np.float32)},
               np.zeros((100, 2), np.uint32))
    hparams, keys = memory.one_run_shapes(*batched)
    assert hparams["m"] == jax.ShapeDtypeStruct((), np.int32)
    assert hparams["v"] == jax.ShapeDtypeStruct((3,), np.float32)
    assert keys == jax.ShapeDtypeStruct((2,), np.uint32)


def test_linucb_state_from_the_learner_init():
    # Disjoint LinUCB, K = 10, d = 32, double-float32 (compensated) V^{-1}: at least
    # K d^2 x 2 words of 4 bytes per run, ~39 GiB at 500,000 runs.
    from experiments import config as config_lib
    group = config_lib.build({"run": {"horizon": 10, "seeds": 2},
                              "env": {"name": "linear", "K": 10, "d": 32},
                              "learner": [{"name": "linucb"}]}).groups[0]
    key, hparams = memory.one_run_shapes(group.run_keys, group.hparams)
    size = memory.state_bytes_per_run(group.learner.init, key, hparams)
    assert 10 * 32 * 32 * 4 * 2 <= size < 1.2 * 10 * 32 * 32 * 4 * 2


# ---------------------------------------------------------------------------------------------
# Sizes and budgets.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("8GB", 8 * 10 ** 9),
    ("512MiB", 512 * MIB),
    ("1.5 GiB", int(1.5 * GIB)),
    ("  2g ", 2 * GIB),
    ("100kb", 100_000),
    ("1000000", 1_000_000),
    ("3e9B", 3 * 10 ** 9),
    ("25%", 250),                  # of the reference, 1,000 bytes here
])
def test_parse_size_accepts(text, expected):
    assert memory.parse_size(text, reference=1000) == expected


@pytest.mark.parametrize("text, says", [
    ("", "expected a size"),
    ("lots", "expected a size"),
    ("8 XB", "expected a size"),
    ("-1GB", "expected a size"),
    ("GB", "expected a size"),
    ("1e999GB", "expected a size"),
    ("0", "must be positive"),
    ("0.1", "must be positive"),
    ("150%", "(0, 100]"),
    ("0%", "(0, 100]"),
])
def test_parse_size_refuses(text, says):
    with pytest.raises(ConfigError) as error:
        memory.parse_size(text, reference=1000)
    message = str(error.value)
    assert memory.BUDGET_VARIABLE in message and repr(text) in message and says in message
    assert "\n" not in message


def test_percentage_needs_a_reference():
    with pytest.raises(ConfigError, match="percentage needs a known amount"):
        memory.parse_size("50%", reference=None)


def test_host_available_reads_meminfo(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemFree:  1 kB\n"
                       "MemAvailable:   20000000 kB\n")
    monkeypatch.setattr(memory, "cgroup_headroom_bytes", lambda: None)
    assert memory.host_available_bytes(str(meminfo)) == 20_000_000 * 1024
    # A container limit below it wins.
    monkeypatch.setattr(memory, "cgroup_headroom_bytes", lambda: 5 * GIB)
    assert memory.host_available_bytes(str(meminfo)) == 5 * GIB
    # No meminfo: the OS's free pages.
    monkeypatch.setattr(memory, "cgroup_headroom_bytes", lambda: None)
    assert memory.host_available_bytes(str(tmp_path / "missing")) > 0


def test_cgroup_headroom(tmp_path):
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("1000\n")
    assert memory.cgroup_headroom_bytes(str(tmp_path)) is None
    (tmp_path / "memory.max").write_text(f"{4 * GIB}\n")
    assert memory.cgroup_headroom_bytes(str(tmp_path)) == 4 * GIB - 1000
    assert memory.cgroup_headroom_bytes(str(tmp_path / "nothing")) is None


def test_cpu_budget_is_a_fraction_of_available_memory(monkeypatch, no_budget_variable):
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 10 * GIB)
    budget = memory.memory_budget(FakeDevice("cpu", None, "TFRT_CPU_0"))
    assert budget.bytes == int(0.6 * 10 * GIB)
    assert budget.description == "60% of available host memory"
    # Unpacks as (bytes, description).
    size, description = budget
    assert size == budget.bytes


def test_budget_variable_overrides(monkeypatch):
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 10 * GIB)
    monkeypatch.setenv(memory.BUDGET_VARIABLE, "512MiB")
    budget = memory.memory_budget(FakeDevice("cpu"))
    assert budget.bytes == 512 * MIB and "BANDITJAX_MEMORY_BUDGET=512MiB" in budget.description
    monkeypatch.setenv(memory.BUDGET_VARIABLE, "30%")
    assert memory.memory_budget(FakeDevice("cpu")).bytes == int(0.3 * 10 * GIB)
    gpu = FakeDevice("gpu", {"bytes_limit": 80 * GIB, "bytes_in_use": 20 * GIB})
    assert memory.memory_budget(gpu).bytes == int(0.3 * 60 * GIB)
    monkeypatch.setenv(memory.BUDGET_VARIABLE, "eight gigs")
    with pytest.raises(ConfigError, match="BANDITJAX_MEMORY_BUDGET = 'eight gigs'"):
        memory.memory_budget(FakeDevice("cpu"))


def test_accelerator_budget_is_its_free_memory(no_budget_variable):
    gpu = FakeDevice("gpu", {"bytes_limit": 80 * GIB, "bytes_in_use": 20 * GIB,
                             "peak_bytes_in_use": 30 * GIB})
    budget = memory.memory_budget(gpu)
    assert budget.bytes == 60 * GIB and "cuda:0" in budget.description
    # No statistics: unknown, and no limit is applied (choose_batch keeps every run).
    silent = memory.memory_budget(FakeDevice("tpu", None, "TPU_0"))
    assert silent.bytes is None and "not reported" in silent.description
    assert memory.choose_batch(10 ** 6, 10 ** 9, 1, silent) == 10 ** 6


def test_budget_for_several_devices(monkeypatch, no_budget_variable):
    gpus = [FakeDevice("gpu", {"bytes_limit": 80 * GIB, "bytes_in_use": used * GIB}, f"cuda:{i}")
            for i, used in enumerate([10, 30])]
    budget = memory.budget_for(gpus)
    assert budget.bytes == 2 * 50 * GIB            # the fuller device limits both shares
    assert budget.description.startswith("2 devices x 50.0 GiB")
    # CPU devices share the host: one host budget, not one per device.
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 10 * GIB)
    cpus = [FakeDevice("cpu", None, f"cpu:{i}") for i in range(4)]
    assert memory.budget_for(cpus).bytes == int(0.6 * 10 * GIB)


# ---------------------------------------------------------------------------------------------
# Batch choice.
# ---------------------------------------------------------------------------------------------
def test_everything_fits_in_one_batch():
    assert memory.choose_batch(1000, 1000, 1, 10 * MIB) == 1000
    # 1001 runs on 2 devices are padded to 1002; 1002 x 3 kB still fits in 3.01 MB.
    assert memory.choose_batch(1001, 1000, 2, 3_006_000) == 1001


def test_split_batches_are_even_multiples_of_the_device_count():
    # 1,000 runs of 1 MiB x 3 against 500 MiB: at most 166 runs (164 on 4 devices) per call.
    assert memory.choose_batch(1000, MIB, 1, 500 * MIB, balance=False) == 166
    assert memory.choose_batch(1000, MIB, 4, 500 * MIB, balance=False) == 164
    for n in (1, 2, 3, 4, 8):
        batch = memory.choose_batch(1000, MIB, n, 500 * MIB)
        assert batch % n == 0
        assert batch * MIB * 3 <= 500 * MIB
        # As many calls as the largest batch needs, with less padding.
        largest = memory.choose_batch(1000, MIB, n, 500 * MIB, balance=False)
        assert -(-1000 // batch) == -(-1000 // largest)
    assert memory.choose_batch(1000, MIB, 1, 500 * MIB) == 143        # 7 calls of 143
    assert memory.choose_batch(1000, MIB, 4, 500 * MIB) == 144        # 7 calls of 144


def test_overhead_scales_the_need():
    assert memory.choose_batch(1000, MIB, 1, 100 * MIB, overhead=1.0, balance=False) == 100
    assert memory.choose_batch(1000, MIB, 1, 100 * MIB, overhead=4.0, balance=False) == 25


def test_requested_batch_is_kept_when_it_fits():
    assert memory.choose_batch(1000, MIB, 1, 500 * MIB, requested=100) == 100
    assert memory.choose_batch(50, MIB, 1, 500 * MIB, requested=100) == 50


def test_requested_batch_that_does_not_fit_is_refused():
    with pytest.raises(ConfigError) as error:
        memory.choose_batch(1000, MIB, 1, 500 * MIB, requested=200,
                            budget_description="60% of available host memory")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("run.batch = 200 needs 600 MiB")
    assert "at most 166 runs fit" in message and "500 MiB" in message
    assert memory.BUDGET_VARIABLE in message


def test_one_run_that_cannot_fit_is_refused_with_its_size():
    state = 14 * GIB
    budget = memory.Budget(int(14.2 * GIB), "60% of available host memory")
    with pytest.raises(ConfigError) as error:
        memory.choose_batch(500_000, state, 1, budget)
    message = str(error.value)
    assert message == ("one run needs 42.0 GiB (state 14.0 GiB x 3 for temporaries) but the "
                       "budget is 14.2 GiB (60% of available host memory; set "
                       "BANDITJAX_MEMORY_BUDGET to change it)")
    # With several devices each holds 1/n of the budget, and the message says so.
    with pytest.raises(ConfigError, match=r"for 4 devices, 12\.5 GiB each"):
        memory.choose_batch(100, 5 * GIB, 4, 50 * GIB)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="run.batch = 0"):
        memory.choose_batch(10, 1, 1, GIB, requested=0)
    with pytest.raises(ValueError):
        memory.choose_batch(10, 1, 0, GIB)
    with pytest.raises(ValueError):
        memory.choose_batch(10, 1, 1, GIB, overhead=0.5)
    assert memory.choose_batch(10, 0, 1, 1) == 10       # stateless: no limit


# ---------------------------------------------------------------------------------------------
# Messages.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1023, "1023 B"), (336 * 1024, "336 KiB"), (int(14.2 * GIB), "14.2 GiB"),
    (14 * GIB, "14.0 GiB"), (3 * 2 ** 40, "3.0 TiB"), (5000 * 2 ** 40, "5000 TiB"),
])
def test_format_bytes(n, text):
    assert memory.format_bytes(n) == text


def test_describe():
    budget = memory.Budget(int(14.2 * GIB), "60% of available host memory")
    assert memory.describe(125_000, 500_000, 336 * 1024, budget) == (
        "4 batches of 125,000 runs (336 KiB per run, budget 14.2 GiB, "
        "60% of available host memory)")
    assert memory.describe(1000, 1000, 212, budget).startswith("all 1,000 runs in one batch (212 B")
    assert "no known limit" in memory.describe(10, 10, 1, memory.Budget(None, "unknown"))
