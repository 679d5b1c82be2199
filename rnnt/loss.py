"""RNN-Transducer loss in pure TensorFlow.

Only the blank and label log-probabilities are needed by the transducer lattice, so no full
`log_softmax` over `[B, T, U+1, V]` is built: one normalizer per node over V and one gather of the
two logits per lattice node give `blank_lp [B, T, U+1]` and `label_lp [B, T, U+1]` (last column unused).

The lattice is walked over anti-diagonals `n = t + u`: the forward variables (alpha) of one diagonal
depend only on the previous one, so each `tf.scan` step is vectorized over the diagonal and the batch.
Tensors on diagonals have layout `[N, U+1, B]` with `N = T + U` and row `u` of diagonal `n` holding
node `(t = n - u, u)`. Both gradients are hand-written (`tf.custom_gradient`): alpha-beta for the
lattice with respect to the skewed log-probabilities, and softmax-minus-one-hot for the picked
log-probabilities with respect to the logits; autodiff only handles the (small) skew between them.
Memory: the softmax `[B, T, U+1, V]` is kept from the forward pass for the backward pass (the
logits themselves are not).

Nodes outside an utterance's lattice (`t >= logit_length`, `u > label_length`) are held at a large
finite negative value instead of -inf, so no logsumexp of all -inf, and no NaN, can arise; they get
exactly zero gradient.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

NEG = -1e30  # "log zero": finite so that sums and differences never make NaN

_REDUCTIONS = ("none", "mean", "sum")


def rnnt_loss(
    logits: tf.Tensor,
    labels: tf.Tensor,
    logit_lengths: tf.Tensor,
    label_lengths: tf.Tensor,
    blank: int = 0,
    reduction: str = "none",
) -> tf.Tensor:
    """Negative log-likelihood of `labels` under the transducer joint output `logits`.

    Args:
      logits: `[B, T, U+1, V]` unnormalized joint output (any float dtype; computed in float32, or
        float64 when given float64).
      labels: `[B, U]` int label ids, padded beyond `label_lengths` (padding values are ignored).
      logit_lengths: `[B]` int, valid frames per item, `1 <= logit_lengths <= T`.
      label_lengths: `[B]` int, valid labels per item, `0 <= label_lengths <= U`.
      blank: id of the blank token.
      reduction: "none" (per-utterance `[B]`), "mean" or "sum" over the batch.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    logits = tf.convert_to_tensor(logits)
    if logits.dtype != tf.float64:
        logits = tf.cast(logits, tf.float32)
    logit_lengths = tf.cast(logit_lengths, tf.int32)
    label_lengths = tf.cast(label_lengths, tf.int32)
    blank_lp, label_lp = _node_log_probs(logits, tf.cast(labels, tf.int32), blank)
    nll = _lattice_nll(blank_lp, label_lp, logit_lengths, label_lengths)
    if reduction == "mean":
        return tf.reduce_mean(nll)
    if reduction == "sum":
        return tf.reduce_sum(nll)
    return nll


def ctc_loss(
    logits: tf.Tensor,
    labels: tf.Tensor,
    logit_lengths: tf.Tensor,
    label_lengths: tf.Tensor,
    blank: int = 0,
) -> tf.Tensor:
    """Per-utterance CTC negative log-likelihood `[B]` (an auxiliary loss for the encoder).

    logits `[B, T, V]`, labels `[B, U]` padded beyond `label_lengths`. An utterance too short for its labels
    (fewer frames than labels plus repeated neighbours) has no CTC path: it gets loss 0 and no gradient
    instead of inf.
    """
    labels = tf.cast(labels, tf.int32)
    logit_lengths = tf.cast(logit_lengths, tf.int32)
    label_lengths = tf.cast(label_lengths, tf.int32)
    inside = tf.sequence_mask(label_lengths, tf.shape(labels)[1])
    repeats = tf.reduce_sum(tf.cast((labels[:, 1:] == labels[:, :-1]) & inside[:, 1:], tf.int32), axis=1)
    feasible = logit_lengths >= label_lengths + repeats
    nll = tf.nn.ctc_loss(
        labels, tf.cast(logits, tf.float32), tf.where(feasible, label_lengths, 0), logit_lengths,
        logits_time_major=False, blank_index=blank,
    )
    return tf.where(feasible, nll, tf.zeros_like(nll))


