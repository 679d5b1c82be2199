"""Recover float weights from a bundle, to go on training where only the shipped model is left.

A fresh checkout has the shipped `rnnt/models/default.tflite` but none of the run folders that made it. This reads
the bundle's constant tensors (dequantizing int8 weights with their per-channel scales) and writes them as the
TensorFlow-named `weights-*.npz` that `train_torch.py --init` and `import_weights.py` read, with `model.json`.

The converter folds each encoder layer's output norm into the next layer's input kernel (W' = diag(gamma) W,
b' = b + beta W); the recovered network keeps W' and b' with gamma 1 and beta 0 there: the same function. The
training-only CTC head is not in a bundle; it is written as zeros, so its first gradients reach only the head.

    python scripts/accelerated/weights_from_bundle.py rnnt/models/default.tflite -o runs/accel/bundle-init
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from import_weights import write_weights  # noqa: E402


_SHAPE_OPS = ("RESHAPE", "STRIDED_SLICE", "PACK", "SQUEEZE", "EXPAND_DIMS")
_CAST_OPS = ("QUANTIZE", "DEQUANTIZE")  # a full-int8 bundle's float inputs and outputs pass through these


class _Graph:
    """One subgraph's fully-connected weights in execution order, and the op producing each tensor."""

    def __init__(self, model, subgraph, signature):
        from ai_edge_litert import schema_py_generated as schema

        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.model, self.sg = model, subgraph
        self.ops = []
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
            self.ops.append((kind, list(op.inputs), list(op.outputs)))
        self.producer = {t: n for n, (_, _, outs) in enumerate(self.ops) for t in outs}
        self.consumers: dict[int, list[int]] = {}
        for n, (_, ins, _) in enumerate(self.ops):
            for t in ins:
                self.consumers.setdefault(t, []).append(n)
        self.io = {m.name.decode(): m.tensorIndex for m in list(signature.inputs) + list(signature.outputs)}

    def const(self, index: int) -> np.ndarray:
        """A constant tensor as float32 (int8 weights and a full-int8 bundle's int32 biases dequantized along their
        quantized dimension)."""
        t = self.sg.tensors[index]
        raw = self.model.buffers[t.buffer].data
        if raw is None:
            raise ValueError(f"tensor {t.name!r} is not a constant")
        dtype = {0: np.float32, 9: np.int8, 2: np.int32}[t.type]
        value = np.frombuffer(bytes(raw), dtype=dtype).reshape(list(t.shape)).astype(np.float32)
        q = t.quantization
        if dtype is not np.float32 and q is not None and q.scale is not None and len(q.scale):
            shape = [1] * value.ndim
            shape[q.quantizedDimension] = -1
            scale = np.asarray(q.scale, np.float32).reshape(shape if len(q.scale) > 1 else [1] * value.ndim)
            zero = np.asarray(q.zeroPoint, np.float32).reshape(scale.shape)
            value = (value - zero) * scale
        return value

    def is_const(self, index: int) -> bool:
        return index >= 0 and self.model.buffers[self.sg.tensors[index].buffer].data is not None

    def fully_connected(self) -> list[tuple[int, int, int]]:
        """(op number, weight tensor, bias tensor or -1) of each FULLY_CONNECTED op, in execution order."""
        return [(n, ins[1], ins[2] if len(ins) > 2 else -1)
                for n, (kind, ins, _) in enumerate(self.ops) if kind == "FULLY_CONNECTED"]

    def consts_of(self, kind: str) -> list[int]:
        """Constant operands of every `kind` op, in execution order."""
        return [i for k, ins, _ in self.ops if k == kind for i in ins if self.is_const(i)]

    def elementwise_after(self, tensor: int, kind: str) -> tuple[np.ndarray | None, int]:
        """The constant of the `kind` op that reads `tensor` next (None if there is none), and that op's output."""
        for n in self.consumers.get(tensor, []):
            k, ins, outs = self.ops[n]
            if k == kind and len(ins) == 2 and self.is_const(ins[1]):
                return self.const(ins[1]), outs[0]
            if k in _CAST_OPS:
                found = self.elementwise_after(outs[0], kind)
                if found[0] is not None:
                    return found
        return None, tensor

    def elementwise_before(self, tensor: int, kind: str) -> tuple[np.ndarray | None, int]:
        """The constant of the `kind` op that produced `tensor` (None if another op did), and that op's input;
        reshapes, slices and (de)quantizations in between are looked through."""
        while tensor in self.producer and self.ops[self.producer[tensor]][0] in _SHAPE_OPS + _CAST_OPS:
            tensor = self.ops[self.producer[tensor]][1][0]
        if tensor in self.producer:
            k, ins, _ = self.ops[self.producer[tensor]]
            if k == kind and len(ins) == 2 and self.is_const(ins[1]):
                return self.const(ins[1]), ins[0]
        return None, tensor

    def source_weight(self, tensor: int, hops: int = 12) -> int | None:
        """The weight of the nearest FULLY_CONNECTED op upstream of `tensor` (through reshapes, slices, packs)."""
        frontier = [tensor]
        for _ in range(hops):
            nxt = []
            for t in frontier:
                if t not in self.producer:
                    continue
                kind, ins, _ = self.ops[self.producer[t]]
                if kind == "FULLY_CONNECTED":
                    return ins[1]
                nxt += [i for i in ins if i >= 0 and not self.is_const(i)]
            frontier = nxt
        return None


def _unique(seq: list[int]) -> list[int]:
    return list(dict.fromkeys(seq))


