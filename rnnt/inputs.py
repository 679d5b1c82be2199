"""Command-line inputs: expand files, folders, glob patterns and ``-`` (standard input) into a list of audio
inputs, and read each one block by block.

Expansion never raises for a bad input: a missing file, a pattern that matches nothing or a folder without
audio becomes an `Input` whose `error` says why, so that the rest of a batch still runs. Decoding problems
(empty, truncated or corrupt files, text posing as audio, NaN samples) surface as `InputError` while the
blocks are read.

    for item in expand_inputs(["a.wav", "folder/", "clips/*.flac", "-"]):
        if item.error: ...
        for block in item.blocks(sample_rate=16000): ...

Standard input (``-``) holds one audio file in any format libsndfile recognises from its content (WAV, FLAC,
OGG, MP3, ...); it is spooled to a temporary file, so memory stays flat. With `raw_rate` it is raw
little-endian 16-bit PCM (``s16le``) at that rate with `raw_channels` channels, read as it arrives.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Sequence

import numpy as np

from rnnt.audio import AudioError, iter_audio_blocks

__all__ = ["AUDIO_EXTENSIONS", "STDIN", "Input", "InputError", "expand_inputs", "iter_stdin_raw", "input_duration"]

#: File name endings taken from a folder (compared case-insensitively). Files named explicitly, or matched by
#: a glob pattern, are read whatever their name.
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd",
    ".caf", ".w64", ".rf64", ".nist", ".sph", ".voc", ".htk",
)

#: The path that means standard input.
STDIN = "-"

_GLOB_CHARS = set("*?[")


class InputError(Exception):
    """One input cannot be transcribed; the message is the reason (it does not repeat the path)."""


@dataclass(frozen=True)
class Input:
    """One audio input. `path` is as the user gave it (or as found under a folder or by a pattern); `error`
    is set when the input could not even be found."""

    path: str
    error: str | None = None

    @property
    def is_stdin(self) -> bool:
        return self.path == STDIN

    def blocks(
        self,
        sample_rate: int,
        block_seconds: float = 5.0,
        *,
        stdin: BinaryIO | None = None,
        raw_rate: int | None = None,
        raw_channels: int = 1,
    ) -> Iterator[np.ndarray]:
        """float32 mono blocks at `sample_rate`; raises InputError (possibly after some blocks)."""
        if self.error:
            raise InputError(self.error)
        if self.is_stdin:
            source = stdin if stdin is not None else sys.stdin.buffer
            if raw_rate:
                yield from _raw_blocks(source, raw_rate, raw_channels, sample_rate, block_seconds)
            else:
                yield from _spooled_blocks(source, sample_rate, block_seconds)
            return
        try:
            yield from iter_audio_blocks(self.path, block_seconds, sample_rate)
        except AudioError as e:
            raise InputError(_reason(str(e), self.path)) from None
        except MemoryError:
            raise InputError("out of memory while decoding (is it really audio?)") from None


def _reason(message: str, path: str) -> str:
    """An `AudioError` message without the file name (the caller prints it in front)."""
    if not path:
        return message
    for pattern in (f"audio file {path} ", f"audio file {path}:"):
        message = message.replace(pattern, "audio file " if pattern.endswith(" ") else "audio file:")
    message = message.replace(f"Error opening '{path}': ", "").replace(f"Error opening {path!r}: ", "")
    if message.endswith(f": {path}"):
        message = message[: -len(path) - 2]
    return message.strip()


def _is_audio_name(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _folder(path: str) -> list[Input]:
    found: list[str] = []
    for root, dirs, files in os.walk(path, onerror=None):
        dirs.sort()
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in sorted(files):
            if _is_audio_name(name) and not name.startswith("."):
                found.append(os.path.join(root, name))
    if not found:
        if not os.access(path, os.R_OK | os.X_OK):
            return [Input(path, "cannot read the folder (permission denied)")]
        exts = ", ".join(e for e in AUDIO_EXTENSIONS[:8])
        return [Input(path, f"folder contains no audio files (looked for {exts}, ...)")]
    return [Input(p) if os.path.exists(p) else Input(p, "broken symbolic link") for p in found]


def expand_inputs(specs: Sequence[str]) -> list[Input]:
    """Expand command-line paths, in order: a file stays itself; a folder becomes its audio files (recursively,
    sorted, hidden entries skipped); a pattern with ``* ? [`` that names no existing file becomes its matches
    (``**`` recurses; matched folders are expanded too); ``-`` is standard input. Never raises."""
    out: list[Input] = []
    for spec in specs:
        if spec == STDIN:
            out.append(Input(STDIN))
        elif os.path.isdir(spec):
            out.extend(_folder(spec))
        elif os.path.lexists(spec):
            if not os.path.exists(spec):
                out.append(Input(spec, "broken symbolic link"))
            else:
                out.append(Input(spec))
        elif _GLOB_CHARS & set(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            if not matches:
                out.append(Input(spec, "no files match this pattern"))
            for m in matches:
                out.extend(_folder(m) if os.path.isdir(m) else [Input(m)])
        else:
            out.append(Input(spec, "no such file or folder"))
    return out


def input_duration(item: Input) -> float | None:
    """Seconds of audio from the file header (cheap); None when unknown (stdin, errors, unreadable)."""
    if item.error or item.is_stdin:
        return None
    import soundfile

    try:
        info = soundfile.info(item.path)
    except Exception:  # the real error is reported when the file is read
        return None
    if info.samplerate <= 0 or not 0 <= info.frames < (1 << 62):
        return None
    return info.frames / info.samplerate


# -- standard input -------------------------------------------------------------------------------------------


def _spooled_blocks(source: BinaryIO, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    """Copy standard input to a temporary file (libsndfile needs to seek), then read it block by block."""
    fd, tmp = tempfile.mkstemp(prefix="rnnt-stdin-", suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(source, f, 1 << 20)
        if os.path.getsize(tmp) == 0:
            raise InputError("standard input is empty (no audio bytes)")
        try:
            yield from iter_audio_blocks(tmp, block_seconds, sample_rate)
        except AudioError as e:
            reason = _reason(str(e), tmp)
            if "not audio" in reason:
                reason += "; for raw PCM give --raw-rate"
            raise InputError(reason) from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def iter_stdin_raw(
    source: BinaryIO, rate: int, channels: int, block_seconds: float
) -> Iterator[np.ndarray]:
    """Raw s16le PCM from a byte stream as float32 mono blocks at `rate` (no resampling), read as it comes."""
    frame_bytes = 2 * channels
    want = max(1, int(round(block_seconds * rate))) * frame_bytes
    carry = b""
    total = 0
    while True:
        data = source.read(want)
        if not data:
            break
        data = carry + data
        usable = len(data) - len(data) % frame_bytes
        carry = data[usable:]
        if not usable:
            continue
        x = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
        if channels > 1:
            x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
        total += x.size
        yield x
    if total == 0:
        raise InputError("standard input is empty (no audio samples)")


def _raw_blocks(
    source: BinaryIO, rate: int, channels: int, sample_rate: int, block_seconds: float
) -> Iterator[np.ndarray]:
    from rnnt.audio import Resampler

    resampler = Resampler(rate, sample_rate)
    for x in iter_stdin_raw(source, rate, channels, block_seconds):
        out = resampler.process(x)
        if out.size:
            yield out
    tail = resampler.flush()
    if tail.size:
        yield tail
