"""JSONL manifests: one `{"audio", "text", "duration"[, "id", "speaker"]}` object per line.

A relative `audio` path is relative to the manifest file's folder; `read_manifest` resolves it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Iterable

__all__ = ["Utterance", "ManifestError", "read_manifest", "write_manifest", "audio_duration", "total_duration"]


class ManifestError(ValueError):
    """A manifest line is not a valid utterance record."""


@dataclass(frozen=True)
class Utterance:
    """One training or test example: an audio file and its transcript."""

    audio: str
    text: str
    duration: float
    id: str | None = None
    speaker: str | None = None


def _parse(record: object, base: str) -> Utterance:
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    missing = [k for k in ("audio", "text", "duration") if k not in record]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    audio, text, duration = record["audio"], record["text"], record["duration"]
    if not isinstance(audio, str) or not audio:
        raise ValueError("'audio' must be a non-empty string")
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration >= 0:
        raise ValueError("'duration' must be a non-negative number")
    extra = {}
    for key in ("id", "speaker"):
        value = record.get(key)
        if value is not None and not isinstance(value, (str, int)):
            raise ValueError(f"'{key}' must be a string")
        extra[key] = None if value is None else str(value)
    path = os.path.expanduser(audio)
    if not os.path.isabs(path):
        path = os.path.normpath(os.path.join(base, path))
    return Utterance(audio=path, text=text, duration=float(duration), **extra)


def read_manifest(path: str) -> list[Utterance]:
    """All utterances of a JSONL manifest, audio paths resolved; blank lines are skipped.

    Raises ManifestError naming the file and line of the first bad record.
    """
    base = os.path.dirname(os.path.abspath(path))
    utterances = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                utterances.append(_parse(json.loads(line), base))
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                raise ManifestError(f"{path}:{lineno}: bad manifest line: {e}") from None
    return utterances


def _record(u: Utterance, base: str | None) -> dict:
    audio = u.audio
    if base is not None:
        audio = os.path.relpath(os.path.abspath(audio), base)
    record: dict = {"audio": audio, "text": u.text, "duration": round(float(u.duration), 4)}
    if u.id is not None:
        record["id"] = u.id
    if u.speaker is not None:
        record["speaker"] = u.speaker
    return record


def write_manifest(path: str, utterances: Iterable[Utterance], *, relative: bool = False) -> int:
    """Write utterances as JSONL atomically (temp file, then rename); returns the number written.

    With `relative=True` audio paths are written relative to the manifest's folder (a portable dataset).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = folder if relative else None
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=folder)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for u in utterances:
                f.write(json.dumps(_record(u, base), ensure_ascii=False) + "\n")
                count += 1
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return count


def audio_duration(path: str) -> float:
    """Duration in seconds from the audio file's header; raises rnnt.audio.AudioError."""
    from rnnt.audio import audio_info

    rate, frames, _ = audio_info(path)
    return frames / rate


def total_duration(utterances: Iterable[Utterance]) -> float:
    """Sum of durations in seconds."""
    return float(sum(u.duration for u in utterances))
