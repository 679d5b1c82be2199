"""The live dictation demo (`python -m demo`, `rnnt listen`), tested without audio hardware.

- the microphone path: `MicrophoneSource.callback` driven with blocks of a recorded file (as PortAudio would);
- the file path: ``python -m demo --input-file F --fast`` in a subprocess, whose lines must equal the segments
  of ``rnnt transcribe F``;
- an ALSA "file" plugin posing as a microphone, when PortAudio and ALSA are there;
- the messages for missing PortAudio, missing sounddevice and no input device.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile

from conftest import tone_utterance
from demo import dictation
from demo.dictation import AudioUnavailable, Dictation, Display, FileSource, MicrophoneSource
from rnnt.audio import resample
from rnnt.cli import UsageError
from rnnt.runtime import Recognizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 16 kHz recording of three utterances with pauses long enough for endpoints: (path, samples)."""
    rng = np.random.default_rng(77)
    parts, last = [np.zeros(8000, np.float32)], []
    for _ in range(3):
        x, ids, _ = tone_utterance(rng, noise=0.003, words=(2, 3))
        while last and ids[0] in last[-2:]:
            x, ids, _ = tone_utterance(rng, noise=0.003, words=(2, 3))
        last = ids
        parts += [x, np.zeros(3 * 16000, np.float32)]
    x = np.concatenate(parts)
    path = tmp_path_factory.mktemp("demo") / "dictation.wav"
    soundfile.write(path, x, 16000, subtype="PCM_16")
    x, _ = soundfile.read(path, dtype="float32")
    return str(path), x


@pytest.fixture(scope="module")
def rec(trained_bundle):
    return Recognizer(trained_bundle)


@pytest.fixture(scope="module")
def expected_lines(rec, recording, trained_bundle):
    """What `rnnt transcribe` gives for the recording: one line per segment."""
    from rnnt.cli import main

    path, _ = recording
    buf = io.StringIO()
    old, sys.stdout = sys.stdout, buf
    try:
        assert main(["transcribe", path, "--model", trained_bundle, "-f", "jsonl"]) == 0
    finally:
        sys.stdout = old
    lines = [s["text"] for s in json.loads(buf.getvalue())["segments"]]
    assert len(lines) == 3 and all(lines)  # one final line per utterance
    return lines


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def _run(args, prelude: str = "", **env):
    code = prelude + "\nimport runpy, sys\nsys.argv = ['demo'] + sys.argv[1:]\nrunpy.run_module('demo', run_name='__main__')\n"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=_env(**env),
        timeout=120,
    )


# -- the microphone path, driven by recorded audio ------------------------------------------------------------


class FakeStream:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.active = False
        self.closed = False

    def start(self):
        self.active = True

    def abort(self):
        self.active = False

    def close(self):
        self.closed = True


class FakeSoundDevice:
    """Just enough of the sounddevice module: devices, a default, check_input_settings, InputStream."""

    def __init__(self, devices=None, rates=(16000,)):
        self.devices = devices if devices is not None else [
            {"name": "Speakers", "max_input_channels": 0, "max_output_channels": 2, "default_samplerate": 48000.0, "hostapi": 0},
            {"name": "USB Microphone", "max_input_channels": 2, "max_output_channels": 0, "default_samplerate": 48000.0, "hostapi": 0},
            {"name": "Webcam Microphone", "max_input_channels": 1, "max_output_channels": 0, "default_samplerate": 44100.0, "hostapi": 0},
        ]
        self.rates = rates
        self.streams: list[FakeStream] = []

        class Default:
            device = (1, 0)

        self.default = Default()

    def query_devices(self):
        return [dict(d, index=i) for i, d in enumerate(self.devices)]

    def query_hostapis(self):
        return [{"name": "ALSA"}]

    def check_input_settings(self, device=None, channels=None, samplerate=None, dtype=None):
        if samplerate not in self.rates:
            raise ValueError("Invalid sample rate")

    def InputStream(self, **kwargs):
        stream = FakeStream(**kwargs)
        self.streams.append(stream)
        return stream


def _feed(source: MicrophoneSource, x: np.ndarray, rate: int, channels: int, block: int) -> None:
    """Play `x` into the source's callback as PortAudio would: int16 blocks [frames, channels], then stop."""
    y = resample(x, 16000, rate) if rate != 16000 else x
    pcm = np.clip(np.round(y * 32768), -32768, 32767).astype(np.int16)
    pcm = np.repeat(pcm[:, None], channels, axis=1)
    for i in range(0, len(pcm), block):
        chunk = pcm[i : i + block]
        source.callback(chunk, len(chunk), None, None)
    source.stop()


