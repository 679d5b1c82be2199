"""Runtime benchmark: real-time factor, peak memory, model load time and partial-result latency (no TensorFlow).

Used by `rnnt bench` and `scripts/bench_runtime.py`. Each utterance is streamed through a `Recognizer` in
blocks of `feed_ms` of audio, as a live application would: after every block the ready chunks are decoded
and the partial result is read. Measured:

- real-time factor (RTF): processing seconds per audio second (accept + decode + partial results, one
  utterance at a time on `num_threads` TFLite threads); median over utterances and overall (sum / sum);
- peak memory: the process's peak resident set size (``resource.getrusage``, so it includes Python and numpy);
- model load time: constructing the `Recognizer` (reading the bundle, creating and preparing its interpreter;
  the TFLite runtime module is imported before);
- partial-result latency per word: the final result gives the word's end time; the first partial result whose
  words up to and including this one equal the final words marks when it appeared. Audio latency = audio fed
  at that moment minus the word's end; with processing = audio latency plus the processing time of the block
  that produced the partial (the delay a live user sees when processing keeps up with real time). Words that
  only appear after `input_finished` count from the end of the audio.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from rnnt.decoding import DEFAULT_BEAM

__all__ = ["UtteranceStats", "BenchmarkReport", "run_benchmark", "word_latencies", "peak_rss_mb"]


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


@dataclass
class UtteranceStats:
    id: str
    duration: float  # audio seconds
    seconds: float  # processing seconds
    text: str
    reference: str | None = None
    latencies: list[float] = field(default_factory=list)  # audio latency per word (s)
    latencies_with_processing: list[float] = field(default_factory=list)

    @property
    def rtf(self) -> float:
        return self.seconds / self.duration if self.duration > 0 else float("nan")


@dataclass
class BenchmarkReport:
    bundle: str
    beam: int
    num_threads: int
    feed_ms: float
    load_seconds: float
    peak_rss_mb: float
    utterances: list[UtteranceStats]
    level: bool = True  # the default level control (a look-ahead of one window at each stream's start)

    @property
    def audio_seconds(self) -> float:
        return sum(u.duration for u in self.utterances)

    @property
    def processing_seconds(self) -> float:
        return sum(u.seconds for u in self.utterances)

    @property
    def rtf_overall(self) -> float:
        a = self.audio_seconds
        return self.processing_seconds / a if a > 0 else float("nan")

    @property
    def rtf_median(self) -> float:
        return _median([u.rtf for u in self.utterances])

    @property
    def latencies(self) -> list[float]:
        return [x for u in self.utterances for x in u.latencies]

    @property
    def latencies_with_processing(self) -> list[float]:
        return [x for u in self.utterances for x in u.latencies_with_processing]

    def summary(self) -> dict:
        lat, latp = self.latencies, self.latencies_with_processing
        return {
            "bundle": self.bundle,
            "beam": self.beam,
            "threads": self.num_threads,
            "feed_ms": self.feed_ms,
            "level": self.level,
            "utterances": len(self.utterances),
            "audio_seconds": round(self.audio_seconds, 3),
            "processing_seconds": round(self.processing_seconds, 4),
            "rtf_median": _round(self.rtf_median),
            "rtf_overall": _round(self.rtf_overall),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "load_seconds": round(self.load_seconds, 4),
            "words_timed": len(lat),
            "latency_mean_s": _round(float(np.mean(lat)) if lat else None),
            "latency_median_s": _round(_median(lat)),
            "latency_p90_s": _round(_percentile(lat, 90)),
            "latency_with_processing_median_s": _round(_median(latp)),
            "latency_with_processing_p90_s": _round(_percentile(latp, 90)),
        }

    def to_json(self) -> str:
        d = self.summary()
        d["per_utterance"] = [
            {k: v for k, v in asdict(u).items() if k not in ("latencies", "latencies_with_processing")}
            | {"rtf": _round(u.rtf), "latency_median_s": _round(_median(u.latencies))}
            for u in self.utterances
        ]
        return json.dumps(d, indent=1)

    def format(self) -> str:
        s = self.summary()

        def ms(x):
            return "n/a" if x is None else f"{x * 1000:.0f} ms"

        lines = [
            f"bundle            {s['bundle']}",
            f"decoding          beam {s['beam']}, {s['threads']} thread(s), audio fed in {s['feed_ms']:g} ms blocks, "
            + ("level held from each stream's first window" if s["level"] else "no level control"),
            f"audio             {s['utterances']} utterances, {s['audio_seconds']:.1f} s",
            f"real-time factor  {_fmt(s['rtf_median'])} median per utterance, {_fmt(s['rtf_overall'])} overall "
            f"({s['processing_seconds']:.2f} s processing)",
            f"peak memory       {s['peak_rss_mb']:.1f} MiB (peak RSS of the process)",
            f"model load time   {s['load_seconds'] * 1000:.1f} ms",
            f"partial latency   {ms(s['latency_median_s'])} median, {ms(s['latency_mean_s'])} mean, "
            f"{ms(s['latency_p90_s'])} p90 after the word's end in the audio",
            f"                  {ms(s['latency_with_processing_median_s'])} median, "
            f"{ms(s['latency_with_processing_p90_s'])} p90 with processing ({s['words_timed']} words)",
        ]
        return "\n".join(lines)


def _round(x):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(float(x), 4)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _median(xs) -> float | None:
    return float(np.median(xs)) if len(xs) else None


def _percentile(xs, q) -> float | None:
    return float(np.percentile(xs, q)) if len(xs) else None


def word_latencies(final_words, partials) -> list[tuple[float, float]]:
    """(audio latency, latency with processing) per final word.

    `partials` is a list of ``(audio_seconds_fed, processing_seconds_of_that_step, [word texts])`` in time
    order, its last entry the final result. A word counts as shown at the first partial whose word texts up
    to and including it equal the final ones.
    """
    texts = [w.text for w in final_words]
    out = []
    p = 0
    for i, word in enumerate(final_words):
        prefix = texts[: i + 1]
        while p < len(partials) - 1 and partials[p][2][: i + 1] != prefix:
            p += 1
        fed, step, _ = partials[p]
        delay = fed - word.end
        out.append((delay, delay + step))
    return out


def _synthetic_audio(sample_rate: int, seconds: float = 10.0) -> np.ndarray:
    """Speech-like test signal (harmonic glides in bursts over noise) when no manifest is given."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 150 * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = (np.sin(2 * np.pi * 1.3 * t) > 0).astype(float) * 0.8 + 0.2
    return (0.1 * x * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _stream_one(recognizer, samples: np.ndarray, feed: int):
    """Stream one utterance; returns (processing seconds, final Result, partial records)."""
    rate = recognizer.sample_rate
    stream = recognizer.create_stream()
    partials = []
    total = 0.0
    fed = 0
    clock = time.perf_counter
    for start in range(0, samples.size, feed):
        block = samples[start : start + feed]
        t0 = clock()
        stream.accept_waveform(block, rate)
        decoded = False
        while recognizer.is_ready(stream):
            recognizer.decode(stream)
            decoded = True
        result = recognizer.get_result(stream) if decoded else None
        step = clock() - t0
        total += step
        fed += block.size
        if result is not None:
            partials.append((fed / rate, step, [w.text for w in result.words]))
    t0 = clock()
    stream.input_finished()
    while recognizer.is_ready(stream):
        recognizer.decode(stream)
    final = recognizer.get_result(stream)
    step = clock() - t0
    total += step
    partials.append((samples.size / rate, step, [w.text for w in final.words]))
    return total, final, partials


def run_benchmark(
    bundle: str | None,
    manifest: str | None = None,
    beam: int = DEFAULT_BEAM,
    num_threads: int = 1,
    feed_ms: float = 10.0,
    limit: int | None = None,
    progress=None,
    level: bool = True,
) -> BenchmarkReport:
    """Benchmark `bundle` (None: the packaged default model) on the utterances of `manifest` (None: 10 s of
    synthetic audio), each a new stream, with the default level control or none (its look-ahead delays the words
    of a stream's first window). `progress(i, n)` is called after each utterance."""
    from rnnt.audio import load_audio
    from rnnt.bundle import load_interpreter  # noqa: F401  (imported before timing the load)
    from rnnt.runtime import LevelConfig, Recognizer

    try:  # the TFLite runtime is imported on first use: keep that out of the load time
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        pass
    t0 = time.perf_counter()
    recognizer = Recognizer(
        bundle, beam=beam, num_threads=num_threads, endpoint=None, level=LevelConfig() if level else None
    )
    load_seconds = time.perf_counter() - t0
    rate = recognizer.sample_rate
    if manifest is not None:
        from rnnt.data.manifest import read_manifest

        items = [(u.id or os.path.basename(u.audio), u.audio, u.text) for u in read_manifest(manifest)]
        if limit is not None:
            items = items[:limit]
    else:
        items = [("synthetic", None, None)]
    feed = max(1, int(round(feed_ms / 1000.0 * rate)))
    stats = []
    for i, (uid, path, ref) in enumerate(items):
        samples = _synthetic_audio(rate) if path is None else load_audio(path, rate)
        seconds, final, partials = _stream_one(recognizer, samples, feed)
        lat = word_latencies(final.words, partials)
        stats.append(
            UtteranceStats(
                id=str(uid), duration=samples.size / rate, seconds=seconds, text=final.text, reference=ref,
                latencies=[a for a, _ in lat], latencies_with_processing=[b for _, b in lat],
            )
        )
        if progress is not None:
            progress(i + 1, len(items))
    return BenchmarkReport(
        bundle=recognizer.bundle_path or "",
        beam=recognizer.decoding.beam,
        num_threads=num_threads,
        feed_ms=feed * 1000.0 / rate,
        level=level,
        load_seconds=load_seconds,
        peak_rss_mb=peak_rss_mb(),
        utterances=stats,
    )
