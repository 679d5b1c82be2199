"""How fast the clips of each manifest are read: characters a second, the median over its clips.

    python scripts/speaking_rate.py runs/recipe-default/real-dev.jsonl runs/recipe-default/real-dev-lj.jsonl \
        runs/recipe-default/corpus/real-train.jsonl --limit 150

A clip's characters are those of its normalized text (`rnnt.text.normalize_text`: letters, apostrophes and the
spaces between words). Two rates a clip: over the whole clip, and over its speech span, from the first to the last
10 ms frame whose peak is within `--floor-db` of the clip's (`rnnt.corpus.synth.trim_silence`: leading and trailing
silence left out, pauses kept).
`--limit N` takes a seeded sample of N clips a manifest.
"""

from __future__ import annotations

import argparse
import random
import sys

import numpy as np

from rnnt.audio import load_audio
from rnnt.corpus.synth import trim_silence
from rnnt.data.manifest import read_manifest
from rnnt.text import normalize_text

RATE = 16000
FRAME = RATE // 100  # trim_silence's 10 ms frames


def speech_seconds(audio: np.ndarray, floor_db: float = 35.0) -> float:
    """Seconds from the first to the last 10 ms frame whose peak is within `floor_db` of the clip's (0 for silence)."""
    if not np.any(audio):
        return 0.0
    return len(trim_silence(audio, RATE, lead=0.0, tail=0.0, threshold_db=-floor_db)) / RATE


def clip_rates(audio: np.ndarray, text: str, floor_db: float = 35.0) -> tuple[float, float]:
    """Characters a second of one clip: over the whole clip and over its speech span."""
    chars = len(normalize_text(text))
    return chars / (len(audio) / RATE), chars / max(speech_seconds(audio, floor_db), FRAME / RATE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("manifests", nargs="+")
    p.add_argument("--limit", type=int, default=0, help="a seeded sample of this many clips a manifest (0: all)")
    p.add_argument("--floor-db", type=float, default=35.0, help="speech frames: a peak within this of the clip's")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for path in args.manifests:
        utterances = list(read_manifest(path))
        if args.limit and len(utterances) > args.limit:
            utterances = random.Random(args.seed).sample(utterances, args.limit)
        rates = np.array([clip_rates(load_audio(u.audio, RATE), u.text, args.floor_db) for u in utterances])
        whole, speech = np.median(rates, axis=0)
        print(f"{path}\t{whole:.1f} chars/s whole clip\t{speech:.1f} chars/s speech span\t({len(rates)} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
