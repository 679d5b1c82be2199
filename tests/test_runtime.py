"""The streaming runtime on a real TFLite bundle (a tiny model trained on tone speech, see conftest)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import TONE_TOKENS, tone_text, tone_utterance
from rnnt.audio import resample
from rnnt.decoding import DEFAULT_BEAM
from rnnt.endpoint import EndpointConfig
from rnnt.cli import main as cli_main
from rnnt.runtime import NoDefaultModelError, Recognizer, Result, default_bundle_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _long_audio(seed: int, n: int = 3, gap: float = 0.0, noise: float = 0.005):
    """Several tone utterances back to back: (samples, reference texts, word spans in seconds)."""
    rng = np.random.default_rng(seed)
    parts, texts, spans, offset = [], [], [], 0.0
    for i in range(n):
        x, ids, sp = tone_utterance(rng, noise=noise)
        if i and gap:
            parts.append((noise * rng.standard_normal(int(gap * 16000))).astype(np.float32))
            offset += gap
        parts.append(x)
        texts.append(tone_text(ids))
        spans += [(a + offset, b + offset) for a, b in sp]
        offset += x.size / 16000
    return np.concatenate(parts), texts, spans


def _stream_decode(rec: Recognizer, x: np.ndarray, rate: int, rng, max_chunk_s: float, endpoints: bool = True):
    """Sherpa-style loop with random chunk sizes (10 ms .. max_chunk_s); returns (segments, partial texts)."""
    stream = rec.create_stream()
    segments: list[Result] = []
    partials: list[str] = []
    pos = 0
    while pos < x.size:
        n = int(rng.uniform(0.01, max_chunk_s) * rate)
        stream.accept_waveform(x[pos : pos + n], rate)
        pos += n
        while rec.is_ready(stream):
            rec.decode(stream)
            if endpoints and rec.is_endpoint(stream):
                segments.append(rec.get_result(stream))
                rec.reset(stream)
        partials.append(rec.get_result(stream).text)
    stream.input_finished()
    while rec.is_ready(stream):
        rec.decode(stream)
        if endpoints and rec.is_endpoint(stream):
            segments.append(rec.get_result(stream))
            rec.reset(stream)
    final = rec.get_result(stream)
    assert final.is_final
    segments.append(final)
    return [s for s in segments if s.text], partials


def _key(results):
    return [(r.text, r.token_ids, r.timestamps, r.words, r.start_time, r.segment) for r in results]


@pytest.fixture(scope="module")
def rec(trained_bundle):
    return Recognizer(trained_bundle, beam=4)


@pytest.mark.parametrize("rate", [16000, 8000, 44100])
def test_random_chunks_match_one_call(rec, rate):
    x16, _, _ = _long_audio(seed=rate, n=3, gap=1.5)
    x = x16 if rate == 16000 else resample(x16, 16000, rate)
    whole = rec.transcribe(x, rate)
    assert whole and all(r.text for r in whole)
    for trial in range(2):
        rng = np.random.default_rng(trial + rate)
        chunked, partials = _stream_decode(rec, x, rate, rng, max_chunk_s=0.3 if trial == 0 else 3.0)
        assert _key(chunked) == _key(whole)
        assert any(partials), "partial results appear while streaming"
    blocks = np.array_split(x, np.sort(np.random.default_rng(1).integers(0, x.size, 20)))
    assert _key(list(rec.transcribe_blocks(blocks, rate))) == _key(whole)


def test_int16_input_matches_float(rec):
    x, _, _ = _long_audio(seed=3, n=1)
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)
    a = rec.transcribe(pcm, 16000)
    b = rec.transcribe(pcm.astype(np.float32) / 32768.0, 16000)
    assert _key(a) == _key(b) and a[0].text


def test_recognizes_and_times_words(rec):
    """On clean tone speech the text is right and every word's time lies on its tones."""
    rng = np.random.default_rng(77)
    for _ in range(4):
        x, ids, spans = tone_utterance(rng, noise=0.003)
        (result,) = rec.transcribe(x, 16000)
        assert result.text == tone_text(ids)
        for word, (start, end) in zip(result.words, spans):
            assert start - 0.1 <= word.start <= end
            assert 0.0 < word.confidence <= 1.0


