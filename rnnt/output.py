"""Output formats of `rnnt transcribe`: txt, json, jsonl, srt, vtt, tsv.

A `Transcript` is what one input gave: its text, duration and segments (one per endpoint), each with words,
their times and confidences; or the `error` that stopped it. A `Writer` writes transcripts to one stream in
input order, one at a time (nothing is kept in memory):

- ``txt``: the text on one line. With several inputs a line is ``PATH<TAB>TEXT``. Failed inputs are left out.
- ``json``: one array of objects, as ``jsonl`` objects.
- ``jsonl``: one object per input and line: ``{"path", "text", "duration", "segments": [{"start", "end",
  "text", "words": [{"word", "start", "end", "confidence"}]}]}``. A failed input is the object
  ``{"path", "text": null, "error"}``, so lines stay one per input and in input order.
- ``srt``, ``vtt``: one subtitle cue per segment. One input per stream (with several, write one file each).
- ``tsv``: ``start<TAB>end<TAB>text`` per segment, times in integer milliseconds, with a header line (as
  whisper's tsv). With several inputs a first ``path`` column is added.

Times are seconds from the start of the input (rounded to milliseconds); a segment spans its words.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import IO, Iterable, Sequence

__all__ = [
    "FORMATS",
    "SINGLE_INPUT_FORMATS",
    "Word",
    "Segment",
    "Transcript",
    "Writer",
    "transcript_from_results",
    "format_transcript",
    "format_timestamp",
    "output_paths",
]

FORMATS = ("txt", "json", "jsonl", "srt", "vtt", "tsv")
#: Formats that hold one input per file.
SINGLE_INPUT_FORMATS = ("srt", "vtt")


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    confidence: float

    def as_dict(self) -> dict:
        return {
            "word": self.word,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "confidence": round(self.confidence, 3),
        }


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()

    def as_dict(self) -> dict:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "words": [w.as_dict() for w in self.words],
        }


@dataclass(frozen=True)
class Transcript:
    """The result for one input: `error` is None when it succeeded."""

    path: str
    text: str = ""
    duration: float = 0.0
    segments: tuple[Segment, ...] = ()
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "text": None, "error": self.error}
        d = {
            "path": self.path,
            "text": self.text,
            "duration": round(self.duration, 3),
            "segments": [s.as_dict() for s in self.segments],
        }
        d.update(self.extra)
        return d


def _segment(result) -> Segment:
    """A `rnnt.runtime.Result` as a `Segment` spanning its words."""
    words = tuple(Word(w.text, float(w.start), float(w.end), float(w.confidence)) for w in result.words)
    if words:
        start, end = words[0].start, max(words[-1].end, words[0].start)
    else:
        start, end = float(result.start_time), float(result.end_time)
    return Segment(start, end, result.text, words)


def transcript_from_results(path: str, results: Iterable, duration: float) -> Transcript:
    """A Transcript of the per-segment results of `Recognizer.transcribe_blocks`."""
    segments = tuple(_segment(r) for r in results if r.text)
    text = " ".join(s.text for s in segments)
    return Transcript(path, text, float(duration), segments)


def format_timestamp(seconds: float, marker: str = ",") -> str:
    """``HH:MM:SS,mmm`` (srt) or with ``marker='.'`` ``HH:MM:SS.mmm`` (vtt)."""
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{marker}{ms:03d}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cues(t: Transcript, marker: str) -> Iterable[tuple[int, str]]:
    for i, s in enumerate(t.segments, 1):
        end = max(s.end, s.start + 0.001)
        yield i, f"{format_timestamp(s.start, marker)} --> {format_timestamp(end, marker)}\n{_one_line(s.text)}\n"


def format_transcript(t: Transcript, fmt: str, *, with_path: bool = False) -> str:
    """The text one transcript takes in format `fmt` (with `with_path` as one of several inputs)."""
    if fmt == "txt":
        if not t.ok:
            return ""
        return f"{t.path}\t{_one_line(t.text)}\n" if with_path else f"{_one_line(t.text)}\n"
    if fmt in ("json", "jsonl"):
        if fmt == "json":
            return json.dumps(t.as_dict(), ensure_ascii=False, indent=2)
        return json.dumps(t.as_dict(), ensure_ascii=False) + "\n"
    if not t.ok:
        return ""
    if fmt == "srt":
        return "".join(f"{i}\n{cue}\n" for i, cue in _cues(t, ","))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(f"{cue}\n" for _, cue in _cues(t, "."))
    if fmt == "tsv":
        prefix = f"{t.path}\t" if with_path else ""
        return "".join(
            f"{prefix}{int(round(s.start * 1000))}\t{int(round(s.end * 1000))}\t{_one_line(s.text)}\n"
            for s in t.segments
        )
    raise ValueError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})")


class Writer:
    """Writes transcripts in `fmt` to `file` as they come. `several`: the stream holds several inputs."""

    def __init__(self, fmt: str, file: IO[str], several: bool = False) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})")
        if several and fmt in SINGLE_INPUT_FORMATS:
            raise ValueError(f"{fmt} holds one input per file: write several inputs to a folder (-o DIR)")
        self.fmt, self.file, self.several = fmt, file, several
        self._count = 0
        self._started = False

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.fmt == "json":
            self.file.write("[")
        elif self.fmt == "tsv":
            self.file.write("path\tstart\tend\ttext\n" if self.several else "start\tend\ttext\n")

    def write(self, t: Transcript) -> None:
        self._start()
        if self.fmt == "json":
            body = format_transcript(t, "json").replace("\n", "\n  ")
            self.file.write(("," if self._count else "") + "\n  " + body)
        else:
            self.file.write(format_transcript(t, self.fmt, with_path=self.several))
        self._count += 1
        self.file.flush()

    def close(self) -> None:
        """Finish the document (the closing bracket of json). Does not close the file."""
        self._start()
        if self.fmt == "json":
            self.file.write("\n]\n" if self._count else "]\n")
        self.file.flush()


def output_paths(paths: Sequence[str], folder: str, fmt: str) -> list[str]:
    """One output file per input under `folder`: the input's name with the format's extension; ``-`` (standard
    input) becomes ``stdin``; clashing names get ``-2``, ``-3``, ... in input order."""
    taken: set[str] = set()
    out = []
    for p in paths:
        stem = "stdin" if p == "-" else os.path.splitext(os.path.basename(os.path.normpath(p)))[0] or "audio"
        name, n = f"{stem}.{fmt}", 1
        while name.lower() in taken:
            n += 1
            name = f"{stem}-{n}.{fmt}"
        taken.add(name.lower())
        out.append(os.path.join(folder, name))
    return out
