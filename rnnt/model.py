"""The RNN-T network in TensorFlow: streaming LSTM encoder, prediction network, joint.

Every weight is a `tf.Variable` held directly by a `tf.Module` (no Keras layers), so checkpoints, the
optimizer and the TFLite converter all see the same variables. The LSTM math lives in one cell function used
two ways: over a whole padded batch with `tf.scan` (training) and unrolled frame by frame over a fixed chunk
(streaming export), which converts to plain FULLY_CONNECTED/LOGISTIC/TANH ops.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from rnnt.config import ModelConfig

WeightFn = Callable[[tf.Tensor], tf.Tensor]


def _identity(w: tf.Tensor) -> tf.Tensor:
    return w


def _uniform(shape: Sequence[int], fan_in: int, seed: int) -> tf.Tensor:
    limit = 1.0 / math.sqrt(fan_in)
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(-limit, limit, size=shape).astype(np.float32))


class Dense(tf.Module):
    """y = x @ w (+ b) on the last axis."""

    def __init__(self, in_dim: int, out_dim: int, *, bias: bool = True, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        self.w = tf.Variable(_uniform([in_dim, out_dim], in_dim, seed), name="w")
        self.b = tf.Variable(tf.zeros([out_dim]), name="b") if bias else None
        self.weight_fn: WeightFn = _identity
        self.input_fn: WeightFn = _identity  # activation hook: quantize.qat sets input fake quant here

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        x = self.input_fn(x)
        y = tf.tensordot(x, self.weight_fn(self.w), axes=1) if x.shape.rank != 2 else tf.matmul(x, self.weight_fn(self.w))
        return y + self.b if self.b is not None else y


class LayerNorm(tf.Module):
    """Layer normalisation over the last axis."""

    def __init__(self, dim: int, eps: float = 1e-5, name: str | None = None):
        super().__init__(name=name)
        self.gamma = tf.Variable(tf.ones([dim]), name="gamma")
        self.beta = tf.Variable(tf.zeros([dim]), name="beta")
        self.eps = eps

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        var = tf.reduce_mean(tf.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + self.eps) * self.gamma + self.beta


class ProjectedLSTM(tf.Module):
    """LSTM layer with an output projection (LSTMP) and layer norm on its output.

    State is (c [B, units], h [B, proj]); h is the projected output fed back into the recurrence. `cell_clip` > 0
    bounds c each step: tanh(c) is flat beyond a few units anyway, and unbounded cells stretch int8 ranges.
    """

    def __init__(self, in_dim: int, units: int, proj: int, *, seed: int = 0, cell_clip: float = 0.0,
                 name: str | None = None):
        super().__init__(name=name)
        self.units, self.proj, self.cell_clip = units, proj, float(cell_clip)
        self.input_kernel = Dense(in_dim, 4 * units, seed=seed, name="input_kernel")
        self.recurrent_kernel = Dense(proj, 4 * units, bias=False, seed=seed + 1, name="recurrent_kernel")
        forget_bias = np.zeros([4 * units], np.float32)
        forget_bias[units : 2 * units] = 1.0
        self.input_kernel.b.assign(forget_bias)
        self.projection = Dense(units, proj, bias=False, seed=seed + 2, name="projection")
        self.norm = LayerNorm(proj, name="norm")

    @property
    def state_size(self) -> int:
        return self.units + self.proj

    def cell(self, xw: tf.Tensor, c: tf.Tensor, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One time step given the precomputed input projection xw [B, 4*units]."""
        z = xw + self.recurrent_kernel(h)
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        if self.cell_clip > 0:
            c = tf.clip_by_value(c, -self.cell_clip, self.cell_clip)
        h = self.projection(tf.sigmoid(o) * tf.tanh(c))
        return c, h

    def __call__(self, x: tf.Tensor, c: tf.Tensor, h: tf.Tensor, *, unroll: bool = False):
        """Run over x [B, T, in]; returns (normed outputs [B, T, proj], c, h).

        `unroll=True` needs a static T and emits one cell per frame (streaming export).
        """
        xw = self.input_kernel(x)
        if unroll:
            outputs = []
            for t in range(x.shape[1]):
                c, h = self.cell(xw[:, t], c, h)
                outputs.append(h)
            y = tf.stack(outputs, axis=1)
        else:
            def step(carry, xw_t):
                return self.cell(xw_t, *carry)

            cs, hs = tf.scan(step, tf.transpose(xw, [1, 0, 2]), initializer=(c, h))
            y = tf.transpose(hs, [1, 0, 2])
            c, h = cs[-1], hs[-1]
        return self.norm(y), c, h


def _split_state(state: tf.Tensor, layers: Sequence[ProjectedLSTM]) -> list[tuple[tf.Tensor, tf.Tensor]]:
    sizes = []
    for layer in layers:
        sizes += [layer.units, layer.proj]
    parts = tf.split(state, sizes, axis=-1)
    return [(parts[2 * i], parts[2 * i + 1]) for i in range(len(layers))]


