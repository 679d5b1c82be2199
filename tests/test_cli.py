"""`rnnt transcribe` and `rnnt eval`: inputs, output formats, bad inputs, exit codes, no TensorFlow.

Uses the tiny tone-speech bundle of conftest (`trained_bundle`), which recognizes tone "words" exactly.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile

from conftest import tone_text, tone_utterance
from rnnt import output as out_mod
from rnnt.cli import main
from rnnt.inputs import Input, InputError, expand_inputs
from rnnt.output import Segment, Transcript, Word, Writer, format_timestamp, output_paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "rnnt transcribe: error: "


def _utterance(seed: int, words=(2, 4)):
    x, ids, _ = tone_utterance(np.random.default_rng(seed), noise=0.003, words=words)
    return x, tone_text(ids)


def _two_segments(seed: int):
    """Two utterances 3 s apart: endpointing makes two segments."""
    rng = np.random.default_rng(seed)
    a, ids1, _ = tone_utterance(rng, noise=0.003, words=(2, 3))
    b, ids2, _ = tone_utterance(rng, noise=0.003, words=(2, 3))
    while ids2[0] in ids1[-2:]:
        b, ids2, _ = tone_utterance(rng, noise=0.003, words=(2, 3))
    return np.concatenate([a, np.zeros(3 * 16000, np.float32), b]), [tone_text(ids1), tone_text(ids2)]


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Good and bad inputs. Returns (folder, {name: expected text or None for a bad file})."""
    d = tmp_path_factory.mktemp("cli_audio")
    expected: dict[str, str | None] = {}
    x, text = _utterance(1)
    soundfile.write(d / "a.wav", x, 16000, subtype="PCM_16")
    expected["a.wav"] = text
    x, text = _utterance(2)
    soundfile.write(d / "b.flac", x, 16000)
    expected["b.flac"] = text
    x, text = _utterance(3)
    from rnnt.audio import resample

    y = resample(x, 16000, 44100)
    soundfile.write(d / "c_44k_stereo.wav", np.stack([y, 0.5 * y], axis=1), 44100, subtype="PCM_24")
    expected["c_44k_stereo.wav"] = text
    x, text = _utterance(4)
    soundfile.write(d / "d.ogg", x, 16000, format="OGG", subtype="VORBIS")
    expected["d.ogg"] = text
    x, text = _utterance(5)
    try:
        soundfile.write(d / "e.mp3", resample(x, 16000, 22050), 22050, format="MP3", subtype="MPEG_LAYER_III")
        expected["e.mp3"] = text
    except Exception:  # libsndfile < 1.1 cannot write MP3
        pass
    x, texts = _two_segments(6)
    soundfile.write(d / "long.wav", x, 16000, subtype="PCM_16")
    expected["long.wav"] = " ".join(texts)

    # bad inputs
    (d / "empty.wav").write_bytes(b"")
    (d / "text.wav").write_text("this is a text file, not audio\n" * 20)
    soundfile.write(d / "zero.wav", np.zeros(0, np.float32), 16000)
    nan = np.full(16000, 0.1, np.float32)
    nan[5000:5010] = np.nan
    soundfile.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    x, _ = _utterance(7)
    soundfile.write(d / "full.wav", x, 16000, subtype="PCM_16")
    data = (d / "full.wav").read_bytes()
    (d / "trunc.wav").write_bytes(data[: len(data) // 2])
    (d / "full.wav").unlink()
    soundfile.write(d / "full.flac", x, 16000)
    data = (d / "full.flac").read_bytes()
    (d / "trunc.flac").write_bytes(data[: len(data) * 6 // 10])
    corrupt = bytearray(data)
    corrupt[len(data) // 3 : len(data) // 3 + 600] = np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes()
    (d / "corrupt.flac").write_bytes(bytes(corrupt))
    (d / "full.flac").unlink()
    (d / "noaudio").mkdir()
    (d / "noaudio" / "readme.txt").write_text("no audio here\n")
    for name in ("empty.wav", "text.wav", "zero.wav", "nan.wav", "trunc.wav", "trunc.flac", "corrupt.flac"):
        expected[name] = None
    return d, expected


GOOD = ["a.wav", "b.flac", "c_44k_stereo.wav", "d.ogg", "long.wav"]

# bad input -> words its reason must contain
BAD = {
    "missing.wav": "no such file",
    "noaudio": "no audio files",
    "empty.wav": "empty",
    "text.wav": "not audio",
    "zero.wav": "no samples",
    "nan.wav": "NaN",
    "trunc.wav": "truncated",
    "trunc.flac": "truncated",
    "corrupt.flac": "corrupt",
}


def cli(capsys, *argv):
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(PREFIX)]


# -- transcribe: results --------------------------------------------------------------------------------------


def test_single_file_prints_its_text(trained_bundle, audio, capsys):
    d, expected = audio
    rc, out, err = cli(capsys, "transcribe", d / "a.wav", "--model", trained_bundle)
    assert rc == 0, err
    assert out == expected["a.wav"] + "\n"
    assert expected["a.wav"].strip()  # a real, non-empty transcript
    assert "Traceback" not in err


@pytest.mark.parametrize("name", GOOD + ["e.mp3"])
def test_formats_rates_and_channels(trained_bundle, audio, capsys, name):
    d, expected = audio
    if name not in expected:
        pytest.skip("this libsndfile cannot write MP3")
    rc, out, err = cli(capsys, "transcribe", d / name, "--model", trained_bundle, "--beam", "2")
    assert rc == 0, err
    assert out.strip() == expected[name]


def test_jsonl_fields(trained_bundle, audio, capsys):
    d, expected = audio
    paths = [str(d / "a.wav"), str(d / "long.wav")]
    rc, out, err = cli(capsys, "transcribe", *paths, "--model", trained_bundle, "--format", "jsonl")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    objs = [json.loads(line) for line in lines]
    assert [o["path"] for o in objs] == paths  # as given, in order
    assert objs[0]["text"] == expected["a.wav"]
    long = objs[1]
    info = soundfile.info(paths[1])
    assert long["duration"] == pytest.approx(info.duration, abs=1e-3)
    assert len(long["segments"]) == 2  # cut at the endpoint in the 3 s pause
    assert " ".join(s["text"] for s in long["segments"]) == long["text"] == expected["long.wav"]
    prev_end = 0.0
    for seg in long["segments"]:
        assert set(seg) == {"start", "end", "text", "words"}
        assert prev_end <= seg["start"] <= seg["end"] <= long["duration"]
        prev_end = seg["end"]
        assert " ".join(w["word"] for w in seg["words"]) == seg["text"]
        for w in seg["words"]:
            assert set(w) == {"word", "start", "end", "confidence"}
            assert seg["start"] <= w["start"] <= w["end"] <= seg["end"]
            assert 0.0 <= w["confidence"] <= 1.0
    assert long["segments"][1]["start"] > 3.0  # times count from the start of the file


def test_json_is_one_array(trained_bundle, audio, capsys):
    d, expected = audio
    rc, out, err = cli(
        capsys, "transcribe", d / "a.wav", d / "missing.wav", d / "b.flac", "--model", trained_bundle, "-f", "json"
    )
    assert rc == 1
    doc = json.loads(out)
    assert isinstance(doc, list) and len(doc) == 3
    assert [o["text"] for o in doc] == [expected["a.wav"], None, expected["b.flac"]]
    assert "no such file" in doc[1]["error"] and "error" not in doc[0]


def test_txt_with_several_inputs_names_them(trained_bundle, audio, capsys):
    d, expected = audio
    rc, out, _ = cli(capsys, "transcribe", d / "a.wav", d / "b.flac", "--model", trained_bundle)
    assert rc == 0
    assert out.splitlines() == [f"{d / 'a.wav'}\t{expected['a.wav']}", f"{d / 'b.flac'}\t{expected['b.flac']}"]


_SRT_TIME = r"\d\d:\d\d:\d\d,\d\d\d"
_VTT_TIME = r"\d\d:\d\d:\d\d\.\d\d\d"


def test_srt(trained_bundle, audio, capsys):
    d, expected = audio
    rc, out, _ = cli(capsys, "transcribe", d / "long.wav", "--model", trained_bundle, "-f", "srt")
    assert rc == 0
    cues = out.strip().split("\n\n")
    assert len(cues) == 2
    texts = []
    for i, cue in enumerate(cues, 1):
        number, times, text = cue.split("\n")
        assert number == str(i)
        assert re.fullmatch(f"{_SRT_TIME} --> {_SRT_TIME}", times)
        texts.append(text)
    assert " ".join(texts) == expected["long.wav"]


def test_vtt(trained_bundle, audio, capsys):
    d, expected = audio
    rc, out, _ = cli(capsys, "transcribe", d / "long.wav", "--model", trained_bundle, "-f", "vtt")
    assert rc == 0
    assert out.startswith("WEBVTT\n\n")
    cues = out[len("WEBVTT\n\n"):].strip().split("\n\n")
    assert len(cues) == 2
    for cue in cues:
        times, _ = cue.split("\n")
        assert re.fullmatch(f"{_VTT_TIME} --> {_VTT_TIME}", times)


def test_tsv(trained_bundle, audio, capsys):
    d, expected = audio
    rc, out, _ = cli(capsys, "transcribe", d / "long.wav", "--model", trained_bundle, "-f", "tsv")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "start\tend\ttext"
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 2
    assert all(int(a) <= int(b) for a, b, _ in rows)
    assert int(rows[1][0]) > 3000  # milliseconds
    assert " ".join(t for _, _, t in rows) == expected["long.wav"]
    # several inputs: a path column first
    rc, out, _ = cli(capsys, "transcribe", d / "a.wav", d / "long.wav", "--model", trained_bundle, "-f", "tsv")
    lines = out.splitlines()
    assert lines[0] == "path\tstart\tend\ttext"
    assert [line.split("\t")[0] for line in lines[1:]] == [str(d / "a.wav")] + [str(d / "long.wav")] * 2


def test_subtitles_of_several_inputs_go_to_a_folder(trained_bundle, audio, capsys, tmp_path):
    d, expected = audio
    rc, out, err = cli(capsys, "transcribe", d / "a.wav", d / "long.wav", "--model", trained_bundle, "-f", "srt")
    assert rc == 2 and out == ""
    assert "-o DIR" in err
    dest = tmp_path / "subs"
    rc, out, err = cli(
        capsys, "transcribe", d / "a.wav", d / "long.wav", d / "text.wav", "--model", trained_bundle,
        "-f", "vtt", "-o", f"{dest}/",
    )
    assert rc == 1 and out == ""
    assert sorted(os.listdir(dest)) == ["a.vtt", "long.vtt"]  # nothing for the failed input
    assert (dest / "long.vtt").read_text().startswith("WEBVTT")
    assert expected["a.wav"] in (dest / "a.vtt").read_text()


def test_output_file(trained_bundle, audio, capsys, tmp_path):
    d, expected = audio
    target = tmp_path / "out.jsonl"
    rc, out, _ = cli(capsys, "transcribe", d / "a.wav", "--model", trained_bundle, "-f", "jsonl", "-o", target)
    assert rc == 0 and out == ""
    assert json.loads(target.read_text())["text"] == expected["a.wav"]


def test_folders_and_globs(trained_bundle, audio, capsys, tmp_path):
    d, expected = audio
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for src, dst in (("a.wav", "sub/x.wav"), ("b.flac", "sub/deeper/y.flac"), ("a.wav", ".hidden/z.wav")):
        (tmp_path / dst).write_bytes((d / src).read_bytes())
    (tmp_path / "sub" / "notes.txt").write_text("not audio, not picked from a folder")
    items = expand_inputs([str(tmp_path / "sub"), str(tmp_path / "sub" / "*.wav"), str(tmp_path / "nothing*.wav")])
    assert [(os.path.relpath(i.path, tmp_path), i.error) for i in items] == [
        ("sub/x.wav", None),  # a folder's files, then its subfolders
        ("sub/deeper/y.flac", None),
        ("sub/x.wav", None),
        ("nothing*.wav", "no files match this pattern"),
    ]
    rc, out, err = cli(capsys, "transcribe", tmp_path / "sub", "--model", trained_bundle, "-f", "jsonl")
    assert rc == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == [expected["a.wav"], expected["b.flac"]]


def test_jobs_keep_input_order(trained_bundle, audio, capsys):
    d, _ = audio
    paths = [d / n for n in GOOD + ["missing.wav", "nan.wav"]] * 2
    rc1, out1, err1 = cli(capsys, "transcribe", *paths, "--model", trained_bundle, "-f", "jsonl")
    rc3, out3, err3 = cli(capsys, "transcribe", *paths, "--model", trained_bundle, "-f", "jsonl", "--jobs", "3", "--threads", "2")
    assert rc1 == rc3 == 1
    assert out1 == out3
    assert _error_lines(err1) == _error_lines(err3)
    assert [json.loads(line)["path"] for line in out3.splitlines()] == [str(p) for p in paths]


# -- transcribe: bad inputs and exit codes --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_input_is_one_clear_line(trained_bundle, audio, capsys, name):
    d, expected = audio
    bad = str(d / name)
    rc, out, err = cli(capsys, "transcribe", d / "a.wav", bad, d / "b.flac", "--model", trained_bundle)
    assert rc == 1
    assert out.splitlines() == [f"{d / 'a.wav'}\t{expected['a.wav']}", f"{d / 'b.flac'}\t{expected['b.flac']}"]
    lines = _error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{PREFIX}{bad}: ")
    reason = lines[0][len(PREFIX) + len(bad) + 2 :]
    assert BAD[name].lower() in reason.lower(), reason
    assert "Traceback" not in err
    # alone: exit status 1 and nothing on stdout
    rc, out, err = cli(capsys, "transcribe", bad, "--model", trained_bundle)
    assert rc == 1 and out == ""
    assert len(_error_lines(err)) == 1


def test_whole_bad_batch(trained_bundle, audio, capsys):
    d, expected = audio
    bad = [str(d / n) for n in sorted(BAD)]
    good = [str(d / n) for n in GOOD]
    paths = [p for pair in zip(bad, good + good) for p in pair]
    rc, out, err = cli(capsys, "transcribe", *paths, "--model", trained_bundle, "-f", "jsonl")
    assert rc == 1
    objs = [json.loads(line) for line in out.splitlines()]
    assert [o["path"] for o in objs] == paths
    for o in objs:
        name = os.path.basename(o["path"])
        if name in BAD:
            assert o["text"] is None and BAD[name].lower() in o["error"].lower()
        else:
            assert o["text"] == expected[name] and "error" not in o
    assert len(_error_lines(err)) == len(bad)
    assert f"{len(bad)} of {len(paths)} inputs failed" in err


def test_usage_errors_exit_2(trained_bundle, audio, capsys, tmp_path):
    d, _ = audio
    a = d / "a.wav"
    assert cli(capsys, "transcribe")[0] == 2
    assert cli(capsys, "transcribe", a, "--model", trained_bundle, "--format", "docx")[0] == 2
    assert cli(capsys, "transcribe", a, "--model", trained_bundle, "--beam", "0")[0] == 2
    assert cli(capsys, "transcribe", a, "--model", trained_bundle, "--jobs", "-1")[0] == 2
    assert cli(capsys, "transcribe", a, "--model", trained_bundle, "--raw-rate", "16000")[0] == 2
    rc, _, err = cli(capsys, "transcribe", "-", "-", "--model", trained_bundle)
    assert rc == 2 and "only once" in err


@pytest.mark.parametrize("kind", ["missing", "text", "audio", "truncated", "folder"])
def test_bad_bundle_is_a_clear_error(trained_bundle, audio, capsys, tmp_path, kind):
    d, _ = audio
    model = tmp_path / "model.tflite"
    if kind == "text":
        model.write_text("not a model\n")
    elif kind == "audio":
        model = d / "a.wav"
    elif kind == "truncated":
        data = open(trained_bundle, "rb").read()
        model.write_bytes(data[: len(data) // 2])
    elif kind == "folder":
        model = tmp_path
    rc, out, err = cli(capsys, "transcribe", d / "a.wav", "--model", model)
    assert rc == 2 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(PREFIX + "cannot use the model: "), err
    assert str(model) in lines[0]
    assert "Traceback" not in err


def test_no_default_model_is_a_usage_error(audio, capsys, monkeypatch):
    from rnnt import runtime

    def missing():
        raise runtime.NoDefaultModelError("no default model is installed (rnnt/models/default.tflite is missing)")

    monkeypatch.setattr(runtime, "default_bundle_path", missing)
    d, _ = audio
    rc, out, err = cli(capsys, "transcribe", d / "a.wav")
    assert rc == 2 and "no default model" in err and out == ""


def test_progress_bar_only_when_asked_or_on_a_terminal(trained_bundle, audio, capsys):
    d, _ = audio
    rc, _, err = cli(capsys, "transcribe", d / "a.wav", d / "b.flac", "--model", trained_bundle)
    assert rc == 0 and "s of audio" not in err  # stderr is not a terminal here
    rc, out, err = cli(capsys, "transcribe", d / "a.wav", d / "b.flac", "--model", trained_bundle, "--progress")
    assert rc == 0 and "s of audio" in err and "files" in err
    assert len(out.splitlines()) == 2


def _peak_memory_of_transcribing(capsys, bundle, path) -> tuple[int, dict]:
    tracemalloc.start()
    try:
        rc, out, err = cli(capsys, "transcribe", path, "--model", bundle, "--beam", "1", "-f", "jsonl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rc == 0, err
    return peak, json.loads(out)


def _write_long(path, seconds: int, rate: int = 48000) -> float:
    """Stereo float32 WAV: an utterance every 10 s of silence (the worst case for memory: big and resampled)."""
    x, _, _ = tone_utterance(np.random.default_rng(11), sample_rate=rate)
    silence = np.zeros((rate * 10, 2), np.float32)
    written = 0
    with soundfile.SoundFile(path, "w", rate, 2, "FLOAT") as f:
        while written < rate * seconds:
            f.write(silence)
            f.write(np.stack([x, x], 1))
            written += silence.shape[0] + x.size
    return written / rate


def test_long_audio_is_decoded_block_by_block(trained_bundle, tmp_path, capsys, monkeypatch):
    """Memory stays flat: the file is never loaded whole, and the peak does not grow with the duration."""
    import rnnt.audio

    def no_whole_file(*a, **k):
        raise AssertionError("load_audio reads a whole file")

    monkeypatch.setattr(rnnt.audio, "load_audio", no_whole_file)
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    _write_long(short, 20)
    duration = _write_long(long, 80)
    peak_short, _ = _peak_memory_of_transcribing(capsys, trained_bundle, short)
    peak_long, obj = _peak_memory_of_transcribing(capsys, trained_bundle, long)
    assert obj["duration"] == pytest.approx(duration, abs=0.01)
    assert len(obj["segments"]) >= 5  # one per utterance between the silences
    # the long file holds 60 s (23 MB of float32 samples) more than the short one
    assert peak_long < peak_short + 4_000_000, (peak_short, peak_long)


# -- standard input and no TensorFlow (subprocesses) ----------------------------------------------------------

_NO_TF = r"""
import sys

class _BlockTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, _BlockTensorFlow())
import runpy
sys.argv = ["rnnt"] + sys.argv[1:]
try:
    runpy.run_module("rnnt", run_name="__main__")
finally:
    assert not any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules)
"""


def _run(args, stdin=None, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", _NO_TF, *map(str, args)], input=stdin, capture_output=True, cwd=ROOT, env=env,
        timeout=120, **kw,
    )


def test_cli_without_tensorflow(trained_bundle, audio):
    d, expected = audio
    proc = _run(["transcribe", d / "a.wav", d / "missing.wav", d / "long.wav", "--model", trained_bundle, "-f", "jsonl"])
    assert proc.returncode == 1, proc.stderr.decode()[-2000:]
    objs = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o["text"] for o in objs] == [expected["a.wav"], None, expected["long.wav"]]
    err = proc.stderr.decode()
    assert "Traceback" not in err and "blocked" not in err
    assert _error_lines(err) == [f"{PREFIX}{d / 'missing.wav'}: no such file or folder"]


def test_stdin(trained_bundle, audio):
    d, expected = audio
    data = (d / "b.flac").read_bytes()
    proc = _run(["transcribe", "-", "--model", trained_bundle, "-f", "jsonl"], stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    obj = json.loads(proc.stdout)
    assert obj["path"] == "-" and obj["text"] == expected["b.flac"]
    # raw s16le at 8 kHz... and stereo at 22.05 kHz
    x, rate = soundfile.read(d / "a.wav", dtype="int16")
    from rnnt.audio import resample

    y = (resample(x.astype(np.float32) / 32768, rate, 22050) * 32767).astype("<i2")
    raw = np.stack([y, y], 1).tobytes()
    proc = _run(["transcribe", "-", "--model", trained_bundle, "--raw-rate", "22050", "--raw-channels", "2"], stdin=raw)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode() == expected["a.wav"] + "\n"
    # garbage and nothing on standard input
    proc = _run(["transcribe", "-", "--model", trained_bundle], stdin=b"hello, not audio" * 100)
    assert proc.returncode == 1 and _error_lines(proc.stderr.decode())[0].startswith(f"{PREFIX}-: ")
    assert "--raw-rate" in proc.stderr.decode()
    proc = _run(["transcribe", "-", "--model", trained_bundle], stdin=b"")
    assert proc.returncode == 1 and "empty" in proc.stderr.decode()


# -- eval -----------------------------------------------------------------------------------------------------


def test_eval_prints_wer_cer_and_worst(trained_bundle, tone_manifest, capsys, tmp_path):
    results = tmp_path / "results.jsonl"
    rc, out, err = cli(capsys, "eval", tone_manifest, "--model", trained_bundle, "--results", results, "-j", "2")
    assert rc == 0, err
    wer = float(re.search(r"^WER\s+([\d.]+) %", out, re.M).group(1))
    cer = float(re.search(r"^CER\s+([\d.]+) %", out, re.M).group(1))
    assert re.search(r"^RTF\s+[\d.]+", out, re.M)
    assert re.search(r"^utterances\s+4$", out, re.M)
    assert wer < 30 and cer < 30  # the tone model knows its words
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 4 and {"id", "ref", "hyp", "wer", "cer"} <= set(rows[0])
    # a wrong reference: 100 % WER on that utterance, shown as the worst
    records = [json.loads(line) for line in open(tone_manifest)]
    records[1]["text"] = "kas kas kas kas kas kas"
    wrong = os.path.join(os.path.dirname(tone_manifest), "wrong.jsonl")
    with open(wrong, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
    rc, out, err = cli(capsys, "eval", wrong, "--model", trained_bundle, "--worst", "1")
    assert rc == 0, err
    assert float(re.search(r"^WER\s+([\d.]+) %", out, re.M).group(1)) > wer
    worst = out.split("1 worst utterance:\n")[1].splitlines()
    assert worst[0].split()[0] == records[1]["id"] and "WER 100.0 %" in worst[0]
    assert worst[1] == "    ref: kas kas kas kas kas kas"
    assert worst[2].startswith("    hyp: ") and len(worst) == 3


def test_eval_bad_audio_and_bad_manifest(trained_bundle, tone_manifest, capsys, tmp_path):
    lines = open(tone_manifest).read().splitlines()
    folder = os.path.dirname(tone_manifest)
    broken = os.path.join(folder, "broken.jsonl")  # relative audio paths stay valid
    extra = json.dumps({"audio": os.path.join(folder, "nope.wav"), "text": "lo", "duration": 1.0})
    with open(broken, "w") as f:
        f.write("\n".join(lines[:2] + [extra]) + "\n")
    rc, out, err = cli(capsys, "eval", broken, "--model", trained_bundle)
    assert rc == 1
    assert "utterances  2 (1 failed" in out
    assert [line for line in err.splitlines() if line.startswith("rnnt eval: error:")] == [
        f"rnnt eval: error: {os.path.join(folder, 'nope.wav')}: audio file not found"
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"audio": "x.wav"}\n')
    rc, _, err = cli(capsys, "eval", bad, "--model", trained_bundle)
    assert rc == 2 and "bad manifest line" in err
    rc, _, err = cli(capsys, "eval", tmp_path / "none.jsonl", "--model", trained_bundle)
    assert rc == 2 and "no such manifest" in err


# -- units ----------------------------------------------------------------------------------------------------


def test_timestamps_and_output_names():
    assert format_timestamp(0) == "00:00:00,000"
    assert format_timestamp(3723.4567) == "01:02:03,457"
    assert format_timestamp(59.9996, ".") == "00:01:00.000"
    assert output_paths(["a/x.wav", "b/x.flac", "-", "c/y.mp3", "d/X.wav"], "out", "srt") == [
        os.path.join("out", n) for n in ("x.srt", "x-2.srt", "stdin.srt", "y.srt", "X-3.srt")
    ]


def test_writers_without_results():
    f = io.StringIO()
    w = Writer("json", f)
    w.close()
    assert json.loads(f.getvalue()) == []
    with pytest.raises(ValueError):
        Writer("srt", io.StringIO(), several=True)
    t = Transcript("x.wav", "hi there", 1.5, (Segment(0.25, 1.0, "hi there", (Word("hi", 0.25, 0.5, 0.9), Word("there", 0.6, 1.0, 0.8))),))
    assert out_mod.format_transcript(t, "srt") == "1\n00:00:00,250 --> 00:00:01,000\nhi there\n\n"
    assert out_mod.format_transcript(t, "vtt") == "WEBVTT\n\n00:00:00.250 --> 00:00:01.000\nhi there\n\n"
    assert out_mod.format_transcript(Transcript("y.wav", error="boom"), "txt") == ""


def test_input_errors_name_no_path(tmp_path):
    p = tmp_path / "t.wav"
    p.write_text("text")
    with pytest.raises(InputError) as e:
        list(Input(str(p)).blocks(16000))
    assert str(p) not in str(e.value) and "not audio" in str(e.value)
