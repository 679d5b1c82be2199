"""`rnnt inspect BUNDLE`: signatures, ops, metadata and size of a bundle (no TensorFlow)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="show a bundle's signatures, ops and metadata",
        description="Print the signatures (input and output names, shapes, dtypes), the TFLite ops used, the "
        "embedded rnnt metadata and the file size of a bundle. Exit status 1 if it is not a valid bundle.",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="a .tflite bundle")
    p.add_argument("--json", action="store_true", help="machine-readable JSON (every token listed)")
    p.add_argument("--tokens", action="store_true", help="list every token")
    p.set_defaults(run=run)
    return p


def _shape(shape) -> str:
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def _tokens_summary(tokens, show_all: bool) -> str:
    tokens = list(tokens)
    if show_all or len(tokens) <= 16:
        return f"{len(tokens)}: " + " ".join(repr(t) for t in tokens)
    head = " ".join(repr(t) for t in tokens[:10])
    tail = " ".join(repr(t) for t in tokens[-3:])
    return f"{len(tokens)}: {head} ... {tail}"


def _kv(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def _as_json(info) -> dict:
    return {
        "path": info.path,
        "size_bytes": info.size_bytes,
        "signatures": {
            s.key: {
                "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in s.inputs],
                "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in s.outputs],
            }
            for s in info.signatures
        },
        "ops": info.ops,
        "metadata": info.metadata.to_dict() if info.metadata else info.raw_metadata,
        "metadata_error": info.metadata_error,
        "tflite_metadata_entries": list(info.metadata_names),
    }


def run(args: argparse.Namespace) -> int:
    from rnnt.bundle import SIGNATURES, BundleError, read_tflite_info

    try:
        info = read_tflite_info(args.bundle)
    except BundleError as e:
        print(f"rnnt inspect: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_as_json(info), indent=2, ensure_ascii=False))
        return 0 if info.metadata else 1
    out = []
    meta = info.metadata
    kind = f"rnnt bundle format {meta.format_version}, {meta.quantization_mode}" if meta else "not an rnnt bundle"
    out.append(f"{info.path}: {info.size_bytes:,} bytes ({info.size_bytes / 1e6:.2f} MB), {kind}")
    out.append("signatures:")
    for s in sorted(info.signatures, key=lambda s: ("encode", "predict", "joint").index(s.key)
                    if s.key in ("encode", "predict", "joint") else 9):
        out.append(f"  {s.key}")
        order = SIGNATURES.get(s.key, ((), ()))
        ins = sorted(s.inputs, key=lambda t: order[0].index(t.name) if t.name in order[0] else 99)
        outs = sorted(s.outputs, key=lambda t: order[1].index(t.name) if t.name in order[1] else 99)
        rows = [("in", t) for t in ins] + [("out", t) for t in outs]
        width = max((len(t.name) for _, t in rows), default=0)
        for direction, t in rows:
            q = "  (quantized)" if t.quantized else ""
            out.append(f"    {direction:<3} {t.name:<{width}}  {_shape(t.shape):<16} {t.dtype}{q}")
    uses = sum(info.ops.values())
    out.append(f"ops ({len(info.ops)} kinds, {uses} uses over all signatures):")
    width = max((len(k) for k in info.ops), default=0)
    for name, count in sorted(info.ops.items(), key=lambda kv: (-kv[1], kv[0])):
        out.append(f"  {name:<{width}}  {count}")
    if meta is None:
        out.append(f"metadata: {info.metadata_error}")
        if info.raw_metadata is not None:
            out.append(json.dumps(info.raw_metadata, indent=2, ensure_ascii=False)[:4000])
        print("\n".join(out))
        return 1
    m, f = meta.model, meta.features
    chunk_ms = 1000 * meta.model.chunk_frames * f.hop_length / f.sample_rate
    frame_ms = 1000 * m.reduction * f.hop_length / f.sample_rate
    out.append("metadata:")
    out.append(f"  format: rnnt-bundle version {meta.format_version}, written by rnnt {meta.extra.get('rnnt_version', '?')}"
               + (f" on {meta.extra['exported']}" if meta.extra.get("exported") else ""))
    out.append(f"  tokens: {_tokens_summary(meta.tokens, args.tokens)}")
    out.append(f"  features: {_kv(vars(f))}")
    out.append(f"  model: {_kv(vars(m))}")
    out.append(f"  chunk: {m.chunk_frames} feature frames = {chunk_ms:g} ms in, "
               f"{m.chunk_frames // m.reduction} encoder frames of {frame_ms:g} ms out")
    out.append(f"  state sizes: encoder {m.encoder_state_size}, predictor {m.predictor_state_size}")
    out.append(f"  quantization: {_kv(meta.quantization)}")
    training = dict(meta.training)
    config = training.pop("config", None)
    out.append(f"  training: {_kv(training) if training else '(none recorded)'}")
    if config:
        out.append(f"  training config: {_kv(config)}")
    for key, value in meta.extra.items():
        if key in ("rnnt_version", "exported"):
            continue
        if key == "sentencepiece" and isinstance(value, str):
            value = f"<sentencepiece model, {len(value) * 3 // 4:,} bytes>"
        out.append(f"  {key}: {value}")
    print("\n".join(out))
    return 0
