"""How the encoder's starting state changes recognition, on the clips of a manifest.

    python scripts/state_probe.py runs/recipe-default/real-dev-lj.jsonl --start cold joined warm \
        --warm-from runs/recipe-default/corpus/train.jsonl runs/recipe-default/corpus/real-train.jsonl

Each clip is decoded by the runtime (`rnnt.Recognizer`, beam 8, the level control on) three ways:
- `cold`: from the zero state, as `rnnt eval` does;
- `joined`: after the manifest's previous clip (the first clip after the last one; 0.2 s of silence between), as
  in a long stream that carries the encoder's state from one utterance to the next; only the clip's own words are
  scored (an insertion before a reference word counts for that word);
- `warm`: from the mean of the encoder states met from a quarter of the way into each of `--warm-clips` clips drawn
  from each `--warm-from` manifest (training clips: no dev set chooses it).
Prints the WER of each way on the same clips.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from rnnt.audio import load_audio
from rnnt.bundle import TFLiteStepModel
from rnnt.data.manifest import read_manifest
from rnnt.runtime import Recognizer, default_bundle_path
from rnnt.text import normalize_text

RATE = 16000


def errors_per_word(ref: list[str], hyp: list[str]) -> list[int]:
    """Edits charged to each reference word by one minimal alignment: a substitution or deletion to its word, an
    insertion to the reference word that follows it (the last word where none does)."""
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1), np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    charged, i, j = [0] * n, n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            charged[i - 1] += int(ref[i - 1] != hyp[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            charged[i - 1] += 1
            i -= 1
        else:
            if n:
                charged[min(i, n - 1)] += 1
            j -= 1
    return charged


@dataclasses.dataclass
class StartedModel:
    """A step model whose streams start from a given encoder state."""

    inner: TFLiteStepModel
    state: np.ndarray

    def initial_encoder_state(self) -> np.ndarray:
        return self.state.copy()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@dataclasses.dataclass
class StateRecorder:
    """A step model that keeps every encoder state it hands back."""

    inner: TFLiteStepModel
    seen: list = dataclasses.field(default_factory=list)

    def encode(self, feats: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        enc, new_state = self.inner.encode(feats, state)
        self.seen.append(np.array(new_state))
        return enc, new_state

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def recognizer(model, beam: int) -> Recognizer:
    return Recognizer.from_step_model(model, model.metadata.tokens, model.metadata.features, beam=beam)


def text_of(rec: Recognizer, audio: np.ndarray) -> str:
    return " ".join(r.text for r in rec.transcribe(audio, RATE))


def mean_state(bundle: str, manifests: list[str], clips: int, seed: int = 0) -> np.ndarray:
    """The mean encoder state from a quarter of the way into each clip on, over `clips` clips a manifest."""
    model = StateRecorder(TFLiteStepModel(bundle))
    rec, states = recognizer(model, beam=1), []
    for path in manifests:
        utts = read_manifest(path)
        for k in np.random.default_rng(seed).choice(len(utts), min(clips, len(utts)), replace=False):
            model.seen.clear()
            rec.transcribe(load_audio(utts[k].audio, RATE), RATE)
            states += model.seen[len(model.seen) // 4:]
    return np.mean(states, axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest")
    p.add_argument("-m", "--model", default=None, help="bundle (default: the packaged model)")
    p.add_argument("--start", nargs="+", choices=["cold", "joined", "warm"], default=["cold", "joined"])
    p.add_argument("--warm-from", nargs="*", default=[], metavar="MANIFEST", help="training manifests for `warm`")
    p.add_argument("--warm-clips", type=int, default=100)
    p.add_argument("--limit", type=int, default=0, help="only the first N clips (0: all)")
    p.add_argument("--gap", type=float, default=0.2, help="seconds of silence between joined clips")
    p.add_argument("--beam", type=int, default=8)
    args = p.parse_args(argv)
    bundle = args.model or default_bundle_path()
    if "warm" in args.start and not args.warm_from:
        p.error("--start warm needs --warm-from")
    utts = read_manifest(args.manifest)
    utts = utts[:args.limit] if args.limit else utts
    refs = [normalize_text(u.text).split() for u in utts]
    audio = [load_audio(u.audio, RATE) for u in utts]
    words = sum(len(r) for r in refs)
    for start in args.start:
        model = TFLiteStepModel(bundle)
        if start == "warm":
            model = StartedModel(model, mean_state(bundle, args.warm_from, args.warm_clips).astype(np.float32))
        rec = recognizer(model, args.beam)
        errors = 0
        for k, ref in enumerate(refs):
            if start == "joined":
                before = refs[k - 1]
                joined = np.concatenate([audio[k - 1], np.zeros(int(args.gap * RATE), np.float32), audio[k]])
                hyp = normalize_text(text_of(rec, joined)).split()
                errors += sum(errors_per_word(before + ref, hyp)[len(before):])
            else:
                errors += sum(errors_per_word(ref, normalize_text(text_of(rec, audio[k])).split()))
        print(f"{start:7s} WER {100 * errors / max(words, 1):6.2f} %  ({errors} errors in {words} words, "
              f"{len(refs)} clips)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
