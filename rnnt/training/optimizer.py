"""AdamW on plain `tf.Variable`s with a warmup + cosine learning-rate schedule.

Written here rather than taken from Keras so that its slots are ordinary checkpointable variables that
work under any `tf.distribute` strategy (updates run in replica context on identical, all-reduced gradients).
"""

from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf


def learning_rate(step: tf.Tensor, peak: float, warmup: int, decay: int, floor: float) -> tf.Tensor:
    """Linear warmup to `peak` over `warmup` steps, then cosine decay to `floor` over `decay` steps."""
    step = tf.cast(step, tf.float32)
    warm = peak * (step + 1.0) / float(max(warmup, 1))
    progress = tf.clip_by_value((step - warmup) / float(max(decay, 1)), 0.0, 1.0)
    cosine = floor + 0.5 * (peak - floor) * (1.0 + tf.cos(math.pi * progress))
    return tf.where(step < warmup, warm, cosine)


class AdamW(tf.Module):
    """Adam with decoupled weight decay; `apply` updates variables in place."""

    def __init__(self, variables: Sequence[tf.Variable], *, beta1: float = 0.9, beta2: float = 0.98,
                 epsilon: float = 1e-9, weight_decay: float = 0.0):
        super().__init__(name="adamw")
        self.beta1, self.beta2, self.epsilon, self.weight_decay = beta1, beta2, epsilon, weight_decay
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]

    def apply(self, grads: Sequence[tf.Tensor], variables: Sequence[tf.Variable], lr: tf.Tensor,
              apply: tf.Tensor | bool = True) -> None:
        """One update; where `apply` is False every variable and slot keeps its value (a skipped step)."""
        apply = tf.convert_to_tensor(apply)
        t = tf.cast(self.iterations + 1, tf.float32)
        correction = tf.sqrt(1.0 - tf.pow(self.beta2, t)) / (1.0 - tf.pow(self.beta1, t))
        for g, var, m, v in zip(grads, variables, self.m, self.v):
            m_new = self.beta1 * m + (1.0 - self.beta1) * g
            v_new = self.beta2 * v + (1.0 - self.beta2) * tf.square(g)
            update = lr * correction * m_new / (tf.sqrt(v_new) + self.epsilon)
            if self.weight_decay and len(var.shape) > 1:
                update += lr * self.weight_decay * var
            var.assign(tf.where(apply, var - update, var))
            m.assign(tf.where(apply, m_new, m))
            v.assign(tf.where(apply, v_new, v))
        self.iterations.assign_add(tf.cast(apply, tf.int64))