def test_timestamps_increase_and_lie_inside_audio(rec):
    x, _, _ = _long_audio(seed=11, n=4, gap=0.5)
    duration = x.size / 16000
    results = Recognizer(rec.bundle_path, beam=4, endpoint=None).transcribe(x, 16000)
    assert len(results) == 1
    r = results[0]
    assert len(r.timestamps) == len(r.token_ids) > 5
    assert list(r.timestamps) == sorted(r.timestamps)
    assert all(0.0 <= t <= duration for t in r.timestamps)
    assert [w.text for w in r.words] == r.text.split()
    last_end = 0.0
    for w in r.words:
        assert 0.0 <= w.start < w.end <= duration
        assert w.start >= last_end - 1e-9
        last_end = w.end
    assert r.is_final and r.end_time == pytest.approx(duration)


def test_endpoint_splits_two_utterances(rec):
    rng = np.random.default_rng(5)
    first, ids1, _ = tone_utterance(rng, noise=0.003, words=(2, 3))
    second, ids2, _ = tone_utterance(rng, noise=0.003, words=(2, 3))
    while ids2[0] in ids1[-2:]:  # the tiny model never heard a word repeated (matters without the endpoint)
        second, ids2, _ = tone_utterance(rng, noise=0.003, words=(2, 3))
    silence = np.zeros(3 * 16000, np.float32)
    x = np.concatenate([first, silence, second])
    segments = rec.transcribe(x, 16000)
    assert [s.text for s in segments] == [tone_text(ids1), tone_text(ids2)]
    assert [s.segment for s in segments] == sorted(s.segment for s in segments)
    t_second = (first.size + silence.size) / 16000
    assert segments[0].words[-1].end < first.size / 16000 + 0.1
    assert segments[0].start_time == 0.0 and segments[1].start_time <= segments[1].words[0].start
    assert segments[1].words[0].start >= t_second - 0.1  # times stay absolute after reset
    # without endpointing: one segment holding both
    (one,) = Recognizer(rec.bundle_path, endpoint=None).transcribe(x, 16000)
    assert one.text == tone_text(ids1) + " " + tone_text(ids2)


def test_max_utterance_length_rule_cuts(rec):
    x, _, _ = _long_audio(seed=21, n=4)
    short = Recognizer(rec.bundle_path, endpoint=EndpointConfig(None, None, 1.5))
    segments = short.transcribe(x, 16000)
    assert len(segments) >= int(x.size / 16000 / 1.5) - 1
    chunk_s = rec.model_config.chunk_frames * rec.feature_config.frame_seconds  # endpoints fall on chunk ends
    assert all(s.end_time - s.start_time <= 1.5 + chunk_s + 1e-6 for s in segments)


def test_eight_threads_match_sequential(rec):
    audio = [_long_audio(seed=100 + i, n=2, gap=1.0)[0] for i in range(8)]
    expected = [_key(_stream_decode(rec, x, 16000, np.random.default_rng(i), 0.5)[0]) for i, x in enumerate(audio)]
    got: list = [None] * 8
    errors: list = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            barrier.wait()
            got[i] = _key(_stream_decode(rec, audio[i], 16000, np.random.default_rng(1000 + i), 0.2)[0])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert got == expected
    assert rec.pool_size >= 2  # interpreters were not shared between threads


def test_greedy_recognizer(trained_bundle):
    rng = np.random.default_rng(8)
    x, ids, _ = tone_utterance(rng, noise=0.003)
    (r,) = Recognizer(trained_bundle, beam=1).transcribe(x, 16000)
    assert r.text == tone_text(ids)