@pytest.mark.parametrize("rate, channels", [(16000, 1), (48000, 2)])
def test_microphone_callback_gives_the_transcribe_lines(rec, recording, expected_lines, rate, channels):
    _, x = recording
    sd = FakeSoundDevice(rates=(rate,))
    devices = dictation.input_devices(sd)
    source = MicrophoneSource(dictation.resolve_device(devices, None), sd=sd, block_seconds=0.05)
    assert source.sample_rate == rate
    out = io.StringIO()
    with source:
        stream = sd.streams[-1]
        assert stream.active and stream.kwargs["callback"] == source.callback
        assert stream.kwargs["dtype"] == "int16" and stream.kwargs["samplerate"] == rate
        feeder = threading.Thread(target=_feed, args=(source, x, rate, channels, int(0.05 * rate)))
        feeder.start()  # PortAudio calls back from its own thread
        finals = Dictation(rec, Display(out, live=False)).run(source, source.sample_rate)
        feeder.join()
    assert stream.closed
    assert finals == expected_lines
    assert out.getvalue() == "".join(line + "\n" for line in expected_lines)  # not a terminal: finals only


def test_live_display_updates_the_partial_in_place(rec, recording, expected_lines):
    _, x = recording
    out = io.StringIO()
    blocks = (x[i : i + 1600] for i in range(0, x.size, 1600))
    finals = Dictation(rec, Display(out, live=True)).run(blocks, 16000)
    assert finals == expected_lines
    text = out.getvalue()
    assert text.count("\r\x1b[K") > len(expected_lines)  # partials were drawn and redrawn
    # what stays on the terminal: each final on its own line
    screen = [line.split("\r\x1b[K")[-1] for line in text.split("\n")]
    assert screen == expected_lines + [""]
    # a partial is never followed by a newline: finals replace it
    for line in text.split("\n")[:-1]:
        assert line.split("\r\x1b[K")[-1] in expected_lines


def test_max_seconds_stops_early(rec, recording, expected_lines):
    _, x = recording
    cut = 2.0 + x.size / 16000 / 3  # the first utterance and its pause, roughly
    blocks = (x[i : i + 4000] for i in range(0, x.size, 4000))
    finals = Dictation(rec, Display(io.StringIO(), live=False)).run(blocks, 16000, max_seconds=cut)
    assert finals and finals[0] == expected_lines[0] and len(finals) < 3


# -- the file path --------------------------------------------------------------------------------------------


