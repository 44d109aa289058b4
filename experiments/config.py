"""Config files: loading, validation (before anything is traced) and expansion into runs.

The layout (README, "Config files"):

    [run]            horizon, seeds, seed, record, instances, chunk, batch, devices,
                     checkpoint_every
    [env]            name = "<environment>" and its settings; wrapper tables such as [env.delay]
    [[learner]]      name = "<learner>", optional label, and its hyper-parameters (one per learner)
    [plot]           logx, logy

A list value is a sweep axis (a list of lists for vector settings such as ``means``); the runs
are the product of every axis, the instances and the seeds. Static settings (those that change
shapes or code paths) split the runs into groups, each one compiled call; dynamic settings are
arrays on the run axis, so sweeping them costs no recompile.

Keys give common random numbers: the run key depends only on (seed index, instance index), so
two learners (or two hyper-parameter values) with the same seed and instance face the same
reward draws whenever they play the same arm, and the same instance.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import tomllib
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
import pandas as pd

import bandits  # noqa: F401  (registers learners)
import envs  # noqa: F401  (registers environments)
from bandits.core import LEARNERS, Learner
from envs.core import (ENVS, WRAPPERS, ConfigError, Configurable, Environment, Setting,
                       closest, is_sweep)

RUN_SETTINGS = (
    Setting("horizon", 1000, "rounds per run (T)", kind=int, low=1),
    Setting("seeds", 10, "independent runs of every setting", kind=int, low=1),
    Setting("seed", 0, "master seed: every key is derived from it", kind=int, low=0),
    Setting("record", 50, "number of log-spaced rounds at which metrics are recorded",
            kind=int, low=1),
    Setting("instances", 1, "problem instances per setting; every seed runs on every one",
            kind=int, low=1),
    Setting("chunk", None, "rounds per compiled chunk (default about 1% of the horizon)",
            kind=int, low=1, optional=True),
    Setting("batch", None, "at most this many runs per compiled call (default: all)",
            kind=int, low=1, optional=True),
    Setting("devices", None, "shard runs over this many local devices (default: all)",
            kind=int, low=1, optional=True),
    Setting("checkpoint_every", 10, "save the whole state to DIR/checkpoint every this many "
            "chunks, for --resume (0: never)", kind=int, low=0),
)
PLOT_SETTINGS = (
    Setting("logx", False, "logarithmic t axis", kind=bool),
    Setting("logy", False, "logarithmic regret axis", kind=bool),
)
SECTIONS = ("run", "env", "learner", "plot")


@dataclasses.dataclass
class Group:
    """The runs of one compiled call: one environment object and one learner object."""

    env: Environment
    learner: Learner
    runs: pd.DataFrame                 # one row per run: labels and hp.* / env.* columns
    run_keys: np.ndarray               # [R, 2] uint32
    instance_keys: np.ndarray          # [R, 2] uint32
    env_settings: dict                 # nested dict of [R, ...] arrays
    hparams: dict                      # dict of [R, ...] arrays


@dataclasses.dataclass
class Experiment:
    config: dict                       # resolved config (written as config.toml)
    run: dict
    plot: dict
    groups: list[Group]

    @property
    def total_runs(self) -> int:
        return sum(len(g.runs) for g in self.groups)


# ---------------------------------------------------------------------------------------------
# Loading.
# ---------------------------------------------------------------------------------------------
def load(path: str | Path, overrides: list[str] = ()) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml
            config = yaml.safe_load(path.read_text())
        else:
            config = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper() or 'TOML'}: {error}")
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the top level must be a table")
    resolve_paths(config, path.parent)
    for item in overrides:
        apply_override(config, item)
    return config


def resolve_paths(config: dict, folder: Path) -> None:
    """Makes the relative file paths of the [env] table (settings of kind "path") absolute,
    relative to ``folder``, the config file's folder; so a config and the table it names move
    together, and the resolved config.toml of a results folder names the file it used. Paths
    given by --set are left as given (relative to the working directory)."""
    env = config.get("env")
    if not isinstance(env, dict) or not isinstance(env.get("name"), str) or (
            env["name"] not in ENVS):
        return
    for s in ENVS.get(env["name"], "env.name").settings:
        value = env.get(s.name)
        if s.kind != "path" or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        resolved = [str((folder / v).resolve()) if isinstance(v, str) and v
                    and not Path(v).is_absolute() else v for v in values]
        env[s.name] = resolved if isinstance(value, list) else resolved[0]


def parse_value(text: str) -> Any:
    """A --set value: TOML syntax (numbers, true/false, [lists], "strings"), else a bare string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(config: dict, item: str) -> None:
    """Applies ``section.key=value``; learners are addressed by index or by name."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. run.horizon=1000")
    dotted, text = item.split("=", 1)
    parts = dotted.strip().split(".")
    value = parse_value(text.strip())
    if parts[0] not in SECTIONS:
        raise ConfigError(f"--set {item!r}: unknown section {parts[0]!r}{closest(parts[0], SECTIONS)}"
                          f"; known: {', '.join(SECTIONS)}")
    if parts[0] == "learner":
        if len(parts) < 3:
            raise ConfigError(f"--set {item!r}: use learner.<index or name>.<key>=value")
        tables = config.get("learner", [])
        which = [t for i, t in enumerate(tables)
                 if parts[1] == str(i) or t.get("name") == parts[1]]
        if not which:
            names = ", ".join(str(t.get("name")) for t in tables)
            raise ConfigError(f"--set {item!r}: no learner {parts[1]!r} in the config ({names})")
        for table in which:
            _set_nested(table, parts[2:], value)
        return
    if len(parts) < 2:
        raise ConfigError(f"--set {item!r}: use {parts[0]}.<key>=value")
    _set_nested(config.setdefault(parts[0], {}), parts[1:], value)


def _set_nested(table: dict, keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        table = table.setdefault(key, {})
    table[keys[-1]] = value


# ---------------------------------------------------------------------------------------------
# Validation and expansion.
# ---------------------------------------------------------------------------------------------
def _check_keys(table: Mapping, allowed: list[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key{closest(key, allowed)}; allowed: "
                              f"{', '.join(allowed)}")


def _scalar_table(table: Mapping, settings: tuple[Setting, ...], where: str) -> dict:
    _check_keys(table, [s.name for s in settings], where)
    out = {}
    for s in settings:
        value = table.get(s.name, s.default)
        if is_sweep(s, value):
            raise ConfigError(f"{where}.{s.name} = {value!r}: a single value is expected here")
        out[s.name] = s.validate(value, where)
    return out


def expand_settings(cls: type[Configurable], table: Mapping, where: str,
                    context: Mapping[str, Any], extra_keys: tuple[str, ...] = ()) -> list[dict]:
    """Every combination of the sweep axes of ``table``: validated, then settled (declared
    defaults, ``resolve``, cross-checks: ``Configurable.settle``)."""
    _check_keys(table, [s.name for s in cls.settings] + ["name", *extra_keys], where)
    axes = []
    for s in cls.settings:
        value = table.get(s.name, s.default)
        if is_sweep(s, value):
            if len(value) == 0:
                raise ConfigError(f"{where}.{s.name} = []: a sweep needs at least one value")
            axes.append([s.validate(v, where) for v in value])
        else:
            axes.append([s.validate(value, where)])
    combos = []
    for values in itertools.product(*axes):
        combos.append(cls.settle(dict(zip([s.name for s in cls.settings], values)), context,
                                 where))
    return combos


def _static_key(cls: type[Configurable], combo: Mapping) -> tuple:
    return tuple(_hashable(combo[s.name]) for s in cls.static_settings())


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _varying(combos: list[dict]) -> list[str]:
    if not combos:
        return []
    return [k for k in combos[0] if len({json.dumps(c[k]) for c in combos}) > 1]


@dataclasses.dataclass
class _EnvCombo:
    base: dict
    wrappers: dict[str, dict]

    def flat(self) -> dict:
        out = dict(self.base)
        for name, values in self.wrappers.items():
            out.update({f"{name}.{k}": v for k, v in values.items()})
        return out


def _expand_env(table: Mapping, horizon: int) -> tuple[type[Environment], list[_EnvCombo]]:
    if "name" not in table:
        raise ConfigError(f"env.name: missing; known environments: {', '.join(ENVS.names())}")
    env_cls = ENVS.get(table["name"], "env.name")
    wrapper_names = [k for k, v in table.items() if isinstance(v, dict)]
    for name in wrapper_names:
        WRAPPERS.get(name, f"env.{name} (a wrapper table)")
    base_table = {k: v for k, v in table.items() if k not in wrapper_names}
    context = {"horizon": horizon}
    bases = expand_settings(env_cls, base_table, "env", context)
    wrapper_axes = []
    for name in wrapper_names:
        wrapper_cls = WRAPPERS.get(name, f"env.{name}")
        wrapper_axes.append(expand_settings(wrapper_cls, table[name], f"env.{name}", context))
    combos = [_EnvCombo(base, dict(zip(wrapper_names, wraps)))
              for base in bases for wraps in itertools.product(*wrapper_axes)]
    return env_cls, combos


def _build_env(env_cls: type[Environment], combo: _EnvCombo) -> Environment:
    env = env_cls(**{s.name: combo.base[s.name] for s in env_cls.static_settings()})
    for name, values in combo.wrappers.items():
        wrapper_cls = WRAPPERS.get(name, f"env.{name}")
        env = wrapper_cls(env, **{s.name: values[s.name] for s in wrapper_cls.static_settings()})
    return env


def _env_static_key(env_cls, combo: _EnvCombo) -> tuple:
    key = [_static_key(env_cls, combo.base)]
    for name, values in combo.wrappers.items():
        key.append((name, _static_key(WRAPPERS.get(name, name), values)))
    return tuple(key)


def _dynamic_arrays(cls: type[Configurable], combos: list[dict], where: str) -> dict:
    """[R, ...] arrays of the dynamic settings; a setting that is None everywhere is left out."""
    out = {}
    for s in cls.dynamic_settings():
        values = [c[s.name] for c in combos]
        if all(v is None for v in values):
            continue
        if any(v is None for v in values):
            raise ConfigError(f"{where}.{s.name}: given for some settings of the sweep and "
                              f"not others")
        dtype = np.int32 if s.kind is int else np.float32
        out[s.name] = np.asarray(values, dtype)
    return out


def _column_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list) else value


def _label(base: str, values: Mapping[str, Any], varying: list[str]) -> str:
    parts = [f"{k}={_format(values[k])}" for k in varying]
    return base + (" (" + ", ".join(parts) + ")" if parts else "")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ",".join(_format(v) for v in value) + "]"
    return str(value)


def derive_keys(master_seed: int, seeds: np.ndarray, instances: np.ndarray):
    """Run keys from (seed, instance) and instance keys from the instance alone."""
    master = jax.random.PRNGKey(master_seed)
    run_stream, instance_stream = jax.random.split(master)

    def run_key(seed, instance):
        return jax.random.fold_in(jax.random.fold_in(run_stream, seed), instance)

    run_keys = jax.vmap(run_key)(seeds, instances)
    instance_keys = jax.vmap(lambda i: jax.random.fold_in(instance_stream, i))(instances)
    return np.asarray(run_keys, np.uint32), np.asarray(instance_keys, np.uint32)


def build(config: Mapping) -> Experiment:
    """Validates a loaded config and expands it into compile groups of runs."""
    if not isinstance(config, Mapping):
        raise ConfigError("the config must be a table")
    _check_keys(config, list(SECTIONS), "config")
    for section in ("run", "env", "plot"):
        if section in config and not isinstance(config[section], Mapping):
            raise ConfigError(f"[{section}] must be a table, got {config[section]!r}")
    run = _scalar_table(config.get("run", {}), RUN_SETTINGS, "run")
    plot = _scalar_table(config.get("plot", {}), PLOT_SETTINGS, "plot")
    if "env" not in config:
        raise ConfigError("[env]: missing; known environments: " + ", ".join(ENVS.names()))
    learners = config.get("learner")
    if not learners:
        raise ConfigError("[[learner]]: the config has no learner; known learners: "
                          + ", ".join(LEARNERS.names()))
    if not isinstance(learners, list) or not all(isinstance(t, Mapping) for t in learners):
        raise ConfigError("learner: expected [[learner]] tables")

    horizon = run["horizon"]
    env_cls, env_combos = _expand_env(config["env"], horizon)
    env_varying = _varying([c.flat() for c in env_combos])
    env_groups: dict[tuple, list[_EnvCombo]] = {}
    for combo in env_combos:
        env_groups.setdefault(_env_static_key(env_cls, combo), []).append(combo)

    seeds = np.arange(run["seeds"])
    instances = np.arange(run["instances"])
    groups: list[Group] = []
    resolved_learners = []
    next_run = 0
    for index, table in enumerate(learners):
        where = f"learner[{index}]"
        if "name" not in table:
            raise ConfigError(f"{where}.name: missing; known learners: "
                              f"{', '.join(LEARNERS.names())}")
        learner_cls = LEARNERS.get(table["name"], f"{where}.name").specialise(table, where)
        label = table.get("label", table["name"])
        if not isinstance(label, str):
            raise ConfigError(f"{where}.label = {label!r}: expected a string")
        all_combos = []
        for env_list in env_groups.values():
            env = _build_env(env_cls, env_list[0])
            learner_cls.check_spec(env.spec, f"{where}.name")
            context = {"horizon": horizon, "num_arms": env.spec.num_arms,
                       "feature_dim": env.spec.feature_dim,
                       "env": env_list[0].flat()}   # static env settings hold group-wide
            combos = expand_settings(learner_cls, table, where, context, extra_keys=("label",))
            all_combos.append((env, env_list, combos))
        varying = _varying([c for _, _, combos in all_combos for c in combos])
        resolved_learners.append(with_defaults(learner_cls, table))
        for env, env_list, combos in all_combos:
            by_static: dict[tuple, list[dict]] = {}
            for c in combos:
                by_static.setdefault(_static_key(learner_cls, c), []).append(c)
            for learner_combos in by_static.values():
                first = learner_combos[0]
                learner = learner_cls(env.spec, horizon, **{
                    s.name: first[s.name] for s in learner_cls.static_settings()})
                group = _make_group(env, env_cls, env_list, env_varying, learner, learner_cls,
                                    learner_combos, varying, label, seeds, instances, run,
                                    next_run, where)
                next_run += len(group.runs)
                groups.append(group)
    env_table = with_defaults(env_cls, config["env"])
    for name, value in config["env"].items():
        if isinstance(value, Mapping):
            env_table[name] = with_defaults(WRAPPERS.get(name, f"env.{name}"), value)
    resolved = {"run": run, "env": env_table, "learner": resolved_learners,
                "plot": plot}
    return Experiment(config=resolved, run=run, plot=plot, groups=groups)


def first_environment(config: Mapping) -> tuple[Environment, dict, np.ndarray, np.ndarray]:
    """The environment of a config's first run without its learners (``banditjax export``):
    the object for the first value of every sweep, its dynamic settings as [1, ...] arrays
    (wrappers' in their sub-dicts) and the (run key, instance key) of seed 0, instance 0,
    the keys ``build`` gives that run."""
    if not isinstance(config, Mapping) or not isinstance(config.get("env"), Mapping):
        raise ConfigError("[env]: missing; known environments: " + ", ".join(ENVS.names()))
    run = _scalar_table(config.get("run", {}), RUN_SETTINGS, "run")
    env_cls, combos = _expand_env(config["env"], run["horizon"])
    combo = combos[0]
    settings = _dynamic_arrays(env_cls, [combo.base], "env")
    for name, values in combo.wrappers.items():
        settings[name] = _dynamic_arrays(WRAPPERS.get(name, name), [values], f"env.{name}")
    run_keys, instance_keys = derive_keys(run["seed"], np.zeros(1, np.int64),
                                          np.zeros(1, np.int64))
    return _build_env(env_cls, combo), settings, run_keys[0], instance_keys[0]


def with_defaults(cls: type[Configurable], table: Mapping) -> dict:
    """``table`` with every setting it leaves out at its declared default (None ones omitted).

    This is what config.toml records, so a results folder says every value its runs used.
    """
    out = {"name": table["name"]} if "name" in table else {}
    for s in cls.settings:
        if s.name not in table and s.default is not None:
            out[s.name] = s.default
    out.update(table)
    return out


def _make_group(env, env_cls, env_list, env_varying, learner, learner_cls, learner_combos,
                varying, label, seeds, instances, run, first_run, where) -> Group:
    rows, env_rows, hp_rows = [], [], []
    for env_combo in env_list:
        for combo in learner_combos:
            combo = learner_cls.from_environment(combo, env_combo.flat())
            for instance in instances:
                for seed in seeds:
                    env_rows.append(env_combo)
                    hp_rows.append(combo)
                    flat_env = env_combo.flat()
                    row = {"learner": label, "env": env_cls.name,
                           "setting": _label(label, combo, varying)
                           + (" | " + ", ".join(f"{k}={_format(flat_env[k])}"
                                                for k in env_varying) if env_varying else ""),
                           "seed": int(seed), "instance": int(instance)}
                    row.update({f"hp.{k}": _column_value(v) for k, v in combo.items()})
                    row.update({f"env.{k}": _column_value(v) for k, v in flat_env.items()})
                    rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(1, "run", np.arange(first_run, first_run + len(table)))
    run_keys, instance_keys = derive_keys(run["seed"], table["seed"].to_numpy(),
                                          table["instance"].to_numpy())
    env_settings = _dynamic_arrays(env_cls, [c.base for c in env_rows], "env")
    for name in (env_list[0].wrappers if env_list else {}):
        wrapper_cls = WRAPPERS.get(name, name)
        env_settings[name] = _dynamic_arrays(wrapper_cls, [c.wrappers[name] for c in env_rows],
                                             f"env.{name}")
    hparams = _dynamic_arrays(learner_cls, hp_rows, where)
    return Group(env=env, learner=learner, runs=table, run_keys=run_keys,
                 instance_keys=instance_keys, env_settings=env_settings, hparams=hparams)


# ---------------------------------------------------------------------------------------------
# Writing the resolved config back as TOML.
# ---------------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")


def dump_toml(config: Mapping) -> str:
    """TOML for a config: scalar keys, nested tables and arrays of tables (None is left out)."""
    lines: list[str] = []

    def table(name: str, body: Mapping, header: str) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, Mapping) and v is not None}
        lines.append(header)
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        lines.append("")
        for k, v in body.items():
            if isinstance(v, Mapping):
                table(f"{name}.{k}", v, f"[{name}.{k}]")

    for name, body in config.items():
        if isinstance(body, list):
            for item in body:
                table(name, item, f"[[{name}]]")
        elif isinstance(body, Mapping):
            table(name, body, f"[{name}]")
    return "\n".join(lines)
