"""`rnnt quantize model.tflite --mode dynamic|int8|float16 [--calibration MANIFEST] -o out.tflite`.

A .tflite file holds no TensorFlow graph to re-convert, so this re-exports from the checkpoint the float bundle
records as its source (``source_checkpoint`` in the metadata, or ``--checkpoint RUN``) in the requested mode,
then reports file sizes, per-chunk latency and, with a manifest, WER against the float bundle.
"""

from __future__ import annotations

import argparse
import os
import sys

MODES = ("dynamic", "int8", "float16")


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="quantize a float bundle (dynamic-range, full int8 or float16)",
        description="Write a quantized copy of a float32 bundle: dynamic (int8 weights), int8 (int8 weights and "
        "activations, float inputs and outputs, calibrated on --calibration speech) or float16 (float16 "
        "weights). Prints sizes and per-chunk latency of both files and, with --calibration, the WER of the "
        "quantized bundle against the float one.",
    )
    p.add_argument("bundle", metavar="MODEL.tflite", help="a float32 bundle written by `rnnt export`")
    p.add_argument("--mode", choices=MODES, required=True, help="quantization mode")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tflite", help="quantized bundle to write")
    p.add_argument("--calibration", metavar="MANIFEST",
                   help="JSONL manifest of speech: int8 calibration data and the WER comparison (required for int8)")
    p.add_argument("--checkpoint", metavar="RUN",
                   help="run folder or checkpoint to re-convert (default: the bundle's source_checkpoint)")
    p.add_argument("--max-utterances", type=int, default=100, help="manifest utterances to use (default 100)")
    p.add_argument("--latency-runs", type=int, default=200, help="chunks timed per bundle (default 200)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from rnnt.bundle import BundleError, TFLiteStepModel, read_metadata
    from rnnt.cli import UsageError
    from rnnt.commands.export import check_calibration_args

    check_calibration_args(args)
    if args.max_utterances < 1 or args.latency_runs < 1:
        raise UsageError("--max-utterances and --latency-runs must be positive")
    if os.path.abspath(args.output) == os.path.abspath(args.bundle):
        raise UsageError("-o must differ from the input bundle")
    try:
        meta = read_metadata(args.bundle)
    except BundleError as e:
        print(f"rnnt quantize: {e}", file=sys.stderr)
        return 1
    if meta.quantization_mode != "float32":
        print(f"rnnt quantize: {args.bundle} is already {meta.quantization_mode}: quantize a float32 bundle",
              file=sys.stderr)
        return 1
    source = args.checkpoint or meta.extra.get("source_checkpoint")
    if not source:
        print(f"rnnt quantize: {args.bundle} records no source checkpoint: pass --checkpoint RUN", file=sys.stderr)
        return 1
    if not os.path.exists(source) and not os.path.exists(source + ".index"):
        print(f"rnnt quantize: the source checkpoint {source} is gone: pass --checkpoint RUN", file=sys.stderr)
        return 1

    from export.checkpoint import RunError, load_run
    from export.tflite import ExportError, export_bundle
    from quantize.report import chunk_latency, compare_transcripts, format_size, manifest_features, transcribe

    try:
        model, config, tokens, info = load_run(source)
    except RunError as e:
        print(f"rnnt quantize: {e} (pass --checkpoint RUN)", file=sys.stderr)
        return 1
    if model.cfg != meta.model or list(tokens) != list(meta.tokens):
        print(f"rnnt quantize: {source} is not the model of {args.bundle} (model config or tokens differ): "
              "pass --checkpoint RUN", file=sys.stderr)
        return 1
    features, texts = (None, None)
    if args.calibration:
        features, texts = manifest_features(args.calibration, meta.features, args.max_utterances)
    training = dict(meta.training)
    try:
        report = export_bundle(
            model, tokens, meta.features, args.output, training_info=training, quantization=args.mode,
            calibration_features=features, source_checkpoint=info["checkpoint"],
            sentencepiece=info.get("sentencepiece"),
        )
    except ExportError as e:
        print(f"rnnt quantize: {e}", file=sys.stderr)
        return 1

    float_step = TFLiteStepModel(args.bundle, num_threads=1)
    quant_step = TFLiteStepModel(args.output, num_threads=1)
    float_size = os.path.getsize(args.bundle)
    print(f"float32  {args.bundle}: {format_size(float_size)} ({float_size:,} bytes)")
    print(f"{args.mode:<8} {args.output}: {format_size(report.size_bytes)} ({report.size_bytes:,} bytes), "
          f"{100 * report.size_bytes / float_size:.1f}% of float")
    f = meta.features
    chunk_ms = 1000 * meta.model.chunk_frames * f.hop_length / f.sample_rate
    for name, step in (("float32", float_step), (args.mode, quant_step)):
        lat = chunk_latency(step, runs=args.latency_runs)
        print(f"latency {name:<8} {lat['median_us']:8.0f} us per {chunk_ms:g} ms chunk (median of {lat['runs']}, "
              f"1 thread; encode {lat['encode_us']:.0f}, predict {lat['predict_us']:.0f}, joint {lat['joint_us']:.0f}; "
              f"real-time factor {lat['median_us'] / 1000 / chunk_ms:.4f})")
    if features:
        float_hyps = transcribe(float_step, features)
        quant_hyps = transcribe(quant_step, features)
        cmp = compare_transcripts(texts, float_hyps, quant_hyps)
        print(f"WER {args.mode} vs float32 bundle: {100 * cmp['wer_vs_float']:.2f}% over {cmp['utterances']} "
              f"utterances ({cmp['identical']} transcripts identical)")
        print(f"WER vs reference: float32 {100 * cmp['wer_float']:.2f}%, {args.mode} {100 * cmp['wer_quantized']:.2f}%")
    return 0
