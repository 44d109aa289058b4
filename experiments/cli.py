"""The ``banditjax`` command line: run, plot, table, list, bounds and bench.

User errors (bad configs, unknown names, existing output folders, a failing ``--import``) print
one ``error:`` line and exit with status 2, without a traceback. User modules (``--import``,
``[run] imports``, those a results folder's config.toml records) are imported before anything
reads the registries (``experiments/user_code.py``).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from envs.core import ConfigError
from experiments import user_code


def _cmd_run(args: argparse.Namespace) -> int:
    from analysis.metrics import declared_metrics, final_summary, format_table, with_arm_labels
    from experiments import config as config_lib
    from experiments import distributed
    from experiments.experiment import (prepare_out_dir, prepare_resume, run_experiment,
                                        warnings_before)

    # Before anything touches JAX: join the other processes of a multi-host run.
    distributed.initialize(distributed.launch_settings(
        args.coordinator, args.num_processes, args.process_id))
    config = config_lib.load(args.config, args.set or [])
    if args.imports:
        run_table = config.setdefault("run", {})
        run_table["imports"] = list(user_code.check_list(run_table.get("imports", []))) + [
            user_code.resolve(spec) for spec in args.imports]
    if args.logx:
        config.setdefault("plot", {})["logx"] = True
    if args.devices is not None:
        config.setdefault("run", {})["devices"] = args.devices
    if args.checkpoint_every is not None:
        config.setdefault("run", {})["checkpoint_every"] = args.checkpoint_every
    if args.checkpoint_minutes is not None:
        config.setdefault("run", {})["checkpoint_minutes"] = args.checkpoint_minutes
    experiment = config_lib.build(config)          # every check happens here, before tracing
    out = Path(args.out) if args.out else Path("results") / Path(args.config).stem
    for line in warnings_before(experiment) if distributed.process_index() == 0 else ():
        print(f"warning: {line}", file=sys.stderr)
    created = not out.exists()
    if args.resume:
        prepare_resume(out)
    else:
        prepare_out_dir(out, args.force)
    distributed.barrier("banditjax-out-dir-checked")
    try:
        frame, meta = run_experiment(experiment, out, progress=not args.quiet,
                                     resume=args.resume)
    except KeyboardInterrupt:
        _remove_if_empty(out, created)
        print(interrupted_message(args, out), file=sys.stderr)
        return 130
    except BaseException:
        _remove_if_empty(out, created)
        raise
    if frame is None:                              # not process 0 of a multi-process run
        return 0
    metrics = tuple(m.name for m in declared_metrics(frame) if m.summary)
    table = final_summary(with_arm_labels(frame), metrics)   # single arms by name
    print(format_table(table.drop(columns=["learner"])))
    print()
    for g in meta["groups"]:
        print(f"{g['learner']:>24}: {g['runs']} runs, compile {g['compile_seconds']:.2f} s, "
              f"{g['agent_steps_per_second']:.3g} agent-steps/s")
    print(f"total: {meta['agent_steps']:.3g} agent-steps in {meta['run_seconds']:.2f} s "
          f"({meta['agent_steps_per_second']:.3g}/s) + {meta['compile_seconds']:.2f} s compile "
          f"on {meta['device']['count']} x {meta['device']['kind']}")
    print(f"results: {out / 'results.parquet'}")
    print(f"plot:    {out / 'regret.png'}")
    return 0


def _remove_if_empty(out: Path, created: bool) -> None:
    """Removes the folder of a run that stopped before writing anything."""
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def resume_command(args: argparse.Namespace, out: Path) -> str:
    """The command line that continues this run: the same one, with --resume for --force and
    the --out folder spelled out."""
    argv = [a for a in getattr(args, "argv", sys.argv[1:]) if a not in ("--force", "--resume")]
    if args.out is None:
        argv += ["--out", str(out)]
    return "banditjax " + shlex.join(argv + ["--resume"])


def interrupted_message(args: argparse.Namespace, out: Path) -> str:
    """What Ctrl-C prints: how to continue from the checkpoint, or that there is none yet."""
    if any(Path(out).glob("checkpoint*")):
        return (f"interrupted; the checkpoint in {str(out)!r} keeps the run up to its last "
                f"save. Continue it with:\n  {resume_command(args, out)}")
    again = " (with --force: the folder holds files)" if Path(out).is_dir() else ""
    return (f"interrupted before the first checkpoint (run.checkpoint_every chunks or "
            f"run.checkpoint_minutes), so there is nothing to resume; run the command "
            f"again{again}")


def _read_results(folder: Path):
    """(frame, [plot] table of the run's config.toml) of a results folder."""
    import pandas as pd
    import tomllib

    results = folder / "results.parquet"
    if not results.exists():
        raise ConfigError(f"{str(folder)!r} holds no results.parquet: run `banditjax run` first")
    config = folder / "config.toml"
    plot = tomllib.loads(config.read_text()).get("plot", {}) if config.exists() else {}
    return pd.read_parquet(results), plot


def _cmd_plot(args: argparse.Namespace) -> int:
    from analysis.plotting import plot_results, plot_sensitivity
    from analysis.sensitivity import axis_name, resolve_axis

    folder = Path(args.dir)
    frame, remembered = _read_results(folder)
    logx = args.logx if args.logx is not None else bool(remembered.get("logx", False))
    logy = args.logy if args.logy is not None else remembered.get("logy")
    try:
        if args.vs:
            column = resolve_axis(frame, args.vs)
            paths = plot_sensitivity(frame, column, folder / f"sensitivity_{axis_name(column)}"
                                     ".png", at=args.at, logy=logy,
                                     logx=args.logx)
        else:
            paths = plot_results(frame, folder, logx=logx, logy=logy)
    except ValueError as error:                    # --vs / --at not in these results
        raise ConfigError(str(error)) from None
    for path in paths:
        print(path)
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    from analysis.tables import make_table

    frame, _ = _read_results(Path(args.dir))
    try:
        text = make_table(frame, args.format, at=args.at)
    except ValueError as error:                    # --at before the first recorded round
        raise ConfigError(str(error)) from None
    if args.out:
        Path(args.out).write_text(text)
        print(args.out)
    else:
        print(text, end="")
    return 0


def description(cls: type) -> str:
    """The first line of a class's docstring (its one-line description, with its paper)."""
    lines = (cls.__doc__ or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def runs_on(learner: type, environments: dict) -> list[str]:
    """The environments (default settings) whose spec the learner's ``check_spec`` accepts."""
    out = []
    for name, env in environments.items():
        try:
            learner.check_spec(env.spec, "learner")
        except ConfigError:
            continue
        out.append(name)
    return out


def _matches(name: str, patterns: list[str]) -> bool:
    return not patterns or any(p.lower() in name.lower() for p in patterns)


def describe_registries(patterns: list[str] = (), settings: bool | None = None) -> str:
    """Every environment, wrapper and learner whose name contains one of ``patterns``
    (case-insensitive; all when none): one line each with its description, and for a learner
    the environments it runs on; with ``settings`` (default: when filtered) each setting with its
    default, allowed values and whether a sweep over it is free or compiles once per value."""
    import bandits  # noqa: F401
    import envs  # noqa: F401
    from bandits.core import LEARNERS
    from envs.core import ENVS, WRAPPERS, closest
    from experiments.config import default_environments

    patterns = list(patterns)
    settings = bool(patterns) if settings is None else settings
    environments = default_environments()
    lines, found = [], 0
    for title, registry in (("Environments", ENVS), ("Environment wrappers ([env.<name>])",
                                                      WRAPPERS), ("Learners", LEARNERS)):
        entries = [(n, c) for n, c in registry.items() if _matches(n, patterns)]
        if not entries:
            continue
        found += len(entries)
        lines.append(f"{title}:")
        for name, cls in entries:
            text = description(cls)
            if registry is LEARNERS:
                text += f"  [runs on: {', '.join(runs_on(cls, environments)) or 'none'}]"
            lines.append(f"  {name}: {text.strip()}")
            if not settings:
                continue
            for s in cls.settings:
                tag = "static" if s.static else "sweepable"
                default = "none" if s.default is None else repr(s.default)
                lines.append(f"      {s.name} = {default}  [{s.describe_range()}; {tag}]  "
                             f"{s.doc}")
        lines.append("")
    if not found:
        known = ENVS.names() + WRAPPERS.names() + LEARNERS.names()
        raise ConfigError(f"list: nothing is named like {' or '.join(map(repr, patterns))}"
                          f"{closest(patterns[0], known)}; known: {', '.join(known)}")
    if not settings:
        lines.append("Settings: banditjax list NAME (or --settings). A learner runs on the "
                     "environments listed (with their default settings); wrappers go around "
                     "any environment")
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    print(describe_registries(args.names, settings=True if args.settings else None))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banditjax", description="Simulate and benchmark bandit algorithms in JAX.")
    parser.add_argument("--version", action="version", version=f"banditjax {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run every learner of a config")
    run.add_argument("config", help="a TOML (or YAML) config file")
    run.add_argument("--out", help="results folder (default results/<config name>)")
    run.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                     help="override a config value, e.g. run.horizon=1000 or "
                          "learner.<index, label or name>.c=1 (repeatable; a [list] makes a "
                          "sweep axis)")
    run.add_argument("--force", action="store_true", help="overwrite an existing results folder")
    run.add_argument("--logx", action="store_true", help="logarithmic t axis in the plot")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--devices", type=int, metavar="N",
                     help="shard the runs over the first N local devices (default: all; "
                          "same as --set run.devices=N)")
    run.add_argument("--resume", action="store_true",
                     help="continue the interrupted run whose checkpoint is in --out (same "
                          "config and --set options); results equal an uninterrupted run")
    run.add_argument("--checkpoint-every", type=int, metavar="CHUNKS",
                     help="save the whole state every CHUNKS chunks (default 10, about every "
                          "10%% of the horizon; 0: never; same as --set run.checkpoint_every)")
    run.add_argument("--checkpoint-minutes", type=float, metavar="MINUTES",
                     help="also save it after MINUTES of wall-clock time since the last save "
                          "(default 5; 0: never; same as --set run.checkpoint_minutes)")
    multi = run.add_argument_group(
        "multi-process runs (one command per process; or JAX_COORDINATOR_ADDRESS, "
        "JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
    multi.add_argument("--coordinator", metavar="HOST:PORT",
                       help="address of process 0, as for jax.distributed.initialize")
    multi.add_argument("--num-processes", type=int, metavar="N", help="number of processes")
    multi.add_argument("--process-id", type=int, metavar="I", help="this process, 0 .. N-1")
    run.set_defaults(func=_cmd_run)

    plot = commands.add_parser("plot", help="redraw the figures of a results folder")
    plot.add_argument("dir", help="a folder written by `banditjax run`")
    plot.add_argument("--logx", action=argparse.BooleanOptionalAction, default=None,
                      help="logarithmic t axis (default: as the run's config says); with "
                           "--vs: logarithmic x axis (default: when the values span a decade)")
    plot.add_argument("--logy", action=argparse.BooleanOptionalAction, default=None,
                      help="logarithmic regret axis (default: as the run's config says, else "
                           "when the final regret of the settings spans more than a decade)")
    plot.add_argument("--vs", metavar="NAME",
                      help="sensitivity plot: final regret against the swept hyper-parameter "
                           "or environment setting NAME (c, hp.c, env.K, delay.mean), one line "
                           "per learner; writes DIR/sensitivity_NAME.png")
    plot.add_argument("--at", type=int, metavar="T",
                      help="with --vs: regret at round T (the last recorded round <= T) "
                           "instead of the last round")
    plot.set_defaults(func=_cmd_plot)

    table = commands.add_parser("table", help="final metrics per setting as a paper table")
    table.add_argument("dir", help="a folder written by `banditjax run`")
    table.add_argument("--format", choices=("markdown", "latex", "csv"), default="markdown",
                       help="markdown (default), latex (a booktabs tabular) or csv")
    table.add_argument("--at", type=int, metavar="T",
                       help="at round T (the last recorded round <= T) instead of the last")
    table.add_argument("--out", metavar="FILE", help="write the table to FILE (default: print)")
    table.set_defaults(func=_cmd_table)

    listing = commands.add_parser(
        "list", help="environments, wrappers and learners: one line each (settings with NAME)")
    listing.add_argument("names", nargs="*", metavar="NAME",
                         help="only those whose name contains NAME (case-insensitive); their "
                              "settings are shown")
    listing.add_argument("--settings", action="store_true",
                         help="show every setting, default and allowed values")
    listing.set_defaults(func=_cmd_list)
    for register in EXTRA_COMMANDS:
        register(commands)
    for name, command in commands.choices.items():      # --import on every subcommand
        if name not in NO_USER_CODE and not any(
                "--import" in action.option_strings for action in command._actions):
            user_code.add_option(command)
    return parser


# Subcommands that never read user code (no --import).
NO_USER_CODE = ("bench",)


def version() -> str:
    """The installed banditjax version (pyproject.toml's when run from a checkout)."""
    from importlib import metadata
    try:
        return metadata.version("banditjax")
    except metadata.PackageNotFoundError:
        import tomllib
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def load_user_code(args: argparse.Namespace) -> None:
    """--import modules, then those a results folder (``dir``) records. ``run`` imports its
    own after joining the other processes (a module may touch JAX)."""
    if args.command == "run":
        return
    user_code.load(getattr(args, "imports", None) or [])
    if getattr(args, "dir", None):
        user_code.load_folder(Path(args.dir))


# Modules that add subcommands (bench, bounds) append a function(subparsers) here.
EXTRA_COMMANDS: list = []


def _load_extra_commands() -> None:
    import importlib
    for module in ("experiments.bench", "experiments.bounds_command"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            continue
        if hasattr(mod, "register_command") and mod.register_command not in EXTRA_COMMANDS:
            EXTRA_COMMANDS.append(mod.register_command)


def main(argv: list[str] | None = None) -> int:
    _load_extra_commands()
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        load_user_code(args)
        return args.func(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
