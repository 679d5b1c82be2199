"""Where the shared data lives, and the material that is never used for training.

Reserved (never read, never trained on):
- `<shared>/reserved/` (encrypted final evaluation data): nothing in `rnnt.corpus` opens it;
  `check_not_reserved_path` guards every input path.
- LJSpeech LJ001-* and LJ003-* (left out of `text/ljspeech.txt` upstream; clip ids are checked here too),
  LibriSpeech test-clean text (not shipped; only dev-clean text is read), the piper voices `joe` and `hibari`.
- The sentences of the development sets (`<shared>/data/real-dev*/transcripts.tsv`, LJ002-*): they occur in
  `text/ljspeech.txt`, so every training sentence is compared (normalized) against them and dropped on a match.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

__all__ = [
    "RESERVED_VOICE_NAMES",
    "RESERVED_ID_PREFIXES",
    "Reserved",
    "default_shared_dir",
    "normalize",
    "dev_set_sentences",
    "load_reserved",
    "check_not_reserved_path",
]

#: TTS voices kept for evaluation (piper); any voice whose name contains one of these is refused.
RESERVED_VOICE_NAMES = ("joe", "hibari")
#: utterance ids that are reserved whatever their source (LJSpeech chapters 1 and 3)
RESERVED_ID_PREFIXES = ("LJ001-", "LJ003-")
#: glob, relative to the shared folder, of the development sets' transcripts
DEV_TRANSCRIPTS_GLOB = "data/real-dev*/transcripts.tsv"


def default_shared_dir(override: str | os.PathLike | None = None) -> Path:
    """The shared folder: `override`, else `$RNNT_SHARED`, else `../shared` next to the repository."""
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get("RNNT_SHARED")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2].parent / "shared"


def normalize(text: str) -> str:
    """The project's transcript normalization (`rnnt.text.normalize_text`)."""
    from rnnt.text import normalize_text

    return normalize_text(text)


def check_not_reserved_path(path: str | os.PathLike, shared: str | os.PathLike) -> None:
    """Raise ValueError if `path` lies under `<shared>/reserved`."""
    reserved_dir = Path(shared).resolve() / "reserved"
    p = Path(path).resolve()
    if p == reserved_dir or reserved_dir in p.parents:
        raise ValueError(f"{path} is reserved evaluation data and must not be used")


def _read_tsv(path: Path) -> list[tuple[str, str]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            uid, _, text = line.partition("\t")
            rows.append((uid, text))
    return rows


def dev_set_sentences(shared: str | os.PathLike) -> set[str]:
    """Normalized transcripts of every development set in the shared folder."""
    out = set()
    for path in sorted(Path(shared).glob(DEV_TRANSCRIPTS_GLOB)):
        for _, text in _read_tsv(path):
            norm = normalize(text)
            if norm:
                out.add(norm)
    return out


@dataclass(frozen=True)
class Reserved:
    """Normalized sentences and voice names that training material must avoid."""

    sentences: frozenset[str] = frozenset()
    voice_names: tuple[str, ...] = RESERVED_VOICE_NAMES
    id_prefixes: tuple[str, ...] = RESERVED_ID_PREFIXES

    def is_reserved_text(self, text: str, *, normalized: bool = False) -> bool:
        return (text if normalized else normalize(text)) in self.sentences

    def is_reserved_voice(self, voice_id: str) -> bool:
        words = re.split(r"[^a-z0-9]+", voice_id.lower())
        return any(name in words for name in self.voice_names)

    def is_reserved_id(self, uid: str) -> bool:
        return uid.upper().startswith(self.id_prefixes)

    def filter_texts(self, texts: Iterable[str]) -> list[str]:
        """The texts whose normalized form is not reserved, in order."""
        return [t for t in texts if not self.is_reserved_text(t)]


def load_reserved(shared: str | os.PathLike | None = None, extra: Iterable[str] = ()) -> Reserved:
    """Everything reserved that can be known locally: the dev-set sentences plus `extra` sentences."""
    shared = default_shared_dir(shared)
    sentences = dev_set_sentences(shared)
    sentences.update(n for n in (normalize(t) for t in extra) if n)
    return Reserved(sentences=frozenset(sentences))
