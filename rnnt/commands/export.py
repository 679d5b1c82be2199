"""`rnnt export RUN_OR_CHECKPOINT -o model.tflite`: write the one-file TFLite bundle of a trained model."""

from __future__ import annotations

import argparse
import os
import sys

MODES = ("float32", "dynamic", "int8", "float16")


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="export a trained model to one .tflite bundle",
        description="Convert a training run (its latest checkpoint) or a checkpoint prefix to one TFLite file "
        "with the encode, predict and joint signatures and the tokens, feature settings and model config "
        "embedded as metadata (docs/bundle.md). Built-in TFLite ops only: export fails on any Flex or custom op.",
    )
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder (runs/NAME) or a checkpoint prefix")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tflite", help="bundle to write")
    p.add_argument("--mode", choices=MODES, default="float32",
                   help="quantization (default float32; `rnnt quantize` does the same from a float bundle)")
    p.add_argument("--calibration", metavar="MANIFEST", help="speech for int8 calibration (JSONL manifest)")
    p.add_argument("--max-utterances", type=int, default=100, help="calibration utterances to use (default 100)")
    p.set_defaults(run=run)
    return p


def check_calibration_args(args: argparse.Namespace) -> None:
    """Usage errors of --mode/--calibration, shared by `rnnt export` and `rnnt quantize`."""
    from rnnt.cli import UsageError

    if args.mode == "int8" and not args.calibration:
        raise UsageError("--mode int8 needs --calibration MANIFEST (real speech to calibrate activations)")
    if args.calibration and not os.path.isfile(args.calibration):
        raise UsageError(f"{args.calibration}: no such manifest")


def run(args: argparse.Namespace) -> int:
    from rnnt.cli import UsageError

    check_calibration_args(args)
    if not os.path.exists(args.source) and not os.path.exists(args.source + ".index"):
        raise UsageError(f"{args.source}: no such run folder or checkpoint")

    from export.checkpoint import RunError, load_run, training_info
    from export.tflite import ExportError, export_bundle
    from quantize.report import format_size, manifest_features

    try:
        model, config, tokens, info = load_run(args.source)
    except RunError as e:
        print(f"rnnt export: {e}", file=sys.stderr)
        return 1
    features = None
    if args.calibration:
        features, _ = manifest_features(args.calibration, config.features, args.max_utterances)
    try:
        report = export_bundle(
            model, tokens, config.features, args.output,
            training_info=training_info(config, info), quantization=args.mode, calibration_features=features,
            source_checkpoint=info["checkpoint"], sentencepiece=info.get("sentencepiece"),
        )
    except ExportError as e:
        print(f"rnnt export: {e}", file=sys.stderr)
        return 1
    print(f"wrote {report.path}: {format_size(report.size_bytes)} ({report.size_bytes:,} bytes), {report.quantization}, "
          f"{report.params:,} parameters, step {info.get('step')}, converted in {report.seconds:.1f} s")
    from rnnt.bundle import SIGNATURES

    for key, (in_names, out_names) in SIGNATURES.items():
        sig = report.signatures.get(key, {})
        ins = ", ".join(f"{n} {sig['inputs'][n][0]}" for n in in_names if n in sig.get("inputs", {}))
        outs = ", ".join(f"{n} {sig['outputs'][n][0]}" for n in out_names if n in sig.get("outputs", {}))
        print(f"  {key}({ins}) -> {outs}")
    print("ops: " + ", ".join(f"{k} x{v}" for k, v in report.ops.items()))
    return 0
