"""Every paper figure script in --quick mode (small horizons), into a temporary folder.

The figures share one temporary results cache, so figure 2 reuses figure 1's runs (as
``make figures`` does with ``paper_figures/cache``).
"""
from __future__ import annotations

import importlib
import os

import pytest

from paper_figures import common
from paper_figures.__main__ import FIGURES


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    return root / "out", root / "cache"


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_quick(name, folders):
    out, cache = folders
    module = importlib.import_module(FIGURES[name])
    paths = module.make(quick=True, out=out, cache=cache)
    # Figures, and tables written beside them (the showdown's Markdown table).
    assert {".pdf", ".png"} <= {p.suffix for p in paths} <= {".pdf", ".png", ".md"}
    for path in paths:
        assert path.parent == out                 # --quick never writes into docs/
        assert path.exists() and path.stat().st_size > (5_000 if path.suffix != ".md" else 100), path


def test_unchanged_config_reuses_results_and_a_change_runs_again(folders, tmp_path):
    _, cache = folders
    config = common.load_config("classic", quick=True)
    frame, folder = common.results("classic", True, config=config, cache=cache)
    stamp = os.stat(folder / "results.parquet").st_mtime_ns
    again, folder_again = common.results("classic", True, config=config, cache=cache)
    assert folder_again == folder
    assert os.stat(folder / "results.parquet").st_mtime_ns == stamp
    assert again.equals(frame)
    # Any change of the resolved config gives another folder (here: the master seed).
    changed = common.merge(config, {"run": {"seed": 1, "horizon": 50, "seeds": 2},
                                    "learner": [{"name": "ucb1"}]})
    _, other = common.results("classic", True, config=changed, cache=tmp_path)
    assert other.name != folder.name
    assert (other / "results.parquet").exists()


def test_quick_overrides_and_main_arguments():
    full = common.load_config("classic")
    quick = common.load_config("classic", quick=True)
    assert "quick" not in full and "quick" not in quick
    assert quick["run"]["horizon"] < full["run"]["horizon"]
    assert quick["learner"] == full["learner"]            # [quick.run] leaves learners alone
    from paper_figures.__main__ import main
    with pytest.raises(SystemExit):
        main(["--only", "no_such_figure"])
