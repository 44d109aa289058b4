"""User code: the modules that define a researcher's own learners and environments.

docs/design.md, "Layout": a learner or an environment is registered by importing the module that
defines it (``@register_learner``, ``@register_env``). A config names the modules to import,

    [run]
    imports = ["my_learners.py", "mypackage.bandits"]

a file path (``.py``, or anything with a ``/``; relative to the config file, stored absolute in
the results folder's ``config.toml``) or a module name on ``sys.path``; ``--import PATH`` on the
command line adds more. They are imported before the config is checked, so their names are
known to ``run``, ``plot``, ``bounds``, ``list``, ``--resume`` and every process of a
multi-process run (each process reads the same config). A module is imported once per process,
however often it is asked for; a failing import is one ``ConfigError`` line naming the module and
the exception.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

from envs.core import ConfigError

# Resolved file path -> the module imported from it (this process).
_LOADED: dict[Path, ModuleType] = {}


def is_path(spec: str) -> bool:
    """A file (``x.py``, ``dir/x``) rather than a module name (``pkg.module``)."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def resolve(spec: str, base: Path | None = None) -> str:
    """A file path made absolute (relative to ``base``, default the working folder); a module
    name unchanged."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"run.imports: {spec!r} is not a file path or a module name")
    if not is_path(spec):
        return spec
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = (Path(base) if base is not None else Path.cwd()) / path
    return str(path.resolve())


def check_list(value: Any, where: str = "run.imports") -> list[str]:
    """``value`` as a list of strings (a single string is a list of one)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} = {value!r}: expected a list of file paths (.py) or module "
                          f"names, e.g. [\"my_learners.py\"]")
    return list(value)


def _one_line(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return f"SyntaxError: {error.msg} (line {error.lineno})"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _already_imported(path: Path) -> ModuleType | None:
    if path in _LOADED:
        return _LOADED[path]
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == path:
            return module
    return None


def _module_name(path: Path) -> str:
    name = path.stem if path.stem.isidentifier() else "user_module"
    taken = sys.modules.get(name)
    if taken is None:
        return name
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"_banditjax_user_{name}_{digest}"


def import_file(path: Path, shown: str) -> ModuleType:
    path = Path(path).resolve()
    module = _already_imported(path)
    if module is not None:
        return module
    if path.is_dir() and (path / "__init__.py").exists():
        path = path / "__init__.py"
    if not path.is_file():
        raise ConfigError(f"import {shown!r}: no such file {str(path)!r}")
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"import {shown!r}: {str(path)!r} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.parent)
    if folder not in sys.path:          # so that it can import the modules beside it
        sys.path.append(folder)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001  (any failure of user code is reported)
        sys.modules.pop(name, None)
        where = repr(shown) if shown == str(path) else f"{shown!r} ({path})"
        raise ConfigError(f"import {where} failed: {_one_line(error)}") from error
    _LOADED[path] = module
    return module


def import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and (name == error.name or name.startswith(error.name + ".")):
            raise ConfigError(f"import {name!r}: no module named {error.name!r} (a file needs "
                              f"its .py ending or a path, e.g. \"./{name}.py\")") from error
        raise ConfigError(f"import {name!r} failed: {_one_line(error)}") from error
    except Exception as error:  # noqa: BLE001
        raise ConfigError(f"import {name!r} failed: {_one_line(error)}") from error


def load(specs: Iterable[str], base: Path | None = None) -> list[ModuleType]:
    """Imports every file path or module name (paths relative to ``base``) once."""
    modules = []
    for spec in check_list(list(specs)):
        resolved = resolve(spec, base)
        modules.append(import_file(Path(resolved), spec) if is_path(spec)
                       else import_module(resolved))
    return modules


def folder_imports(folder: Path) -> list[str]:
    """The imports a results folder's config.toml records (none when it has no config.toml)."""
    config = Path(folder) / "config.toml"
    if not config.is_file():
        return []
    try:
        run = tomllib.loads(config.read_text()).get("run", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []       # the command reading the folder reports an unreadable config itself
    return check_list(run.get("imports", []), f"{config}: run.imports")


def load_folder(folder: Path) -> list[ModuleType]:
    """Imports what a results folder's config.toml records (paths relative to the folder)."""
    specs = folder_imports(folder)
    for spec in specs:
        if is_path(spec) and not Path(resolve(spec, Path(folder))).exists():
            raise ConfigError(f"{Path(folder) / 'config.toml'}: run.imports names {spec!r}, "
                              f"which does not exist (moved?); correct run.imports there")
    return load(specs, Path(folder))


def add_option(parser) -> None:
    """``--import PATH`` (repeatable) on a subcommand."""
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="PATH",
                        help="import this Python file or module first (its learners and "
                             "environments; repeatable; adds to [run] imports)")
