"""The streaming recognizer: runs one TFLite bundle frame by frame with numpy and ai-edge-litert only.

The API has the shape of sherpa-onnx's and Vosk's::

    recognizer = Recognizer("model.tflite", beam=4)
    stream = recognizer.create_stream()
    for block in audio_blocks:                       # any sample rate, any block size
        stream.accept_waveform(block, sample_rate)
        while recognizer.is_ready(stream):
            recognizer.decode(stream)
            if recognizer.is_endpoint(stream):       # a segment ended
                print(recognizer.get_result(stream).text)
                recognizer.reset(stream)
        print(recognizer.get_result(stream).text)    # partial result
    stream.input_finished()
    while recognizer.is_ready(stream):
        recognizer.decode(stream)
    print(recognizer.get_result(stream))             # final result (is_final=True)

`transcribe_blocks` wraps that loop and yields one `Result` per segment. The results do not depend on how the
audio is cut into blocks: audio is resampled by a streaming resampler per stream, features are computed by a
streaming front end, and the encoder always runs on whole chunks of `chunk_frames` feature frames (the last
one padded with silence after `input_finished`). Check `is_endpoint` after every `decode` (as above) so that
segment boundaries fall on the same chunk whatever the block size.

Level: by default each stream gets one gain, set from the loud frames of its first 1.5 s window that holds
speech and held to its end (`rnnt.level`), so a quiet microphone is heard at the level the model was trained
on. Until the gain is set the stream looks that window ahead, so the first partial result comes 1.5 s later.

Threads: one recognizer serves any number of streams from any number of threads. TFLite interpreters are not
thread-safe, so the recognizer keeps a pool of interpreters and lends one to each `decode` call (the pool grows
to the number of threads decoding at once). A stream is a plain state object guarded by its own lock; decode a
given stream from one thread at a time for a meaningful order of results.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from rnnt.audio import Resampler
from rnnt.config import FeatureConfig, ModelConfig
from rnnt.decoding import (
    Decoder,
    DecodingOptions,
    StepModel,
    frame_seconds,
    make_decoder,
    word_spans,
)
from rnnt.endpoint import EndpointConfig, detect
from rnnt.features import FeatureStream
from rnnt.level import LevelConfig, window_frames, window_gain
from rnnt.tokens import TokenTable

__all__ = [
    "Recognizer",
    "Stream",
    "Result",
    "Word",
    "NoDefaultModelError",
    "default_bundle_path",
    "EndpointConfig",
    "DecodingOptions",
    "LevelConfig",
]


class NoDefaultModelError(FileNotFoundError):
    """`Recognizer()` was called without a bundle and no default model is installed."""


def default_bundle_path() -> str:
    """Path of the packaged default model ``rnnt/models/default.tflite``; raises NoDefaultModelError."""
    from importlib import resources

    try:
        path = resources.files("rnnt") / "models" / "default.tflite"
        if path.is_file():
            return os.fspath(path)
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    raise NoDefaultModelError(
        "no default model is installed (rnnt/models/default.tflite is missing): pass the path of a model "
        "bundle, e.g. Recognizer('model.tflite') or --model model.tflite"
    )


@dataclass(frozen=True)
class Word:
    """A recognized word: times in seconds from the start of the stream's audio; confidence in [0, 1] is the
    geometric mean of its tokens' probabilities."""

    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Result:
    """The recognition result of the current segment of a stream.

    `tokens` are the vocabulary pieces, `token_ids` their ids and `timestamps` the time in seconds at which each
    token was emitted (all times count from the start of the stream's audio, across segments). `start_time` is
    where the segment began and `end_time` how far it has been decoded (clipped to the audio received; the
    end of the audio in a final result).
    `is_final` is true once the input is finished and fully decoded.
    """

    text: str
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    timestamps: tuple[float, ...]
    words: tuple[Word, ...]
    start_time: float
    end_time: float
    segment: int
    is_final: bool
    score: float = 0.0

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "token_ids": list(self.token_ids),
            "timestamps": list(self.timestamps),
            "words": [vars(w).copy() for w in self.words],
            "start_time": self.start_time,
            "end_time": self.end_time,
            "segment": self.segment,
            "is_final": self.is_final,
            "score": self.score,
        }


