#!/usr/bin/env python3
"""Baseline: word and character error rates of CMU PocketSphinx (pip `pocketsphinx` 5.x) on manifests.

Decodes every utterance of each JSONL manifest with PocketSphinx's bundled US English model (default
`Decoder()`: en-us acoustic model, cmudict-en-us.dict, en-us.lm.bin), normalizes reference and hypothesis
with `rnnt.text.normalize_text` and scores them with `rnnt.metrics.corpus_error_rates`.

    python scripts/baseline_pocketsphinx.py MANIFEST [MANIFEST...] [--limit N] [--json OUT.json]
        [--results OUT.jsonl]

Prints one row per manifest (name, utterances, audio seconds, WER %, CER %, RTF). `--json` writes
``{manifest_path: {"name", "wer", "cer", "utterances", "seconds", "rtf", ...}}`` (rates as fractions);
`--results` writes one JSON line per utterance (manifest, id, audio, ref, hyp, normalized forms).
RTF is PocketSphinx decoding time over audio time (audio loading and resampling excluded).

Importable: `pocketsphinx_wer(utterances)` scores a list of `rnnt.data.manifest.Utterance` and returns the
same summary dict as one `--json` entry. Requires `pip install pocketsphinx`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from typing import Any, Iterable, Sequence

import numpy as np

SAMPLE_RATE = 16000

__all__ = ["SAMPLE_RATE", "make_decoder", "decode", "clean_hypothesis", "pocketsphinx_wer", "main"]

# PocketSphinx output tokens that are not words: fillers (<s>, </s>, <sil>, [NOISE], ++NOISE++) and the
# alternate-pronunciation suffix of dictionary entries ("the(2)").
_FILLER_RE = re.compile(r"^(<[^>]*>|\[[^\]]*\]|\+\+[^+]*\+\+)$")
_VARIANT_RE = re.compile(r"\(\d+\)$")


def _require_pocketsphinx():
    try:
        import pocketsphinx
    except ImportError:
        raise SystemExit("pocketsphinx is not installed: pip install pocketsphinx") from None
    return pocketsphinx


def pocketsphinx_version() -> str:
    try:
        from importlib.metadata import version

        return version("pocketsphinx")
    except Exception:
        return "unknown"


def make_decoder(**options: Any):
    """A PocketSphinx decoder with the bundled en-us model (logging off unless `loglevel` is given)."""
    pocketsphinx = _require_pocketsphinx()
    options.setdefault("loglevel", "FATAL")
    decoder = pocketsphinx.Decoder(**options)
    rate = int(decoder.config["samprate"])
    if rate != SAMPLE_RATE:
        raise ValueError(f"pocketsphinx model expects {rate} Hz audio, this script feeds {SAMPLE_RATE} Hz")
    return decoder


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as little-endian int16 bytes (clipped)."""
    x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return np.round(x * 32767.0).astype("<i2").tobytes()


def clean_hypothesis(text: str) -> str:
    """Drop filler tokens and pronunciation-variant suffixes from a PocketSphinx hypothesis."""
    words = []
    for token in text.split():
        if _FILLER_RE.match(token):
            continue
        token = _VARIANT_RE.sub("", token)
        if token:
            words.append(token)
    return " ".join(words)


