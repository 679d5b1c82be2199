"""`rnnt bench`: real-time factor, peak memory, model load time and partial-result latency of a bundle."""

from __future__ import annotations

import argparse
import sys

from rnnt.commands.argtypes import positive_float, positive_int
from rnnt.commands.transcribe import add_level_argument
from rnnt.decoding import DEFAULT_BEAM

DESCRIPTION = """\
Stream each utterance of a manifest through the runtime on one thread, feeding audio in small blocks as a live
application would, and print: real-time factor (processing seconds per audio second; median over utterances
and overall), peak memory (peak RSS), model load time, and the delay from the end of each word in the audio to
its first appearance in a partial result (median and 90th percentile; also with the processing time added).
Without --manifest, 10 s of synthetic audio is used (no latency figures unless words are recognized). Each
utterance is a new stream: with the default level control it looks 1.5 s ahead until it has heard speech, which
delays the words of its first window (--no-level measures without it).
"""




def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="measure speed, memory, load time and latency of a model bundle",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", metavar="BUNDLE", help="model bundle (.tflite); default: the packaged model")
    p.add_argument("--manifest", metavar="M", help="JSONL manifest of test audio; default: synthetic audio")
    p.add_argument("--beam", type=positive_int, default=DEFAULT_BEAM,
                   help=f"beam width, 1 for greedy (default {DEFAULT_BEAM})")
    p.add_argument("--threads", type=positive_int, default=1, help="TFLite threads (default 1)")
    p.add_argument("--feed-ms", type=positive_float, default=10.0, help="audio block size fed at a time (default 10 ms)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N utterances")
    p.add_argument("--json", action="store_true", help="print the report as JSON (with per-utterance figures)")
    add_level_argument(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from rnnt.audio import AudioError
    from rnnt.benchmark import run_benchmark
    from rnnt.bundle import BundleError
    from rnnt.cli import UsageError
    from rnnt.data.manifest import ManifestError
    from rnnt.runtime import NoDefaultModelError

    try:
        report = run_benchmark(
            args.model, args.manifest, beam=args.beam, num_threads=args.threads, feed_ms=args.feed_ms,
            limit=args.limit, level=args.level,
        )
    except NoDefaultModelError as e:
        raise UsageError(str(e)) from None
    except (BundleError, ManifestError, AudioError) as e:
        print(f"rnnt bench: error: {e}", file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        print(f"rnnt bench: error: {e.filename or e}: no such file", file=sys.stderr)
        return 1
    print(report.to_json() if args.json else report.format())
    return 0
