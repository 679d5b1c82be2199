"""`rnnt corpus`: build the synthesized + real training corpus, list its voices, show its statistics."""

from __future__ import annotations

import argparse
import json
import sys


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="build the training corpus (synthesized and real speech)",
                              description="Build the training corpus: synthesized speech from the offline TTS "
                                          "voices plus the real recordings of the shared data folder.")
    sub = p.add_subparsers(dest="corpus_command", metavar="ACTION")

    b = sub.add_parser("build", help="build or resume a corpus", description=(
        "Build (or resume) a corpus: train.jsonl / dev.jsonl (synthesized), real-train.jsonl / real-dev.jsonl, "
        "mix.json and build.json, audio as 16 kHz FLAC. Deterministic for a seed; rerun the same command to "
        "resume after an interruption."))
    b.add_argument("--hours", type=float, required=True, help="hours of synthesized training speech (estimated "
                   "when planning, measured in build.json)")
    b.add_argument("-o", "--output", required=True, help="corpus folder")
    b.add_argument("--jobs", "-j", type=int, default=0, help="worker processes (default: all cores)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--dev-sentences", type=int, default=200, help="sentences held out for dev.jsonl")
    b.add_argument("--shared", default=None, help="shared data folder (default: $RNNT_SHARED or ../shared)")
    b.add_argument("--real", action=argparse.BooleanOptionalAction, default=True,
                   help="include the real recordings (FSDD, speechocean762)")
    b.add_argument("--real-share", type=float, default=0.25, help="share of each training batch from real speech "
                   "(written to mix.json)")
    b.add_argument("--real-copy", action=argparse.BooleanOptionalAction, default=True,
                   help="decode real recordings to FLAC in the corpus (--no-real-copy: reference the originals)")
    b.add_argument("--max-real", type=int, default=None, help="at most N real clips per set and split (tests)")
    b.add_argument("--real-dev-speakers", type=int, default=10, help="speechocean762 speakers held out for dev")
    b.add_argument("--augment-share", type=float, default=0.3, help="share of synthesized training utterances "
                   "augmented offline (noise, babble, reverberation, telephone, speed, gain)")
    b.add_argument("--engines", type=_csv, default=None,
                   help="TTS engines, comma separated (espeak,flite,festival,accent; accent is used only alone)")
    b.add_argument("--voices", default=None, metavar="REGEX", help="only voices whose id matches, e.g. 'en-us|slt'")
    b.add_argument("--sources", type=_csv, default=None,
                   help="text sources, comma separated (shared,fortunes,bible,wordnet,generated)")
    b.add_argument("--generated-sentences", type=int, default=20000,
                   help="numbers, dates, times, letters and digit strings generated for the text pool")
    b.add_argument("--babble-clips", type=int, default=64, help="size of the babble bank")
    b.add_argument("--max-words", type=int, default=30, help="longest sentence in words")
    b.add_argument("--speed-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="TTS rate of the training sentences, drawn log-uniform (default 0.8 1.25; the dev "
                        "sentences always use the default)")
    b.add_argument("--dry-run", action="store_true", help="plan and print the size estimate only")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    b.set_defaults(run=run_build)

    v = sub.add_parser("voices", help="list the available TTS voices and the dev hold-out")
    v.add_argument("--engines", type=_csv, default=None)
    v.add_argument("--voices", default=None, metavar="REGEX")
    v.set_defaults(run=run_voices)

    s = sub.add_parser("stats", help="hours, utterances, speakers of a built corpus")
    s.add_argument("folder")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(run=run_stats)

    p.set_defaults(run=run, _parser=p)
    return p


def run(args) -> int:
    args._parser.print_help(sys.stderr)
    return 2


def _stop_on_sigterm() -> None:
    """SIGTERM (and SIGINT, which a background job ignores) stop the build like Ctrl-C: workers are
    terminated, finished files stay, and the same command resumes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def run_build(args) -> int:
    import logging

    from rnnt.cli import UsageError
    from rnnt.corpus.build import BuildConfig, build_corpus

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _stop_on_sigterm()
    kwargs = dict(output=args.output, hours=args.hours, seed=args.seed, jobs=args.jobs, shared=args.shared,
                  dev_sentences=args.dev_sentences, real=args.real, real_share=args.real_share,
                  real_copy=args.real_copy, max_real=args.max_real, real_dev_speakers=args.real_dev_speakers,
                  augment_share=args.augment_share, voice_pattern=args.voices, babble_clips=args.babble_clips,
                  max_words=args.max_words, generated_count=args.generated_sentences)
    if args.engines:
        kwargs["engines"] = args.engines
    if args.sources:
        kwargs["sources"] = args.sources
    if args.speed_range:
        kwargs["speed_range"] = tuple(args.speed_range)
    try:
        cfg = BuildConfig(**kwargs)
        summary = build_corpus(cfg, progress=not args.quiet, dry_run=args.dry_run)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.dry_run:
        print(json.dumps(summary["plan"], indent=2))
        return 0
    return 0 if summary["status"] == "complete" else 1


def run_voices(args) -> int:
    from rnnt.corpus.voices import ENGINES, discover_voices, split_voices

    voices = discover_voices(args.engines or ENGINES, args.voices)
    train, dev = split_voices(voices)
    dev_ids = {v.id for v in dev}
    for v in voices:
        print(f"{v.id}\t{'dev' if v.id in dev_ids else 'train'}")
    print(f"{len(voices)} voices: {len(train)} train, {len(dev)} dev", file=sys.stderr)
    return 0


def run_stats(args) -> int:
    from rnnt.corpus.build import corpus_stats

    info = corpus_stats(args.folder)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    b = info.get("build", {})
    if b:
        print(f"status {b.get('status')}, built in {b.get('total_build_seconds')} s, "
              f"disk {b.get('disk_bytes', {}).get('total', 0) / 1e6:.1f} MB, seed {b.get('config', {}).get('seed')}")
    for name, m in info["manifests"].items():
        print(f"{name:18s} {m['utterances']:8d} utt {m['hours']:9.3f} h {m['speakers']:5d} speakers "
              f"{m['sentences']:7d} sentences")
    return 0
