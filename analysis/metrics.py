"""Summaries of tidy results: confidence bands over runs and final-regret tables.

A results frame has one row per (run, recorded round) with at least the columns ``setting``,
``run`` and ``t`` and one column per metric (``regret`` = cumulative pseudo-regret). Bands are
normal-approximation intervals for the mean over runs: mean +- z * sd / sqrt(n), z = 1.96 for
95% (the runs of a setting are independent: their keys differ by seed and instance).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

Z95 = 1.959963984540054


def mean_band(frame: pd.DataFrame, metric: str = "regret", by: str = "setting",
              z: float = Z95) -> pd.DataFrame:
    """Per (setting, t): mean, standard error, lower and upper band of ``metric`` over runs."""
    grouped = frame.groupby([by, "t"], sort=False)[metric]
    out = grouped.agg(mean="mean", sd="std", n="count").reset_index()
    out["se"] = out["sd"].fillna(0.0) / np.sqrt(out["n"])
    out["lower"] = out["mean"] - z * out["se"]
    out["upper"] = out["mean"] + z * out["se"]
    return out


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The last recorded round of every run."""
    last = frame.groupby("run")["t"].transform("max")
    return frame[frame["t"] == last]


def final_summary(frame: pd.DataFrame, metrics: tuple[str, ...] = ("regret",)) -> pd.DataFrame:
    """Per setting: runs, horizon and the mean and standard error of each final metric."""
    final = final_rows(frame)
    pieces = {"learner": final.groupby("setting", sort=False)["learner"].first(),
              "runs": final.groupby("setting", sort=False)["run"].nunique(),
              "horizon": final.groupby("setting", sort=False)["t"].max()}
    for metric in metrics:
        if metric not in final:
            continue
        stats = final.groupby("setting", sort=False)[metric].agg(["mean", "std", "count"])
        pieces[f"{metric}_mean"] = stats["mean"]
        pieces[f"{metric}_se"] = stats["std"].fillna(0.0) / np.sqrt(stats["count"])
    return pd.DataFrame(pieces).reset_index()


def declared_metrics(frame: pd.DataFrame) -> tuple:
    """The ``envs.core.Metric`` declarations of a frame's environment and of the wrappers whose
    ``env.<wrapper>.*`` columns it carries, then those of its learners (``Learner.metrics``,
    values they report about their own state; docs/design.md, "Results"), present in the frame.
    A learner metric's column is NaN on the rows of learners that do not report it."""
    import bandits  # noqa: F401  (registers every learner)
    import envs  # noqa: F401  (registers every environment and wrapper)
    from bandits.core import learner_metrics
    from envs.core import WRAPPERS, reported_metrics

    wrappers = [name for name in WRAPPERS.names()
                if any(str(c).startswith(f"env.{name}.") for c in frame.columns)]
    metrics = reported_metrics(str(frame["env"].iloc[0]), wrappers)
    known = {m.name for m in metrics}
    metrics += tuple(m for m in learner_metrics(list(dict.fromkeys(frame["learner"])))
                     if m.name not in known)
    return tuple(m for m in metrics if m.name in frame)


def format_table(table: pd.DataFrame) -> str:
    """A plain-text table with aligned columns (numbers to 4 significant digits)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}"
        return str(v)
    rows = [[str(c) for c in table.columns]] + [[cell(v) for v in r] for r in table.to_numpy()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
