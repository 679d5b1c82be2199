"""The rnnt bundle: one TFLite file with the `encode`, `predict` and `joint` signatures plus JSON metadata.

This module never imports TensorFlow. It reads the TFLite flatbuffer with a small hand-written reader (the
parts needed: buffers, metadata, operator codes, tensors and signature defs; see the TFLite `schema.fbs`),
validates the embedded ``rnnt`` metadata and runs the signatures with ai-edge-litert (or tflite-runtime, or,
only if neither is installed, ``tensorflow.lite``). The file format is the contract of ``docs/bundle.md``.

    meta = read_metadata("model.tflite")          # BundleMetadata; BundleError says what is wrong
    step = TFLiteStepModel("model.tflite")        # the StepModel of rnnt.decoding
    enc, state = step.encode(feats, step.initial_encoder_state())
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from rnnt.config import FeatureConfig, ModelConfig, config_from_dict, config_to_dict
from rnnt.version import BUNDLE_FORMAT_VERSION, __version__

__all__ = [
    "BundleError",
    "BundleMetadata",
    "BundleInfo",
    "TensorInfo",
    "SignatureInfo",
    "METADATA_NAME",
    "FORMAT_NAME",
    "SIGNATURES",
    "QUANTIZATION_MODES",
    "read_metadata",
    "metadata_from_dict",
    "read_bundle_info",
    "read_tflite_info",
    "op_counts",
    "load_interpreter",
    "TFLiteStepModel",
]

#: Name of the TFLite model metadata entry that holds the bundle JSON.
METADATA_NAME = "rnnt"
#: Value of the "format" key of the bundle JSON.
FORMAT_NAME = "rnnt-bundle"
#: Signature -> (input names, output names), as in docs/bundle.md.
SIGNATURES = {
    "encode": (("features", "state"), ("encoded", "new_state")),
    "predict": (("tokens", "state"), ("output", "new_state")),
    "joint": (("encoder", "predictor"), ("log_probs",)),
}
QUANTIZATION_MODES = ("float32", "dynamic", "int8", "float16")

_FILE_IDENTIFIER = b"TFL3"
_CUSTOM_OP = 32  # BuiltinOperator.CUSTOM
_TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
    8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource", 14: "variant",
    15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16",
}


class BundleError(Exception):
    """A file is not a usable rnnt bundle; the message says why, naming the file."""


# --------------------------------------------------------------------------------------------------------------
# A minimal flatbuffer reader for the TFLite schema (bounds-checked: a truncated file raises _Corrupt).


class _Corrupt(Exception):
    pass


class _Buf:
    def __init__(self, data: bytes):
        self.data = data
        self.n = len(data)

    def _get(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise _Corrupt(f"read of {size} bytes at offset {pos} is past the end ({self.n} bytes)")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u8(self, pos):
        return self._get("<B", pos)

    def i8(self, pos):
        return self._get("<b", pos)

    def u16(self, pos):
        return self._get("<H", pos)

    def i32(self, pos):
        return self._get("<i", pos)

    def u32(self, pos):
        return self._get("<I", pos)

    def u64(self, pos):
        return self._get("<Q", pos)


class _Table:
    """A flatbuffer table at `pos`; fields are addressed by their index in the schema."""

    def __init__(self, buf: _Buf, pos: int):
        self.buf, self.pos = buf, pos
        self.vtable = pos - buf.i32(pos)
        self.vtable_size = buf.u16(self.vtable)

    def _offset(self, field_index: int) -> int:
        slot = 4 + 2 * field_index
        if slot >= self.vtable_size:
            return 0
        return self.buf.u16(self.vtable + slot)

    def scalar(self, field_index: int, kind: str, default=0):
        o = self._offset(field_index)
        return getattr(self.buf, kind)(self.pos + o) if o else default

    def _indirect(self, field_index: int) -> int | None:
        o = self._offset(field_index)
        if not o:
            return None
        p = self.pos + o
        return p + self.buf.u32(p)

    def vector(self, field_index: int, elem_size: int = 1) -> tuple[int, int] | None:
        """(start, length) of a vector field, bounds-checked."""
        p = self._indirect(field_index)
        if p is None:
            return None
        length = self.buf.u32(p)
        start = p + 4
        if start + length * elem_size > self.buf.n:
            raise _Corrupt(f"vector of {length} elements at offset {p} runs past the end ({self.buf.n} bytes)")
        return start, length

    def string(self, field_index: int) -> str | None:
        v = self.vector(field_index)
        if v is None:
            return None
        start, length = v
        return self.buf.data[start : start + length].decode("utf-8", errors="replace")

    def tables(self, field_index: int) -> list["_Table"]:
        v = self.vector(field_index, 4)
        if v is None:
            return []
        start, length = v
        out = []
        for i in range(length):
            p = start + 4 * i
            out.append(_Table(self.buf, p + self.buf.u32(p)))
        return out

    def ints(self, field_index: int, fmt: str = "<i") -> list[int] | None:
        size = struct.calcsize(fmt)
        v = self.vector(field_index, size)
        if v is None:
            return None
        start, length = v
        return list(struct.unpack_from(f"<{length}{fmt[1:]}", self.buf.data, start))


# Field indices of the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs).
_MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA, _MODEL_SIGNATURES = 1, 2, 4, 6, 7
_OPCODE_DEPRECATED, _OPCODE_CUSTOM, _OPCODE_VERSION, _OPCODE_BUILTIN = 0, 1, 2, 3
_SUBGRAPH_TENSORS, _SUBGRAPH_OPERATORS, _SUBGRAPH_NAME = 0, 3, 4
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_QUANT, _TENSOR_SHAPE_SIGNATURE = 0, 1, 3, 4, 7
_QUANT_SCALE, _QUANT_ZERO_POINT = 2, 3
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_SIGDEF_INPUTS, _SIGDEF_OUTPUTS, _SIGDEF_KEY, _SIGDEF_SUBGRAPH = 0, 1, 2, 4
_TENSORMAP_NAME, _TENSORMAP_INDEX = 0, 1


@dataclass(frozen=True)
class TensorInfo:
    """One signature input or output."""

    name: str  # the signature's name for it
    shape: tuple[int | None, ...]  # None for a dynamic dimension
    dtype: str
    quantized: bool = False


@dataclass(frozen=True)
class SignatureInfo:
    key: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclass
class _Parsed:
    size: int
    buffers: list[bytes | None]
    metadata: dict[str, int]  # name -> buffer index
    ops: Counter
    signatures: list[SignatureInfo]
    subgraphs: int


def _op_name(code: int, custom: str | None) -> str:
    if code == _CUSTOM_OP:
        return f"custom:{custom or '?'}"
    names = _builtin_names()
    return names.get(code, f"BUILTIN_{code}")


_NAMES: dict[int, str] | None = None


def _builtin_names() -> dict[int, str]:
    """Builtin operator code -> name, from the schema module ai-edge-litert ships (no TensorFlow)."""
    global _NAMES
    if _NAMES is None:
        names: dict[int, str] = {}
        for module in ("ai_edge_litert.schema_py_generated", "tflite_runtime.schema_py_generated"):
            try:
                mod = __import__(module, fromlist=["BuiltinOperator"])
                names = {v: k for k, v in vars(mod.BuiltinOperator).items() if not k.startswith("_")}
                break
            except ImportError:
                continue
        _NAMES = names or {32: "CUSTOM", 119: "WHILE"}
    return _NAMES


def _tensor_info(name: str, t: _Table) -> TensorInfo:
    shape_sig = t.ints(_TENSOR_SHAPE_SIGNATURE)
    shape = shape_sig if shape_sig is not None else (t.ints(_TENSOR_SHAPE) or [])
    dtype = _TENSOR_TYPES.get(t.scalar(_TENSOR_TYPE, "i8"), "unknown")
    quantized = False
    q_pos = t._indirect(_TENSOR_QUANT)
    if q_pos is not None:
        q = _Table(t.buf, q_pos)
        quantized = bool(q.vector(_QUANT_SCALE, 4))
    return TensorInfo(name, tuple(None if d < 0 else d for d in shape), dtype, quantized)


def _parse(data: bytes, *, want_signatures: bool = True) -> _Parsed:
    """Parse the parts of a TFLite flatbuffer we need; raises _Corrupt on anything out of bounds."""
    buf = _Buf(data)
    model = _Table(buf, buf.u32(0))
    buffers: list[bytes | None] = []
    for b in model.tables(_MODEL_BUFFERS):
        v = b.vector(_BUFFER_DATA)
        offset, size = b.scalar(_BUFFER_OFFSET, "u64"), b.scalar(_BUFFER_SIZE, "u64")
        if v is not None:
            buffers.append(data[v[0] : v[0] + v[1]])
        elif offset > 1:  # data stored after the flatbuffer (models over 2 GB)
            if offset + size > buf.n:
                raise _Corrupt(f"buffer at offset {offset} of {size} bytes runs past the end ({buf.n} bytes)")
            buffers.append(data[offset : offset + size])
        else:
            buffers.append(None)
    metadata = {}
    for m in model.tables(_MODEL_METADATA):
        metadata[m.string(_METADATA_NAME) or ""] = m.scalar(_METADATA_BUFFER, "u32")
    codes = []
    for oc in model.tables(_MODEL_OPCODES):
        code = max(oc.scalar(_OPCODE_DEPRECATED, "i8"), oc.scalar(_OPCODE_BUILTIN, "i32"))
        oc.scalar(_OPCODE_VERSION, "i32", 1)  # read only to bounds-check the whole table
        codes.append(_op_name(code, oc.string(_OPCODE_CUSTOM)))
    ops: Counter = Counter()
    subgraphs = model.tables(_MODEL_SUBGRAPHS)
    for sg in subgraphs:
        for op in sg.tables(_SUBGRAPH_OPERATORS):
            index = op.scalar(0, "u32")
            if index >= len(codes):
                raise _Corrupt(f"operator code index {index} out of range")
            ops[codes[index]] += 1
    signatures = []
    if want_signatures:
        for sd in model.tables(_MODEL_SIGNATURES):
            sg_index = sd.scalar(_SIGDEF_SUBGRAPH, "u32")
            if sg_index >= len(subgraphs):
                raise _Corrupt(f"signature subgraph index {sg_index} out of range")
            tensors = subgraphs[sg_index].tables(_SUBGRAPH_TENSORS)

            def infos(field_index):
                out = []
                for tm in sd.tables(field_index):
                    ti = tm.scalar(_TENSORMAP_INDEX, "u32")
                    if ti >= len(tensors):
                        raise _Corrupt(f"signature tensor index {ti} out of range")
                    out.append(_tensor_info(tm.string(_TENSORMAP_NAME) or "", tensors[ti]))
                return tuple(sorted(out, key=lambda t: t.name))

            signatures.append(
                SignatureInfo(sd.string(_SIGDEF_KEY) or "", infos(_SIGDEF_INPUTS), infos(_SIGDEF_OUTPUTS))
            )
    return _Parsed(len(data), buffers, metadata, ops, signatures, len(subgraphs))


def _read_file(path: str) -> bytes:
    if isinstance(path, (bytes, bytearray, memoryview)):
        return bytes(path)
    if not os.path.exists(path):
        raise BundleError(f"{path}: no such file")
    if os.path.isdir(path):
        raise BundleError(f"{path}: is a folder, not a bundle file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BundleError(f"{path}: cannot read: {e.strerror or e}") from None


def _label(path) -> str:
    return "<bytes>" if isinstance(path, (bytes, bytearray, memoryview)) else str(path)


def _parse_tflite(path, data: bytes, *, want_signatures: bool = True) -> _Parsed:
    label = _label(path)
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        if len(data) == 0:
            raise BundleError(f"{label}: empty file, not a TFLite bundle")
        raise BundleError(f"{label}: not a TFLite file (no 'TFL3' identifier); expected an rnnt bundle (.tflite)")
    try:
        return _parse(data, want_signatures=want_signatures)
    except (_Corrupt, struct.error, IndexError, UnicodeDecodeError) as e:
        raise BundleError(f"{label}: truncated or corrupt TFLite file ({len(data)} bytes): {e}") from None


def op_counts(path_or_bytes) -> dict[str, int]:
    """Operator name -> number of uses over all subgraphs; custom ops as ``custom:CODE`` (e.g. ``custom:FlexFoo``)."""
    data = _read_file(path_or_bytes)
    return dict(sorted(_parse_tflite(path_or_bytes, data, want_signatures=False).ops.items()))


# --------------------------------------------------------------------------------------------------------------
# Metadata


@dataclass(frozen=True)
class BundleMetadata:
    """What the bundle says about itself (the ``rnnt`` metadata JSON, validated)."""

    format_version: int
    tokens: tuple[str, ...]
    features: FeatureConfig
    model: ModelConfig
    training: dict = field(default_factory=dict)
    quantization: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # every other key (source_checkpoint, rnnt_version, ...)

    @property
    def chunk_frames(self) -> int:
        return self.model.chunk_frames

    @property
    def quantization_mode(self) -> str:
        return str(self.quantization.get("mode", "float32"))

    def to_dict(self) -> dict:
        """The JSON object as stored in the bundle."""
        d = {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "tokens": list(self.tokens),
            "features": config_to_dict(self.features),
            "model": config_to_dict(self.model),
            "chunk_frames": self.model.chunk_frames,
            "training": dict(self.training),
            "quantization": dict(self.quantization),
        }
        d.update(self.extra)
        return d


_CORE_KEYS = {"format", "format_version", "tokens", "features", "model", "chunk_frames", "training", "quantization"}


def metadata_from_dict(d: Mapping[str, Any], label: str = "<metadata>") -> BundleMetadata:
    """Validate a bundle metadata object (as parsed from the JSON) into `BundleMetadata`."""
    if not isinstance(d, Mapping):
        raise BundleError(f"{label}: rnnt metadata is not a JSON object")
    if d.get("format") != FORMAT_NAME:
        raise BundleError(f"{label}: metadata 'format' is {d.get('format')!r}, expected {FORMAT_NAME!r}")
    version = d.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise BundleError(f"{label}: metadata has no integer 'format_version'")
    if version != BUNDLE_FORMAT_VERSION:
        how = (
            "re-export it with `rnnt export`"
            if version < BUNDLE_FORMAT_VERSION
            else "upgrade rnnt, or re-export the bundle with this version"
        )
        raise BundleError(
            f"{label}: bundle format version {version}, this rnnt ({__version__}) reads version "
            f"{BUNDLE_FORMAT_VERSION}: {how}"
        )
    missing = [k for k in ("tokens", "features", "model") if k not in d]
    if missing:
        raise BundleError(f"{label}: rnnt metadata lacks {', '.join(missing)}")
    try:
        features = config_from_dict(FeatureConfig, dict(d["features"]))
        model = config_from_dict(ModelConfig, dict(d["model"]))
    except (TypeError, ValueError) as e:
        raise BundleError(f"{label}: bad config in rnnt metadata: {e}") from None
    tokens = d["tokens"]
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise BundleError(f"{label}: metadata 'tokens' must be a list of strings")
    if len(tokens) != model.vocab_size:
        raise BundleError(f"{label}: {len(tokens)} tokens but the model's vocab_size is {model.vocab_size}")
    if features.num_mels != model.num_mels:
        raise BundleError(f"{label}: features have {features.num_mels} mels, the model expects {model.num_mels}")
    if d.get("chunk_frames", model.chunk_frames) != model.chunk_frames:
        raise BundleError(f"{label}: chunk_frames {d.get('chunk_frames')} != model.chunk_frames {model.chunk_frames}")
    training = d.get("training") or {}
    quantization = d.get("quantization") or {"mode": "float32"}
    if not isinstance(training, dict) or not isinstance(quantization, dict):
        raise BundleError(f"{label}: metadata 'training' and 'quantization' must be objects")
    extra = {k: v for k, v in d.items() if k not in _CORE_KEYS}
    return BundleMetadata(version, tuple(tokens), features, model, training, quantization, extra)


def _metadata_from_parsed(label: str, parsed: _Parsed) -> BundleMetadata:
    if METADATA_NAME not in parsed.metadata:
        raise BundleError(f"{label}: a TFLite file but not an rnnt bundle (no '{METADATA_NAME}' metadata)")
    index = parsed.metadata[METADATA_NAME]
    if index >= len(parsed.buffers) or parsed.buffers[index] is None:
        raise BundleError(f"{label}: truncated or corrupt bundle: the '{METADATA_NAME}' metadata buffer is missing")
    try:
        d = json.loads(parsed.buffers[index].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{label}: corrupt rnnt metadata (not JSON: {e})") from None
    return metadata_from_dict(d, label)


def read_metadata(path) -> BundleMetadata:
    """The validated metadata of the bundle at `path` (or given as bytes). Raises BundleError."""
    data = _read_file(path)
    return _metadata_from_parsed(_label(path), _parse_tflite(path, data, want_signatures=False))


def _check_signatures(label: str, signatures: list[SignatureInfo]) -> None:
    by_key = {s.key: s for s in signatures}
    for key, (inputs, outputs) in SIGNATURES.items():
        sig = by_key.get(key)
        if sig is None:
            raise BundleError(f"{label}: no '{key}' signature (has: {', '.join(sorted(by_key)) or 'none'})")
        have_in = tuple(sorted(t.name for t in sig.inputs))
        have_out = tuple(sorted(t.name for t in sig.outputs))
        if have_in != tuple(sorted(inputs)) or have_out != tuple(sorted(outputs)):
            raise BundleError(
                f"{label}: signature '{key}' has inputs {have_in} and outputs {have_out}, "
                f"expected {tuple(sorted(inputs))} and {tuple(sorted(outputs))}"
            )


@dataclass(frozen=True)
class BundleInfo:
    """What `rnnt inspect` shows."""

    path: str
    size_bytes: int
    signatures: tuple[SignatureInfo, ...]
    ops: dict[str, int]
    metadata: BundleMetadata | None
    metadata_error: str | None  # why `metadata` is None
    metadata_names: tuple[str, ...]  # every TFLite metadata entry (e.g. min_runtime_version)
    raw_metadata: dict | None = None  # the rnnt JSON as stored, even when it did not validate


def read_tflite_info(path) -> BundleInfo:
    """Signatures, ops and (if valid) metadata of any TFLite file; BundleError only if it is not TFLite at all."""
    data = _read_file(path)
    label = _label(path)
    parsed = _parse_tflite(path, data)
    try:
        meta, error = _metadata_from_parsed(label, parsed), None
    except BundleError as e:
        meta, error = None, str(e)
    raw = None
    index = parsed.metadata.get(METADATA_NAME)
    if index is not None and index < len(parsed.buffers) and parsed.buffers[index] is not None:
        try:
            raw = json.loads(parsed.buffers[index].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raw = None
    return BundleInfo(
        label, len(data), tuple(parsed.signatures), dict(sorted(parsed.ops.items())), meta, error,
        tuple(parsed.metadata), raw if isinstance(raw, dict) else None,
    )


def read_bundle_info(path) -> BundleInfo:
    """`read_tflite_info` of a valid bundle (metadata and the three signatures checked); raises BundleError."""
    info = read_tflite_info(path)
    if info.metadata is None:
        raise BundleError(info.metadata_error)
    _check_signatures(info.path, list(info.signatures))
    return info


# --------------------------------------------------------------------------------------------------------------
# Running


def load_interpreter(path, num_threads: int = 1):
    """A TFLite interpreter for `path` (or bytes): ai-edge-litert, else tflite-runtime, else tensorflow.lite."""
    Interpreter = None
    for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            Interpreter = __import__(module, fromlist=["Interpreter"]).Interpreter
            break
        except ImportError:
            continue
    if Interpreter is None:
        try:
            import tensorflow as tf  # last resort only

            Interpreter = tf.lite.Interpreter
        except ImportError:
            raise BundleError("no TFLite runtime installed: pip install ai-edge-litert") from None
    kwargs = {"num_threads": int(num_threads)}
    if isinstance(path, (bytes, bytearray, memoryview)):
        kwargs["model_content"] = bytes(path)
    else:
        kwargs["model_path"] = str(path)
    try:
        return Interpreter(**kwargs)
    except (ValueError, RuntimeError) as e:
        raise BundleError(f"{_label(path)}: the TFLite runtime cannot load it: {e}") from None


class _Signature:
    """Calls one signature with a dict of inputs; resizes and re-allocates only when an input shape changes.

    Uses the interpreter wrapper under the public SignatureRunner when it exposes it (ai-edge-litert,
    tflite-runtime and tf.lite all do) and falls back to ``runner(**inputs)`` otherwise.
    """

    def __init__(self, interpreter, key: str):
        self.key = key
        self.runner = interpreter.get_signature_runner(key)
        details = self.runner.get_input_details()
        self.input_dtypes = {name: d["dtype"] for name, d in details.items()}
        r = self.runner
        self._fast = all(hasattr(r, a) for a in ("_interpreter_wrapper", "_subgraph_index", "_inputs", "_outputs"))
        if self._fast:
            self._w = r._interpreter_wrapper
            self._sg = r._subgraph_index
            self._inputs = dict(r._inputs)
            self._outputs = list(r._outputs)
        self._shapes: dict[str, tuple] = {}

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        arrays = {k: np.ascontiguousarray(v, dtype=self.input_dtypes[k]) for k, v in inputs.items()}
        if not self._fast:
            return self.runner(**arrays)
        w, sg = self._w, self._sg
        if len(arrays) != len(self._inputs) or any(k not in self._inputs for k in arrays):
            raise ValueError(f"signature {self.key!r} takes {sorted(self._inputs)}, got {sorted(arrays)}")
        changed = False
        for name, value in arrays.items():
            if self._shapes.get(name) != value.shape:
                w.ResizeInputTensor(self._inputs[name], np.array(value.shape, np.int32), False, sg)
                self._shapes[name] = value.shape
                changed = True
        if changed:
            w.AllocateTensors(sg)
        for name, value in arrays.items():
            w.SetTensor(self._inputs[name], value, sg)
        w.Invoke(sg)
        return {name: w.GetTensor(index, sg) for name, index in self._outputs}


class TFLiteStepModel:
    """The step interface (`rnnt.decoding.StepModel`) over a bundle's signatures.

    One instance is NOT thread-safe (the signatures share one interpreter): use one per thread, or hold a
    lock around calls. Inputs are passed to the signatures by name, never by position.
    """

    def __init__(self, path, num_threads: int = 1, metadata: BundleMetadata | None = None):
        data = _read_file(path)
        label = _label(path)
        parsed = _parse_tflite(path, data)
        self.metadata: BundleMetadata = metadata or _metadata_from_parsed(label, parsed)
        _check_signatures(label, parsed.signatures)
        self.config: ModelConfig = self.metadata.model
        self.path = label
        self.size_bytes = len(data)
        self.interpreter = load_interpreter(path if isinstance(path, (str, os.PathLike)) else data, num_threads)
        self._encode = _Signature(self.interpreter, "encode")
        self._predict = _Signature(self.interpreter, "predict")
        self._joint = _Signature(self.interpreter, "joint")

    @property
    def tokens(self) -> list[str]:
        return list(self.metadata.tokens)

    def initial_encoder_state(self) -> np.ndarray:
        return np.zeros([1, self.config.encoder_state_size], np.float32)

    def initial_predictor_state(self, n: int) -> np.ndarray:
        return np.zeros([n, self.config.predictor_state_size], np.float32)

    def encode(self, feats: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        feats = np.asarray(feats, np.float32)
        if feats.shape != (1, cfg.chunk_frames, cfg.num_mels):
            raise ValueError(f"encode takes features [1, {cfg.chunk_frames}, {cfg.num_mels}], got {feats.shape}")
        out = self._encode(features=feats, state=state)
        return out["encoded"], out["new_state"]

    def predict(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._predict(tokens=np.asarray(tokens, np.int32).reshape(-1), state=state)
        return out["output"], out["new_state"]

    def joint(self, enc: np.ndarray, pred: np.ndarray) -> np.ndarray:
        return self._joint(encoder=enc, predictor=pred)["log_probs"]