def _join_state(pairs: Sequence[tuple[tf.Tensor, tf.Tensor]]) -> tf.Tensor:
    return tf.concat([t for pair in pairs for t in pair], axis=-1)


def _fold_time(x: tf.Tensor, factor: int) -> tf.Tensor:
    """[B, T, D] -> [B, T // factor, factor * D], concatenating neighbouring frames (T a multiple of factor)."""
    if factor == 1:
        return x
    shape = tf.shape(x)
    dim = x.shape[-1]
    static_t = x.shape[1]
    new_t = static_t // factor if static_t is not None else shape[1] // factor
    return tf.reshape(x, [shape[0], new_t, factor * dim])


class Encoder(tf.Module):
    """Frame stacking, then LSTMP layers with a time-reduction step after `time_reduction_after`."""

    def __init__(self, cfg: ModelConfig, seed: int = 0):
        super().__init__(name="encoder")
        self.cfg = cfg
        self.feature_mean = tf.Variable(tf.zeros([cfg.num_mels]), trainable=False, name="feature_mean")
        self.feature_std = tf.Variable(tf.ones([cfg.num_mels]), trainable=False, name="feature_std")
        self.layers = []
        in_dim = cfg.num_mels * cfg.frame_stack
        for i in range(cfg.encoder_layers):
            self.layers.append(
                ProjectedLSTM(in_dim, cfg.encoder_units, cfg.encoder_proj, seed=seed + 10 * i,
                              cell_clip=cfg.cell_clip, name=f"lstm{i}")
            )
            in_dim = cfg.encoder_proj * (cfg.time_reduction_factor if i == cfg.time_reduction_after else 1)

    def initial_state(self, batch: int | tf.Tensor) -> tf.Tensor:
        return tf.zeros([batch, self.cfg.encoder_state_size])

    def __call__(self, feats: tf.Tensor, state: tf.Tensor, *, unroll: bool = False):
        """feats [B, T, num_mels] with T a multiple of cfg.reduction -> (enc [B, T // reduction, proj], state)."""
        cfg = self.cfg
        x = (feats - self.feature_mean) / self.feature_std
        x = _fold_time(x, cfg.frame_stack)
        new_state = []
        for i, (layer, (c, h)) in enumerate(zip(self.layers, _split_state(state, self.layers))):
            x, c, h = layer(x, c, h, unroll=unroll)
            new_state.append((c, h))
            if i == cfg.time_reduction_after:
                x = _fold_time(x, cfg.time_reduction_factor)
        return x, _join_state(new_state)


class Predictor(tf.Module):
    """Prediction network: token embedding then LSTMP layers. Blank (id 0) is the start symbol."""

    def __init__(self, cfg: ModelConfig, seed: int = 1000):
        super().__init__(name="predictor")
        self.cfg = cfg
        self.embedding = tf.Variable(_uniform([cfg.vocab_size, cfg.embed_dim], cfg.embed_dim, seed), name="embedding")
        self.layers = []
        in_dim = cfg.embed_dim
        for i in range(cfg.predictor_layers):
            self.layers.append(
                ProjectedLSTM(in_dim, cfg.predictor_units, cfg.predictor_proj, seed=seed + 10 * i,
                              cell_clip=cfg.cell_clip, name=f"lstm{i}")
            )
            in_dim = cfg.predictor_proj

    def initial_state(self, batch: int | tf.Tensor) -> tf.Tensor:
        return tf.zeros([batch, self.cfg.predictor_state_size])

    def _run(self, x: tf.Tensor, state: tf.Tensor, unroll: bool):
        new_state = []
        for layer, (c, h) in zip(self.layers, _split_state(state, self.layers)):
            x, c, h = layer(x, c, h, unroll=unroll)
            new_state.append((c, h))
        return x, _join_state(new_state)

    def __call__(self, labels: tf.Tensor) -> tf.Tensor:
        """labels [B, U] -> outputs [B, U + 1, proj] (position 0 sees only the start symbol)."""
        batch = tf.shape(labels)[0]
        tokens = tf.concat([tf.zeros([batch, 1], labels.dtype), labels], axis=1)
        out, _ = self._run(tf.gather(self.embedding, tokens), self.initial_state(batch), unroll=False)
        return out

    def step(self, tokens: tf.Tensor, state: tf.Tensor):
        """tokens [N] -> (outputs [N, proj], new state [N, S_pred])."""
        x = tf.gather(self.embedding, tokens)[:, None, :]
        out, state = self._run(x, state, unroll=True)
        return out[:, 0], state


