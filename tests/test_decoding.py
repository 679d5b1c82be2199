"""Greedy and beam search over the step interface, word timing, endpoint rules."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import TINY_FEATURES, TONE_TOKENS, tone_text, tone_utterance
from rnnt.config import ModelConfig
from rnnt.decoding import (
    BeamSearchDecoder,
    DecodingOptions,
    GreedyDecoder,
    Hypothesis,
    StepModel,
    decode_features,
    encode_features,
    frame_seconds,
    make_decoder,
    word_spans,
)
from rnnt.endpoint import EndpointConfig, detect, trailing_silence_frames
from rnnt.features import log_mel
from rnnt.metrics import word_errors
from rnnt.tokens import TokenTable


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


class ToyModel:
    """A numpy StepModel: the prediction state is a function of the whole token history. Counts calls."""

    def __init__(self, vocab: int = 4, dim: int = 6, seed: int = 0, sharp: float = 1.0):
        rng = np.random.default_rng(seed)
        self.config = ModelConfig(
            vocab_size=vocab, num_mels=4, frame_stack=1, encoder_layers=1, encoder_units=dim, encoder_proj=dim,
            time_reduction_after=-1, embed_dim=dim, predictor_units=dim, predictor_proj=dim, joint_dim=dim,
            chunk_frames=2,
        )
        self.emb = rng.normal(size=(vocab, dim))
        self.rec = rng.normal(size=(dim, dim)) / np.sqrt(dim)
        self.enc_w = rng.normal(size=(4, dim))
        self.out = rng.normal(size=(dim, vocab)) * sharp
        self.bias = np.zeros(vocab)
        self.predict_calls: list[int] = []
        self.joint_calls: list[int] = []

    def initial_encoder_state(self):
        return np.zeros([1, 1], np.float32)

    def initial_predictor_state(self, n):
        return np.zeros([n, self.config.predictor_state_size], np.float32)

    def encode(self, feats, state):
        enc = np.tanh(feats[:, :, :] @ self.enc_w).astype(np.float32)
        return enc, state + 1

    def predict(self, tokens, state):
        self.predict_calls.append(len(tokens))
        d = self.config.predictor_proj
        h = np.tanh(self.emb[tokens] + state[:, :d] @ self.rec).astype(np.float32)
        new = np.concatenate([h, state[:, d:]], axis=1).astype(np.float32)
        return h, new

    def joint(self, enc, pred):
        self.joint_calls.append(len(enc))
        return _log_softmax(np.tanh(enc + pred) @ self.out + self.bias).astype(np.float32)


def _exact_sequences(model: ToyModel, enc: np.ndarray, max_symbols: int) -> dict[tuple, float]:
    """Label sequence -> log-sum of the probabilities of all its alignments (brute force, same topology)."""
    vocab = model.config.vocab_size

    def pred_of(tokens):
        state = model.initial_predictor_state(1)
        out, state = model.predict(np.array([0], np.int32), state)
        for t in tokens:
            out, state = model.predict(np.array([t], np.int32), state)
        return out

    totals: dict[tuple, list[float]] = {}

    def walk(frame, tokens, emitted, score):
        if frame == enc.shape[0]:
            totals.setdefault(tokens, []).append(score)
            return
        lp = model.joint(enc[frame : frame + 1], pred_of(tokens))[0]
        if emitted == max_symbols:  # moves on without a blank
            walk(frame + 1, tokens, 0, score)
            return
        walk(frame + 1, tokens, 0, score + lp[0])
        for k in range(1, vocab):
            walk(frame, tokens + (k,), emitted + 1, score + lp[k])

    walk(0, (), 0, 0.0)
    return {k: float(np.logaddexp.reduce(v)) for k, v in totals.items()}


@pytest.mark.parametrize("max_symbols", [1, 2])
def test_wide_beam_is_exact(max_symbols):
    """With a beam wider than the number of hypotheses, merging gives every label sequence its exact total
    log-probability (the log-sum over its alignments)."""
    model = ToyModel(vocab=3, seed=1)
    enc = np.tanh(np.random.default_rng(2).normal(size=(3, 6))).astype(np.float32)
    exact = _exact_sequences(model, enc, max_symbols)
    decoder = BeamSearchDecoder(model, DecodingOptions(beam=10_000, max_symbols_per_frame=max_symbols))
    state = decoder.advance(decoder.start(), enc)
    found = {h.tokens: h.score for h in decoder.hypotheses(state)}
    assert set(found) == set(exact)
    for tokens, score in exact.items():
        assert found[tokens] == pytest.approx(score, abs=1e-5)
    best = max(exact, key=exact.get)
    assert decoder.best(state).tokens == best


def test_beam_one_equals_greedy():
    model = ToyModel(vocab=5, seed=3, sharp=2.0)
    enc = np.tanh(np.random.default_rng(4).normal(size=(40, 6))).astype(np.float32)
    for m in (1, 3):
        opts = DecodingOptions(beam=1, max_symbols_per_frame=m)
        g, b = GreedyDecoder(model, opts), BeamSearchDecoder(model, opts)
        hg = g.best(g.advance(g.start(), enc))
        hb = b.best(b.advance(b.start(), enc))
        assert hg.tokens and hg.tokens == hb.tokens and hg.token_frames == hb.token_frames
        assert hg.score == pytest.approx(hb.score, abs=1e-4)
    assert isinstance(make_decoder(model, DecodingOptions(beam=1)), GreedyDecoder)
    assert isinstance(make_decoder(model, DecodingOptions(beam=2)), BeamSearchDecoder)


@pytest.mark.parametrize("beam", [1, 4])
def test_streaming_advance_matches_one_call(beam):
    model = ToyModel(vocab=5, seed=5, sharp=2.0)
    enc = np.tanh(np.random.default_rng(6).normal(size=(50, 6))).astype(np.float32)
    decoder = make_decoder(model, DecodingOptions(beam=beam))
    whole = decoder.best(decoder.advance(decoder.start(), enc))
    state = decoder.start()
    rng = np.random.default_rng(7)
    pos = 0
    while pos < len(enc):
        n = int(rng.integers(0, 7))
        decoder.advance(state, enc[pos : pos + n])
        pos += n
    assert decoder.best(state) == whole
    # absolute frame offsets
    shifted = decoder.best(decoder.advance(decoder.start(100), enc))
    assert shifted.tokens == whole.tokens
    assert shifted.token_frames == tuple(f + 100 for f in whole.token_frames)


def test_beam_batches_predict_and_joint_and_caches():
    model = ToyModel(vocab=6, seed=8, sharp=1.5)
    enc = np.tanh(np.random.default_rng(9).normal(size=(30, 6))).astype(np.float32)
    decoder = BeamSearchDecoder(model, DecodingOptions(beam=4, max_symbols_per_frame=2))
    state = decoder.advance(decoder.start(), enc)
    steps = len(model.joint_calls)
    assert 30 <= steps <= 60  # one joint call per expansion step, the whole beam at once
    assert max(model.joint_calls) == 4
    assert len(model.predict_calls) <= steps and max(model.predict_calls) > 1
    # every prediction output is computed once per distinct prefix at most (the cache)
    assert sum(model.predict_calls) <= len(state.cache) + 1 or len(state.cache) == 128
    h = decoder.best(state)
    assert len(h.tokens) == len(h.token_frames) == len(h.token_logprobs)
    assert list(h.token_frames) == sorted(h.token_frames)
    # a tiny cache still gives the same answer
    uncached = ToyModel(vocab=6, seed=8, sharp=1.5)
    small = BeamSearchDecoder(uncached, DecodingOptions(beam=4, max_symbols_per_frame=2, prediction_cache_size=1))
    assert small.best(small.advance(small.start(), enc)) == h
    assert sum(uncached.predict_calls) >= sum(model.predict_calls)


def test_max_symbols_per_frame_bounds_emissions():
    model = ToyModel(vocab=4, seed=10)
    model.bias[0] = -100.0  # blank is never likely: every step emits
    enc = np.zeros((5, 6), np.float32)
    for beam in (1, 3):
        for m in (1, 2, 3):
            d = make_decoder(model, DecodingOptions(beam=beam, max_symbols_per_frame=m))
            h = d.best(d.advance(d.start(), enc))
            assert len(h.tokens) == 5 * m
            assert all(h.token_frames.count(f) == m for f in range(5))


def test_options_are_validated():
    for bad in (dict(beam=0), dict(max_symbols_per_frame=0), dict(beam=2.5), dict(prediction_cache_size=0)):
        with pytest.raises(ValueError):
            DecodingOptions(**bad)


def test_word_spans_times_and_confidence():
    table = TokenTable(["<blk>", "\u2581he", "llo", "\u2581world", "\u2581"])
    hyp = Hypothesis(
        tokens=(1, 2, 4, 3), token_frames=(2, 4, 5, 9), token_logprobs=(np.log(0.5), np.log(0.8), 0.0, np.log(0.9)),
        score=-1.0,
    )
    words = word_spans(hyp, table, frame_secs=0.06, duration=0.58)
    assert [w.text for w in words] == ["hello", "world"]
    assert words[0].start == pytest.approx(0.12) and words[0].end == pytest.approx(0.30)
    assert words[0].confidence == pytest.approx(np.sqrt(0.5 * 0.8))  # geometric mean
    assert words[1].start == pytest.approx(0.54) and words[1].end == pytest.approx(0.58)  # clipped
    assert words[1].confidence == pytest.approx(0.9)
    assert frame_seconds(ModelConfig(), TINY_FEATURES) == pytest.approx(0.06)


def test_endpoint_rules():
    cfg = EndpointConfig()  # 2.4 s / 1.2 s after speech / 20 s
    fs = 0.06
    assert trailing_silence_frames(10, None) == 10
    assert trailing_silence_frames(10, 4) == 5
    assert trailing_silence_frames(10, 104, start_frame=100) == 5
    assert not detect(cfg, 39, None, fs)  # 2.34 s of nothing
    assert detect(cfg, 40, None, fs)  # rule 1
    assert not detect(cfg, 30, 10, fs)  # 1.14 s after speech
    assert detect(cfg, 31, 10, fs)  # rule 2: 1.2 s after speech
    assert detect(cfg, 334, 332, fs)  # rule 3: 20.04 s
    assert not detect(EndpointConfig(None, None, None), 10_000, None, fs)
    with pytest.raises(ValueError):
        EndpointConfig(rule2_min_trailing_silence=0)


# -- with TensorFlow: the same decoder drives the TF model -------------------------------------------------------


def test_decode_features_drives_the_tf_model(tiny_rnnt):
    from rnnt.model import TFStepModel

    model = TFStepModel(tiny_rnnt)
    assert isinstance(model, StepModel)
    feats = np.random.default_rng(0).normal(size=(50, 20)).astype(np.float32)
    hyp = decode_features(model, feats, DecodingOptions(beam=2), TINY_FEATURES)
    # by hand: chunks of 12 frames, the last one padded with log(log_floor)
    padded = np.concatenate([feats, np.full((10, 20), np.log(TINY_FEATURES.log_floor), np.float32)])
    state = model.initial_encoder_state()
    decoder = make_decoder(model, DecodingOptions(beam=2))
    dstate = decoder.start()
    for i in range(0, 60, 12):
        enc, state = model.encode(padded[None, i : i + 12], state)
        decoder.advance(dstate, enc[0])
    assert decoder.best(dstate) == hyp
    assert sum(e.shape[0] for e in encode_features(model, feats, TINY_FEATURES)) == 10


def _test_set(n: int = 20):
    rng = np.random.default_rng(99)
    return [tone_utterance(rng, noise=float(rng.choice([0.1, 0.2, 0.3]))) for _ in range(n)]


def test_beam_never_worse_than_greedy(trained_bundle):
    """On the trained tiny model's noisy held-out set, beam search (4) has no more word errors than greedy and
    finds hypotheses at least as likely."""
    from rnnt.bundle import TFLiteStepModel

    model = TFLiteStepModel(trained_bundle)
    greedy_err = beam_err = words = 0
    greedy_score = beam_score = 0.0
    for x, ids, _ in _test_set():
        feats = log_mel(x, TINY_FEATURES)
        g = decode_features(model, feats, DecodingOptions(beam=1))
        b = decode_features(model, feats, DecodingOptions(beam=4))
        ref = tone_text(ids)
        table = TokenTable(TONE_TOKENS)
        greedy_err += word_errors(ref, table.decode(g.tokens)).errors
        beam_err += word_errors(ref, table.decode(b.tokens)).errors
        words += len(ref.split())
        greedy_score += g.score
        beam_score += b.score
    assert greedy_err > 0, "the test set should be hard enough for greedy to make mistakes"
    assert beam_err <= greedy_err
    assert beam_err < words * 0.5
    assert beam_score >= greedy_score


def test_tf_and_tflite_decode_alike(trained_rnnt, trained_bundle):
    from rnnt.bundle import TFLiteStepModel
    from rnnt.model import TFStepModel

    tf_model, lite = TFStepModel(trained_rnnt), TFLiteStepModel(trained_bundle)
    rng = np.random.default_rng(12)
    for _ in range(3):
        x, ids, _ = tone_utterance(rng, noise=0.003)
        feats = log_mel(x, TINY_FEATURES)
        a = decode_features(tf_model, feats, DecodingOptions(beam=4), TINY_FEATURES)
        b = decode_features(lite, feats, DecodingOptions(beam=4))
        assert a.tokens == b.tokens == tuple(ids)
        assert a.token_frames == b.token_frames
        assert a.score == pytest.approx(b.score, abs=1e-2)
