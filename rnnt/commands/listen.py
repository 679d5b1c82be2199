"""`rnnt listen`: live microphone dictation (the demo of `python -m demo`, package `demo`)."""

from __future__ import annotations

import argparse


def _demo():
    """demo.dictation, or None when the demo package is not installed."""
    try:
        from demo import dictation
    except ModuleNotFoundError as e:
        if e.name in ("demo", "demo.dictation"):
            return None
        raise
    return dictation


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    dictation = _demo()
    description = dictation.DESCRIPTION if dictation else "Live dictation (needs the demo package)."
    p = subparsers.add_parser(name, help="live dictation from the microphone", description=description)
    if dictation is not None:
        dictation.add_arguments(p)
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    from rnnt.cli import UsageError

    dictation = _demo()
    if dictation is None:
        raise UsageError("the demo package is not installed: reinstall rnnt (pip install rnnt) from a full source tree")
    args.prog_name = f"rnnt {args.command}"
    return dictation.run(args)
