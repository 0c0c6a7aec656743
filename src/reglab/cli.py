"""The ``reglab`` command. For now: ``reglab --version`` and ``reglab example``."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reglab", description="See and measure what regularization does.")
    parser.add_argument("--version", action="version", version=f"reglab {__version__}")
    sub = parser.add_subparsers(dest="command")
    example = sub.add_parser("example", help="train the moons workload over many seeds and print a table")
    example.add_argument("--seeds", type=int, default=10)
    example.add_argument("--epochs", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.command == "example":
        from .examples import moons

        return moons.main(["--seeds", str(args.seeds), "--epochs", str(args.epochs)])
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
