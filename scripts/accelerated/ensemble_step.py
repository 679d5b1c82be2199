"""Several bundles decoded as one model: their joint outputs combined on every step of one beam search.

`EnsembleStepModel` is a `rnnt.decoding.StepModel` over member step models that share a vocabulary, chunk size and
frame rate: the streaming states and the encoder / prediction outputs are the members' side by side, so the
decoders run unchanged, and `joint` combines the members' log-probabilities, weighted:

- ``logprob`` (default): the weighted mean of the log-probabilities, renormalized (a product of experts);
- ``prob``: the log of the weighted mean of the probabilities (a mixture).

A probe for `screen_weights.py --ensemble`: what decoding several trained networks together buys over each alone
(docs/default-model.md, session 31). It is numpy only, like the runtime.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Sequence

import numpy as np

COMBINE = ("logprob", "prob")


def _log_normalize(x: np.ndarray) -> np.ndarray:
    top = x.max(-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(-1, keepdims=True))


class EnsembleStepModel:
    """Members' states and outputs concatenated, their joints combined (see the module docstring)."""

    def __init__(self, members: Sequence, weights: Sequence[float] | None = None, combine: str = "logprob"):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {', '.join(COMBINE)}, got {combine!r}")
        weights = [1.0] * len(members) if weights is None else list(weights)
        if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"need one weight >= 0 a member ({len(members)}), not all 0, got {weights}")
        first = members[0].config
        for m in members[1:]:
            for field in ("vocab_size", "num_mels", "chunk_frames", "frame_stack", "time_reduction_after",
                          "time_reduction_factor"):
                if getattr(m.config, field) != getattr(first, field):
                    raise ValueError(f"members differ in {field}: {getattr(first, field)} and "
                                     f"{getattr(m.config, field)}")
        self.members = list(members)
        self.config = first  # the decoders read the vocabulary, chunk and frame rate from it: the members share them
        self.metadata = getattr(members[0], "metadata", None)
        self.combine = combine
        self._weights = np.asarray(weights, np.float64) / sum(weights)
        self._enc_state = [m.config.encoder_state_size for m in members]
        self._pred_state = [m.config.predictor_state_size for m in members]
        self._enc_out = [m.config.encoder_proj for m in members]
        self._pred_out = [m.config.predictor_proj for m in members]

    @staticmethod
    def _split(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
        if x.shape[-1] != sum(sizes):
            raise ValueError(f"expected a last axis of {sum(sizes)} (members {sizes}), got {x.shape}")
        return np.split(x, np.cumsum(sizes)[:-1], axis=-1)

    def initial_encoder_state(self) -> np.ndarray:
        return np.concatenate([m.initial_encoder_state() for m in self.members], -1)

    def initial_predictor_state(self, n: int) -> np.ndarray:
        return np.concatenate([m.initial_predictor_state(n) for m in self.members], -1)

    def encode(self, feats: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [m.encode(feats, s) for m, s in zip(self.members, self._split(state, self._enc_state))]
        return np.concatenate([o[0] for o in outs], -1), np.concatenate([o[1] for o in outs], -1)

    def predict(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [m.predict(tokens, s) for m, s in zip(self.members, self._split(state, self._pred_state))]
        return np.concatenate([o[0] for o in outs], -1), np.concatenate([o[1] for o in outs], -1)

    def joint(self, enc: np.ndarray, pred: np.ndarray) -> np.ndarray:
        logprobs = [m.joint(e, p).astype(np.float64) for m, e, p in
                    zip(self.members, self._split(enc, self._enc_out), self._split(pred, self._pred_out))]
        if self.combine == "logprob":
            out = _log_normalize(sum(w * lp for w, lp in zip(self._weights, logprobs)))
        else:
            with np.errstate(divide="ignore"):
                out = np.log(sum(w * np.exp(lp) for w, lp in zip(self._weights, logprobs)))
        return out.astype(np.float32)


def bundle_ensemble(paths: Sequence[str], weights: Sequence[float] | None = None,
                    combine: str = "logprob") -> tuple[Callable[[], EnsembleStepModel], object]:
    """A factory of ensembles of bundles (one per decoding thread: a bundle's interpreter is not thread-safe) and
    the first bundle's metadata; the bundles must share their tokens and feature settings."""
    from rnnt.bundle import TFLiteStepModel, read_metadata

    metadata = [read_metadata(p) for p in paths]
    for path, m in zip(paths[1:], metadata[1:]):
        if m.tokens != metadata[0].tokens or m.features != metadata[0].features:
            raise ValueError(f"{path}: other tokens or feature settings than {paths[0]}")
    return (lambda: EnsembleStepModel([TFLiteStepModel(p) for p in paths], weights, combine)), metadata[0]


def evaluate_ensemble(paths: Sequence[str], manifest: str, *, beam: int, limit: int | None, results_path: str,
                      weights: Sequence[float] | None = None, combine: str = "logprob",
                      jobs: int | None = None) -> dict:
    """`rnnt.recipe.evaluate_bundle` for an ensemble of bundles: the runtime's recognizer (endpoints included) over
    the manifest, results written as `rnnt eval --results` JSONL, corpus WER and CER returned."""
    from rnnt.commands.evaluate import Scored
    from rnnt.commands.transcribe import transcribe_all
    from rnnt.data.manifest import read_manifest
    from rnnt.inputs import Input
    from rnnt.metrics import corpus_error_rates
    from rnnt.recipe import eval_jobs
    from rnnt.runtime import Recognizer

    factory, metadata = bundle_ensemble(paths, weights, combine)
    recognizer = Recognizer.from_step_model(factory, metadata.tokens, metadata.features, beam=beam)
    utterances = read_manifest(manifest)
    utterances = utterances[:limit] if limit else utterances
    jobs = jobs or eval_jobs()
    started, pairs = time.time(), []
    with open(results_path, "w", encoding="utf-8") as f:
        for u, t in zip(utterances, transcribe_all(recognizer, [Input(x.audio) for x in utterances], jobs)):
            if not t.ok:
                raise RuntimeError(f"{u.audio}: {t.error}")
            scored = Scored.of(u, t.text)
            f.write(json.dumps(scored.record(), ensure_ascii=False) + "\n")
            pairs.append((scored.ref, scored.hyp))
    words, chars = corpus_error_rates(pairs)
    return {"wer": words.rate, "cer": chars.rate, "utterances": len(pairs), "seconds": round(time.time() - started, 1)}
