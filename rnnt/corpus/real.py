"""The real recordings in `<shared>/data/` that are meant for training, with their dev hold-out.

- `fsdd/`: Free Spoken Digit Dataset. Dev: recordings 0-4 of every digit and speaker (FSDD's own test split).
- `speechocean762/`: Mandarin-L1 speakers reading English. Dev: `dev_speakers` speakers picked by a hash of
  the speaker id (independent of the build seed), balanced between children (15 or under) and adults.

The other folders (`real-dev*`) are development sets and are never used for training; `reserved/` is
never read. Transcripts are normalized with `rnnt.text.normalize_text`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rnnt.corpus.reserved import Reserved, check_not_reserved_path, normalize

__all__ = ["RealClip", "REAL_SETS", "fsdd_clips", "speaker_table", "speechocean_clips", "real_clips"]

log = logging.getLogger(__name__)

REAL_SETS = ("fsdd", "speechocean762")
FSDD_DEV_MAX_INDEX = 4  # recordings 0..4 of each digit and speaker are FSDD's test split


@dataclass(frozen=True)
class RealClip:
    corpus: str
    id: str
    source: str  # absolute path of the original audio
    text: str  # normalized
    speaker: str
    split: str  # "train" or "dev"


def _tsv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def _audio_path(folder: Path, uid: str) -> Path | None:
    for ext in ("wav", "flac", "ogg", "opus", "mp3"):
        p = folder / "audio" / f"{uid}.{ext}"
        if p.is_file():
            return p
    return None


def _h(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def fsdd_clips(shared: str | os.PathLike) -> list[RealClip]:
    folder = (Path(shared) / "data" / "fsdd").resolve()
    check_not_reserved_path(folder, shared)
    if not (folder / "transcripts.tsv").is_file():
        log.warning("no FSDD at %s", folder)
        return []
    out = []
    for uid, text in _tsv(folder / "transcripts.tsv"):
        audio = _audio_path(folder, uid)
        if audio is None:
            continue
        digit, speaker, index = uid.split("_")
        split = "dev" if int(index) <= FSDD_DEV_MAX_INDEX else "train"
        out.append(RealClip("fsdd", uid, str(audio), normalize(text), speaker, split))
    return out


def speaker_table(path: str | os.PathLike) -> dict[str, tuple[str, int | None]]:
    """speechocean762's `speakers.tsv` (utterance id, speaker, age, gender): utterance id -> (speaker, age or None)."""
    return {row[0]: (row[1], int(row[2]) if len(row) > 2 and row[2].isdigit() else None)
            for row in _tsv(Path(path))}


def speechocean_clips(shared: str | os.PathLike, dev_speakers: int = 10) -> list[RealClip]:
    folder = (Path(shared) / "data" / "speechocean762").resolve()
    check_not_reserved_path(folder, shared)
    if not (folder / "transcripts.tsv").is_file():
        log.warning("no speechocean762 at %s", folder)
        return []
    speakers = speaker_table(folder / "speakers.tsv") if (folder / "speakers.tsv").is_file() else {}
    ages: dict[str, int] = {}
    for spk, age in speakers.values():
        ages[spk] = 99 if age is None else age
    children = sorted((s for s in ages if ages[s] <= 15), key=_h)
    adults = sorted((s for s in ages if ages[s] > 15), key=_h)
    n_child = dev_speakers // 2
    dev = set(children[:n_child]) | set(adults[: dev_speakers - n_child])
    out = []
    for uid, text in _tsv(folder / "transcripts.tsv"):
        audio = _audio_path(folder, uid)
        if audio is None:
            continue
        spk = speakers.get(uid, (uid[:4], 0))[0]
        out.append(RealClip("speechocean762", uid, str(audio), normalize(text), f"so762-{spk}",
                            "dev" if spk in dev else "train"))
    return out


def real_clips(shared: str | os.PathLike, reserved: Reserved | None = None, *, sets=REAL_SETS,
               dev_speakers: int = 10, max_per_set: int | None = None) -> list[RealClip]:
    """The real clips of `sets`, reserved ones dropped; with `max_per_set`, at most that many of each set and
    split (the first by a hash of the id: a small, stable sample)."""
    reserved = reserved or Reserved()
    clips: list[RealClip] = []
    for name in sets:
        found = fsdd_clips(shared) if name == "fsdd" else speechocean_clips(shared, dev_speakers)
        kept = []
        for c in found:
            if not c.text or reserved.is_reserved_id(c.id) or reserved.is_reserved_text(c.text, normalized=True):
                continue
            kept.append(c)
        if max_per_set is not None:
            kept = [c for split in ("train", "dev")
                    for c in sorted((c for c in kept if c.split == split), key=lambda c: _h(c.id))[:max_per_set]]
            kept.sort(key=lambda c: (c.split, c.id))
        clips += kept
    return clips
