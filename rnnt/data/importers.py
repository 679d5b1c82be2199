"""Build utterance lists from common corpus layouts; durations come from the audio file headers.

Utterances whose audio is missing or unreadable are skipped with a warning; an import that finds no usable
utterance at all raises ValueError. Transcripts are kept as written (normalisation happens in the tokenizer).
"""

from __future__ import annotations

import csv
import glob
import os
import sys
import warnings
from typing import Iterable, NamedTuple

from rnnt.audio import AudioError
from rnnt.data.manifest import Utterance, audio_duration

__all__ = ["import_librispeech", "import_common_voice", "import_ljspeech", "import_tsv", "AUDIO_EXTENSIONS"]

#: audio extensions `import_tsv` looks for, in order
AUDIO_EXTENSIONS = ("wav", "flac", "ogg", "mp3")


class _Entry(NamedTuple):
    audio: str | None  # None: no audio file found
    text: str
    id: str
    speaker: str | None = None


def _finish(entries: list[_Entry], source: str, progress: bool) -> list[Utterance]:
    """Read durations, skipping entries whose audio is missing or unreadable."""
    items: Iterable[_Entry] = entries
    if progress:
        from tqdm import tqdm

        items = tqdm(entries, desc=os.path.basename(source) or source, unit="file", file=sys.stderr)
    utterances, missing, broken = [], [], []
    for e in items:
        if e.audio is None or not os.path.isfile(e.audio):
            missing.append(e.audio or e.id)
            continue
        try:
            duration = audio_duration(e.audio)
        except AudioError as err:
            broken.append(str(err))
            continue
        utterances.append(Utterance(audio=os.path.abspath(e.audio), text=e.text, duration=duration,
                                    id=e.id, speaker=e.speaker))
    for what, bad in (("audio missing", missing), ("audio unreadable", broken)):
        if bad:
            warnings.warn(f"{source}: skipped {len(bad)} of {len(entries)} utterances, {what} (first: {bad[0]})",
                          stacklevel=3)
    if not utterances:
        raise ValueError(f"{source}: no usable utterances found")
    return utterances


def _require(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")


def import_librispeech(root: str, *, progress: bool = False) -> list[Utterance]:
    """LibriSpeech layout: `speaker/chapter/speaker-chapter.trans.txt` lines `ID TEXT`, audio `ID.flac`.

    `root` may be one subset (e.g. `train-clean-100`) or a folder holding several; searched recursively.
    """
    _require(root, "LibriSpeech folder")
    transcripts = sorted(glob.glob(os.path.join(glob.escape(root), "**", "*.trans.txt"), recursive=True))
    if not transcripts:
        raise ValueError(f"{root}: no LibriSpeech *.trans.txt files found")
    entries = []
    for trans in transcripts:
        folder = os.path.dirname(trans)
        with open(trans, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                uid, _, text = line.strip().partition(" ")
                if not text:
                    raise ValueError(f"{trans}:{lineno}: expected 'ID TEXT'")
                entries.append(_Entry(os.path.join(folder, uid + ".flac"), text.strip(), uid, uid.split("-")[0]))
    return _finish(entries, root, progress)


def import_common_voice(tsv_path: str, clips_dir: str | None = None, *, progress: bool = False) -> list[Utterance]:
    """A Common Voice TSV (`train.tsv`, `dev.tsv`, ...) with `path` and `sentence` columns.

    Clips are looked up in `clips_dir`, by default `clips/` beside the TSV; `client_id` becomes the speaker.
    """
    _require(tsv_path, "Common Voice TSV")
    clips_dir = clips_dir or os.path.join(os.path.dirname(os.path.abspath(tsv_path)), "clips")
    csv.field_size_limit(1 << 24)
    entries = []
    with open(tsv_path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        columns = set(reader.fieldnames or ())
        if not {"path", "sentence"} <= columns:
            raise ValueError(f"{tsv_path}: not a Common Voice TSV (needs 'path' and 'sentence' columns, "
                             f"has {sorted(columns)})")
        for row in reader:
            clip, text = (row.get("path") or "").strip(), (row.get("sentence") or "").strip()
            if not clip or not text:
                continue
            uid = os.path.splitext(clip)[0]
            entries.append(_Entry(os.path.join(clips_dir, clip), text, uid, row.get("client_id") or None))
    return _finish(entries, tsv_path, progress)


def import_ljspeech(root: str, *, progress: bool = False) -> list[Utterance]:
    """LJSpeech layout: `metadata.csv` lines `id|text|normalized text`, audio `wavs/<id>.wav`.

    The normalized column is used when present and non-empty.
    """
    metadata = os.path.join(root, "metadata.csv")
    _require(metadata, "LJSpeech metadata.csv")
    entries = []
    with open(metadata, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("|")
            if len(fields) < 2 or not fields[0]:
                raise ValueError(f"{metadata}:{lineno}: expected 'id|text|normalized text'")
            text = fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]
            uid = fields[0].strip()
            entries.append(_Entry(os.path.join(root, "wavs", uid + ".wav"), text.strip(), uid))
    return _finish(entries, metadata, progress)


def _find_audio(folder: str, uid: str) -> str | None:
    for ext in AUDIO_EXTENSIONS:
        path = os.path.join(folder, f"{uid}.{ext}")
        if os.path.isfile(path):
            return path
    return None


def _read_speakers(path: str) -> dict[str, str]:
    speakers = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) >= 2 and fields[0] and fields[1]:
                speakers[fields[0]] = fields[1]
    return speakers


def import_tsv(tsv_path: str, audio_dir: str | None = None, *, progress: bool = False) -> list[Utterance]:
    """Plain `id<TAB>text` lines (no header); audio `audio_dir/<id>.<wav|flac|ogg|mp3>`.

    `audio_dir` defaults to `audio/` beside the TSV. A `speakers.tsv` beside it (`id<TAB>speaker...`) fills
    in speakers.
    """
    _require(tsv_path, "transcript TSV")
    folder = os.path.dirname(os.path.abspath(tsv_path))
    audio_dir = audio_dir or os.path.join(folder, "audio")
    _require(audio_dir, "audio folder")
    speakers_path = os.path.join(folder, "speakers.tsv")
    speakers = _read_speakers(speakers_path) if os.path.isfile(speakers_path) else {}
    entries = []
    with open(tsv_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            uid, tab, text = line.partition("\t")
            if not tab or not uid.strip():
                raise ValueError(f"{tsv_path}:{lineno}: expected 'id<TAB>text'")
            uid = uid.strip()
            entries.append(_Entry(_find_audio(audio_dir, uid), text.strip(), uid, speakers.get(uid)))
    return _finish(entries, tsv_path, progress)
