"""docs/tutorial.py runs as written (a separate process, as a reader runs it) and produces what
it says: the summary with the swept bonus, both figures, the paper table with one best in bold,
and UCB1's bound checked (the tutorial asserts it; a violation would fail the run)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_tutorial_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "tutorial.py"), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    for bonus in ("0.01", "0.1", "1", "10", "100"):
        assert f"tutorial_greedy (bonus={bonus})" in printed
    assert "| setting | runs | regret at t = 2000 |" in printed
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + 7 and sum("**" in line for line in table) == 1
    assert "holds: True" in printed
    for name in ("curves.png", "sensitivity_bonus.png", "compare/regret.png",
                 "compare/sensitivity_bonus.png", "compare/results.parquet"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "sensitivity_bonus.png").read_bytes().startswith(PNG_SIGNATURE)
