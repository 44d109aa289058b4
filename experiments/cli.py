"""The ``banditjax`` command line: run, plot, list, export, bounds and bench.

User errors (bad configs, unknown names, existing output folders) print one ``error:`` line and
exit with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envs.core import ConfigError


def _cmd_run(args: argparse.Namespace) -> int:
    from analysis.metrics import declared_metrics, final_summary, format_table
    from experiments import config as config_lib
    from experiments import distributed
    from experiments.experiment import prepare_out_dir, prepare_resume, run_experiment

    # Before anything touches JAX: join the other processes of a multi-host run.
    distributed.initialize(distributed.launch_settings(
        args.coordinator, args.num_processes, args.process_id))
    config = config_lib.load(args.config, args.set or [])
    if args.logx:
        config.setdefault("plot", {})["logx"] = True
    if args.devices is not None:
        config.setdefault("run", {})["devices"] = args.devices
    if args.checkpoint_every is not None:
        config.setdefault("run", {})["checkpoint_every"] = args.checkpoint_every
    experiment = config_lib.build(config)          # every check happens here, before tracing
    out = Path(args.out) if args.out else Path("results") / Path(args.config).stem
    created = not out.exists()
    if args.resume:
        prepare_resume(out)
    else:
        prepare_out_dir(out, args.force)
    distributed.barrier("banditjax-out-dir-checked")
    try:
        frame, meta = run_experiment(experiment, out, progress=not args.quiet,
                                     resume=args.resume)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()                            # a run that failed before writing anything
        raise
    if frame is None:                              # not process 0 of a multi-process run
        return 0
    metrics = tuple(m.name for m in declared_metrics(frame) if m.summary)
    table = final_summary(frame, metrics)
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


def _cmd_plot(args: argparse.Namespace) -> int:
    import pandas as pd
    import tomllib

    from analysis.plotting import plot_results

    folder = Path(args.dir)
    results = folder / "results.parquet"
    if not results.exists():
        raise ConfigError(f"{str(folder)!r} holds no results.parquet: run `banditjax run` first")
    frame = pd.read_parquet(results)
    logx = args.logx
    if logx is None and (folder / "config.toml").exists():
        logx = tomllib.loads((folder / "config.toml").read_text()).get("plot", {}).get("logx")
    for path in plot_results(frame, folder, logx=bool(logx)):
        print(path)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from experiments import config as config_lib
    from experiments.export import export_table

    config = config_lib.load(args.config, args.set or [])
    out = export_table(config, args.rows, args.out)
    print(f"{args.rows} rows: {out}")
    return 0


def describe_registries() -> str:
    """Every environment, wrapper and learner with its settings and defaults."""
    import bandits  # noqa: F401
    import envs  # noqa: F401
    from bandits.core import LEARNERS
    from envs.core import ENVS, WRAPPERS

    lines = []
    for title, registry in (("Environments", ENVS), ("Environment wrappers ([env.<name>])",
                                                      WRAPPERS), ("Learners", LEARNERS)):
        lines.append(f"{title}:")
        for name, cls in registry.items():
            summary = (cls.__doc__ or "").strip().splitlines()
            lines.append(f"  {name}" + (f": {summary[0]}" if summary else ""))
            for s in cls.settings:
                tag = "static" if s.static else "sweepable"
                default = "none" if s.default is None else repr(s.default)
                lines.append(f"      {s.name} = {default}  [{s.describe_range()}; {tag}]  "
                             f"{s.doc}")
        lines.append("")
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    print(describe_registries())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banditjax", description="Simulate and benchmark bandit algorithms in JAX.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run every learner of a config")
    run.add_argument("config", help="a TOML (or YAML) config file")
    run.add_argument("--out", help="results folder (default results/<config name>)")
    run.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                     help="override a config value, e.g. run.horizon=1000 or learner.<name>.c=1 "
                          "(repeatable; a [list] makes a sweep axis)")
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
    plot.add_argument("--logx", action="store_true", default=None,
                      help="logarithmic t axis (default: as the run's config says)")
    plot.set_defaults(func=_cmd_plot)

    export = commands.add_parser(
        "export", help="write a config's environment as a table for the dataset environment")
    export.add_argument("config", help="a TOML (or YAML) config file (its first run is used)")
    export.add_argument("--rows", type=int, required=True, metavar="N",
                        help="number of rows (contexts of rounds 0 .. N-1 of the first run)")
    export.add_argument("--out", required=True, metavar="FILE",
                        help="the table: .parquet, .csv or .npz")
    export.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override a config value, as for run (repeatable)")
    export.set_defaults(func=_cmd_export)

    listing = commands.add_parser("list", help="every environment and learner with its settings")
    listing.set_defaults(func=_cmd_list)
    for register in EXTRA_COMMANDS:
        register(commands)
    return parser


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
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