def _node_log_probs(logits: tf.Tensor, labels: tf.Tensor, blank: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Blank and next-label log-probabilities per lattice node, both `[B, T, U+1]`.

    The label column `U` has no next label; it holds the blank's value and is masked later.
    """
    shape = tf.shape(logits)
    batch, frames, vocab = shape[0], shape[1], shape[3]
    labels = tf.clip_by_value(labels, 0, vocab - 1)  # padding may hold -1 or other junk
    next_label = tf.concat([labels, tf.fill([batch, 1], blank)], axis=1)  # [B, U+1]
    next_label = tf.broadcast_to(next_label[:, None, :], [batch, frames, tf.shape(next_label)[1]])
    return _picked_log_probs(blank, next_label)(logits)


def _picked_log_probs(blank: int, next_label: tf.Tensor) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """`logits [B, T, U+1, V]` to (blank, next-label) log-probabilities, with a lean gradient.

    The softmax kernel is the cheapest full pass over V; the normalizer follows from it as
    `max(logits) - log(max(softmax))`, exact to float rounding since `max(softmax) >= 1/V`. The
    gradient is `-(g_blank + g_label) * softmax` plus `g_blank` and `g_label` scattered onto each
    node's blank and label entries: one dense pass, where autodiff of logsumexp and gather makes
    several (dense softmax gradient, densified gather gradients, their sum).
    """

    @tf.custom_gradient
    def picked(logits: tf.Tensor):
        shape = tf.shape(logits)
        flat = tf.reshape(logits, [-1, shape[-1]])
        probs = tf.nn.softmax(flat)
        log_norm = tf.reduce_max(flat, axis=-1) - tf.math.log(tf.reduce_max(probs, axis=-1))
        index = tf.stack([tf.fill(tf.shape(flat)[:1], blank), tf.reshape(next_label, [-1])], axis=-1)
        pair = tf.gather(flat, index, batch_dims=1) - log_norm[:, None]  # [nodes, 2]
        node_shape = shape[:-1]

        def grad(g_blank: tf.Tensor, g_label: tf.Tensor) -> tf.Tensor:
            g_blank = tf.reshape(g_blank, [-1])
            g_label = tf.reshape(g_label, [-1])
            dense = probs * -(g_blank + g_label)[:, None]
            nodes = tf.range(tf.shape(index)[0])
            targets = tf.concat([tf.stack([nodes, index[:, 1]], -1), tf.stack([nodes, index[:, 0]], -1)], 0)
            dense = tf.tensor_scatter_nd_add(dense, targets, tf.concat([g_label, g_blank], 0))
            return tf.reshape(dense, shape)

        return (tf.reshape(pair[:, 0], node_shape), tf.reshape(pair[:, 1], node_shape)), grad

    return picked


def _lattice_nll(
    blank_lp: tf.Tensor, label_lp: tf.Tensor, logit_lengths: tf.Tensor, label_lengths: tf.Tensor
) -> tf.Tensor:
    """Per-utterance NLL from node log-probabilities `[B, T, U+1]`."""
    shape = tf.shape(blank_lp)
    frames, nodes_u = shape[1], shape[2]
    num_diag = frames + nodes_u - 1
    valid, valid_label, is_end = _diagonal_masks(num_diag, nodes_u, logit_lengths, label_lengths)
    # Clamped at NEG so that a -inf log-probability (a -inf logit) cannot make inf - inf.
    blank_s = tf.where(valid, tf.maximum(_skew(blank_lp, num_diag), NEG), NEG)
    label_s = tf.where(valid_label, tf.maximum(_skew(label_lp, num_diag), NEG), NEG)
    return _skewed_nll(valid, valid_label, is_end)(blank_s, label_s)


def _diagonal_masks(
    num_diag: tf.Tensor, nodes_u: tf.Tensor, logit_lengths: tf.Tensor, label_lengths: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Boolean `[N, U+1, B]` masks: node in lattice, label move allowed, final node."""
    u = tf.range(nodes_u)[None, :, None]
    t = tf.range(num_diag)[:, None, None] - u
    t_len = logit_lengths[None, None, :]
    u_len = label_lengths[None, None, :]
    in_time = (t >= 0) & (t < t_len)
    valid = in_time & (u <= u_len)
    valid_label = in_time & (u < u_len)
    is_end = (t == t_len - 1) & (u == u_len)
    return valid, valid_label, is_end


def _skew(x: tf.Tensor, num_diag: tf.Tensor) -> tf.Tensor:
    """`[B, T, U+1]` to diagonals `[N, U+1, B]`; out-of-range rows hold junk (mask them)."""
    frames, nodes_u = tf.shape(x)[1], tf.shape(x)[2]
    u = tf.range(nodes_u)[None, :]
    t = tf.clip_by_value(tf.range(num_diag)[:, None] - u, 0, frames - 1)
    index = tf.stack([t, tf.broadcast_to(u, tf.shape(t))], axis=-1)  # [N, U+1, 2]
    return tf.gather_nd(tf.transpose(x, [1, 2, 0]), index)


def _logaddexp(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Stable log(exp(a) + exp(b)) for finite inputs."""
    return tf.maximum(a, b) + tf.math.log1p(tf.exp(-tf.abs(a - b)))


def _neg_row(x: tf.Tensor) -> tf.Tensor:
    """A `[1, ...]` slab of NEG shaped like one row of `x`."""
    return tf.fill(tf.concat([[1], tf.shape(x)[1:]], 0), tf.constant(NEG, x.dtype))


def _shift_down(x: tf.Tensor) -> tf.Tensor:
    """`y[i] = x[i-1]`, `y[0] = NEG`, along axis 0."""
    return tf.concat([_neg_row(x), x[:-1]], axis=0)


def _shift_up(x: tf.Tensor) -> tf.Tensor:
    """`y[i] = x[i+1]`, last row NEG, along axis 0."""
    return tf.concat([x[1:], _neg_row(x)], axis=0)


def _alphas(blank_s: tf.Tensor, label_s: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Forward log-variables on diagonals, `[N, U+1, B]`."""

    def step(prev: tf.Tensor, elems: tuple[tf.Tensor, ...]) -> tf.Tensor:
        blank_prev, label_prev, valid_here = elems
        merged = _logaddexp(prev + blank_prev, _shift_down(prev + label_prev))
        return tf.where(valid_here, merged, NEG)

    origin = valid[0] & (tf.range(tf.shape(valid)[1]) == 0)[:, None]  # node (0, 0)
    first = tf.where(origin, tf.zeros_like(blank_s[0]), NEG)
    rest = tf.scan(step, (blank_s[:-1], label_s[:-1], valid[1:]), initializer=first)
    return tf.concat([first[None], rest], axis=0)


def _betas(blank_s: tf.Tensor, label_s: tf.Tensor, valid: tf.Tensor, is_end: tf.Tensor) -> tf.Tensor:
    """Backward log-variables on diagonals, `[N, U+1, B]`, including the final blank."""

    def step(nxt: tf.Tensor, elems: tuple[tf.Tensor, ...]) -> tf.Tensor:
        blank_here, label_here, valid_here, end_here = elems
        merged = _logaddexp(nxt + blank_here, _shift_up(nxt) + label_here)
        return tf.where(end_here, blank_here, tf.where(valid_here, merged, NEG))

    last = tf.fill(tf.shape(blank_s)[1:], tf.constant(NEG, blank_s.dtype))
    return tf.scan(step, (blank_s, label_s, valid, is_end), initializer=last, reverse=True)


def _skewed_nll(
    valid: tf.Tensor, valid_label: tf.Tensor, is_end: tf.Tensor
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """NLL of skewed log-probabilities, with the analytic alpha-beta gradient."""

    @tf.custom_gradient
    def nll(blank_s: tf.Tensor, label_s: tf.Tensor):
        alpha = _alphas(blank_s, label_s, valid)
        log_lik = tf.reduce_sum(tf.where(is_end, alpha + blank_s, 0.0), axis=[0, 1])  # [B]

        def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            beta_next = _shift_up(_betas(blank_s, label_s, valid, is_end))  # node (t+1, u)
            after_blank = tf.where(is_end, tf.zeros_like(beta_next), beta_next)
            neg_col = tf.fill(tf.shape(beta_next[:, :1]), tf.constant(NEG, beta_next.dtype))
            after_label = tf.concat([beta_next[:, 1:], neg_col], axis=1)  # node (t, u+1)
            base = alpha - log_lik
            scale = -upstream[None, None, :]
            g_blank = tf.where(valid, tf.exp(base + blank_s + after_blank), 0.0) * scale
            g_label = tf.where(valid_label, tf.exp(base + label_s + after_label), 0.0) * scale
            return g_blank, g_label

        return -log_lik, grad

    return nll

