"""Dev-set evaluation of a TF model through the shared step interface and decoder, and feature statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rnnt.audio import load_audio
from rnnt.config import FeatureConfig
from rnnt.data.manifest import Utterance
from rnnt.features import log_mel
from rnnt.metrics import corpus_error_rates
from rnnt.text import normalize_text
from rnnt.tokens import TokenTable


@dataclass(frozen=True)
class EvalResult:
    wer: float
    cer: float
    hypotheses: tuple[str, ...]
    references: tuple[str, ...]


def decode_utterances(step_model, tokens: Sequence[str], utterances: Sequence[Utterance],
                      feature_cfg: FeatureConfig, beam: int = 1) -> list[str]:
    """Decode each utterance's audio with any `StepModel` (TF or TFLite) via `rnnt.decoding`."""
    from rnnt.decoding import DecodingOptions, decode_features

    table = TokenTable(list(tokens))
    options = DecodingOptions(beam=beam)
    texts = []
    for utt in utterances:
        feats = log_mel(load_audio(utt.audio, feature_cfg.sample_rate), feature_cfg)
        hyp = decode_features(step_model, feats, options, feature_cfg)
        texts.append(table.decode(hyp.tokens))
    return texts


def evaluate_model(model, tokens: Sequence[str], utterances: Sequence[Utterance], feature_cfg: FeatureConfig,
                   beam: int = 1) -> EvalResult:
    """WER and CER of an `rnnt.model.RNNT` on utterances, references normalized with `normalize_text`."""
    from rnnt.model import TFStepModel

    hyps = decode_utterances(TFStepModel(model), tokens, utterances, feature_cfg, beam)
    refs = [normalize_text(u.text) for u in utterances]
    words, chars = corpus_error_rates(zip(refs, hyps))
    return EvalResult(words.rate, chars.rate, tuple(hyps), tuple(refs))


def feature_statistics(utterances: Sequence[Utterance], feature_cfg: FeatureConfig, *, limit: int = 200,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard deviation of log-mel features over a seeded sample of utterances."""
    if not utterances:
        raise ValueError("no utterances to compute feature statistics from")
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(utterances))[:limit]
    total = np.zeros(feature_cfg.num_mels)
    squares = np.zeros(feature_cfg.num_mels)
    count = 0
    for i in picks:
        feats = log_mel(load_audio(utterances[i].audio, feature_cfg.sample_rate), feature_cfg).astype(np.float64)
        total += feats.sum(0)
        squares += np.square(feats).sum(0)
        count += len(feats)
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - mean**2, 1e-6))
    return mean.astype(np.float32), std.astype(np.float32)
