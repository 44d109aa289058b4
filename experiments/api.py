"""The Python API for scripts and notebooks: one call runs a config and returns its results.

    import banditjax
    results = banditjax.run("experiments/configs/quickstart.toml",
                            overrides=["run.horizon=2000"])
    results.summary()          # final regret per setting (pandas DataFrame)
    results.plot()             # a matplotlib Figure
    results.frame              # the tidy results: one row per (run, recorded round)

It is the command line's path (``experiments.config``, ``experiments.experiment``) without the
command line: the same checks (``ConfigError``, one line), the same numbers. ``config`` is a
dict or a TOML/YAML path; learner and environment classes of one's own are passed as
``learners=[MyLearner]`` / ``envs=[MyEnv]`` and named in the config by their registered name,
their ``name`` attribute or their class name in snake case (or given as the class itself:
``{"name": MyLearner}``). Classes that are not registered are registered for the call only (and
for ``Results.plot``), so no registry needs editing. The run stays in memory unless ``out`` is
given; then the folder is written as ``banditjax run`` writes it (results.parquet, config.toml,
meta.json, figures; checkpoints and ``resume=True`` work the same), and the file of a class
passed in is recorded in ``run.imports`` so that ``banditjax plot``/``bounds`` read the folder.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pandas as pd

import bandits  # noqa: F401  (registers learners)
import envs  # noqa: F401  (registers environments)
from bandits.core import LEARNERS, Learner
from envs.core import ENVS, ConfigError, Environment, Registry
from experiments import config as config_lib
from experiments import user_code

__all__ = ["Results", "run", "load", "ConfigError"]


# ---------------------------------------------------------------------------------------------
# Classes passed in: registered for the call.
# ---------------------------------------------------------------------------------------------
def registered_name(cls: type, registry: Registry) -> str:
    """The name ``cls`` is (or will be) registered under: its own registration, else a ``name``
    it declares itself, else its class name in snake case (``OptimisticGreedy`` ->
    ``optimistic_greedy``)."""
    for name, known in registry.items():
        if known is cls:
            return name
    own = cls.__dict__.get("name")
    if isinstance(own, str) and own:
        return own
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls.__name__).lower()


def _check_class(cls: Any, base: type, what: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{what}: {cls!r} is not a subclass of {base.__module__}."
                          f"{base.__name__}")


@contextlib.contextmanager
def registered(learners: Iterable[type] = (), environments: Iterable[type] = ()
               ) -> Iterator[None]:
    """Registers the classes that are not registered yet, for the block only."""
    added: list[tuple[Registry, str]] = []
    try:
        for classes, registry, base, what in ((learners, LEARNERS, Learner, "learners"),
                                              (environments, ENVS, Environment, "envs")):
            for cls in classes:
                _check_class(cls, base, what)
                name = registered_name(cls, registry)
                if name in registry:
                    known = registry.get(name, what)
                    if known is not cls:
                        raise ConfigError(
                            f"{what}: {cls.__qualname__} would be registered as {name!r}, "
                            f"which is {known.__module__}.{known.__qualname__}; give the class "
                            f"another name (a class attribute name = \"...\")")
                    continue
                registry.register(name)(cls)
                added.append((registry, name))
        yield
    finally:
        for registry, name in added:
            registry.unregister(name)


def _class_names(config: dict, learners: Sequence[type], environments: Sequence[type]
                 ) -> tuple[list[type], list[type]]:
    """Replaces classes given as ``name`` in the config by their names; returns every class
    to register (those passed in and those found in the config)."""
    learners, environments = list(learners), list(environments)
    env = config.get("env")
    if isinstance(env, dict) and isinstance(env.get("name"), type):
        environments.append(env["name"])
        _check_class(env["name"], Environment, "env.name")
        env["name"] = registered_name(env["name"], ENVS)
    for index, table in enumerate(config.get("learner") or []):
        if isinstance(table, dict) and isinstance(table.get("name"), type):
            _check_class(table["name"], Learner, f"learner[{index}].name")
            learners.append(table["name"])
            table["name"] = registered_name(table["name"], LEARNERS)
    return list(dict.fromkeys(learners)), list(dict.fromkeys(environments))


def _source_files(classes: Iterable[type]) -> list[str]:
    """The files of the modules that define ``classes``, outside this suite (for run.imports)."""
    suite = Path(config_lib.__file__).resolve().parent.parent
    files = []
    for cls in classes:
        if cls.__module__ == "__main__":
            continue
        try:
            path = Path(inspect.getfile(cls)).resolve()
        except (TypeError, OSError):
            continue
        if path.suffix == ".py" and path.is_file() and suite not in path.parents:
            files.append(str(path))
    return list(dict.fromkeys(files))


# ---------------------------------------------------------------------------------------------
# Results.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Results:
    """What a run gives: the tidy frame, its meta facts and the resolved config.

    frame:  one row per (run, recorded round): learner, setting, run, seed, instance, hp.* and
            env.* columns, t and one column per metric (``regret`` = cumulative pseudo-regret).
    meta:   versions, device, timings (compile and run seconds, agent-steps/s), peak memory.
    config: the resolved config (every default filled in; what config.toml records).
    out:    the results folder, or None for a run kept in memory.
    """

    frame: pd.DataFrame
    meta: dict
    config: dict
    out: Path | None = None
    classes: tuple[tuple[type, ...], tuple[type, ...]] = ((), ())

    def __repr__(self) -> str:
        settings = self.frame["setting"].nunique() if "setting" in self.frame else 0
        runs = self.frame["run"].nunique() if "run" in self.frame else 0
        where = "in memory" if self.out is None else f"in {str(self.out)!r}"
        return (f"Results({settings} settings, {runs} runs, {len(self.frame)} rows {where}; "
                f".frame, .meta, .summary(), .table(), .plot())")

    def metrics(self) -> list[str]:
        """The summary metrics the environment declares (``regret`` first)."""
        from analysis.metrics import declared_metrics
        with self._registered():
            return [m.name for m in declared_metrics(self.frame) if m.summary]

    def summary(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Per learner setting: runs, horizon, mean and standard error of every final metric
        (what ``banditjax run`` prints)."""
        from analysis.metrics import final_summary
        return final_summary(self.frame, tuple(metrics or self.metrics()))

    def table(self, at: int | None = None) -> pd.DataFrame:
        """Per learner setting: runs, t and every summary metric at the last recorded round (or
        the last one <= ``at``) as ``<metric>_mean`` and ``<metric>_ci95`` (half-width of the
        normal-approximation 95% interval over runs): the table of ``banditjax table`` when
        ``analysis.tables`` provides it, else ``confidence_table``."""
        try:
            from analysis.tables import paper_table
        except ImportError:
            paper_table = None
        with self._registered():
            if paper_table is not None:
                return _user_error(paper_table, self.frame, at)
            return confidence_table(self.frame, tuple(self.metrics()), at)

    def plot(self, metric: str = "regret", *, logx: bool | None = None,
             logy: bool | None = None, ax: Any = None):
        """Mean ``metric`` against t per learner setting with 95% bands: the figure of
        ``banditjax plot`` (``analysis.plotting.regret_figure``: a panel per swept environment
        setting, single arms summarised); returns the matplotlib Figure (drawn on ``ax`` when
        given). ``logx``/``logy`` default to the config's [plot] table; ``logy`` unset there:
        log when the final means span more than a decade."""
        from analysis import metrics as analysis_metrics
        from analysis import plotting
        from analysis.metrics import declared_metrics
        plot = self.config.get("plot", {})
        logx = plot.get("logx", False) if logx is None else logx
        logy = plot.get("logy") if logy is None else logy
        if metric not in self.frame:
            raise ConfigError(f"plot: no column {metric!r} in the results; columns: "
                              f"{', '.join(self.metrics())}")
        if logy is None:                       # unset: log when the final means span a decade
            logy = plotting.wants_logy(self.frame, metric)
        with self._registered():
            labels = {m.name: m.label for m in declared_metrics(self.frame)}
            if ax is None:                     # the figure of `banditjax plot` (panels, arms)
                return plotting.regret_figure(self.frame, bool(logx), bool(logy), metric,
                                              labels.get(metric, metric))
            plotting.apply_style()
            frame = analysis_metrics.with_arm_labels(self.frame)
            plotting.plot_curves(ax, frame, metric, logx=bool(logx), logy=bool(logy),
                                 summarise=plotting.reference_settings(frame))
        ax.set_ylabel(labels.get(metric, metric))
        ax.legend(loc="upper left", ncol=1 if self.frame["setting"].nunique() <= 8 else 2)
        return ax.figure

    def paper_table(self, format: str = "markdown", at: int | None = None) -> str:
        """What ``banditjax table`` prints: every summary metric per setting as mean +- 95%
        CI, the best per column in bold (``analysis/tables.py``); ``format`` is "markdown",
        "latex" or "csv"."""
        from analysis.tables import make_table
        with self._registered():
            return _user_error(make_table, self.frame, format, at=at)

    def sensitivity(self, name: str, metric: str = "regret", at: int | None = None, *,
                    logx: bool | None = None, logy: bool | None = None):
        """What ``banditjax plot --vs NAME`` draws: final ``metric`` (or at round ``at``)
        against the swept hyper-parameter or environment setting ``name``, one line per
        learner, 95% bands (``analysis/sensitivity.py``); returns the matplotlib Figure."""
        from analysis.plotting import sensitivity_figure
        from analysis.sensitivity import resolve_axis
        with self._registered():
            column = _user_error(resolve_axis, self.frame, name)
            return _user_error(sensitivity_figure, self.frame, column, at, metric, logx, logy)

    @contextlib.contextmanager
    def _registered(self) -> Iterator[None]:
        with registered(*self.classes):
            yield


