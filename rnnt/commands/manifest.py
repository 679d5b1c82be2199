"""`rnnt manifest FORMAT SRC -o OUT.jsonl`: index a corpus into a JSONL manifest."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

FORMATS = {
    "librispeech": "a LibriSpeech folder (speaker/chapter/*.trans.txt + .flac)",
    "commonvoice": "a Common Voice TSV (train.tsv, dev.tsv, ...) with clips/ beside it",
    "ljspeech": "an LJSpeech folder (metadata.csv + wavs/)",
    "tsv": "an id<TAB>text file with audio/<id>.<wav|flac|ogg|mp3> beside it",
}


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="build a JSONL manifest from a corpus",
        description="Index a corpus into a JSONL manifest ({audio, text, duration, id, speaker} a line). "
        + " ".join(f"{k}: {v}." for k, v in FORMATS.items()),
    )
    p.add_argument("format", choices=sorted(FORMATS), help="corpus layout")
    p.add_argument("source", metavar="SRC", help="corpus folder (librispeech, ljspeech) or TSV file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.jsonl", help="manifest to write")
    p.add_argument("--audio-dir", help="audio folder (tsv: default SRC's folder/audio; commonvoice: .../clips)")
    p.add_argument("--relative", action="store_true", help="write audio paths relative to the manifest")
    p.add_argument("--max-duration", type=float, default=None, help="leave out utterances longer than this (s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from rnnt.cli import UsageError
    from rnnt.data import importers
    from rnnt.data.manifest import total_duration, write_manifest

    if not os.path.exists(args.source):
        raise UsageError(f"{args.source}: no such file or folder")
    if args.audio_dir and args.format not in ("tsv", "commonvoice"):
        raise UsageError("--audio-dir applies to the tsv and commonvoice formats only")
    progress = not args.quiet
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if args.format == "librispeech":
                utts = importers.import_librispeech(args.source, progress=progress)
            elif args.format == "commonvoice":
                utts = importers.import_common_voice(args.source, args.audio_dir, progress=progress)
            elif args.format == "ljspeech":
                utts = importers.import_ljspeech(args.source, progress=progress)
            else:
                utts = importers.import_tsv(args.source, args.audio_dir, progress=progress)
        except (ValueError, FileNotFoundError) as e:
            print(f"rnnt manifest: error: {e}", file=sys.stderr)
            return 1
    for w in caught:
        print(f"rnnt manifest: warning: {w.message}", file=sys.stderr)
    dropped = 0
    if args.max_duration is not None:
        kept = [u for u in utts if u.duration <= args.max_duration]
        dropped, utts = len(utts) - len(kept), kept
    count = write_manifest(args.output, utts, relative=args.relative)
    extra = f", {dropped} longer than {args.max_duration:g} s left out" if dropped else ""
    print(f"wrote {count} utterances ({total_duration(utts) / 3600:.2f} h) to {args.output}{extra}", file=sys.stderr)
    return 0
