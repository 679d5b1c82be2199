"""Benchmark the runtime on a bundle and a manifest (one thread): RTF, peak memory, load time, partial latency.

    python scripts/bench_runtime.py --model model.tflite --manifest test.jsonl [--beam 4] [--json]

The same as `rnnt bench`; see `rnnt.benchmark` for how each figure is measured.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from rnnt.commands import bench

    parser = argparse.ArgumentParser(prog="bench_runtime.py")
    sub = parser.add_subparsers(dest="command")
    bench.add_parser(sub, "bench")
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    from rnnt.cli import UsageError

    try:
        return args.run(args)
    except UsageError as e:
        print(f"bench_runtime.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
