"""Shared test setup: a headless matplotlib backend and a tiny config.

Kept light on purpose: nothing here imports JAX or the package, so collection stays fast.
"""
from __future__ import annotations

import copy
import os

import pytest

# Headless plotting for every test (before anything imports pyplot).
os.environ.setdefault("MPLBACKEND", "Agg")

TINY_CONFIG = {
    "run": {"horizon": 200, "seeds": 4, "seed": 0, "record": 10},
    "env": {"name": "bernoulli", "K": 3, "means": [0.2, 0.5, 0.8]},
    "learner": [{"name": "ucb1"}, {"name": "uniform"}],
}


@pytest.fixture
def tiny_config() -> dict:
    """A small valid config (a fresh deep copy per test, so tests may edit it)."""
    return copy.deepcopy(TINY_CONFIG)


@pytest.fixture(scope="session")
def make_tiny_config():
    """For module- or session-scoped fixtures: make_tiny_config() -> a fresh deep copy."""
    return lambda: copy.deepcopy(TINY_CONFIG)


@pytest.fixture
def write_config(tmp_path):
    """write_config(config_dict, name="config.toml") -> path of the TOML file in tmp_path."""
    from experiments.config import dump_toml

    def write(config: dict, name: str = "config.toml"):
        path = tmp_path / name
        path.write_text(dump_toml(config))
        return path

    return write
