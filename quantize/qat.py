"""Quantization-aware training (QAT) for the RNNT: fake int8 quantization of weights and activations.

tensorflow-model-optimization does not handle this model's LSTMs, so this is the project's own, built on the
two hooks every `rnnt.model.Dense` has: ``weight_fn`` (applied to its kernel) and ``input_fn`` (applied to its
input). Every matrix multiply of the model is a Dense (LSTM input/recurrent kernels and projections, joint
projections and output), so this covers every weight and the input activation of every matmul:

- weights: symmetric per-output-channel int8 (narrow range, scale = max|w| / 127, as the TFLite converter
  quantizes FULLY_CONNECTED weights), with a straight-through gradient (identity);
- activations: 8-bit fake quant of each Dense input with a range tracked (running envelope for the first
  updates, then a moving average of the batch min/max) in non-trainable variables (``Dense.input_quant.min/max``, saved in checkpoints), gradient clipped
  to the range (`tf.quantization.fake_quant_with_min_max_vars`).

Use in training (``TrainConfig.qat_start_step``)::

    enable_fake_quant(model)     # before (re)building the tf.function train step: a traced step keeps
    train_step = tf.function(...)  # the graph it was traced with
    ...
    freeze_ranges(model)         # optional: stop updating activation ranges (then retrace), e.g. for eval

Export (`export.tflite.export_bundle`) always converts with fake quant disabled; the weights QAT trained sit on
(near) the int8 grid the converter then uses, so int8/dynamic bundles lose less accuracy.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import tensorflow as tf

from rnnt.model import RNNT, Dense, _identity

__all__ = [
    "fake_quant_weight",
    "ActivationQuantizer",
    "enable_fake_quant",
    "disable_fake_quant",
    "freeze_ranges",
    "is_fake_quant_enabled",
    "fake_quant_disabled",
]

NUM_BITS = 8


def fake_quant_weight(w: tf.Tensor) -> tf.Tensor:
    """Symmetric per-channel (last axis) int8 fake quantization with a straight-through gradient."""
    scale_max = tf.maximum(tf.reduce_max(tf.abs(w), axis=list(range(w.shape.rank - 1))), 1e-8)
    scale_max = tf.stop_gradient(scale_max)
    q = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        tf.stop_gradient(w), -scale_max, scale_max, num_bits=NUM_BITS, narrow_range=True
    )
    return w + tf.stop_gradient(q - w)


class ActivationQuantizer(tf.Module):
    """8-bit fake quantization of an activation with a tracked [min, max] range.

    For the first `warmup` updates the range is the running envelope (min of mins, max of maxes), so an
    all-zero first input (an LSTM's initial state) cannot pin it at zero; after that, a moving average.
    """

    def __init__(self, momentum: float = 0.99, warmup: int = 100, name: str | None = None):
        super().__init__(name=name)
        self.momentum = float(momentum)
        self.warmup = int(warmup)
        self.min = tf.Variable(0.0, trainable=False, name="min")
        self.max = tf.Variable(0.0, trainable=False, name="max")
        self.updates = tf.Variable(0, trainable=False, dtype=tf.int64, name="updates")
        self.update_ranges = True  # python flag, read when a function is traced

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        if self.update_ranges:
            batch_min = tf.stop_gradient(tf.reduce_min(x))
            batch_max = tf.stop_gradient(tf.reduce_max(x))
            warming = self.updates < self.warmup
            m = self.momentum
            lo = tf.where(warming, tf.minimum(self.min, batch_min), m * self.min + (1.0 - m) * batch_min)
            hi = tf.where(warming, tf.maximum(self.max, batch_max), m * self.max + (1.0 - m) * batch_max)
            self.min.assign(lo)
            self.max.assign(hi)
            self.updates.assign_add(1)
        else:
            lo, hi = tf.identity(self.min), tf.identity(self.max)
        lo = tf.minimum(lo, 0.0)
        hi = tf.maximum(hi, lo + 1e-6)
        return tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=NUM_BITS)


def _dense_layers(model: RNNT) -> list[Dense]:
    return model.dense_layers()


def enable_fake_quant(model: RNNT, *, weights: bool = True, activations: bool = True, momentum: float = 0.99) -> None:
    """Turn fake quantization on for every Dense of `model` (idempotent). Retrace tf.functions afterwards."""
    for d in _dense_layers(model):
        d.weight_fn = fake_quant_weight if weights else _identity
        if activations:
            if getattr(d, "input_quant", None) is None:
                d.input_quant = ActivationQuantizer(momentum, name="input_quant")
            d.input_quant.momentum = float(momentum)
            d.input_fn = d.input_quant.__call__
        else:
            d.input_fn = _identity


def disable_fake_quant(model: RNNT) -> None:
    """Back to float: identity weight and input functions (activation ranges stay, e.g. for checkpoints)."""
    for d in _dense_layers(model):
        d.weight_fn = _identity
        d.input_fn = _identity


def freeze_ranges(model: RNNT, frozen: bool = True) -> None:
    """Stop (or restart) updating the activation ranges; takes effect for functions traced afterwards."""
    for d in _dense_layers(model):
        q = getattr(d, "input_quant", None)
        if q is not None:
            q.update_ranges = not frozen


def is_fake_quant_enabled(model: RNNT) -> bool:
    return any(d.weight_fn is not _identity or d.input_fn is not _identity for d in _dense_layers(model))


@contextlib.contextmanager
def fake_quant_disabled(model: RNNT) -> Iterator[RNNT]:
    """Temporarily float (e.g. while exporting), restoring whatever was set before."""
    saved = [(d, d.weight_fn, d.input_fn) for d in _dense_layers(model)]
    try:
        disable_fake_quant(model)
        yield model
    finally:
        for d, weight_fn, input_fn in saved:
            d.weight_fn = weight_fn
            d.input_fn = input_fn
