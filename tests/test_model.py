"""The TF model: streaming by construction (chunk by chunk with states equals whole), shapes, config checks."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from rnnt.config import ModelConfig  # noqa: E402
from rnnt.model import RNNT, ProjectedLSTM, TFStepModel  # noqa: E402

CFG = ModelConfig(vocab_size=20, encoder_layers=3, encoder_units=32, encoder_proj=16, time_reduction_after=1,
                  embed_dim=8, predictor_units=24, predictor_proj=16, joint_dim=24, chunk_frames=12)


@pytest.fixture(scope="module")
def model():
    m = RNNT(CFG, seed=3)
    rng = np.random.default_rng(0)
    m.set_feature_stats(rng.normal(size=80) * 0.1, 1.0 + rng.random(80))
    return m


def test_chunk_by_chunk_equals_whole_utterance(model):
    feats = np.random.default_rng(1).normal(size=(1, 96, 80)).astype(np.float32)
    whole, lengths = model.encode(tf.constant(feats), tf.constant([96]))
    assert whole.shape == (1, 96 // CFG.reduction, CFG.encoder_proj) and int(lengths[0]) == 96 // CFG.reduction
    step = TFStepModel(model)
    state = step.initial_encoder_state()
    chunks = []
    for start in range(0, 96, CFG.chunk_frames):
        enc, state = step.encode(feats[:, start:start + CFG.chunk_frames], state)
        chunks.append(enc)
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), whole.numpy(), atol=1e-5)


def test_prediction_steps_equal_the_whole_label_sequence(model):
    labels = np.array([[3, 4, 5, 6], [1, 2, 0, 0]], np.int32)
    whole = model.predictor(tf.constant(labels)).numpy()
    step = TFStepModel(model)
    state, tokens = step.initial_predictor_state(2), np.zeros(2, np.int32)
    for u in range(labels.shape[1] + 1):
        out, state = step.predict(tokens, state)
        np.testing.assert_allclose(out, whole[:, u], atol=1e-5)
        if u < labels.shape[1]:
            tokens = labels[:, u]


def test_joint_gives_log_probabilities_and_lattice_shape(model):
    step = TFStepModel(model)
    logp = step.joint(np.ones((3, CFG.encoder_proj), np.float32), np.zeros((3, CFG.predictor_proj), np.float32))
    np.testing.assert_allclose(np.exp(logp).sum(-1), 1.0, atol=1e-5)
    logits, enc_len = model.logits(tf.zeros([2, 30, 80]), tf.constant([30, 18]), tf.constant([[1, 2], [3, 0]]))
    assert logits.shape == (2, 30 // CFG.reduction, 3, CFG.vocab_size)
    assert enc_len.numpy().tolist() == [30 // CFG.reduction, 18 // CFG.reduction]


def test_unrolled_chunk_has_no_while_loop(model):
    fn = tf.function(model.encode_chunk).get_concrete_function(
        tf.TensorSpec([1, CFG.chunk_frames, 80]), tf.TensorSpec([1, CFG.encoder_state_size]))
    ops = {op.type for op in fn.graph.get_operations()}
    assert not ops & {"While", "StatelessWhile"}


@pytest.mark.parametrize("unroll", [False, True])
def test_cell_clip_bounds_the_cell_state_and_only_it(unroll):
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 12, 8)) * 20, tf.float32)  # loud: cells run away
    zeros_c, zeros_h = tf.zeros([2, 16]), tf.zeros([2, 4])
    y_free, c_free, _ = ProjectedLSTM(8, 16, 4, seed=5)(x, zeros_c, zeros_h, unroll=unroll)
    y_clip, c_clip, _ = ProjectedLSTM(8, 16, 4, seed=5, cell_clip=0.5)(x, zeros_c, zeros_h, unroll=unroll)
    assert float(tf.reduce_max(tf.abs(c_free))) > 0.5
    assert float(tf.reduce_max(tf.abs(c_clip))) <= 0.5 + 1e-6
    assert not np.allclose(y_free.numpy(), y_clip.numpy())
    # a clip far above the cells changes nothing
    y_loose, _, _ = ProjectedLSTM(8, 16, 4, seed=5, cell_clip=1e6)(x, zeros_c, zeros_h, unroll=unroll)
    np.testing.assert_allclose(y_loose.numpy(), y_free.numpy(), atol=1e-6)


@pytest.mark.parametrize("bad", [dict(chunk_frames=10), dict(time_reduction_after=2), dict(vocab_size=1),
                                 dict(cell_clip=-1.0)])
def test_config_rejects_inconsistent_sizes(bad):
    settings = dict(encoder_layers=3, chunk_frames=12)
    settings.update(bad)
    with pytest.raises(ValueError):
        ModelConfig(**settings)