def test_input_file_prints_the_transcribe_lines(trained_bundle, recording, expected_lines):
    path, _ = recording
    proc = _run(["--input-file", path, "--model", trained_bundle, "--fast"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == expected_lines
    assert "Traceback" not in proc.stderr


def test_rnnt_listen_is_the_same_demo(trained_bundle, recording, expected_lines, capsys):
    from rnnt.cli import main

    path, _ = recording
    assert main(["listen", "--input-file", path, "--model", trained_bundle, "--pace", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == expected_lines
    assert err.startswith("rnnt listen: listening to")


def test_file_source_keeps_real_time_pace(recording):
    path, x = recording
    src = FileSource(path, 16000, block_seconds=0.1, pace=20.0)
    start = time.monotonic()
    got = np.concatenate(list(src))
    elapsed = time.monotonic() - start
    assert np.allclose(got, x, atol=1e-4)
    assert elapsed >= x.size / 16000 / 20 * 0.9  # not faster than 20x real time
    start = time.monotonic()
    list(FileSource(path, 16000, pace=0))
    assert time.monotonic() - start < elapsed


def test_input_file_errors(trained_bundle, tmp_path, capsys):
    from rnnt.cli import main

    bad = tmp_path / "notes.wav"
    bad.write_text("not audio\n" * 10)
    assert main(["listen", "--input-file", str(bad), "--model", trained_bundle, "--fast"]) == 1
    err = capsys.readouterr().err
    assert f"rnnt listen: error: {bad}: cannot read audio file: not audio" in err
    assert main(["listen", "--input-file", str(tmp_path / "nope.wav"), "--model", trained_bundle]) == 1
    assert "nope.wav: no such file" in capsys.readouterr().err
    assert main(["listen", "--input-file", str(bad), "--model", str(bad)]) == 2
    assert "cannot use the model" in capsys.readouterr().err


# -- ALSA file plugin as a microphone (real PortAudio, no hardware) -------------------------------------------


def test_virtual_alsa_microphone(trained_bundle, recording, expected_lines, tmp_path):
    try:
        import sounddevice  # noqa: F401
    except (OSError, ImportError):
        pytest.skip("no sounddevice/PortAudio")
    if not os.path.exists("/usr/share/alsa/alsa.conf"):
        pytest.skip("no ALSA configuration")
    path, x = recording
    raw = tmp_path / "mic.s16le"
    pcm, _ = soundfile.read(path, dtype="int16")
    pcm.astype("<i2").tofile(raw)
    conf = tmp_path / "asound.conf"
    conf.write_text(
        "</usr/share/alsa/alsa.conf>\n"
        f'pcm.rnntmic {{ type file; slave.pcm "null"; file "/dev/null"; infile "{raw}"; format "raw" }}\n'
    )
    listed = _run(["--list-devices"], ALSA_CONFIG_PATH=str(conf))
    if listed.returncode != 0 or "rnntmic" not in listed.stdout:
        pytest.skip(f"PortAudio does not see the ALSA file device: {listed.stdout}{listed.stderr}")
    seconds = f"{x.size / 16000:.6f}"
    proc = _run(["--device", "rnntmic", "--seconds", seconds, "--model", trained_bundle], ALSA_CONFIG_PATH=str(conf))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == expected_lines


# -- what is missing, and how to fix it -----------------------------------------------------------------------

_NO_PORTAUDIO = """
import sys
class _NoPortAudio:
    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
sys.meta_path.insert(0, _NoPortAudio())
"""

_NO_SOUNDDEVICE = """
import sys
sys.modules["sounddevice"] = None
"""


def test_no_portaudio_is_one_clear_message(trained_bundle):
    proc = _run(["--model", trained_bundle], prelude=_NO_PORTAUDIO)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m demo: error: cannot record: the PortAudio library is missing")
    assert "apt-get install libportaudio2" in lines[0] and "--input-file" in lines[0]
    # a file needs no PortAudio
    proc = _run(["--list-devices"], prelude=_NO_PORTAUDIO)
    assert proc.returncode == 1 and "PortAudio" in proc.stderr


def test_no_sounddevice_is_one_clear_message(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(AudioUnavailable, match="pip install sounddevice"):
        dictation.import_sounddevice()
    assert dictation.main(["--model", "whatever.tflite"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sounddevice package is not installed" in err[0] and "--input-file" in err[0]


def test_input_file_needs_no_portaudio(trained_bundle, recording, expected_lines):
    path, _ = recording
    proc = _run(["--input-file", path, "--model", trained_bundle, "--fast"], prelude=_NO_PORTAUDIO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == expected_lines


def test_no_input_device(monkeypatch, capsys):
    args = dictation.build_parser().parse_args(["--model", "unused.tflite"])
    assert dictation.run(args, sd=FakeSoundDevice(devices=[])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no audio input device found" in err[0] and "plug in a microphone" in err[0]
    args = dictation.build_parser().parse_args(["--list-devices"])
    outputs_only = [{"name": "Speakers", "max_input_channels": 0, "max_output_channels": 2, "default_samplerate": 48000.0}]
    assert dictation.run(args, sd=FakeSoundDevice(devices=outputs_only)) == 1
    assert "no audio input device found" in capsys.readouterr().err


def test_lists_and_picks_input_devices(capsys):
    sd = FakeSoundDevice()
    args = dictation.build_parser().parse_args(["--list-devices"])
    assert dictation.run(args, sd=sd) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("input devices")
    assert len(out) == 3 and "Speakers" not in "".join(out)
    assert out[1].startswith("*") and "USB Microphone" in out[1] and "2 ch" in out[1]
    devices = dictation.input_devices(sd)
    assert dictation.resolve_device(devices, None)["name"] == "USB Microphone"  # the default
    assert dictation.resolve_device(devices, "2")["name"] == "Webcam Microphone"
    assert dictation.resolve_device(devices, "webcam")["name"] == "Webcam Microphone"
    with pytest.raises(UsageError, match="several"):
        dictation.resolve_device(devices, "microphone")
    with pytest.raises(UsageError, match="--list-devices"):
        dictation.resolve_device(devices, "bluetooth")
    with pytest.raises(UsageError):
        dictation.resolve_device(devices, "0")  # an output-only device
    # a device without 16 kHz records at its own rate (the recognizer resamples)
    src = MicrophoneSource(devices[1], sd=FakeSoundDevice(rates=(44100,)))
    assert src.sample_rate == 44100


def test_unknown_device_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setattr(dictation, "import_sounddevice", lambda: FakeSoundDevice())
    assert dictation.main(["--device", "bluetooth", "--model", "unused.tflite"]) == 2
    assert "no input device matches 'bluetooth'" in capsys.readouterr().err