def decode(decoder, samples: np.ndarray) -> str:
    """Raw PocketSphinx hypothesis of one utterance of 16 kHz float32 mono samples ("" when none)."""
    decoder.start_utt()
    decoder.process_raw(to_pcm16(samples), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None and hyp.hypstr else ""


def _progress(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a project dependency
        return None
    return tqdm(total=total, desc=desc, unit="utt", file=sys.stderr, disable=not enabled, leave=False)


def pocketsphinx_wer(
    utterances: Sequence,
    *,
    decoder=None,
    limit: int | None = None,
    progress: bool = False,
    desc: str = "pocketsphinx",
    records: list | None = None,
) -> dict:
    """Score PocketSphinx on `utterances` (objects with `.audio`, `.text`, optional `.id`).

    Returns {"wer", "cer" (fractions), "utterances", "seconds" (audio), "rtf", "decode_seconds",
    "word_errors", "ref_words", "char_errors", "ref_chars", "model", "pocketsphinx"}. When `records` is a
    list, one dict per utterance (id, audio, ref, hyp, ref_norm, hyp_norm) is appended to it.
    """
    from rnnt.audio import load_audio
    from rnnt.metrics import corpus_error_rates
    from rnnt.text import normalize_text

    if limit is not None:
        utterances = list(utterances)[: max(0, limit)]
    decoder = decoder if decoder is not None else make_decoder()
    pairs: list[tuple[str, str]] = []
    seconds = decode_seconds = 0.0
    bar = _progress(len(utterances), desc, progress)
    try:
        for u in utterances:
            samples = load_audio(u.audio, SAMPLE_RATE)
            seconds += len(samples) / SAMPLE_RATE
            start = time.perf_counter()
            raw = decode(decoder, samples)
            decode_seconds += time.perf_counter() - start
            ref, hyp = normalize_text(u.text), normalize_text(clean_hypothesis(raw))
            pairs.append((ref, hyp))
            if records is not None:
                records.append(
                    {"id": getattr(u, "id", None), "audio": u.audio, "ref": u.text, "hyp": raw,
                     "ref_norm": ref, "hyp_norm": hyp}
                )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    words, chars = corpus_error_rates(pairs)
    return {
        "wer": words.rate,
        "cer": chars.rate,
        "utterances": len(pairs),
        "seconds": round(seconds, 3),
        "rtf": decode_seconds / seconds if seconds else float("nan"),
        "decode_seconds": round(decode_seconds, 3),
        "word_errors": words.errors,
        "ref_words": words.reference_length,
        "char_errors": chars.errors,
        "ref_chars": chars.reference_length,
        "model": "pocketsphinx default en-us (en-us acoustic model, cmudict-en-us.dict, en-us.lm.bin)",
        "pocketsphinx": pocketsphinx_version(),
    }


def _names(paths: Sequence[str]) -> list[str]:
    """Short display names: the file stem, or parent/stem when stems collide."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    out = []
    for path, stem in zip(paths, stems):
        if stems.count(stem) > 1 or stem in ("dev", "test", "train", "manifest"):
            parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
            stem = f"{parent}/{stem}" if parent else stem
        out.append(stem)
    return out


def _format_table(rows: Iterable[tuple[str, dict]]) -> str:
    header = f"{'manifest':<24} {'utts':>6} {'audio s':>9} {'WER %':>7} {'CER %':>7} {'RTF':>7}"
    lines = [header, "-" * len(header)]
    for name, s in rows:
        lines.append(
            f"{name:<24} {s['utterances']:>6d} {s['seconds']:>9.1f} {100 * s['wer']:>7.2f} "
            f"{100 * s['cer']:>7.2f} {s['rtf']:>7.3f}"
        )
    return "\n".join(lines)


def _finite(x: float) -> float | None:
    return x if isinstance(x, float) and math.isfinite(x) else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", metavar="MANIFEST", help="JSONL manifest(s)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N utterances of each")
    parser.add_argument("--json", metavar="OUT.json", help="write the per-manifest summary here")
    parser.add_argument("--results", metavar="OUT.jsonl", help="write per-utterance hypotheses here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    from rnnt.data.manifest import ManifestError, read_manifest

    _require_pocketsphinx()
    decoder = make_decoder()
    summary: dict[str, dict] = {}
    records: list[dict] = []
    rows = []
    for path, name in zip(args.manifests, _names(args.manifests)):
        try:
            utterances = read_manifest(path)
        except (OSError, ManifestError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        own: list[dict] = []
        stats = pocketsphinx_wer(
            utterances, decoder=decoder, limit=args.limit, progress=not args.no_progress, desc=name, records=own
        )
        records.extend({"manifest": path, **r} for r in own)
        summary[path] = {"name": name, **stats, "rtf": _finite(stats["rtf"])}
        rows.append((name, stats))
        print(_format_table(rows[-1:]).splitlines()[-1] if len(rows) > 1 else _format_table(rows), flush=True)

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    if args.results:
        with open(args.results, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