class Joint(tf.Module):
    """logits = out(tanh(enc_proj(enc) + pred_proj(pred)))."""

    def __init__(self, cfg: ModelConfig, seed: int = 2000):
        super().__init__(name="joint")
        self.enc_proj = Dense(cfg.encoder_proj, cfg.joint_dim, seed=seed, name="enc_proj")
        self.pred_proj = Dense(cfg.predictor_proj, cfg.joint_dim, bias=False, seed=seed + 1, name="pred_proj")
        self.out = Dense(cfg.joint_dim, cfg.vocab_size, seed=seed + 2, name="out")

    def __call__(self, enc: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
        """Broadcasting joint: enc [..., D], pred [..., P] -> logits [..., V]."""
        return self.out(tf.tanh(self.enc_proj(enc) + self.pred_proj(pred)))

    def lattice(self, enc: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
        """enc [B, T, D], pred [B, U+1, P] -> logits [B, T, U+1, V] for the loss."""
        return self(enc[:, :, None, :], pred[:, None, :, :])


class RNNT(tf.Module):
    """The whole transducer."""

    def __init__(self, cfg: ModelConfig, seed: int = 0):
        super().__init__(name="rnnt")
        self.cfg = cfg
        self.encoder = Encoder(cfg, seed=seed)
        self.predictor = Predictor(cfg, seed=seed + 1000)
        self.joint = Joint(cfg, seed=seed + 2000)

    def dense_layers(self) -> list[Dense]:
        """Every Dense layer (for weight transforms such as fake quantization)."""
        return [m for m in self.submodules if isinstance(m, Dense)]

    def set_feature_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.encoder.feature_mean.assign(np.asarray(mean, np.float32))
        self.encoder.feature_std.assign(np.maximum(np.asarray(std, np.float32), 1e-3))

    def encoder_lengths(self, feature_lengths: tf.Tensor) -> tf.Tensor:
        return feature_lengths // self.cfg.reduction

    def encode(self, feats: tf.Tensor, feature_lengths: tf.Tensor):
        """Whole padded batch: feats [B, T, F] -> (enc [B, T', D], enc_lengths [B])."""
        r = self.cfg.reduction
        pad = (-tf.shape(feats)[1]) % r
        feats = tf.pad(feats, [[0, 0], [0, pad], [0, 0]])
        enc, _ = self.encoder(feats, self.encoder.initial_state(tf.shape(feats)[0]))
        return enc, self.encoder_lengths(feature_lengths)

    def logits(self, feats: tf.Tensor, feature_lengths: tf.Tensor, labels: tf.Tensor):
        """Joint lattice logits [B, T', U+1, V] and encoder lengths, for the loss."""
        enc, enc_lengths = self.encode(feats, feature_lengths)
        return self.lattice(enc, labels), enc_lengths

    def lattice(self, enc: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Encoder output [B, T', D] and labels [B, U] -> joint logits [B, T', U+1, V]."""
        return self.joint.lattice(enc, self.predictor(labels))

    # --- the step interface (streaming), used by export and by TFStepModel ---
    def encode_chunk(self, feats: tf.Tensor, state: tf.Tensor):
        """feats [B, chunk_frames, F] (static) and state [B, S_enc] -> (enc [B, chunk/reduction, D], state)."""
        return self.encoder(feats, state, unroll=True)

    def predict_step(self, tokens: tf.Tensor, state: tf.Tensor):
        return self.predictor.step(tokens, state)

    def joint_step(self, enc: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
        """enc [N, D], pred [N, P] -> log-probabilities [N, V]."""
        return tf.nn.log_softmax(self.joint(enc, pred), axis=-1)


def ctc_head(cfg: ModelConfig, seed: int = 0) -> Dense:
    """Encoder output -> token logits (blank 0) for an auxiliary CTC loss; used in training only, never exported."""
    return Dense(cfg.encoder_proj, cfg.vocab_size, seed=seed + 3000, name="ctc_head")


class TFStepModel:
    """Numpy view of an `RNNT` through the step interface of `rnnt.decoding.StepModel`."""

    def __init__(self, model: RNNT):
        self.model = model
        self.config = model.cfg
        cfg = model.cfg
        self._encode = tf.function(
            model.encode_chunk,
            input_signature=[
                tf.TensorSpec([1, cfg.chunk_frames, cfg.num_mels], tf.float32),
                tf.TensorSpec([1, cfg.encoder_state_size], tf.float32),
            ],
        )
        self._predict = tf.function(
            model.predict_step,
            input_signature=[
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, cfg.predictor_state_size], tf.float32),
            ],
        )
        self._joint = tf.function(
            model.joint_step,
            input_signature=[
                tf.TensorSpec([None, cfg.encoder_proj], tf.float32),
                tf.TensorSpec([None, cfg.predictor_proj], tf.float32),
            ],
        )

    def initial_encoder_state(self) -> np.ndarray:
        return np.zeros([1, self.config.encoder_state_size], np.float32)

    def initial_predictor_state(self, n: int) -> np.ndarray:
        return np.zeros([n, self.config.predictor_state_size], np.float32)

    def encode(self, feats: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        enc, state = self._encode(tf.constant(feats, tf.float32), tf.constant(state, tf.float32))
        return enc.numpy(), state.numpy()

    def predict(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, state = self._predict(tf.constant(tokens, tf.int32), tf.constant(state, tf.float32))
        return out.numpy(), state.numpy()

    def joint(self, enc: np.ndarray, pred: np.ndarray) -> np.ndarray:
        return self._joint(tf.constant(enc, tf.float32), tf.constant(pred, tf.float32)).numpy()
