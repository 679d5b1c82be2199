"""RNN-T loss against a brute-force enumeration of every alignment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from rnnt.loss import rnnt_loss  # noqa: E402


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def brute_nll(logits: np.ndarray, labels: np.ndarray, blank: int = 0) -> float:
    """-log sum over all alignments of one utterance; `logits [T, U+1, V]`, `labels [U]`."""
    frames, num_labels = logits.shape[0], len(labels)
    lp = _log_softmax(logits.astype(np.float64))
    path_scores = []
    # An alignment is where the U label emissions sit among T-1 non-final blanks (final blank fixed).
    for label_slots in itertools.combinations(range(frames - 1 + num_labels), num_labels):
        t, u, score = 0, 0, 0.0
        for step in range(frames - 1 + num_labels):
            if step in label_slots:
                score += lp[t, u, labels[u]]
                u += 1
            else:
                score += lp[t, u, blank]
                t += 1
        assert (t, u) == (frames - 1, num_labels)
        path_scores.append(score + lp[t, u, blank])
    scores = np.array(path_scores)
    return float(-(scores.max() + np.log(np.exp(scores - scores.max()).sum())))


def brute_batch(logits, labels, t_lens, u_lens, blank=0) -> np.ndarray:
    return np.array(
        [
            brute_nll(logits[b, : t_lens[b], : u_lens[b] + 1], labels[b, : u_lens[b]], blank)
            for b in range(len(t_lens))
        ]
    )


def make_case(rng, t_lens, u_lens, vocab, blank=0, pad_label=-1, dtype=np.float32):
    """Random padded batch; padding holds junk (large logits, out-of-range labels)."""
    batch, frames, max_u = len(t_lens), max(t_lens), max(u_lens)
    logits = rng.normal(size=(batch, frames, max_u + 1, vocab)) * 2.0
    labels = np.full((batch, max_u), pad_label, np.int32)
    for b in range(batch):
        logits[b, t_lens[b] :] = 50.0
        logits[b, :, u_lens[b] + 1 :] = -50.0
        choices = [v for v in range(vocab) if v != blank]
        labels[b, : u_lens[b]] = rng.choice(choices, size=u_lens[b])
    return logits.astype(dtype), labels, np.array(t_lens, np.int32), np.array(u_lens, np.int32)


def tf_loss_and_grad(logits, labels, t_lens, u_lens, blank=0):
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = rnnt_loss(x, labels, t_lens, u_lens, blank=blank)
        total = tf.reduce_sum(loss)
    return loss.numpy(), tape.gradient(total, x).numpy()


CASES = [
    ([4], [3], 5),
    ([1], [2], 3),  # T = 1: every label at the first frame
    ([3], [0], 4),  # empty label sequence
    ([1], [0], 3),
    ([4, 2, 3, 1], [2, 3, 0, 1], 4),  # mixed lengths with padding in both T and U
]


@pytest.mark.parametrize("t_lens,u_lens,vocab", CASES)
def test_value_matches_brute_force(t_lens, u_lens, vocab):
    rng = np.random.default_rng(sum(t_lens) * 7 + sum(u_lens))
    logits, labels, tl, ul = make_case(rng, t_lens, u_lens, vocab)
    got = rnnt_loss(logits, labels, tl, ul).numpy()
    np.testing.assert_allclose(got, brute_batch(logits, labels, tl, ul), rtol=1e-5, atol=1e-5)


def test_nonzero_blank_id_and_reductions():
    rng = np.random.default_rng(3)
    logits, labels, tl, ul = make_case(rng, [3, 4], [2, 1], 5, blank=2)
    want = brute_batch(logits, labels, tl, ul, blank=2)
    np.testing.assert_allclose(rnnt_loss(logits, labels, tl, ul, blank=2).numpy(), want, rtol=1e-5)
    mean = rnnt_loss(logits, labels, tl, ul, blank=2, reduction="mean").numpy()
    total = rnnt_loss(logits, labels, tl, ul, blank=2, reduction="sum").numpy()
    np.testing.assert_allclose([mean, total], [want.mean(), want.sum()], rtol=1e-5)
    with pytest.raises(ValueError):
        rnnt_loss(logits, labels, tl, ul, reduction="avg")


def numeric_grad(logits, labels, t_lens, u_lens, eps=1e-6) -> np.ndarray:
    """Central differences of the summed brute-force NLL, float64."""
    x = logits.astype(np.float64)
    grad = np.zeros_like(x)
    for b in range(x.shape[0]):
        for idx in itertools.product(*(range(n) for n in (t_lens[b], u_lens[b] + 1, x.shape[-1]))):
            full = (b,) + idx
            saved = x[full]
            x[full] = saved + eps
            plus = brute_nll(x[b, : t_lens[b], : u_lens[b] + 1], labels[b, : u_lens[b]])
            x[full] = saved - eps
            minus = brute_nll(x[b, : t_lens[b], : u_lens[b] + 1], labels[b, : u_lens[b]])
            x[full] = saved
            grad[full] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-7)])
def test_gradient_matches_finite_differences(dtype, tol):
    rng = np.random.default_rng(11)
    logits, labels, tl, ul = make_case(rng, [3, 2, 1], [2, 0, 2], 4, dtype=dtype)
    loss, grad = tf_loss_and_grad(logits, labels, tl, ul)
    assert loss.dtype == dtype and grad.dtype == dtype
    want = numeric_grad(logits, labels, tl, ul)
    np.testing.assert_allclose(grad, want, atol=tol)


def test_padding_has_no_influence_and_zero_gradient():
    rng = np.random.default_rng(5)
    logits, labels, tl, ul = make_case(rng, [4, 2], [1, 3], 5)
    loss, grad = tf_loss_and_grad(logits, labels, tl, ul)
    assert np.all(np.isfinite(grad))
    for b in range(2):
        assert not grad[b, tl[b] :].any()
        assert not grad[b, :, ul[b] + 1 :].any()
    junk = logits.copy()
    junk[0, :, ul[0] + 1 :] = rng.normal(size=junk[0, :, ul[0] + 1 :].shape) * 100
    junk[1, tl[1] :] = -1e4
    junk_labels = labels.copy()
    junk_labels[0, ul[0] :] = 4
    loss2, grad2 = tf_loss_and_grad(junk, junk_labels, tl, ul)
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)
    np.testing.assert_allclose(grad2, grad, atol=1e-7)


def test_gradient_sums_to_zero_per_node_and_is_stable():
    """d loss / d logits sums to zero over V at every node (softmax invariance); no NaN at extremes."""
    rng = np.random.default_rng(8)
    logits, labels, tl, ul = make_case(rng, [4, 3], [3, 2], 5)
    logits *= 30.0  # very peaked distributions, many near-impossible paths
    loss, grad = tf_loss_and_grad(logits, labels, tl, ul)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad.sum(-1), 0.0, atol=1e-4)
    np.testing.assert_allclose(loss, brute_batch(logits, labels, tl, ul), rtol=1e-5)


def test_minus_inf_logits_are_allowed():
    """A -inf logit (a banned token) on some nodes leaves other alignments; no NaN anywhere."""
    rng = np.random.default_rng(9)
    logits, labels, tl, ul = make_case(rng, [3, 2], [2, 1], 4)
    logits[0, 0, 1, 0] = -np.inf  # no blank at node (0, 1) and no first label at node (1, 0):
    logits[0, 1, 0, labels[0, 0]] = -np.inf  # so node (1, 1) cannot be reached
    logits[1, :, :, 3] = -np.inf
    loss, grad = tf_loss_and_grad(logits, labels, tl, ul)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, brute_batch(logits, labels, tl, ul), rtol=1e-5)


def test_tf_function_dynamic_shapes():
    spec = [
        tf.TensorSpec([None, None, None, None], tf.float32),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int32),
    ]

    @tf.function(input_signature=spec, jit_compile=False)
    def loss_and_grad(logits, labels, t_lens, u_lens):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = rnnt_loss(logits, labels, t_lens, u_lens, reduction="sum")
        return loss, tape.gradient(loss, logits)

    rng = np.random.default_rng(21)
    for t_lens, u_lens, vocab in [([3, 2], [1, 2], 4), ([2], [0], 3), ([4, 1, 2], [3, 1, 0], 5)]:
        logits, labels, tl, ul = make_case(rng, t_lens, u_lens, vocab)
        loss, grad = loss_and_grad(logits, labels, tl, ul)
        want_loss, want_grad = tf_loss_and_grad(logits, labels, tl, ul)
        np.testing.assert_allclose(loss.numpy(), brute_batch(logits, labels, tl, ul).sum(), rtol=1e-5)
        np.testing.assert_allclose(grad.numpy(), want_grad, atol=1e-6)


def test_jit_compile_matches_eager():
    @tf.function(jit_compile=True)
    def loss_and_grad(logits, labels, t_lens, u_lens):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = rnnt_loss(logits, labels, t_lens, u_lens, reduction="sum")
        return loss, tape.gradient(loss, logits)

    rng = np.random.default_rng(2)
    logits, labels, tl, ul = make_case(rng, [3, 2], [2, 1], 4)
    loss, grad = loss_and_grad(tf.constant(logits), labels, tl, ul)
    want_loss, want_grad = tf_loss_and_grad(logits, labels, tl, ul)
    np.testing.assert_allclose(loss.numpy(), want_loss.sum(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), want_grad, atol=1e-6)


def dp_nll(logits: np.ndarray, labels: np.ndarray, blank: int = 0) -> float:
    """Plain O(T*U) forward recursion (float64), for lattices too big to enumerate."""
    lp = _log_softmax(logits.astype(np.float64))
    frames, nodes_u = lp.shape[:2]
    alpha = np.full((frames, nodes_u), -np.inf)
    alpha[0, 0] = 0.0
    for t in range(frames):
        for u in range(nodes_u):
            if t > 0:
                alpha[t, u] = np.logaddexp(alpha[t, u], alpha[t - 1, u] + lp[t - 1, u, blank])
            if u > 0:
                alpha[t, u] = np.logaddexp(alpha[t, u], alpha[t, u - 1] + lp[t, u - 1, labels[u - 1]])
    return float(-(alpha[-1, -1] + lp[-1, -1, blank]))


def test_longer_lattices_match_plain_recursion():
    rng = np.random.default_rng(17)
    small, small_labels, _, _ = make_case(rng, [4], [3], 5)
    assert dp_nll(small[0], small_labels[0]) == pytest.approx(brute_nll(small[0], small_labels[0]), abs=1e-9)
    t_lens, u_lens = [23, 9, 30, 17], [7, 9, 0, 12]
    logits, labels, tl, ul = make_case(rng, t_lens, u_lens, 6, dtype=np.float64)
    want = [dp_nll(logits[b, : t_lens[b], : u_lens[b] + 1], labels[b, : u_lens[b]]) for b in range(4)]
    loss, grad = tf_loss_and_grad(logits, labels, tl, ul)
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    # Gradient spot checks by central differences of the (validated) float64 loss, in one batch.
    items, bumped, spots = [], [], []
    for _ in range(12):
        b = rng.integers(4)
        idx = (rng.integers(t_lens[b]), rng.integers(u_lens[b] + 1), rng.integers(6))
        for sign in (1.0, -1.0):
            x = logits[b].copy()
            x[idx] += sign * 1e-5
            bumped.append(x)
            items.append(b)
        spots.append((b,) + idx)
    bumped_loss = rnnt_loss(np.stack(bumped), labels[items], tl[items], ul[items]).numpy()
    numeric = (bumped_loss[0::2] - bumped_loss[1::2]) / 2e-5
    np.testing.assert_allclose([grad[spot] for spot in spots], numeric, atol=1e-6)


def _ctc_brute_nll(log_probs: np.ndarray, labels: list[int], blank: int = 0) -> float:
    """-log of the summed probability of every frame path that collapses to `labels`."""
    total = -np.inf
    for path in itertools.product(range(log_probs.shape[1]), repeat=log_probs.shape[0]):
        collapsed, previous = [], None
        for symbol in path:
            if symbol != previous and symbol != blank:
                collapsed.append(symbol)
            previous = symbol
        if collapsed == labels:
            total = np.logaddexp(total, sum(log_probs[t, s] for t, s in enumerate(path)))
    return -total


def test_ctc_loss_matches_brute_force_and_drops_impossible_rows():
    from rnnt.loss import ctc_loss

    rng = np.random.default_rng(3)
    logits = tf.constant(rng.normal(size=(3, 4, 3)).astype(np.float32))
    labels = tf.constant([[1, 2, 0], [1, 1, 1], [2, 2, 0]], tf.int32)
    label_lengths, frames = tf.constant([2, 3, 2]), tf.constant([4, 4, 3])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        nll = ctc_loss(logits, labels, frames, label_lengths)
    grad = tape.gradient(nll, logits).numpy()
    log_probs = tf.nn.log_softmax(logits).numpy()
    assert nll.numpy()[0] == pytest.approx(_ctc_brute_nll(log_probs[0], [1, 2]), rel=1e-5)
    assert nll.numpy()[2] == pytest.approx(_ctc_brute_nll(log_probs[2, :3], [2, 2]), rel=1e-5)
    # "1 1 1" needs 5 frames (blanks between repeats): no path in 4, so no loss and no gradient
    assert nll.numpy()[1] == 0.0 and np.all(grad[1] == 0.0)
    assert np.all(np.isfinite(grad)) and np.abs(grad[0]).max() > 0
    assert np.all(grad[2, 3] == 0.0)  # the padding frame of row 2
