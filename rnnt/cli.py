"""The `rnnt` command line: a thin dispatcher over `rnnt.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from rnnt.commands import COMMANDS
from rnnt.version import __version__


class UsageError(Exception):
    """Bad command-line usage: exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnt", description="Streaming RNN-T speech recognition.")
    parser.add_argument("--version", action="version", version=f"rnnt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"rnnt.commands.{module_name}")
        except ModuleNotFoundError as e:
            if e.name == f"rnnt.commands.{module_name}":
                continue  # not built yet
            raise
        module.add_parser(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except UsageError as e:
        print(f"rnnt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
