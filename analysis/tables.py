"""Paper tables: final metrics per setting as mean +- 95% confidence interval, best in bold.

``banditjax table DIR`` (docs/design.md, "Results"). For every learner setting (its label plus
the swept hyper-parameter and environment values: the ``setting`` column, single arms named by
the environment, e.g. '<model>@<budget>') and every summarised metric the environment declares
(``envs.core.Metric`` with ``summary=True``, regret first): the mean over runs at the last
recorded round (or the last recorded round <= ``at``) and the half-width of its normal-
approximation 95% interval, 1.959964 sd / sqrt(n) (sample standard deviation; 0 for one run).
The runs of a setting are independent (their keys differ by seed and instance).

Best per column: the lowest mean for a metric declared ``better = "lower"`` (regret, cost), the
highest for ``"higher"`` (quality), ties all marked. When environment settings are swept, rows
are only compared with rows of the same environment setting (a different problem has a
different regret), so each environment setting has its own best. Markdown marks it ``**``,
LaTeX ``\\textbf``; CSV gives the numbers in full precision and a ``<metric>_best`` column.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.metrics import Z95, declared_metrics, rows_at, swept_columns, with_arm_labels

FORMATS = ("markdown", "latex", "csv")


def table_metrics(frame: pd.DataFrame) -> tuple:
    """The declared metrics (``envs.core.Metric``) a table reports: those with summary=True."""
    return tuple(m for m in declared_metrics(frame) if m.summary)


def paper_table(frame: pd.DataFrame, at: int | None = None,
                metrics: tuple | None = None) -> pd.DataFrame:
    """One row per setting: setting, learner, the swept ``hp.*`` / ``env.*`` values, runs, t
    (the round reported), and per metric ``<name>_mean``, ``<name>_ci95`` (half-width) and
    ``<name>_best`` (bool)."""
    metrics = table_metrics(frame) if metrics is None else metrics
    frame = with_arm_labels(frame)
    rows = rows_at(frame, at)
    swept = swept_columns(frame)
    by_setting = rows.groupby("setting", sort=False)
    table = pd.DataFrame({"learner": by_setting["learner"].first()})
    for column in swept:
        table[column] = by_setting[column].first()
    table["runs"] = by_setting["run"].nunique()
    table["t"] = by_setting["t"].max()
    for metric in metrics:
        stats = by_setting[metric.name].agg(["mean", "std", "count"])
        table[f"{metric.name}_mean"] = stats["mean"]
        table[f"{metric.name}_ci95"] = Z95 * stats["std"].fillna(0.0) / np.sqrt(stats["count"])
    table = table.reset_index()
    groups = _problem_groups(table, [c for c in swept if str(c).startswith("env.")])
    for metric in metrics:
        means = table[f"{metric.name}_mean"]
        best = means.groupby(groups).transform("min" if metric.better == "lower" else "max")
        table[f"{metric.name}_best"] = np.isclose(means, best, rtol=1e-12, atol=0.0)
    return table


def _problem_groups(table: pd.DataFrame, env_columns: list[str]) -> pd.Series:
    if not env_columns:
        return pd.Series(0, index=table.index)
    return table[env_columns].astype(str).agg("\x1f".join, axis=1)


def decimals(ci: float) -> int:
    """Decimals that show the interval's half-width to two significant digits (0 to 6)."""
    if not np.isfinite(ci) or ci <= 0:
        return -1
    return int(min(6, max(0, 1 - math.floor(math.log10(ci)))))


def cell(mean: float, ci: float, style: str) -> str:
    """'12.3 ± 1.4' (markdown) or '12.3 $\\pm$ 1.4' (latex, text mode so that \\textbf bolds
    it); 4 significant digits without an interval (one run, or no spread)."""
    places = decimals(ci)
    if places < 0:
        return f"{mean:.4g}"
    if style == "markdown":
        return f"{mean:.{places}f} ± {ci:.{places}f}"
    return f"{mean:.{places}f} $\\pm$ {ci:.{places}f}"


def render(table: pd.DataFrame, metrics: tuple, fmt: str = "markdown") -> str:
    """The table as markdown, LaTeX (a tabular, booktabs rules) or CSV text."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return table.to_csv(index=False)
    t = int(table["t"].max())
    headers = ["setting", "runs"] + [f"{m.name} at t = {t}" for m in metrics]
    body = []
    for _, row in table.iterrows():
        cells = [str(row["setting"]), str(int(row["runs"]))]
        for m in metrics:
            text = cell(row[f"{m.name}_mean"], row[f"{m.name}_ci95"], fmt)
            if row[f"{m.name}_best"]:
                text = f"**{text}**" if fmt == "markdown" else f"\\textbf{{{text}}}"
            cells.append(text)
        body.append(cells)
    if fmt == "markdown":
        lines = ["| " + " | ".join(headers) + " |",
                 "| --- | ---: |" + " ---: |" * len(metrics)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
                  for cells in body]
        return "\n".join(lines) + "\n"
    lines = ["\\begin{tabular}{l" + "r" * (len(headers) - 1) + "}", "\\toprule",
             " & ".join(_latex_escape(h) for h in headers) + " \\\\", "\\midrule"]
    lines += [" & ".join([_latex_escape(cells[0])] + cells[1:]) + " \\\\" for cells in body]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"),
                          ("$", "\\$"), ("#", "\\#"), ("_", "\\_"), ("{", "\\{"),
                          ("}", "\\}")):
        text = text.replace(char, escaped)
    return text


def make_table(frame: pd.DataFrame, fmt: str = "markdown", at: int | None = None) -> str:
    """``banditjax table``: the paper table of a results frame as text in ``fmt``."""
    metrics = table_metrics(frame)
    return render(paper_table(frame, at, metrics), metrics, fmt)
