"""Live dictation: microphone (or a file played at real-time pace) -> streaming recognizer -> terminal.

The partial result is shown on one line, updated in place, and each finished sentence (an endpoint) is printed
on its own line. When standard output is not a terminal only the finished lines are printed, so
``python -m demo --input-file talk.wav > out.txt`` gives the same lines as the segments of ``rnnt transcribe``.

Audio sources are pluggable: anything with a `sample_rate` and iterable over float32 mono blocks.

- `MicrophoneSource`: a sounddevice `InputStream` whose callback pushes blocks into a queue;
- `FileSource`: a file read block by block, paced at real time (``pace=0``: as fast as possible).

sounddevice is imported lazily, so that the rest works (and ``--input-file`` needs no PortAudio) where it is
missing; `AudioUnavailable` carries one clear message saying what is missing and how to fix it.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import sys
import threading
import time
from typing import Iterable, Iterator, Sequence, TextIO

import numpy as np

from rnnt.decoding import DEFAULT_BEAM
from rnnt.inputs import Input, InputError

__all__ = [
    "AudioUnavailable",
    "import_sounddevice",
    "input_devices",
    "resolve_device",
    "MicrophoneSource",
    "FileSource",
    "Display",
    "Dictation",
    "add_arguments",
    "run",
    "main",
]

FIX_FILE = "or try it without a microphone: --input-file FILE"


class AudioUnavailable(Exception):
    """Recording is impossible here; the message says what is missing and how to fix it."""


def import_sounddevice():
    """The sounddevice module; AudioUnavailable when it or the PortAudio library is missing."""
    try:
        import sounddevice
    except OSError as e:  # sounddevice raises OSError('PortAudio library not found')
        raise AudioUnavailable(
            f"cannot record: the PortAudio library is missing ({e}); install it "
            f"(Debian/Ubuntu: sudo apt-get install libportaudio2, Fedora: sudo dnf install portaudio, "
            f"macOS: brew install portaudio), {FIX_FILE}"
        ) from None
    except ImportError as e:
        raise AudioUnavailable(
            f"cannot record: the sounddevice package is not installed ({e}); install it with "
            f"pip install sounddevice, {FIX_FILE}"
        ) from None
    return sounddevice


def _no_device_message() -> str:
    return (
        "cannot record: no audio input device found (PortAudio lists no microphone); plug in a microphone, "
        "check that your user may use the sound card (e.g. is in the 'audio' group, PulseAudio/PipeWire is "
        f"running), {FIX_FILE}"
    )


def input_devices(sd) -> list[dict]:
    """Input devices: dicts with index, name, channels, samplerate, hostapi, default."""
    try:
        devices = list(sd.query_devices())
    except Exception as e:  # PortAudioError
        raise AudioUnavailable(f"cannot record: PortAudio cannot list the audio devices ({e}); {FIX_FILE}") from None
    try:
        default_in = sd.default.device[0]
    except Exception:
        default_in = -1
    try:
        hostapis = [h["name"] for h in sd.query_hostapis()]
    except Exception:
        hostapis = []
    out = []
    for i, d in enumerate(devices):
        if d.get("max_input_channels", 0) <= 0:
            continue
        h = d.get("hostapi", -1)
        out.append(
            {
                "index": d.get("index", i),
                "name": d.get("name", f"device {i}"),
                "channels": int(d["max_input_channels"]),
                "samplerate": float(d.get("default_samplerate") or 0),
                "hostapi": hostapis[h] if 0 <= h < len(hostapis) else "",
                "default": d.get("index", i) == default_in,
            }
        )
    return out


def format_devices(devices: Sequence[dict]) -> str:
    lines = ["input devices (* = default):"]
    for d in devices:
        mark = "*" if d["default"] else " "
        api = f", {d['hostapi']}" if d["hostapi"] else ""
        lines.append(f"{mark} {d['index']:>3}  {d['name']}  ({d['channels']} ch, {d['samplerate']:.0f} Hz{api})")
    return "\n".join(lines)


def resolve_device(devices: Sequence[dict], spec: str | int | None) -> dict:
    """The input device for `spec`: None for the default (else the first), an index, or part of a name."""
    from rnnt.cli import UsageError

    if not devices:
        raise AudioUnavailable(_no_device_message())
    if spec is None or spec == "":
        for d in devices:
            if d["default"]:
                return d
        return devices[0]
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        for d in devices:
            if d["index"] == index:
                return d
        raise UsageError(f"no input device has index {index} (see --list-devices)")
    exact = [d for d in devices if d["name"].lower() == text.lower()]
    matches = exact or [d for d in devices if text.lower() in d["name"].lower()]
    if not matches:
        raise UsageError(f"no input device matches {text!r} (see --list-devices)")
    if len(matches) > 1:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in matches)
        raise UsageError(f"{text!r} matches several input devices ({names}): give the index")
    return matches[0]


class MicrophoneSource:
    """Blocks from an input device. The stream's `callback` pushes each block (float32 mono) into a bounded
    queue; iterating yields them until `stop()` (or the stream ends). Use as a context manager.

    `sd` is the sounddevice module (imported when not given); `device` a dict from `input_devices`.
    """

    def __init__(
        self,
        device: dict | None = None,
        *,
        sd=None,
        sample_rate: int | None = None,
        block_seconds: float = 0.1,
        max_queue_seconds: float = 120.0,
    ) -> None:
        self.sd = sd if sd is not None else import_sounddevice()
        self.device = device if device is not None else resolve_device(input_devices(self.sd), None)
        self.sample_rate = int(sample_rate or self._pick_rate())
        self.block_frames = max(1, int(round(block_seconds * self.sample_rate)))
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_queue_seconds / block_seconds)))
        self.dropped = 0  # blocks dropped because decoding fell behind
        self.overflows = 0  # blocks PortAudio reported as overflowed
        self.stream = None
        self._stopped = threading.Event()

    def _pick_rate(self, preferred: int = 16000) -> int:
        check = getattr(self.sd, "check_input_settings", None)
        if check is not None:
            try:
                check(device=self.device["index"], channels=1, samplerate=preferred, dtype="int16")
                return preferred
            except Exception:
                pass
        return int(self.device.get("samplerate") or preferred)

    # PortAudio calls this on its own thread for every block.
    def callback(self, indata, frames, time_info, status) -> None:
        if status:
            if getattr(status, "input_overflow", False):
                self.overflows += 1
        x = np.asarray(indata)
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        else:
            x = x.astype(np.float32, copy=True)
        block = x.mean(axis=1, dtype=np.float32) if x.ndim == 2 and x.shape[1] > 1 else x.reshape(-1).copy()
        try:
            self.queue.put_nowait(block)
        except queue.Full:
            self.dropped += 1

    def start(self) -> "MicrophoneSource":
        kwargs = dict(
            device=self.device["index"], channels=1, samplerate=self.sample_rate, dtype="int16",
            blocksize=self.block_frames, callback=self.callback,
        )
        try:
            self.stream = self.sd.InputStream(**kwargs)
            self.stream.start()
        except Exception as e:  # PortAudioError and friends
            self.stream = None
            raise AudioUnavailable(
                f"cannot open the input device {self.device['index']} ({self.device['name']}) at "
                f"{self.sample_rate} Hz: {e}; pick another with --device (see --list-devices), {FIX_FILE}"
            ) from None
        return self

    def stop(self) -> None:
        """Stop yielding (thread-safe); the stream is closed on exit."""
        self._stopped.set()

    def close(self) -> None:
        self._stopped.set()
        if self.stream is not None:
            stream, self.stream = self.stream, None
            try:
                stream.abort()  # not stop(): it would wait for a writer that may never come
            except Exception:
                pass
            try:
                stream.close()
            except Exception:
                pass

    def __enter__(self) -> "MicrophoneSource":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            try:
                block = self.queue.get(timeout=0.05)
            except queue.Empty:
                if self._stopped.is_set():
                    return
                if self.stream is not None and not getattr(self.stream, "active", True):
                    return
                continue
            yield block

    def describe(self) -> str:
        return f"input device {self.device['index']} ({self.device['name']}) at {self.sample_rate} Hz"


class FileSource:
    """An audio file as blocks at `sample_rate`, yielded at `pace` times real time (0: no waiting)."""

    def __init__(self, path: str, sample_rate: int = 16000, *, block_seconds: float = 0.1, pace: float = 1.0) -> None:
        self.path = path
        self.sample_rate = int(sample_rate)
        self.block_seconds = block_seconds
        self.pace = pace

    def __iter__(self) -> Iterator[np.ndarray]:
        start = time.monotonic()
        played = 0
        for block in Input(self.path).blocks(self.sample_rate, self.block_seconds):
            played += block.size
            if self.pace > 0:
                # a microphone delivers a block once it has been recorded
                delay = start + played / self.sample_rate / self.pace - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield block

    def describe(self) -> str:
        speed = "as fast as possible" if self.pace <= 0 else ("real time" if self.pace == 1 else f"{self.pace:g}x real time")
        return f"{self.path} ({speed})"


class Display:
    """Partial text updated in place (``\\r`` + clear to end of line) on a terminal; finals on their own lines.

    When `live` is false (output is not a terminal) partials are not shown at all.
    """

    def __init__(self, out: TextIO, live: bool | None = None) -> None:
        self.out = out
        if live is None:
            try:
                live = out.isatty()
            except (AttributeError, ValueError):
                live = False
        self.live = live
        self._shown = ""

    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((80, 24)).columns - 1)

    def partial(self, text: str) -> None:
        if not self.live or text == self._shown:
            return
        width = self._width()
        shown = text if len(text) <= width else "…" + text[-(width - 1):]
        self.out.write("\r\x1b[K" + shown)
        self.out.flush()
        self._shown = text

    def final(self, text: str) -> None:
        if self.live and self._shown:
            self.out.write("\r\x1b[K")
        self._shown = ""
        if text:
            self.out.write(text + "\n")
        self.out.flush()


class Dictation:
    """Feeds blocks into one stream of `recognizer`, decodes as soon as chunks are ready, shows partials and
    prints each segment's final text at an endpoint (then starts a new segment) and at the end."""

    def __init__(self, recognizer, display: Display) -> None:
        self.recognizer = recognizer
        self.display = display
        self.finals: list[str] = []

    def _final(self, text: str) -> None:
        self.display.final(text)
        if text:
            self.finals.append(text)

    def _drain(self, stream) -> None:
        rec = self.recognizer
        while rec.is_ready(stream):
            rec.decode(stream)
            if rec.is_endpoint(stream):
                text = rec.get_result(stream).text
                rec.reset(stream)
                self._final(text)
        if self.display.live:
            self.display.partial(rec.get_result(stream).text)

    def run(self, blocks: Iterable[np.ndarray], sample_rate: int, max_seconds: float | None = None) -> list[str]:
        """Dictate until the blocks end, `max_seconds` of audio were heard, or Ctrl-C; returns the final texts."""
        rec = self.recognizer
        stream = rec.create_stream()
        limit = None if not max_seconds else int(round(max_seconds * sample_rate))
        heard = 0
        interrupted = False
        try:
            for block in blocks:
                if limit is not None:
                    block = block[: max(0, limit - heard)]
                heard += block.size
                if block.size:
                    stream.accept_waveform(block, sample_rate)
                    self._drain(stream)
                if limit is not None and heard >= limit:
                    break
        except KeyboardInterrupt:
            interrupted = True
        stream.input_finished()
        self._drain(stream)
        self._final(rec.get_result(stream).text)
        if interrupted:
            raise KeyboardInterrupt
        return self.finals