def _user_error(function, *args, **kwargs):
    """``function(...)``, its ValueError (a name or round not in the results) as ConfigError."""
    try:
        return function(*args, **kwargs)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def confidence_table(frame: pd.DataFrame, metrics: Sequence[str] = ("regret",),
                     at: int | None = None) -> pd.DataFrame:
    """Per setting (in the frame's order): learner, runs, t and each metric at the last recorded
    round (or the last one <= ``at``) as ``<metric>_mean`` and ``<metric>_ci95`` = 1.96
    standard deviations / sqrt(runs)."""
    from analysis.metrics import Z95
    if at is None:
        rows = frame[frame["t"] == frame.groupby("run")["t"].transform("max")]
    else:
        recorded = frame.loc[frame["t"] <= at, "t"]
        if recorded.empty:
            raise ConfigError(f"table: at = {at} is before the first recorded round "
                              f"({int(frame['t'].min())})")
        rows = frame[frame["t"] == recorded.max()]
    by_setting = rows.groupby("setting", sort=False)
    out = pd.DataFrame({"learner": by_setting["learner"].first(),
                        "runs": by_setting["run"].nunique(), "t": by_setting["t"].max()})
    for metric in metrics:
        stats = by_setting[metric].agg(["mean", "std", "count"])
        out[f"{metric}_mean"] = stats["mean"]
        out[f"{metric}_ci95"] = Z95 * stats["std"].fillna(0.0) / stats["count"] ** 0.5
    return out.reset_index()


