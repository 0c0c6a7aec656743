"""The ``reglab`` command.

    reglab demo [--out DIR] [--seeds N] [--quick] [--workers N | --ray [ADDRESS] [--ray-cpus 1]]
    reglab run EXPERIMENT.toml --out DIR [--resume | --restart] [--quiet] [--device cpu] [--memory-mb 1024]
               [--ray [ADDRESS] [--ray-cpus 1] [--ray-gpus F]]
    reglab report DIR... [--out report.html] [--figures DIR]
    reglab show DIR
    reglab datasets
    reglab techniques [--markdown]
    reglab playground [--port 8765] [--host 127.0.0.1] [--no-browser]
    reglab validate EXPERIMENT.toml
    reglab example [--seeds N] [--epochs E] [--quiet]
    reglab --version

Exit status: 0 on success, 2 for a mistake in the input (one line on stderr says which file,
field or row, the value and what is allowed), 1 for anything else (an internal error).

This module imports nothing heavy: ``--version`` and ``--help`` answer at once, and each command
imports what it needs when it runs (tests/test_cli_startup.py checks which modules load).
"""

from __future__ import annotations

import argparse
import sys

from .errors import UserError


class _Version(argparse.Action):
    """``--version``, looking the version up only when asked (``--help`` needs no package metadata)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help="show program's version number and exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from . import __version__

        print(f"reglab {__version__}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reglab", description="See and measure what regularization does.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="the four origin notebooks over many seeds, and their report")
    demo.add_argument("--out", default="reglab-demo", help="folder for the run folders and report.html (default: reglab-demo)")
    demo.add_argument("--seeds", type=int, default=None, help="seeds per variant (default 20; 3 with --quick)")
    demo.add_argument("--quick", action="store_true", help="3 seeds (unless --seeds), a tenth of the epochs: a smoke test")
    demo.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core, at most 4)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _ray_arguments(demo, gpus=False)
    run = sub.add_parser("run", help="run an experiment file into a run folder")
    run.add_argument("experiment", help="the experiment file (TOML)")
    run.add_argument("--out", required=True, help="the run folder (must be empty, or use --resume)")
    run.add_argument("--resume", action="store_true", help="finish an interrupted run in --out")
    run.add_argument("--restart", action="store_true", help="discard the run in --out (a reglab run folder) and start over")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    run.add_argument("--memory-mb", type=float, default=None, help="memory budget per population chunk")
    _ray_arguments(run, gpus=True)
    report = sub.add_parser("report", help="one self-contained HTML report of finished run folders")
    report.add_argument("run_folders", nargs="+", metavar="DIR", help="finished run folders, one report section each")
    report.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    report.add_argument("--figures", default=None, metavar="DIR", help="also save every figure as a PNG file in DIR")
    show = sub.add_parser("show", help="per-variant table of a finished run: mean ± 95%% CI across seeds")
    show.add_argument("run_folder", help="a finished run folder")
    sub.add_parser("datasets", help="the built-in datasets: names, shapes, tasks")
    techniques = sub.add_parser("techniques", help="every technique: its keys, allowed values, defaults, Keras counterpart and reference")
    techniques.add_argument("--markdown", action="store_true", help="as Markdown (what docs/techniques.md holds)")
    playground = sub.add_parser("playground", help="watch variants train live in the browser, over many seeds")
    playground.add_argument("--port", type=int, default=8765, help="the port to listen on (default 8765)")
    playground.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)")
    playground.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    validate = sub.add_parser("validate", help="check an experiment file without running it")
    validate.add_argument("experiment", help="the experiment file (TOML)")
    tune = sub.add_parser("tune", help="which regularization, how strong, for a table: a search over seeds, answered with a paired CI")
    tune.add_argument("data", help="a CSV or Parquet file")
    tune.add_argument("--target", required=True, help="the column to predict")
    tune.add_argument("--out", required=True, help="the search's folder (must be empty, or use --resume)")
    tune.add_argument("--budget-minutes", type=float, default=10.0, help="wall time for the search (default 10); the final comparison takes a little more, said up front")
    tune.add_argument("--task", default="auto", help="auto (default), classification or regression")
    tune.add_argument("--seeds", type=int, default=10, help="fresh seeds for the final comparison (default 10)")
    tune.add_argument("--features", nargs="+", default=None, metavar="COLUMN", help="the feature columns (default: every column but the target)")
    tune.add_argument("--engine", default="auto", help="auto (default: compiled where it can), compiled or eager: the [train] engine of every run")
    tune.add_argument("--resume", action="store_true", help="continue an interrupted search in --out")
    tune.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core, at most 4)")
    tune.add_argument("--quiet", action="store_true", help="no progress bars")
    _ray_arguments(tune, gpus=False)
    example = sub.add_parser("example", help="train the moons workload over many seeds and print a table")
    example.add_argument("--seeds", type=int, default=10, help="seeds per variant (default 10)")
    example.add_argument("--epochs", type=int, default=2000, help="epochs per network (default 2000)")
    example.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _ray_arguments(parser: argparse.ArgumentParser, gpus: bool) -> None:
    group = parser.add_argument_group("on a Ray cluster (the ray extra)")
    group.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="train the chunks as Ray tasks: on the cluster at ADDRESS (HOST:PORT of its head, or auto: Ray's RAY_ADDRESS or the cluster running here), or without ADDRESS on a new local Ray instance with this machine's cores",
    )
    group.add_argument("--ray-cpus", type=float, default=None, metavar="N", help="CPUs each chunk's task reserves (default 1)")
    if gpus:
        group.add_argument("--ray-gpus", type=float, default=None, metavar="F", help="GPUs (a fraction, e.g. 0.25) each chunk's task reserves; with --device cuda (default 1 there)")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _command(args.command)(args)
    except UserError as err:
        print(f"reglab: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command == "playground":
            print("reglab playground: stopped", file=sys.stderr)
            return 0
        if args.command == "demo":
            print("reglab: interrupted; nothing was kept (an earlier demo in --out is untouched)", file=sys.stderr)
        else:
            print("reglab: interrupted; finished work is kept, continue with --resume", file=sys.stderr)
        return 130


def _example(args) -> int:
    from .examples import moons

    return moons.main(["--seeds", str(args.seeds), "--epochs", str(args.epochs), *(["--quiet"] if args.quiet else [])])


def _command(name: str):
    """Subcommands live in commands.py, imported only when one runs (``--version`` stays fast)."""
    if name == "example":
        return _example
    from . import commands

    return getattr(commands, name)


if __name__ == "__main__":
    raise SystemExit(main())
