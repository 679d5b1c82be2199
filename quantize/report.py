"""What `rnnt quantize` reports: per-chunk latency and transcripts/WER of two bundles (numpy only)."""

from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np

__all__ = ["manifest_features", "chunk_latency", "transcribe", "compare_transcripts", "format_size"]


def format_size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB"


def manifest_features(manifest: str, feature_cfg, limit: int | None = None) -> tuple[list[np.ndarray], list[str]]:
    """(log-mel features, transcripts) of the first `limit` utterances of a JSONL manifest (numpy front end)."""
    from rnnt.audio import load_audio
    from rnnt.data.manifest import read_manifest
    from rnnt.features import log_mel

    utterances = read_manifest(manifest)
    if limit is not None:
        utterances = utterances[:limit]
    feats, texts = [], []
    for u in utterances:
        feats.append(log_mel(load_audio(u.audio, feature_cfg.sample_rate), feature_cfg))
        texts.append(u.text)
    return feats, texts


def chunk_latency(step, runs: int = 200, warmup: int = 10, seed: int = 0) -> dict:
    """Median (and p90) microseconds of one streaming chunk: encode + predict (1 token) + joint over the chunk's
    encoder frames, through the step interface (`rnnt.bundle.TFLiteStepModel`, one thread as constructed)."""
    cfg = step.config
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(1, cfg.chunk_frames, cfg.num_mels)).astype(np.float32)
    enc_state = step.initial_encoder_state()
    pred_state = step.initial_predictor_state(1)
    token = np.zeros([1], np.int32)
    totals, parts = [], []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        enc, enc_state = step.encode(feats, enc_state)
        t1 = time.perf_counter()
        pred, pred_state = step.predict(token, pred_state)
        t2 = time.perf_counter()
        frames = enc[0]
        step.joint(frames, np.repeat(pred, len(frames), axis=0))
        t3 = time.perf_counter()
        if i >= warmup:
            totals.append(t3 - t0)
            parts.append((t1 - t0, t2 - t1, t3 - t2))
    p = np.median(np.array(parts), axis=0) * 1e6
    return {
        "median_us": float(np.median(totals) * 1e6),
        "p90_us": float(np.percentile(totals, 90) * 1e6),
        "encode_us": float(p[0]),
        "predict_us": float(p[1]),
        "joint_us": float(p[2]),
        "runs": runs,
    }


def transcribe(step, features: Iterable[np.ndarray], beam: int = 1) -> list[str]:
    """Text of each utterance (greedy by default) through `rnnt.decoding`, using the bundle's tokens."""
    from rnnt.decoding import DecodingOptions, decode_features
    from rnnt.tokens import TokenTable

    table = TokenTable(step.metadata.tokens)
    options = DecodingOptions(beam=beam)
    return [table.decode(decode_features(step, f, options, step.metadata.features).tokens) for f in features]


def compare_transcripts(references: Sequence[str], float_hyps: Sequence[str], quant_hyps: Sequence[str]) -> dict:
    """WER of the quantized bundle against the float bundle's output, and of both against the references."""
    from rnnt.metrics import word_errors
    from rnnt.text import normalize_text

    def wer(refs, hyps):
        total = None
        for r, h in zip(refs, hyps):
            e = word_errors(r, h)
            total = e if total is None else total + e
        return total.rate if total is not None else 0.0

    refs = [normalize_text(r) for r in references]
    return {
        "utterances": len(refs),
        "wer_vs_float": wer(float_hyps, quant_hyps),
        "wer_float": wer(refs, float_hyps),
        "wer_quantized": wer(refs, quant_hyps),
        "identical": sum(a == b for a, b in zip(float_hyps, quant_hyps)),
    }