def recover(path: str) -> tuple[dict[str, np.ndarray], dict, int]:
    """TF-named float weights, the ModelConfig as a dict, and the training step of a bundle."""
    from ai_edge_litert import schema_py_generated as schema

    from rnnt.bundle import read_metadata
    from rnnt.config import config_to_dict

    meta = read_metadata(path)
    cfg = meta.model
    with open(path, "rb") as f:
        model = schema.ModelT.InitFromPackedBuf(f.read(), 0)
    graphs = {sig.signatureKey.decode(): _Graph(model, model.subgraphs[sig.subgraphIndex], sig)
              for sig in model.signatureDefs}
    out: dict[str, np.ndarray] = {}

    def lstm_layers(g: _Graph, count: int, units: int, proj: int, part: str, output: str) -> None:
        fcs = g.fully_connected()
        gates = 4 * units

        def recurrent(w: int, b: int) -> bool:  # [4 units, proj] and no bias (the input kernel carries it)
            return b < 0 and tuple(g.sg.tensors[w].shape) == (gates, proj)

        inputs = _unique([w for _, w, b in fcs if g.sg.tensors[w].shape[0] == gates and not recurrent(w, b)])
        projections = _unique([w for _, w, _ in fcs if tuple(g.sg.tensors[w].shape) == (proj, units)])
        biases = {w: b for _, w, b in fcs}
        recurrent_of: dict[int, int] = {}  # recurrent weight -> projection whose output it reads
        for n, w, b in fcs:
            if recurrent(w, b):
                src = g.source_weight(g.ops[n][1][0]) if count > 1 else projections[0]
                if src in projections:
                    recurrent_of[w] = src
        if not (len(inputs) == len(projections) == len(set(recurrent_of.values())) == count):
            raise ValueError(f"{part}: found {len(inputs)} input, {len(projections)} projection and "
                             f"{len(recurrent_of)} recurrent kernels for {count} layers")
        by_projection = {p: r for r, p in recurrent_of.items()}
        for i, (w_in, w_proj) in enumerate(zip(inputs, projections)):
            key = f"{part}/lstm{i}"
            bias = g.const(biases[w_in]) if biases[w_in] >= 0 else np.zeros(gates, np.float32)
            if i == 0 and part == "predictor":  # its bias follows the product as an ADD
                extra = [b for b in g.consts_of("ADD") if tuple(g.sg.tensors[b].shape) == (gates,)]
                bias = bias + (g.const(extra[0]) if extra else 0.0)
            out[f"{key}/input_kernel/w"] = g.const(w_in).T
            out[f"{key}/input_kernel/b"] = bias
            out[f"{key}/recurrent_kernel/w"] = g.const(by_projection[w_proj]).T
            out[f"{key}/projection/w"] = g.const(w_proj).T
            out[f"{key}/norm/gamma"] = np.ones(proj, np.float32)
            out[f"{key}/norm/beta"] = np.zeros(proj, np.float32)
        # the last layer's norm stays a MUL and an ADD before the output (absent where gamma is 1 and beta 0)
        beta, before = g.elementwise_before(g.io[output], "ADD")
        gamma, _ = g.elementwise_before(before, "MUL")
        if gamma is not None:
            out[f"{part}/lstm{count - 1}/norm/gamma"] = gamma.reshape(proj)
        if beta is not None:
            out[f"{part}/lstm{count - 1}/norm/beta"] = beta.reshape(proj)

    enc = graphs["encode"]
    mean, centred = enc.elementwise_after(enc.io["features"], "SUB")
    scale, _ = enc.elementwise_after(centred, "MUL")
    out["encoder/feature_mean"] = np.zeros(cfg.num_mels, np.float32) if mean is None else mean.reshape(cfg.num_mels)
    out["encoder/feature_std"] = np.ones(cfg.num_mels, np.float32) if scale is None else 1 / scale.reshape(cfg.num_mels)
    lstm_layers(enc, cfg.encoder_layers, cfg.encoder_units, cfg.encoder_proj, "encoder", "encoded")

    pred = graphs["predict"]
    out["predictor/embedding"] = pred.const(pred.consts_of("GATHER")[0]).reshape(cfg.vocab_size, cfg.embed_dim)
    if cfg.predictor_layers != 1:
        raise ValueError("recovery handles one predictor layer (its input bias is a separate ADD)")
    lstm_layers(pred, 1, cfg.predictor_units, cfg.predictor_proj, "predictor", "output")

    joint = graphs["joint"]
    shapes = {"joint/enc_proj": (cfg.joint_dim, cfg.encoder_proj), "joint/pred_proj": (cfg.joint_dim, cfg.predictor_proj),
              "joint/out": (cfg.vocab_size, cfg.joint_dim)}
    for _, w, b in joint.fully_connected():
        name = next(k for k, s in shapes.items() if tuple(joint.sg.tensors[w].shape) == s)
        out[f"{name}/w"] = joint.const(w).T
        if name != "joint/pred_proj":
            out[f"{name}/b"] = joint.const(b) if b >= 0 else np.zeros(shapes[name][0], np.float32)
    out["ctc_head/w"] = np.zeros((cfg.encoder_proj, cfg.vocab_size), np.float32)
    out["ctc_head/b"] = np.zeros(cfg.vocab_size, np.float32)
    return out, config_to_dict(cfg), int((meta.training or {}).get("step", 0))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", nargs="?", default="rnnt/models/default.tflite")
    p.add_argument("-o", "--out", required=True, help="folder for weights-*.npz and model.json")
    args = p.parse_args(argv)
    weights, cfg, step = recover(args.bundle)
    write_weights(args.out, weights, step, cfg)
    print(f"wrote {len(weights)} weights of step {step} from {args.bundle} to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