# -- command line ---------------------------------------------------------------------------------------------


def _pace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


def _seconds(text: str) -> float:
    value = _pace(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a positive number of seconds")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rnnt.commands.transcribe import add_level_argument, positive_int

    p.add_argument("-m", "--model", metavar="BUNDLE", help="model bundle (.tflite); default: the packaged model")
    p.add_argument("--beam", type=positive_int, metavar="N", help=f"beam width; 1 = greedy (default {DEFAULT_BEAM})")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N", help="TFLite threads (default 1)")
    add_level_argument(p)
    p.add_argument("-d", "--device", metavar="N|NAME", help="input device: index or part of its name (see --list-devices)")
    p.add_argument("-l", "--list-devices", action="store_true", help="list the input devices and exit")
    p.add_argument("-i", "--input-file", metavar="FILE", help="play FILE through the recognizer instead of recording")
    p.add_argument(
        "--pace", type=_pace, default=1.0, metavar="X",
        help="with --input-file: play at X times real time (default 1; 0 = as fast as possible)",
    )
    p.add_argument("--fast", dest="pace", action="store_const", const=0.0, help="same as --pace 0")
    p.add_argument("--seconds", type=_seconds, metavar="S", help="stop after S seconds of audio")
    p.add_argument("--block-ms", type=positive_int, default=100, metavar="MS", help="audio block size (default 100 ms)")


DESCRIPTION = (
    "Live dictation: records from the microphone and shows the partial result updating in place, and each "
    "finished sentence on its own line. Ctrl-C stops. With --input-file, plays a file through the same path."
)


def build_parser(prog: str = "python -m demo") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(p)
    return p


def run(args, *, sd=None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the demo for parsed `args`; UsageError propagates (exit 2). `sd` replaces sounddevice (tests)."""
    from rnnt.commands.transcribe import load_recognizer

    prog = getattr(args, "prog_name", None) or "rnnt listen"
    out = out or sys.stdout
    err = err or sys.stderr
    block_seconds = args.block_ms / 1000.0
    try:
        if args.list_devices:
            devices = input_devices(sd if sd is not None else import_sounddevice())
            if not devices:
                raise AudioUnavailable(_no_device_message())
            print(format_devices(devices), file=out)
            return 0
        source = None
        if args.input_file is None:
            # check the audio side before the (slower) model load
            sd = sd if sd is not None else import_sounddevice()
            device = resolve_device(input_devices(sd), args.device)
            recognizer = load_recognizer(args.model, args.beam, args.threads, args.level)
            source = MicrophoneSource(device, sd=sd, block_seconds=block_seconds)
        else:
            if not os.path.exists(args.input_file):
                print(f"{prog}: error: {args.input_file}: no such file", file=err)
                return 1
            recognizer = load_recognizer(args.model, args.beam, args.threads, args.level)
            source = FileSource(args.input_file, recognizer.sample_rate, block_seconds=block_seconds, pace=args.pace)
        dictation = Dictation(recognizer, Display(out))
        print(f"{prog}: listening to {source.describe()}; Ctrl-C stops", file=err, flush=True)
        try:
            if isinstance(source, MicrophoneSource):
                with source:
                    dictation.run(source, source.sample_rate, args.seconds)
                if source.dropped or source.overflows:
                    print(
                        f"{prog}: warning: {source.dropped + source.overflows} audio blocks lost "
                        f"(decoding fell behind or the device overflowed)",
                        file=err,
                    )
            else:
                dictation.run(source, source.sample_rate, args.seconds)
        except KeyboardInterrupt:
            print(f"{prog}: stopped", file=err)
        return 0
    except AudioUnavailable as e:
        print(f"{prog}: error: {e}", file=err)
        return 1
    except InputError as e:
        print(f"{prog}: error: {args.input_file}: {e}", file=err)
        return 1


def main(argv: Sequence[str] | None = None, prog: str = "python -m demo") -> int:
    from rnnt.cli import UsageError

    parser = build_parser(prog)
    args = parser.parse_args(argv)
    args.prog_name = prog
    try:
        return run(args)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
