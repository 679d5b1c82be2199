"""RNN-T decoding over a numpy step interface: greedy and beam search, streaming (numpy only).

The decoders drive any `StepModel` (the TFLite bundle through `rnnt.bundle.TFLiteStepModel`, or the
TensorFlow model through `rnnt.model.TFStepModel` during training evaluation). Both decoders share one
streaming interface, so they are interchangeable::

    decoder = make_decoder(model, DecodingOptions(beam=4))
    state = decoder.start()
    for enc in encoder_chunks:              # enc [n, encoder_proj]
        decoder.advance(state, enc)         # partial result: decoder.best(state)
    hyp = decoder.best(state)               # Hypothesis(tokens, token_frames, token_logprobs, score)

Encoder frame ``f`` covers feature frames ``[f * reduction, (f + 1) * reduction)``; its time in seconds is
``f * frame_seconds(model_cfg, feature_cfg)``.

Search topology (both decoders): at each encoder frame a hypothesis either takes blank (moves on to the next
frame) or emits a token and stays on the frame; after `max_symbols_per_frame` tokens on one frame it moves
on without paying for a blank. The greedy decoder takes the most probable of these at every step. The beam
search (`BeamSearchDecoder`) expands the whole beam at once, one symbol per expansion step, at most
`max_symbols_per_frame` steps per frame (the frame-synchronous "modified" beam search of icefall/k2, with
the standard RNN-T topology): every step sends all hypotheses still on the frame as ONE batch through
`joint` (and, for those whose prediction-network output is not cached, as one batch through `predict`);
hypotheses with identical token sequences that reach the next frame are merged (scores log-added, the
alignment of the better one kept); the hypotheses that finished the frame and the ones still on it are
pruned together to `beam`. With ``beam=1`` the beam search makes exactly the greedy decoder's choices.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from rnnt.config import FeatureConfig, ModelConfig

__all__ = [
    "StepModel",
    "DecodingOptions",
    "Hypothesis",
    "DecoderState",
    "Decoder",
    "GreedyDecoder",
    "BeamSearchDecoder",
    "make_decoder",
    "decode_features",
    "encode_features",
    "frame_seconds",
    "WordSpan",
    "word_spans",
]


@runtime_checkable
class StepModel(Protocol):
    """What the decoders drive; see docs/design.md. Implementations need not be thread-safe."""

    config: ModelConfig

    def initial_encoder_state(self) -> np.ndarray:  # [1, S_enc] float32
        ...

    def initial_predictor_state(self, n: int) -> np.ndarray:  # [n, S_pred] float32
        ...

    def encode(self, feats: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """feats [1, chunk_frames, num_mels] -> (enc [1, chunk_frames // reduction, encoder_proj], state)."""
        ...

    def predict(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tokens int32 [n] (blank = start symbol) -> (pred [n, predictor_proj], state [n, S_pred])."""
        ...

    def joint(self, enc: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """enc [n, encoder_proj], pred [n, predictor_proj] -> log-probabilities [n, vocab_size]."""
        ...


DEFAULT_BEAM = 8  # beam 4 to 8: -0.4 / -1.6 points WER on the real dev sets (docs/default-model.md, run 13)


@dataclass(frozen=True)
class DecodingOptions:
    """How to search. ``beam=1`` selects greedy decoding (`make_decoder`)."""

    beam: int = DEFAULT_BEAM
    max_symbols_per_frame: int = 3  # tokens one hypothesis may emit on one encoder frame
    prediction_cache_size: int = 128  # LRU entries (token prefix -> prediction output and state) per stream

    def __post_init__(self) -> None:
        for name in ("beam", "max_symbols_per_frame", "prediction_cache_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DecodingOptions.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Hypothesis:
    """A decoded token sequence.

    `token_frames[i]` is the absolute encoder frame on which token i was emitted and `token_logprobs[i]`
    the log-probability the joint gave it there; `score` is the total log-probability of the hypothesis
    (for the beam search, log-added over the merged alignments).
    """

    tokens: tuple[int, ...]
    token_frames: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    score: float


class _Hyp:
    """A live hypothesis. Its prediction output is computed lazily (None until then)."""

    __slots__ = ("tokens", "frames", "logprobs", "score", "pred", "pred_state", "parent_state")

    def __init__(self, tokens, frames, logprobs, score, pred=None, pred_state=None, parent_state=None):
        self.tokens: tuple[int, ...] = tokens
        self.frames: tuple[int, ...] = frames
        self.logprobs: tuple[float, ...] = logprobs
        self.score: float = score
        self.pred: np.ndarray | None = pred  # [P] prediction output after `tokens`
        self.pred_state: np.ndarray | None = pred_state  # [S] prediction state after `tokens`
        self.parent_state: np.ndarray | None = parent_state  # state after tokens[:-1] (while pred is None)

    def moved(self, score: float) -> "_Hyp":
        """The same hypothesis with another score (e.g. after taking blank)."""
        return _Hyp(self.tokens, self.frames, self.logprobs, score, self.pred, self.pred_state, self.parent_state)

    def public(self) -> Hypothesis:
        return Hypothesis(self.tokens, self.frames, self.logprobs, float(self.score))


class _LRU:
    """A small least-recently-used map (token prefix -> (pred, pred_state))."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict = OrderedDict()

    def get(self, key):
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class DecoderState:
    """Search state of one stream; independent of any model instance (plain numpy), so any thread's model
    may continue it. `advance` updates it in place."""

    hyps: list  # list[_Hyp], best first
    next_frame: int = 0  # absolute index of the next encoder frame
    cache: _LRU = field(default_factory=lambda: _LRU(128))
    frames_decoded: int = 0  # encoder frames consumed since `start`
    start_frame: int = 0  # absolute index of the first frame decoded with this state

    @property
    def last_emission_frame(self) -> int | None:
        """Frame of the best hypothesis' last token, or None if it has none."""
        frames = self.hyps[0].frames
        return frames[-1] if frames else None


class Decoder:
    """Common streaming interface of `GreedyDecoder` and `BeamSearchDecoder`."""

    def __init__(self, model: StepModel, options: DecodingOptions = DecodingOptions()) -> None:
        self.model = model
        self.options = options
        self.blank = 0

    def start(self, start_frame: int = 0) -> DecoderState:
        """A fresh state: no tokens yet, prediction network at its start symbol (blank)."""
        initial = np.asarray(self.model.initial_predictor_state(1), np.float32)[0]
        root = _Hyp((), (), (), 0.0, parent_state=initial)
        return DecoderState(
            hyps=[root],
            next_frame=start_frame,
            cache=_LRU(self.options.prediction_cache_size),
            start_frame=start_frame,
        )

    def advance(self, state: DecoderState, enc_frames: np.ndarray, frame_offset: int | None = None) -> DecoderState:
        """Consume encoder frames ``enc_frames [n, D]`` (or ``[1, n, D]``); the first is absolute frame
        `frame_offset` (default: where the state left off). Returns `state`, updated in place."""
        enc = np.asarray(enc_frames, np.float32)
        if enc.ndim == 3:
            if enc.shape[0] != 1:
                raise ValueError(f"expected encoder frames [n, D] or [1, n, D], got {enc.shape}")
            enc = enc[0]
        if enc.ndim != 2:
            raise ValueError(f"expected encoder frames [n, D], got shape {enc.shape}")
        frame = state.next_frame if frame_offset is None else int(frame_offset)
        for i in range(enc.shape[0]):
            self._frame(state, enc[i], frame + i)
        state.next_frame = frame + enc.shape[0]
        state.frames_decoded += enc.shape[0]
        return state

    def best(self, state: DecoderState) -> Hypothesis:
        """The best hypothesis so far (a partial result while decoding continues)."""
        return state.hyps[0].public()

    def hypotheses(self, state: DecoderState) -> list[Hypothesis]:
        """Every hypothesis in the beam, best first."""
        return [h.public() for h in state.hyps]

    # -- shared helpers --
    def _ensure_pred(self, state: DecoderState, hyps: Sequence[_Hyp], use_cache: bool = True) -> None:
        """Fill in the prediction output of every hypothesis in `hyps` (cache, then ONE batched predict)."""
        missing = []
        for h in hyps:
            if h.pred is None:
                hit = state.cache.get(h.tokens) if use_cache else None
                if hit is not None:
                    h.pred, h.pred_state = hit
                    h.parent_state = None
                else:
                    missing.append(h)
        if not missing:
            return
        tokens = np.array([h.tokens[-1] if h.tokens else self.blank for h in missing], np.int32)
        states = np.stack([h.parent_state for h in missing]).astype(np.float32, copy=False)
        out, new_states = self.model.predict(tokens, states)
        out = np.asarray(out, np.float32)
        new_states = np.asarray(new_states, np.float32)
        for i, h in enumerate(missing):
            h.pred, h.pred_state, h.parent_state = out[i], new_states[i], None
            if use_cache:
                state.cache.put(h.tokens, (h.pred, h.pred_state))

    def _frame(self, state: DecoderState, enc: np.ndarray, frame: int) -> None:
        raise NotImplementedError


class GreedyDecoder(Decoder):
    """The most probable symbol at every step (blank moves on to the next frame)."""

    def _frame(self, state: DecoderState, enc: np.ndarray, frame: int) -> None:
        h = state.hyps[0]
        enc_row = enc[None, :]
        for _ in range(self.options.max_symbols_per_frame):
            self._ensure_pred(state, (h,), use_cache=False)  # a single path never revisits a prefix
            lp = np.asarray(self.model.joint(enc_row, h.pred[None, :]))[0]
            k = int(np.argmax(lp))
            score = h.score + float(lp[k])
            if k == self.blank:
                h.score = score
                break
            h = _Hyp(h.tokens + (k,), h.frames + (frame,), h.logprobs + (float(lp[k]),), score, parent_state=h.pred_state)
        state.hyps = [h]


class BeamSearchDecoder(Decoder):
    """Frame-synchronous beam search (see the module docstring)."""

    def _frame(self, state: DecoderState, enc: np.ndarray, frame: int) -> None:
        beam = self.options.beam
        finished: dict[tuple[int, ...], _Hyp] = {}  # hypotheses that have left this frame, by tokens
        active = state.hyps  # hypotheses still on this frame (unique token sequences)
        for _ in range(self.options.max_symbols_per_frame):
            self._ensure_pred(state, active)
            n = len(active)
            lp = np.asarray(self.model.joint(np.repeat(enc[None, :], n, axis=0), np.stack([h.pred for h in active])))
            scores = np.array([h.score for h in active], np.float64)[:, None] + lp.astype(np.float64)
            # blank: the hypothesis leaves the frame
            for i, h in enumerate(active):
                _merge(finished, h.moved(float(scores[i, self.blank])))
            # the best `beam` token expansions (blank is column 0)
            tok_scores = scores[:, 1:].ravel()
            k = min(beam, tok_scores.size)
            top = np.argpartition(-tok_scores, k - 1)[:k] if k < tok_scores.size else np.arange(tok_scores.size)
            top = top[np.lexsort((top, -tok_scores[top]))]  # by score, ties by position: deterministic
            vocab = scores.shape[1] - 1
            expansions = [(float(tok_scores[j]), int(j) // vocab, int(j) % vocab + 1) for j in top]
            # prune finished and expanding hypotheses together to `beam` (finished first on ties)
            ranked = [(h.score, 0, i, h) for i, h in enumerate(finished.values())]
            ranked += [(s, 1, i, (row, tok)) for i, (s, row, tok) in enumerate(expansions)]
            ranked.sort(key=lambda r: (-r[0], r[1], r[2]))
            ranked = ranked[:beam]
            finished = {r[3].tokens: r[3] for r in ranked if r[1] == 0}
            parents = active
            active = []
            for s, kind, _, item in ranked:
                if kind == 1:
                    row, tok = item
                    parent = parents[row]
                    active.append(
                        _Hyp(
                            parent.tokens + (tok,),
                            parent.frames + (frame,),
                            parent.logprobs + (float(lp[row, tok]),),
                            s,
                            parent_state=parent.pred_state,
                        )
                    )
            if not active:
                break
        # hypotheses that used up max_symbols_per_frame move on without a blank
        for h in active:
            _merge(finished, h)
        state.hyps = sorted(finished.values(), key=lambda h: -h.score)[:beam]


def _merge(pool: dict, h: _Hyp) -> None:
    """Add `h` to `pool`, log-adding its score into an existing hypothesis with the same tokens."""
    other = pool.get(h.tokens)
    if other is None:
        pool[h.tokens] = h
        return
    total = float(np.logaddexp(other.score, h.score))
    keep = other if other.score >= h.score else h
    if keep.pred is None and (other.pred is not None or h.pred is not None):
        src = other if other.pred is not None else h
        keep.pred, keep.pred_state, keep.parent_state = src.pred, src.pred_state, None
    pool[h.tokens] = keep.moved(total)


def make_decoder(model: StepModel, options: DecodingOptions = DecodingOptions()) -> Decoder:
    """`GreedyDecoder` for ``beam == 1``, else `BeamSearchDecoder`."""
    return GreedyDecoder(model, options) if options.beam == 1 else BeamSearchDecoder(model, options)


def frame_seconds(model_cfg: ModelConfig, feature_cfg: FeatureConfig) -> float:
    """Duration of one encoder frame in seconds."""
    return model_cfg.reduction * feature_cfg.hop_length / feature_cfg.sample_rate


def _pad_value(model: StepModel, feature_cfg: FeatureConfig | None) -> float:
    if feature_cfg is None:
        meta = getattr(model, "metadata", None)
        feature_cfg = getattr(meta, "features", None) or FeatureConfig()
    return float(np.log(feature_cfg.log_floor))


def encode_features(model: StepModel, features: np.ndarray, feature_cfg: FeatureConfig | None = None):
    """Yield encoder outputs ``[chunk_frames // reduction, D]`` chunk by chunk for ``features [T, mels]``.

    The last partial chunk is padded with silence (``log(log_floor)``), exactly as the runtime does.
    """
    cfg = model.config
    feats = np.asarray(features, np.float32)
    if feats.ndim != 2 or feats.shape[1] != cfg.num_mels:
        raise ValueError(f"expected features [frames, {cfg.num_mels}], got shape {feats.shape}")
    chunk = cfg.chunk_frames
    pad = (-feats.shape[0]) % chunk
    if pad:
        feats = np.concatenate([feats, np.full((pad, cfg.num_mels), _pad_value(model, feature_cfg), np.float32)])
    enc_state = model.initial_encoder_state()
    for start in range(0, feats.shape[0], chunk):
        enc, enc_state = model.encode(feats[None, start : start + chunk], enc_state)
        yield np.asarray(enc)[0]


def decode_features(
    model: StepModel,
    features: np.ndarray,
    options: DecodingOptions = DecodingOptions(),
    feature_cfg: FeatureConfig | None = None,
) -> Hypothesis:
    """Decode one utterance's features ``[T, num_mels]`` chunk by chunk, carrying the encoder state.

    Works with any `StepModel` (training evaluation calls it with `rnnt.model.TFStepModel`). The padding
    value comes from `feature_cfg`, else the model's bundle metadata, else `FeatureConfig()`.
    """
    decoder = make_decoder(model, options)
    state = decoder.start()
    for enc in encode_features(model, features, feature_cfg):
        decoder.advance(state, enc)
    return decoder.best(state)


@dataclass(frozen=True)
class WordSpan:
    """A word of a hypothesis: token positions ``[start, end)`` and times in seconds."""

    text: str
    start_token: int
    end_token: int
    start: float
    end: float
    confidence: float


def word_spans(
    hyp: Hypothesis,
    table,
    frame_secs: float,
    duration: float | None = None,
) -> list[WordSpan]:
    """Words of `hyp` with times and confidence (`table` is an `rnnt.tokens.TokenTable`).

    start = time of the frame of the word's first token; end = time of the frame of its last token plus one
    encoder frame, clipped to `duration` (and never before start). confidence = geometric mean of the word's
    token probabilities, ``exp(mean(token_logprobs))``, in [0, 1].
    """
    words = []
    for a, b in table.word_boundaries(hyp.tokens):
        text = table.decode(hyp.tokens[a:b])
        start = hyp.token_frames[a] * frame_secs
        end = (hyp.token_frames[b - 1] + 1) * frame_secs
        if duration is not None:
            start = min(start, duration)
            end = min(end, duration)
        conf = math.exp(sum(hyp.token_logprobs[a:b]) / (b - a))
        words.append(WordSpan(text, a, b, start, max(start, end), min(1.0, conf)))
    return words
