"""`rnnt eval MANIFEST`: word and character error rates of a model on a JSONL manifest.

References and hypotheses are normalized with `rnnt.text.normalize_text` before scoring. Prints WER, CER,
the real-time factor and the worst utterances. An utterance whose audio cannot be read costs one error line
and is left out of the scores; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

from rnnt.commands.transcribe import (
    Progress,
    add_model_arguments,
    add_progress_arguments,
    load_recognizer,
    positive_int,
    transcribe_all,
    want_progress,
)
from rnnt.metrics import ErrorCounts, char_errors, word_errors

PROG = "rnnt eval"


@dataclass(frozen=True)
class Scored:
    """One transcribed utterance against its reference, both normalized with `rnnt.text.normalize_text`."""

    uid: str
    audio: str
    ref: str
    hyp: str
    words: ErrorCounts
    chars: ErrorCounts

    @classmethod
    def of(cls, utterance, text: str) -> "Scored":
        from rnnt.text import normalize_text

        ref, hyp = normalize_text(utterance.text), normalize_text(text)
        uid = utterance.id or os.path.splitext(os.path.basename(utterance.audio))[0]
        return cls(uid, utterance.audio, ref, hyp, word_errors(ref, hyp), char_errors(ref, hyp))

    def record(self) -> dict:
        """The line `--results` writes for it."""
        return {"id": self.uid, "audio": self.audio, "ref": self.ref, "hyp": self.hyp,
                "wer": round(self.words.rate, 4), "cer": round(self.chars.rate, 4)}


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="word and character error rates on a manifest",
        description="Transcribe every utterance of a JSONL manifest ({audio, text, duration} a line) and print "
        "WER and CER (on normalized text), the real-time factor and the worst utterances. Exit status: 0, 1 if "
        "some audio could not be read, 2 for a usage error (bad manifest or model).",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="JSONL manifest")
    add_model_arguments(p)
    p.add_argument("--worst", type=int, default=5, metavar="N", help="show the N worst utterances (default 5; 0 for none)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N utterances")
    p.add_argument("--results", metavar="OUT.jsonl", help="write id, audio, ref, hyp, wer, cer of each utterance")
    add_progress_arguments(p)
    p.set_defaults(run=run)
    return p


def _pct(rate: float) -> str:
    return f"{100.0 * rate:6.2f} %"


def _counts(c, unit: str) -> str:
    return (
        f"({c.errors} error{'s' if c.errors != 1 else ''} in {c.reference_length} {unit}: {c.substitutions} substitutions, "
        f"{c.deletions} deletions, {c.insertions} insertions)"
    )


def run(args) -> int:
    from rnnt.cli import UsageError
    from rnnt.data.manifest import ManifestError, read_manifest
    from rnnt.inputs import Input

    if args.worst < 0:
        raise UsageError("--worst must be 0 or more")
    try:
        utterances = read_manifest(args.manifest)
    except FileNotFoundError:
        raise UsageError(f"{args.manifest}: no such manifest") from None
    except IsADirectoryError:
        raise UsageError(f"{args.manifest}: is a folder, expected a JSONL manifest") from None
    except (ManifestError, UnicodeDecodeError) as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{args.manifest}: {e.strerror or e}") from None
    if args.limit:
        utterances = utterances[: args.limit]
    if not utterances:
        raise UsageError(f"{args.manifest}: the manifest holds no utterances")
    recognizer = load_recognizer(args.model, args.beam, args.threads, args.level)

    inputs = [Input(u.audio) for u in utterances]
    total = sum(u.duration for u in utterances)
    progress = Progress(want_progress(args.progress, inputs, total), total, len(inputs))
    results_file = None
    if args.results:
        try:
            results_file = open(args.results, "w", encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {args.results}: {e.strerror or e}") from None

    words, chars = ErrorCounts(), ErrorCounts()
    rows = []
    failed = 0
    audio_seconds = 0.0
    started = time.perf_counter()
    try:
        for u, t in zip(utterances, transcribe_all(recognizer, inputs, args.jobs, on_audio=progress.advance)):
            progress.file_done()
            if not t.ok:
                failed += 1
                progress.message(f"{PROG}: error: {u.audio}: {t.error}")
                continue
            audio_seconds += t.duration
            scored = Scored.of(u, t.text)
            words += scored.words
            chars += scored.chars
            rows.append((scored.words.rate, scored.words.errors, scored.uid, scored.ref, scored.hyp,
                         scored.chars.rate))
            if results_file is not None:
                results_file.write(json.dumps(scored.record(), ensure_ascii=False) + "\n")
    finally:
        progress.close()
        if results_file is not None:
            results_file.close()
    elapsed = time.perf_counter() - started

    out = sys.stdout
    model = recognizer.bundle_path
    quant = getattr(getattr(recognizer, "metadata", None), "quantization_mode", None)
    print(f"model       {model}" + (f" ({quant})" if quant else ""), file=out)
    print(f"manifest    {args.manifest}", file=out)
    print(f"utterances  {len(rows)}" + (f" ({failed} failed, left out)" if failed else ""), file=out)
    if not rows:
        print(f"{PROG}: error: no utterance could be transcribed", file=sys.stderr)
        return 1
    print(f"audio       {audio_seconds:.1f} s", file=out)
    print(f"WER         {_pct(words.rate)}  {_counts(words, 'words')}", file=out)
    print(f"CER         {_pct(chars.rate)}  {_counts(chars, 'characters')}", file=out)
    rtf = elapsed / audio_seconds if audio_seconds > 0 else float("nan")
    jobs = f"{args.jobs} job{'s' if args.jobs != 1 else ''}"
    print(f"RTF         {rtf:.4f}  ({elapsed:.1f} s for {audio_seconds:.1f} s of audio, {jobs})", file=out)
    worst = [r for r in sorted(rows, key=lambda r: (-r[0], -r[5], -r[1], r[2])) if r[0] > 0 or r[5] > 0]
    if args.worst:
        if not worst:
            print("\nno utterance has errors", file=out)
        else:
            worst = worst[: args.worst]
            print(f"\n{len(worst)} worst utterance{'s' if len(worst) != 1 else ''}:", file=out)
            for wer, _, uid, ref, hyp, cer in worst:
                print(f"  {uid}  WER {100 * wer:.1f} %  CER {100 * cer:.1f} %", file=out)
                print(f"    ref: {ref}", file=out)
                print(f"    hyp: {hyp}", file=out)
    out.flush()
    return 1 if failed else 0
