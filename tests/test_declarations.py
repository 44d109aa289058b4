"""What the suite reads about a learner or an environment is declared on its class
(docs/design.md, "Layout"): adding the README's example learner in a module of its own is the
only change needed for it to appear in ``banditjax list``, get bounds, a colour and its metrics;
analysis and experiments hold no learner or environment names; analysis never imports
experiments."""
from __future__ import annotations

import ast
import importlib
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from experiments import cli

ROOT = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    """The learner of the README's "Writing an environment or a learner" section."""
    section = (ROOT / "README.md").read_text().split("## Writing an environment or a learner")[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def example_learner(tmp_path, monkeypatch):
    """The README's example, written to a new module and imported; unregistered afterwards."""
    from bandits.core import LEARNERS
    (tmp_path / "my_learners.py").write_text(readme_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_learners")
    name = next(n for n, cls in LEARNERS.items() if cls.__module__ == "my_learners")
    yield name, module
    LEARNERS.unregister(name)
    sys.modules.pop("my_learners", None)


def test_readme_example_learner_gets_list_bounds_colour_and_metrics(example_learner, tmp_path,
                                                                    capsys):
    from analysis.plotting import PALETTE, learner_colours
    from bandits.core import LEARNERS
    from envs.core import ENVS
    name, _ = example_learner

    assert f"  {name}: " in cli.describe_registries()                  # banditjax list

    config = tmp_path / "example.toml"
    config.write_text(textwrap.dedent(f"""
        [run]
        horizon = 400
        seeds = 4
        record = 12
        [env]
        name = "bernoulli"
        K = 3
        means = [0.7, 0.5, 0.3]
        [[learner]]
        name = "{name}"
        [[learner]]
        name = "ucb1"
    """))
    out = tmp_path / "out"
    assert cli.main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    # Its metrics: the environment's declared summary metrics are printed for it.
    summary = [m.name for m in ENVS.get("bernoulli", "env").metrics if m.summary]
    assert summary and all(f"{m}_mean" in printed for m in summary)
    assert name in printed

    # Bounds: its declared rate gives the theory exponent; the environment gives Lai-Robbins.
    assert cli.main(["bounds", str(out), "--bootstrap", "50", "--no-plot"]) == 0
    table = pd.read_csv(out / "bounds.csv").set_index("learner")
    theory = LEARNERS.get(name, "learner").declared("theory")
    assert theory is not None and theory.rate == "logarithmic"
    assert 0 < table.loc[name, "theory_exponent"] < 0.5
    assert table.loc[name, "lai_robbins"] > 0
    assert math.isnan(table.loc[name, "upper_bound_final"])    # it declares no upper bound

    # A colour, distinct from the learners it is drawn with; and its figures.
    colours = learner_colours([name, "ucb1"])
    assert colours[name] in PALETTE and colours[name] != colours["ucb1"]
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "regret.png").exists()


def test_no_learner_or_environment_names_in_analysis_or_experiments():
    import bandits  # noqa: F401
    import envs  # noqa: F401
    from bandits.core import LEARNERS
    from envs.core import ENVS, WRAPPERS
    names = set(LEARNERS.names()) | set(ENVS.names()) | set(WRAPPERS.names())
    # The routing analysis's kind 'oracle' is a declared role (Learner.role), not a name.
    allowed = {"oracle"}
    quoted = re.compile(r"""["']([a-z_0-9]+)["']""")
    files = sorted((ROOT / "analysis").glob("*.py")) + [
        p for p in sorted((ROOT / "experiments").glob("*.py"))
        if p.name not in ("bench.py", "references.py")]        # the bench families
    found = [(p.name, n) for p in files for n in quoted.findall(p.read_text())
             if n in names - allowed]
    assert found == []


def test_analysis_never_imports_experiments_and_has_no_cycle():
    code = ("import sys, analysis.bounds, analysis.plotting, analysis.metrics, analysis.routing;"
            "print([m for m in sys.modules if m.split('.')[0] == 'experiments'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
    plotting = (ROOT / "analysis" / "plotting.py").read_text()
    assert "analysis.routing" not in plotting
    for path in (ROOT / "analysis").glob("*.py"):
        assert not re.search(r"^\s*(from|import) experiments", path.read_text(), re.M), path


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def test_learners_import_the_delay_laws_not_the_delay_wrapper():
    # The laws both layers use live in envs/delay_laws.py (docs/design.md, "Layout").
    found = [(p.relative_to(ROOT).as_posix(), m) for p in sorted((ROOT / "bandits").rglob("*.py"))
             for m in _imported_modules(p) if m == "envs.delay" or m.startswith("envs.delay.")]
    assert found == []
    assert "envs.delay_laws" in _imported_modules(ROOT / "envs" / "delay.py")
