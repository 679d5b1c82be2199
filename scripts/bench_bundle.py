"""Export a randomly initialised RNNT in every quantization mode and report size, latency and error.

    python scripts/bench_bundle.py --units 128 --proj 64 --vocab 64 --mels 80 --out /tmp/bench

Sizes depend only on the architecture, so this gives real file sizes and per-chunk latency for any config
without a trained model. Errors are measured on synthetic audio (noise and tones), relative to the float bundle.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def synthetic_features(feature_cfg, count: int, seconds: float, seed: int = 0) -> list[np.ndarray]:
    """Log-mel of noise bursts and gliding tones (not speech, but with speech-like dynamics)."""
    from rnnt.features import log_mel

    rng = np.random.default_rng(seed)
    sr = feature_cfg.sample_rate
    out = []
    for _ in range(count):
        n = int(seconds * sr)
        t = np.arange(n) / sr
        f0 = rng.uniform(100, 300) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        x = sum(np.sin(k * phase) / k for k in range(1, 8))
        envelope = (np.sin(2 * np.pi * rng.uniform(2, 5) * t) > 0).astype(float) * 0.8 + 0.2
        x = 0.1 * x * envelope + 0.02 * rng.normal(size=n)
        out.append(log_mel(x.astype(np.float32), feature_cfg))
    return out


def build_model(args):
    from rnnt.config import FeatureConfig, ModelConfig
    from rnnt.model import RNNT

    cfg = ModelConfig(
        vocab_size=args.vocab, num_mels=args.mels, encoder_layers=args.layers, encoder_units=args.units,
        encoder_proj=args.proj, time_reduction_after=min(1, args.layers - 2), embed_dim=args.embed,
        predictor_layers=1, predictor_units=args.units, predictor_proj=args.proj, joint_dim=args.joint,
        chunk_frames=args.chunk,
    )
    model = RNNT(cfg, seed=args.seed)
    fcfg = FeatureConfig(num_mels=args.mels)
    return model, fcfg


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--mels", type=int, default=80)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--units", type=int, default=128)
    p.add_argument("--proj", type=int, default=64)
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--joint", type=int, default=64)
    p.add_argument("--chunk", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", default="float32,dynamic,int8,float16")
    p.add_argument("--utterances", type=int, default=8, help="synthetic calibration utterances")
    p.add_argument("--runs", type=int, default=300, help="chunks timed per bundle")
    p.add_argument("--out", default="/tmp/rnnt-bench")
    args = p.parse_args(argv)

    from export.tflite import export_bundle
    from quantize.report import chunk_latency
    from rnnt.bundle import TFLiteStepModel
    from rnnt.decoding import encode_features

    model, fcfg = build_model(args)
    feats = synthetic_features(fcfg, args.utterances, 2.0)
    allf = np.concatenate(feats)
    model.set_feature_stats(allf.mean(0), allf.std(0))
    tokens = ["<blk>"] + [f"t{i}" for i in range(1, args.vocab)]
    os.makedirs(args.out, exist_ok=True)
    params = int(sum(np.prod(v.shape) for v in model.variables))
    print(f"model: {model.cfg}\nparameters: {params:,} ({4 * params:,} bytes as float32)")
    results = {}
    for mode in args.modes.split(","):
        path = os.path.join(args.out, f"{mode}.tflite")
        t = time.perf_counter()
        report = export_bundle(model, tokens, fcfg, path, quantization=mode,
                               calibration_features=feats if mode == "int8" else None)
        step = TFLiteStepModel(path, num_threads=1)
        lat = chunk_latency(step, runs=args.runs)
        encs = np.concatenate([np.stack(list(encode_features(step, f, fcfg))) for f in feats[:2]])
        results[mode] = (report, lat, encs, time.perf_counter() - t)
    base = results.get("float32")
    print(f"{'mode':<8} {'bytes':>10} {'% float':>8} {'chunk us':>9} {'enc us':>7} {'pred us':>7} {'joint us':>8}"
          f" {'enc rel err':>11}")
    for mode, (report, lat, encs, secs) in results.items():
        pct = 100 * report.size_bytes / base[0].size_bytes if base else float("nan")
        err = (np.sqrt(np.mean((encs - base[2]) ** 2)) / np.sqrt(np.mean(base[2] ** 2))) if base else float("nan")
        print(f"{mode:<8} {report.size_bytes:>10,} {pct:>7.1f}% {lat['median_us']:>9.0f} {lat['encode_us']:>7.0f}"
              f" {lat['predict_us']:>7.0f} {lat['joint_us']:>8.0f} {err:>11.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