# ---------------------------------------------------------------------------------------------
# Running.
# ---------------------------------------------------------------------------------------------
def _as_config(config: Mapping | str | Path, overrides: Sequence[str]) -> dict:
    if isinstance(config, (str, Path)):
        return config_lib.load(config, list(overrides))
    if not isinstance(config, Mapping):
        raise ConfigError(f"config: expected a dict or the path of a TOML/YAML file, got "
                          f"{type(config).__name__}")
    config = copy.deepcopy(dict(config))
    for item in overrides:
        config_lib.apply_override(config, item)
    return config


def run(config: Mapping | str | Path, *, learners: Sequence[type] = (),
        envs: Sequence[type] = (), imports: Sequence[str] = (),
        overrides: Sequence[str] = (), out: str | Path | None = None, force: bool = False,
        resume: bool = False, progress: bool = False, plot: bool = True) -> Results:
    """Runs every learner of ``config`` and returns its ``Results``.

    config:    a dict (the layout of a config file: "run", "env", "learner" list, "plot") or
               the path of a TOML/YAML file. Raises ``ConfigError`` (one line) as the CLI does.
    learners, envs: classes of one's own (``Learner`` / ``Environment`` subclasses), registered
               for this call when they are not already.
    imports:   files (.py) or module names to import first, as ``[run] imports``.
    overrides: ``--set`` strings, e.g. ``["run.horizon=2000", "learner.ucb1.c=[0.5, 1, 2]"]``.
    out:       a results folder to write (refused when it holds files unless ``force``;
               ``resume=True`` continues from its checkpoint); None keeps everything in memory.
    progress:  show the progress bar (stderr). plot: write the figures into ``out``.
    """
    config = _as_config(config, overrides)
    learners, environments = _class_names(config, learners, envs)
    run_table = config.setdefault("run", {})
    if not isinstance(run_table, dict):
        raise ConfigError(f"[run] must be a table, got {run_table!r}")
    extra = [user_code.resolve(spec) for spec in user_code.check_list(list(imports))]
    if out is not None:
        extra += _source_files(learners + environments)
    if extra:
        known = user_code.check_list(run_table.get("imports", []))
        run_table["imports"] = list(dict.fromkeys(known + extra))
    with registered(learners, environments):
        experiment = config_lib.build(config)
        frame, meta = _simulate(experiment, out, force, resume, progress, plot)
    return Results(frame=frame, meta=meta, config=experiment.config,
                   out=None if out is None else Path(out),
                   classes=(tuple(learners), tuple(environments)))


def _simulate(experiment, out, force: bool, resume: bool, progress: bool,
              plot: bool) -> tuple[pd.DataFrame, dict]:
    from experiments import experiment as experiment_lib
    if out is None:
        frame, facts = experiment_lib.simulate_experiment(experiment, progress=progress)
        return frame, experiment_lib.run_meta(facts, command=None)
    out = Path(out)
    if resume:
        experiment_lib.prepare_resume(out)
    else:
        experiment_lib.prepare_out_dir(out, force)
    frame, meta = experiment_lib.run_experiment(experiment, out, progress=progress, plot=plot,
                                                resume=resume)
    if frame is None:
        raise ConfigError("banditjax.run: this process is not process 0 of a multi-process "
                          "run; its results are merged into process 0's")
    return frame, meta


def load(folder: str | Path) -> Results:
    """The ``Results`` of a folder written by ``banditjax run`` (or ``run(..., out=...)``),
    importing the user modules its config.toml records."""
    folder = Path(folder)
    if not (folder / "results.parquet").is_file():
        raise ConfigError(f"{str(folder)!r} holds no results.parquet: run `banditjax run` first")
    user_code.load_folder(folder)
    config = {}
    if (folder / "config.toml").is_file():
        config = tomllib.loads((folder / "config.toml").read_text())
    meta = {}
    if (folder / "meta.json").is_file():
        meta = json.loads((folder / "meta.json").read_text())
    return Results(frame=pd.read_parquet(folder / "results.parquet"), meta=meta, config=config,
                   out=folder)
