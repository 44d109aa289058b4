"""Packaging (pyproject.toml): what the tests import is packaged, every declared dependency is
used, and the JAX in use lies in the declared, tested range."""
from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Distribution name -> the module it is imported as, where they differ.
MODULE_OF = {"PyYAML": "yaml"}
# Dependencies used without an import of their own.
INDIRECT = {"pyarrow": "the parquet engine of pandas (results.parquet)",
            "jaxlib": "the compiled half of jax"}


def requirements() -> list[Requirement]:
    return [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]


def imported_top_levels(paths) -> set[str]:
    out = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.add(node.module.split(".")[0])
    return out


def packaged() -> list[str]:
    patterns = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return [p.rstrip("*") for p in patterns]


def test_the_repository_packages_the_tests_import_are_packaged():
    local = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests"}
    used = imported_top_levels(sorted((ROOT / "tests").glob("*.py"))) & local
    assert "paper_figures" in used
    assert sorted(used - set(packaged())) == []


def test_every_declared_dependency_is_used():
    code = [p for name in packaged() for p in sorted((ROOT / name).rglob("*.py"))]
    imported = imported_top_levels(code)
    unused = [r.name for r in requirements() if r.name not in INDIRECT
              and MODULE_OF.get(r.name, r.name) not in imported]
    assert unused == []


def test_the_installed_jax_is_in_the_declared_tested_range():
    for requirement in requirements():
        if requirement.name in ("jax", "jaxlib"):
            version = importlib.metadata.version(requirement.name)
            assert requirement.specifier.contains(version), (requirement, version)
            # The range is bounded above: a new minor release is admitted once it is tested.
            assert any(s.operator == "<" for s in requirement.specifier), requirement
    # The GPU extra asks for the same range.
    jax = next(r for r in requirements() if r.name == "jax")
    gpu = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["gpu"]]
    assert [r.specifier for r in gpu if r.name == "jax"] == [jax.specifier]