def _t(seconds: float) -> float:
    """Times are reported to the microsecond (0.66, not 0.6599999999999999)."""
    return round(float(seconds), 6)


def _as_float_samples(samples) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples (a 1-D array), got shape {x.shape}")
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif x.dtype == np.int32:
        x = (x.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
    else:
        raise TypeError(f"samples must be float or int16/int32, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or infinite values")
    return x


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


class Stream:
    """One audio stream's state: resampler, feature front end, buffered features, encoder and search states.

    Create with `Recognizer.create_stream`. Feed audio with `accept_waveform`; call `input_finished` at the end.
    """

    def __init__(self, recognizer: "Recognizer", enc_state: np.ndarray, dec_state) -> None:
        self._rec = recognizer
        self._lock = threading.RLock()
        self._features = FeatureStream(recognizer.feature_config)
        self._resampler: Resampler | None = None
        self._input_rate: int | None = None
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self._samples = 0  # samples at the model's rate received so far
        self._finished = False
        self._enc_state = enc_state
        self._dec_state = dec_state
        self._enc_frames = 0  # encoder frames decoded since the stream began
        self._segment = 0
        self._gain: float | None = None if recognizer.level else 0.0  # None until the level is set
        self._released = 0  # pending frames that may be decoded before the gain is set (windows without speech)
        self._frames = 0  # feature frames made since the stream began
        self._held: list[np.ndarray] = []  # audio from the window under test on, until the gain is set
        self._held_from = 0  # the sample the held audio starts at
        self._amplitude = 1.0  # the gain as a factor on the samples

    # -- input --
    def accept_waveform(self, samples, sample_rate: int) -> None:
        """Append mono audio (float in [-1, 1], or int16/int32 PCM) at `sample_rate` Hz (any rate; it must not
        change within a stream). Raises ValueError for NaN/inf samples or a bad rate."""
        rate = _check_rate(sample_rate)
        x = _as_float_samples(samples)
        with self._lock:
            if self._finished:
                raise RuntimeError("accept_waveform after input_finished(): create a new stream")
            if self._input_rate is None:
                self._input_rate = rate
                self._resampler = Resampler(rate, self._rec.sample_rate)
            elif rate != self._input_rate:
                raise ValueError(f"sample rate changed within a stream ({self._input_rate} -> {rate} Hz)")
            if x.size:
                self._push(self._resampler.process(x))

    def input_finished(self) -> None:
        """No more audio: the rest is flushed and the last partial chunk will be padded and decoded."""
        with self._lock:
            if self._finished:
                return
            if self._resampler is not None:
                self._push(self._resampler.flush())
            self._finished = True

    def _push(self, audio: np.ndarray) -> None:
        if not audio.size:
            return
        self._samples += audio.size
        if self._gain is None:
            self._held.append(audio)
        frames = self._features.accept(audio if self._amplitude == 1.0 else audio * np.float32(self._amplitude))
        if frames.shape[0]:
            self._pending.append(frames)
            self._pending_frames += frames.shape[0]
            self._frames += frames.shape[0]

    # -- state --
    @property
    def finished(self) -> bool:
        """True once `input_finished` was called."""
        return self._finished

    @property
    def duration(self) -> float:
        """Seconds of audio received so far."""
        return self._samples / self._rec.sample_rate

    @property
    def segment(self) -> int:
        """Index of the current segment (increments at each `Recognizer.reset`)."""
        return self._segment

    @property
    def gain(self) -> float | None:
        """The recording-level gain in nats of power (0.0 without level control); None until it is set."""
        return self._gain

    def _ready(self, chunk: int) -> bool:
        if self._gain is None:
            self._set_level()
        decodable = self._pending_frames if self._gain is not None else self._released
        return decodable >= chunk or (self._finished and decodable > 0)

    def _joined(self) -> np.ndarray:
        feats = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = [feats]
        return feats

    def _set_level(self) -> None:
        """Look at each whole window after the released frames: the first with speech sets the gain, one
        without is released to be decoded as it is. At the end of the input the rest is the last window."""
        cfg, window = self._rec.level, self._rec.level_frames
        while self._gain is None:
            waiting = self._pending_frames - self._released
            if waiting < window and not self._finished:
                return
            feats = self._joined() if self._pending else np.zeros((0, 0), np.float32)
            gain = window_gain(feats[self._released : self._released + window], cfg)
            if gain is not None or waiting <= window:
                self._apply_gain(0.0 if gain is None else gain)
            else:
                self._released += window
                self._drop_held(self._frames - waiting + window)

    def _drop_held(self, first_frame: int) -> None:
        """Keep the held audio from the start of `first_frame` on."""
        start = first_frame * self._rec.feature_config.hop_length
        audio = np.concatenate(self._held) if self._held else np.zeros(0, np.float32)
        self._held = [audio[start - self._held_from :]]
        self._held_from = start

    def _apply_gain(self, gain: float) -> None:
        """Set the gain: the frames from the window under test on are made again from the audio so scaled
        (exactly the features of a louder recording), and so is everything after."""
        self._gain = gain
        if gain != 0.0:
            first = self._frames - self._pending_frames + self._released
            self._drop_held(first)
            self._amplitude = float(np.exp(gain / 2.0))
            self._features = FeatureStream(self._rec.feature_config)
            scaled = self._features.accept(self._held[0] * np.float32(self._amplitude))
            kept = self._joined()[: self._released]  # a gain comes from a window of speech: frames are pending
            self._pending = [part for part in (kept, scaled) if part.shape[0]]
            self._pending_frames = kept.shape[0] + scaled.shape[0]
        self._held = []

    def _take_chunk(self, chunk: int, pad_value: float, num_mels: int) -> np.ndarray:
        feats = self._joined()
        out, rest = feats[:chunk], feats[chunk:]
        self._pending = [rest] if rest.shape[0] else []
        self._pending_frames = rest.shape[0]
        if self._gain is None:
            self._released -= out.shape[0]
        if out.shape[0] < chunk:
            out = np.concatenate([out, np.full((chunk - out.shape[0], num_mels), pad_value, np.float32)])
        return np.ascontiguousarray(out, dtype=np.float32)


class _Pool:
    """Model instances (with their decoders), lent to one caller at a time."""

    def __init__(self, factory: Callable[[], StepModel], first: StepModel, options: DecodingOptions) -> None:
        self._factory = factory
        self._options = options
        self._lock = threading.Lock()
        self._free: list[tuple[StepModel, Decoder]] = [(first, make_decoder(first, options))]
        self.size = 1

    @contextlib.contextmanager
    def lend(self) -> Iterator[tuple[StepModel, Decoder]]:
        with self._lock:
            item = self._free.pop() if self._free else None
        if item is None:
            model = self._factory()
            item = (model, make_decoder(model, self._options))
            with self._lock:
                self.size += 1
        try:
            yield item
        finally:
            with self._lock:
                self._free.append(item)


class Recognizer:
    """Streaming speech recognizer over one model bundle.

    Args:
      bundle: path of a ``.tflite`` bundle; None for the packaged default model.
      beam: beam width; 1 means greedy decoding. None: `decoding.beam` if given, else
        `rnnt.decoding.DEFAULT_BEAM` (8).
      num_threads: TFLite threads per interpreter.
      endpoint: endpoint rules (`rnnt.endpoint.EndpointConfig`); None never reports an endpoint.
      decoding: other search settings (`rnnt.decoding.DecodingOptions`); `beam` overrides its beam.
      level: the recording-level control (`rnnt.level.LevelConfig`: one gain a stream, from its first window of
        speech); None feeds the audio at the level it comes.
    """

    def __init__(
        self,
        bundle: str | os.PathLike | None = None,
        beam: int | None = None,
        num_threads: int = 1,
        endpoint: EndpointConfig | None = EndpointConfig(),
        decoding: DecodingOptions | None = None,
        level: LevelConfig | None = LevelConfig(),
    ) -> None:
        from rnnt.bundle import TFLiteStepModel

        path = default_bundle_path() if bundle is None else os.fspath(bundle)
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        t0 = time.perf_counter()
        first = TFLiteStepModel(path, num_threads=num_threads)
        load_seconds = time.perf_counter() - t0
        meta = first.metadata
        self.bundle_path = path
        self.num_threads = num_threads
        self.metadata = meta
        self._setup(
            lambda: TFLiteStepModel(path, num_threads=num_threads, metadata=meta),
            first,
            meta.tokens,
            meta.features,
            beam,
            endpoint,
            decoding,
            level,
        )
        self.load_seconds = load_seconds

    @classmethod
    def from_step_model(
        cls,
        model: StepModel | Callable[[], StepModel],
        tokens: Sequence[str] | TokenTable,
        features: FeatureConfig,
        beam: int | None = None,
        endpoint: EndpointConfig | None = EndpointConfig(),
        decoding: DecodingOptions | None = None,
        level: LevelConfig | None = LevelConfig(),
    ) -> "Recognizer":
        """A recognizer over any `StepModel` (e.g. `rnnt.model.TFStepModel` of a training checkpoint).

        `model` is an instance (shared by all threads: it must then be thread-safe) or a zero-argument factory
        called once per concurrently decoding thread.
        """
        self = cls.__new__(cls)
        factory = model if callable(model) and not hasattr(model, "encode") else (lambda: model)
        t0 = time.perf_counter()
        first = factory()
        self.load_seconds = time.perf_counter() - t0
        self.bundle_path = None
        self.num_threads = 1
        self.metadata = getattr(first, "metadata", None)
        self._setup(factory, first, tokens, features, beam, endpoint, decoding, level)
        return self

    def _setup(self, factory, first, tokens, features, beam, endpoint, decoding, level) -> None:
        options = decoding or DecodingOptions()
        if beam is not None:
            options = replace(options, beam=beam)
        self.decoding = options
        self.endpoint = endpoint
        self.tokens = tokens if isinstance(tokens, TokenTable) else TokenTable(list(tokens))
        self.model_config: ModelConfig = first.config
        self.feature_config: FeatureConfig = features
        if self.tokens.vocab_size != self.model_config.vocab_size:
            raise ValueError(
                f"{self.tokens.vocab_size} tokens but the model has vocab_size {self.model_config.vocab_size}"
            )
        if features.num_mels != self.model_config.num_mels:
            raise ValueError(f"features have {features.num_mels} mels but the model expects {self.model_config.num_mels}")
        self.sample_rate = features.sample_rate
        if level is not None and not isinstance(level, LevelConfig):
            raise TypeError(f"level must be a LevelConfig or None, got {type(level).__name__}")
        self.level = level
        self.level_frames = window_frames(level, features) if level else 0  # frames looked at before the gain is set
        self.frame_seconds = frame_seconds(self.model_config, features)
        self._pad_value = float(np.log(features.log_floor))
        self._initial_enc_state = np.array(first.initial_encoder_state(), np.float32)
        self._pool = _Pool(factory, first, options)

    # -- streams --
    def create_stream(self) -> Stream:
        """A new, independent stream."""
        with self._pool.lend() as (_, decoder):
            dec_state = decoder.start(0)
        return Stream(self, self._initial_enc_state.copy(), dec_state)

    def is_ready(self, stream: Stream) -> bool:
        """True when a full feature chunk is buffered (or the input is finished and frames are left)."""
        with stream._lock:
            return stream._ready(self.model_config.chunk_frames)

    def decode(self, stream: Stream) -> None:
        """Encode one chunk and advance the search over its encoder frames (no-op when not ready)."""
        cfg = self.model_config
        with stream._lock:
            if not stream._ready(cfg.chunk_frames):
                return
            feats = stream._take_chunk(cfg.chunk_frames, self._pad_value, cfg.num_mels)
            with self._pool.lend() as (model, decoder):
                enc, stream._enc_state = model.encode(feats[None], stream._enc_state)
                enc = np.asarray(enc, np.float32)[0]
                decoder.advance(stream._dec_state, enc, stream._enc_frames)
            stream._enc_frames += enc.shape[0]

    def decode_streams(self, streams: Iterable[Stream]) -> None:
        """`decode` each ready stream once."""
        for s in streams:
            self.decode(s)

    def is_endpoint(self, stream: Stream) -> bool:
        """True when the current segment has reached an endpoint under the recognizer's rules."""
        if self.endpoint is None:
            return False
        with stream._lock:
            st = stream._dec_state
            return detect(self.endpoint, st.frames_decoded, st.last_emission_frame, self.frame_seconds, st.start_frame)

    def reset(self, stream: Stream) -> None:
        """Start a new segment (after an endpoint): the search starts afresh; buffered audio, the encoder state,
        the level's gain and the time axis carry on, so later times stay absolute."""
        with stream._lock, self._pool.lend() as (_, decoder):
            stream._dec_state = decoder.start(stream._enc_frames)
            stream._segment += 1

    def get_result(self, stream: Stream) -> Result:
        """The current segment's result: partial while decoding, final once the input is finished and decoded."""
        with stream._lock:
            st = stream._dec_state
            hyp = st.hyps[0].public()
            duration = stream.duration
            is_final = stream._finished and not stream._ready(self.model_config.chunk_frames)
            segment = stream._segment
            start_frame, next_frame = st.start_frame, st.next_frame
        fs = self.frame_seconds
        table = self.tokens
        words = tuple(
            Word(w.text, _t(w.start), _t(w.end), w.confidence) for w in word_spans(hyp, table, fs, duration)
        )
        return Result(
            text=table.decode(hyp.tokens),
            tokens=tuple(table.piece(t) for t in hyp.tokens),
            token_ids=hyp.tokens,
            timestamps=tuple(_t(min(f * fs, duration)) for f in hyp.token_frames),
            words=words,
            start_time=_t(min(start_frame * fs, duration)),
            end_time=_t(duration if is_final else min(next_frame * fs, duration)),
            segment=segment,
            is_final=is_final,
            score=hyp.score,
        )

    # -- convenience --
    def transcribe_blocks(
        self, blocks: Iterable[np.ndarray], sample_rate: int, *, keep_empty: bool = False
    ) -> Iterator[Result]:
        """Recognize audio given as an iterable of blocks; yields each segment's final `Result` as soon as an
        endpoint (or the end of the audio) closes it. Memory stays flat however long the audio is. Segments
        with no text are skipped unless `keep_empty`."""
        stream = self.create_stream()
        for block in blocks:
            stream.accept_waveform(block, sample_rate)
            yield from self._drain(stream, keep_empty)
        stream.input_finished()
        yield from self._drain(stream, keep_empty)
        result = self.get_result(stream)
        if keep_empty or result.text:
            yield result

    def transcribe(self, samples, sample_rate: int, *, keep_empty: bool = False) -> list[Result]:
        """Recognize a whole signal; one `Result` per segment."""
        return list(self.transcribe_blocks([samples], sample_rate, keep_empty=keep_empty))

    def _drain(self, stream: Stream, keep_empty: bool) -> Iterator[Result]:
        while self.is_ready(stream):
            self.decode(stream)
            if self.is_endpoint(stream):
                result = replace(self.get_result(stream), is_final=True)
                self.reset(stream)
                if keep_empty or result.text:
                    yield result

    @property
    def pool_size(self) -> int:
        """Model instances created so far (grows with the number of threads decoding at once)."""
        return self._pool.size
