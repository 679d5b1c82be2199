"""Export an `RNNT` to one TFLite bundle: signatures `encode`, `predict`, `joint` plus the `rnnt` metadata.

The bundle contract is docs/bundle.md. Conversion uses built-in TFLite ops only; the result is checked (no
Flex, custom or WHILE op) and the metadata JSON is embedded as the TFLite model metadata entry ``rnnt``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import tensorflow as tf

from rnnt.bundle import (
    FORMAT_NAME,
    METADATA_NAME,
    QUANTIZATION_MODES,
    BundleError,
    TFLiteStepModel,
    metadata_from_dict,
    read_tflite_info,
)
from rnnt.config import FeatureConfig, config_to_dict
from rnnt.model import RNNT
from rnnt.version import BUNDLE_FORMAT_VERSION, __version__

__all__ = [
    "ExportError",
    "ExportReport",
    "StepModule",
    "convert",
    "check_ops",
    "embed_metadata",
    "bundle_metadata",
    "export_bundle",
    "FORBIDDEN_OPS",
]

#: Builtin ops a bundle must not contain (the encoder LSTM is unrolled over the chunk, so no loop is needed).
FORBIDDEN_OPS = ("WHILE",)


class ExportError(Exception):
    """The model could not be exported as a valid bundle."""


@dataclass
class ExportReport:
    path: str
    size_bytes: int
    quantization: str
    ops: dict[str, int]  # op name -> uses over all signatures
    params: int  # model parameters (floats in the TF model)
    seconds: float  # conversion time
    signatures: dict = field(default_factory=dict)  # key -> {"inputs": {...}, "outputs": {...}}

    def summary(self) -> str:
        ops = ", ".join(f"{k}×{v}" for k, v in self.ops.items())
        return (
            f"{self.path}: {self.size_bytes / 1e6:.2f} MB, {self.quantization}, {self.params:,} parameters, "
            f"converted in {self.seconds:.1f} s\nops: {ops}"
        )


class StepModule(tf.Module):
    """The three bundle signatures as `tf.function`s over one `RNNT` (which holds every variable itself)."""

    def __init__(self, model: RNNT):
        super().__init__(name="rnnt_bundle")
        self.model = model
        cfg = model.cfg

        @tf.function(
            input_signature=[
                tf.TensorSpec([1, cfg.chunk_frames, cfg.num_mels], tf.float32, name="features"),
                tf.TensorSpec([1, cfg.encoder_state_size], tf.float32, name="state"),
            ]
        )
        def encode(features, state):
            encoded, new_state = model.encode_chunk(features, state)
            return {"encoded": encoded, "new_state": new_state}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int32, name="tokens"),
                tf.TensorSpec([None, cfg.predictor_state_size], tf.float32, name="state"),
            ]
        )
        def predict(tokens, state):
            output, new_state = model.predict_step(tokens, state)
            return {"output": output, "new_state": new_state}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, cfg.encoder_proj], tf.float32, name="encoder"),
                tf.TensorSpec([None, cfg.predictor_proj], tf.float32, name="predictor"),
            ]
        )
        def joint(encoder, predictor):
            return {"log_probs": model.joint_step(encoder, predictor)}

        self.encode, self.predict, self.joint = encode, predict, joint

    def concrete_functions(self) -> list:
        """In signature order encode, predict, joint (the signature key is the function name)."""
        return [f.get_concrete_function() for f in (self.encode, self.predict, self.joint)]


def _param_count(model: RNNT) -> int:
    return int(sum(np.prod(v.shape) for v in model.variables))


def convert(model: RNNT, quantization: str = "float32", representative_dataset=None) -> bytes:
    """Convert `model` to TFLite bytes (no metadata) in the given quantization mode."""
    from quantize.ptq import configure_converter

    module = StepModule(model)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(module.concrete_functions(), module)
    configure_converter(converter, quantization, representative_dataset)
    try:
        return bytes(converter.convert())
    except Exception as e:  # the converter raises ConverterError, RuntimeError, ValueError...
        raise ExportError(f"TFLite conversion ({quantization}) failed: {e}") from e


def check_ops(tflite: bytes) -> dict[str, int]:
    """Op name -> count; raises ExportError on any custom op (Flex ops are custom ops) or a WHILE loop."""
    from rnnt.bundle import op_counts

    ops = op_counts(tflite)
    bad = sorted(k for k in ops if k.startswith(("custom:", "Flex")) or k in FORBIDDEN_OPS)
    if bad:
        raise ExportError(
            "the converted model uses ops outside the TFLite builtins a mobile app links: "
            + ", ".join(f"{k} (x{ops[k]})" for k in bad)
        )
    return ops


def _aligned_buffer_type(schema):
    class AlignedBufferT(schema.BufferT):
        """BufferT whose data vector is 16-byte aligned (as the converter writes it)."""

        def Pack(self, builder):
            data = None
            if self.data is not None:
                payload = np.asarray(self.data, np.uint8).tobytes()
                builder.StartVector(1, len(payload), 16)
                builder.head = builder.head - len(payload)
                builder.Bytes[builder.head : builder.head + len(payload)] = payload
                data = builder.EndVector()
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    return AlignedBufferT


def embed_metadata(tflite: bytes, metadata: dict, name: str = METADATA_NAME) -> bytes:
    """`tflite` with `metadata` (JSON, utf-8) as the model metadata entry `name` (replacing one of that name)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    if any(b.offset > 1 for b in model.buffers or []):
        raise ExportError("models with buffers outside the flatbuffer (over 2 GB) are not supported")
    Aligned = _aligned_buffer_type(schema)
    buffers = []
    for b in model.buffers or []:
        nb = Aligned()
        nb.data, nb.offset, nb.size = b.data, b.offset, b.size
        buffers.append(nb)
    payload = json.dumps(metadata, ensure_ascii=False, sort_keys=False).encode("utf-8")
    entry = Aligned()
    entry.data = np.frombuffer(payload, np.uint8)
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != name]
    buffers.append(entry)
    model.buffers = buffers
    md = schema.MetadataT()
    md.name = name
    md.buffer = len(buffers) - 1
    model.metadata.append(md)
    builder = flatbuffers.Builder(len(tflite) + len(payload) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _name(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def bundle_metadata(
    model: RNNT,
    tokens: list[str],
    feature_cfg: FeatureConfig,
    *,
    training_info: dict | None = None,
    quantization: dict | None = None,
    source_checkpoint: str | None = None,
    sentencepiece: bytes | None = None,
) -> dict:
    """The `rnnt` metadata JSON object (docs/bundle.md)."""
    cfg = model.cfg
    d = {
        "format": FORMAT_NAME,
        "format_version": BUNDLE_FORMAT_VERSION,
        "tokens": list(tokens),
        "features": config_to_dict(feature_cfg),
        "model": config_to_dict(cfg),
        "chunk_frames": cfg.chunk_frames,
        "training": dict(training_info or {}),
        "quantization": dict(quantization or {"mode": "float32"}),
        "source_checkpoint": source_checkpoint,
        "rnnt_version": __version__,
        "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if sentencepiece is not None:
        d["sentencepiece"] = base64.b64encode(sentencepiece).decode("ascii")
    return d


def _atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".tflite", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a bundle is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _expected_shapes(cfg) -> dict:
    return {
        "encode": {
            "features": (1, cfg.chunk_frames, cfg.num_mels), "state": (1, cfg.encoder_state_size),
            "encoded": (1, cfg.chunk_frames // cfg.reduction, cfg.encoder_proj), "new_state": (1, cfg.encoder_state_size),
        },
        "predict": {
            "tokens": (None,), "state": (None, cfg.predictor_state_size),
            "output": (None, cfg.predictor_proj), "new_state": (None, cfg.predictor_state_size),
        },
        "joint": {"encoder": (None, cfg.encoder_proj), "predictor": (None, cfg.predictor_proj),
                  "log_probs": (None, cfg.vocab_size)},
    }


def _check_shapes(info, model: RNNT) -> None:
    """Every signature tensor must have the shape docs/bundle.md promises for this ModelConfig."""
    expected = _expected_shapes(model.cfg)
    for sig in info.signatures:
        for t in sig.inputs + sig.outputs:
            want = expected.get(sig.key, {}).get(t.name)
            if want is not None and tuple(t.shape) != want:
                hint = ""
                if sig.key == "encode" and t.name == "encoded":
                    hint = " (time_reduction_after must be below encoder_layers - 1)"
                raise ExportError(f"signature {sig.key}: {t.name} has shape {t.shape}, expected {want}{hint}")


def _smoke_test(data: bytes) -> None:
    """Run each signature once on zeros; every output must be finite."""
    try:
        step = TFLiteStepModel(data)
    except BundleError as e:
        raise ExportError(f"the written bundle does not load: {e}") from e
    cfg = step.config
    enc, s = step.encode(np.zeros([1, cfg.chunk_frames, cfg.num_mels], np.float32), step.initial_encoder_state())
    pred, ps = step.predict(np.zeros([2], np.int32), step.initial_predictor_state(2))
    lp = step.joint(np.repeat(enc[0, :1], 2, axis=0), pred)
    for name, x in (("encoded", enc), ("encoder state", s), ("predictor output", pred), ("log_probs", lp)):
        if not np.all(np.isfinite(x)):
            raise ExportError(f"the bundle's {name} is not finite on zero input (weights lost in conversion?)")


def export_bundle(
    model: RNNT,
    tokens: list[str],
    feature_cfg: FeatureConfig,
    out_path: str,
    *,
    training_info: dict | None = None,
    quantization: str = "float32",
    calibration_features: Iterable[np.ndarray] | None = None,
    calibration_tokens: Iterable[list[int]] | None = None,
    source_checkpoint: str | None = None,
    sentencepiece: bytes | None = None,
    max_calibration_chunks: int = 400,
    verify: bool = True,
) -> ExportReport:
    """Convert, check the ops, embed the metadata, verify and write the bundle atomically.

    quantization: ``float32`` | ``dynamic`` (int8 weights) | ``int8`` (full int8, float inputs and outputs,
    needs `calibration_features`: log-mel ``[frames, num_mels]`` arrays of real speech) | ``float16``.
    A model with fake quantization enabled (QAT) is exported with it disabled.
    """
    from quantize import ptq, qat

    cfg = model.cfg
    if quantization not in QUANTIZATION_MODES:
        raise ExportError(f"unknown quantization {quantization!r} (one of {', '.join(QUANTIZATION_MODES)})")
    if len(tokens) != cfg.vocab_size:
        raise ExportError(f"{len(tokens)} tokens but the model's vocab_size is {cfg.vocab_size}")
    if feature_cfg.num_mels != cfg.num_mels:
        raise ExportError(f"features have {feature_cfg.num_mels} mels, the model expects {cfg.num_mels}")
    quant_info: dict = {"mode": quantization}
    rep = None
    if quantization == "int8":
        if calibration_features is None:
            raise ExportError("int8 quantization needs calibration features (real speech; --calibration MANIFEST)")
        data = ptq.calibration_samples(
            model, calibration_features, feature_cfg, tokens=calibration_tokens, max_chunks=max_calibration_chunks
        )
        rep = data.dataset
        quant_info.update(data.summary())
        quant_info.update({"inputs": "float32", "outputs": "float32", "weights": "int8 per-channel"})
    elif quantization == "dynamic":
        quant_info.update({"weights": "int8", "activations": "float32 (dynamic-range)"})
    elif quantization == "float16":
        quant_info.update({"weights": "float16", "activations": "float32"})
    if training_info and training_info.get("qat"):
        quant_info["qat"] = True

    started = time.perf_counter()
    with qat.fake_quant_disabled(model):
        tflite = convert(model, quantization, rep)
    seconds = time.perf_counter() - started
    ops = check_ops(tflite)

    meta = bundle_metadata(
        model, tokens, feature_cfg, training_info=training_info, quantization=quant_info,
        source_checkpoint=source_checkpoint, sentencepiece=sentencepiece,
    )
    metadata_from_dict(meta)  # what we write must be what the loader accepts
    bundle = embed_metadata(tflite, meta)
    info = read_tflite_info(bundle)
    if info.metadata is None:
        raise ExportError(f"embedded metadata does not read back: {info.metadata_error}")
    _check_shapes(info, model)
    if verify:
        _smoke_test(bundle)
    _atomic_write(out_path, bundle)
    signatures = {
        s.key: {
            "inputs": {t.name: [list(t.shape), t.dtype] for t in s.inputs},
            "outputs": {t.name: [list(t.shape), t.dtype] for t in s.outputs},
        }
        for s in info.signatures
    }
    return ExportReport(out_path, len(bundle), quantization, ops, _param_count(model), seconds, signatures)