def test_input_validation(rec):
    s = rec.create_stream()
    with pytest.raises(ValueError, match="NaN"):
        s.accept_waveform(np.array([0.0, np.nan], np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        s.accept_waveform(np.array([np.inf], np.float32), 16000)
    with pytest.raises(ValueError, match="mono"):
        s.accept_waveform(np.zeros((100, 2), np.float32), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        s.accept_waveform(np.zeros(10, np.float32), 0)
    with pytest.raises(TypeError):
        s.accept_waveform(np.array(["a"]), 16000)
    s.accept_waveform(np.zeros(1600, np.float32), 16000)
    with pytest.raises(ValueError, match="changed"):
        s.accept_waveform(np.zeros(10, np.float32), 8000)
    s.input_finished()
    with pytest.raises(RuntimeError):
        s.accept_waveform(np.zeros(10, np.float32), 16000)
    while rec.is_ready(s):
        rec.decode(s)
    r = rec.get_result(s)
    assert r.is_final and r.text == "" and r.words == ()
    # an empty stream finishes at once
    e = rec.create_stream()
    e.input_finished()
    assert not rec.is_ready(e) and rec.get_result(e).is_final
    with pytest.raises(ValueError):
        Recognizer(rec.bundle_path, num_threads=0)


def test_missing_default_model_is_a_clear_error():
    try:
        default_bundle_path()
    except NoDefaultModelError as e:
        assert "no default model" in str(e) and "bundle" in str(e)
        with pytest.raises(NoDefaultModelError):
            Recognizer()
    else:
        pytest.skip("a default model is installed")


def test_same_decoder_drives_the_tensorflow_model(trained_rnnt, rec):
    """`Recognizer.from_step_model` over the TF model gives the bundle's words."""
    from rnnt.model import TFStepModel
    from conftest import TINY_FEATURES

    tf_rec = Recognizer.from_step_model(TFStepModel(trained_rnnt), TONE_TOKENS, TINY_FEATURES, beam=4)
    x, _, _ = _long_audio(seed=31, n=2, gap=3.0)
    a, b = tf_rec.transcribe(x, 16000), rec.transcribe(x, 16000)
    assert [r.text for r in a] == [r.text for r in b]
    assert [[w.start for w in r.words] for r in a] == [[w.start for w in r.words] for r in b]


_NO_TF = r"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "jax", "torch"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import numpy as np
from rnnt.runtime import Recognizer
x = np.load(sys.argv[2])
rec = Recognizer(sys.argv[1], beam=4)
out = [[r.text, list(r.timestamps)] for r in rec.transcribe(x, 16000)]
assert not any(m.split(".")[0] == "tensorflow" for m in sys.modules)
print(json.dumps(out))
"""


def test_runtime_runs_without_tensorflow(rec, tmp_path):
    x, _, _ = _long_audio(seed=41, n=2, gap=3.0)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TF, rec.bundle_path, str(tmp_path / "x.npy")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == [[r.text, list(r.timestamps)] for r in rec.transcribe(x, 16000)]


def test_bench_command(trained_bundle, tone_manifest, capsys):
    from rnnt.cli import main

    args = ["bench", "--model", trained_bundle, "--manifest", tone_manifest, "--limit", "2", "--json"]
    assert main([*args, "--no-level"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["utterances"] == 2 and report["beam"] == DEFAULT_BEAM and report["threads"] == 1
    assert 0 < report["rtf_overall"] < 1 and 0 < report["rtf_median"] < 1
    assert report["peak_rss_mb"] > 10 and 0 < report["load_seconds"] < 10
    assert report["words_timed"] >= 4 and report["level"] is False
    assert 0 <= report["latency_median_s"] < 0.5  # a word shows within a chunk or two of its end
    assert report["latency_with_processing_median_s"] >= report["latency_median_s"]
    texts = [u["text"] for u in report["per_utterance"]]
    assert texts == [u["reference"] for u in report["per_utterance"]]
    # the level control looks 1.5 s ahead at a stream's start: the words of these short clips come later
    assert main(args) == 0
    held = json.loads(capsys.readouterr().out)
    assert held["level"] is True and [u["text"] for u in held["per_utterance"]] == texts
    assert held["latency_median_s"] > report["latency_median_s"] + 0.3


def test_bench_script_runs_without_tensorflow(trained_bundle, tone_manifest):
    script = os.path.join(ROOT, "scripts", "bench_runtime.py")
    code = _NO_TF.split("import numpy as np")[0] + f"sys.argv = {[script, '--model', trained_bundle, '--manifest', tone_manifest, '--beam', '1']!r}\nimport runpy\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for label in ("real-time factor", "peak memory", "model load time", "partial latency"):
        assert label in proc.stdout


def test_untrained_bundle_runs(tiny_bundle):
    """Any bundle runs, however poor its model (here random weights: the emissions are bounded per frame)."""
    rec = Recognizer(tiny_bundle, beam=2, endpoint=None)
    x = np.random.default_rng(0).normal(scale=0.1, size=16000).astype(np.float32)
    (r,) = rec.transcribe(x, 16000, keep_empty=True)
    frames = int(np.ceil(1.0 / rec.frame_seconds)) + 1
    assert len(r.token_ids) <= rec.decoding.max_symbols_per_frame * frames
    assert r.is_final and all(0 <= t <= 1.0 for t in r.timestamps)


def _script(name: str):
    """A module of `scripts/`, imported."""
    if os.path.join(ROOT, "scripts") not in sys.path:
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
    return importlib.import_module(name)


def test_speaking_rate_counts_the_speech_span_between_the_silences():
    rate = _script("speaking_rate")
    t = np.arange(16000) / 16000
    speech = np.concatenate([np.zeros(8000), 0.3 * np.sin(2 * np.pi * 220 * t), 1e-4 * np.ones(16000)])
    assert rate.speech_seconds(speech) == pytest.approx(1.0, abs=0.021)
    whole, span = rate.clip_rates(speech.astype(np.float32), "Two men, 3 cats.")  # "two men three cats": 18
    assert whole == pytest.approx(18 / 2.5) and span == pytest.approx(18.0, rel=0.03)
    assert rate.speech_seconds(np.zeros(100)) == 0.0


def test_state_probe_charges_each_edit_to_one_reference_word():
    errors = _script("state_probe").errors_per_word
    assert errors("a b c".split(), "a x c".split()) == [0, 1, 0]
    assert errors("a b c".split(), "z a b c".split()) == [1, 0, 0]  # an insertion counts for the word after it
    assert errors("a b c".split(), "a c d".split()) == [0, 1, 1]  # the last word takes a trailing insertion
    assert errors("a b c".split(), []) == [1, 1, 1]
    assert sum(errors("the cat sat down".split(), "a cat sad town now".split())) == 4


def test_state_probe_starts_streams_from_the_given_state_and_scores_like_eval(trained_bundle, tone_manifest, capsys):
    probe = _script("state_probe")
    from rnnt.bundle import TFLiteStepModel

    inner = TFLiteStepModel(trained_bundle)
    state = np.full_like(inner.initial_encoder_state(), 0.5)
    rec = probe.recognizer(probe.StartedModel(inner, state), beam=1)
    np.testing.assert_array_equal(rec.create_stream()._enc_state, state)
    assert probe.main([tone_manifest, "-m", trained_bundle, "--beam", "1", "--start", "cold", "joined", "warm",
                       "--warm-from", tone_manifest, "--warm-clips", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["cold", "joined", "warm"]
    assert all(line.endswith("4 clips)") for line in lines)
    cli_main(["eval", tone_manifest, "-m", trained_bundle, "--beam", "1", "--worst", "0", "--no-progress"])
    wer = [line for line in capsys.readouterr().out.splitlines() if line.startswith("WER")][0].split()[1]
    assert lines[0].split()[2] == wer  # cold is what `rnnt eval` measures
