"""The offline TTS voices, discovered at run time, and which of them are held out for dev.

- espeak-ng: every English accent (`espeak-ng --voices=en`, mbrola voices excluded: they need mbrola, which
  is not in Debian main) combined with the plain voice and every variant (`espeak-ng --voices=variant`).
- flite: kal, kal16, awb, rms, slt (`flite -lv`; `awb_time` is a talking clock and is left out).
- festival: kal_diphone, ked_diphone, cmu_us_slt_arctic_hts (Debian festvox-kallpc16k, -kdlpc16k, -us-slt-hts).
- accent: festival's Czech, Italian, Finnish and Hindi voices reading English phones (`rnnt.corpus.accents`);
  weight 0 by default, so only a corpus built with ``--engines accent`` (or weights naming it) uses them.

Dev voices (never used for training): the flite `rms` voice and every tenth espeak-ng variant (by name),
with all their accents. The choice does not depend on the build seed.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from rnnt.corpus.reserved import Reserved

__all__ = [
    "Voice",
    "ENGINES",
    "DEFAULT_ENGINE_WEIGHTS",
    "FLITE_VOICES",
    "FESTIVAL_VOICES",
    "DEV_FLITE_VOICES",
    "espeak_voices",
    "flite_voices",
    "festival_voices",
    "accent_voices",
    "discover_voices",
    "is_dev_voice",
    "split_voices",
]

log = logging.getLogger(__name__)

ENGINES = ("espeak", "flite", "festival", "accent")
#: share of synthesized items per engine (renormalized over the engines with voices); "accent" is off unless it is
#: the only engine chosen
DEFAULT_ENGINE_WEIGHTS = {"espeak": 0.55, "flite": 0.25, "festival": 0.20, "accent": 0.0}
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
FESTIVAL_DIRS = ("/usr/share/festival/voices", "/usr/lib/festival/voices")
DEV_FLITE_VOICES = ("rms",)
DEV_FESTIVAL_VOICES: tuple[str, ...] = ()
#: every DEV_VARIANT_STRIDE-th espeak variant (sorted by lowercase name), from DEV_VARIANT_OFFSET, is dev
DEV_VARIANT_STRIDE = 10
DEV_VARIANT_OFFSET = 5


@dataclass(frozen=True, order=True)
class Voice:
    engine: str  # espeak | flite | festival
    name: str  # espeak language code ("en-us"), flite voice ("slt"), festival voice ("kal_diphone")
    variant: str = ""  # espeak variant ("Storm"); "" for the plain voice

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}" + (f"+{self.variant}" if self.variant else "")

    @staticmethod
    def from_id(voice_id: str) -> "Voice":
        engine, _, rest = voice_id.partition(":")
        name, _, variant = rest.partition("+")
        return Voice(engine, name, variant)


def _run(cmd: Sequence[str]) -> str:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("%s failed: %s", cmd[0], e)
        return ""


def _espeak_table(arg: str) -> list[tuple[str, str]]:
    """(language, file) rows of `espeak-ng --voices=<arg>`."""
    rows = []
    for line in _run(["espeak-ng", f"--voices={arg}"]).splitlines()[1:]:
        parts = line.split()
        # Pty Language Age/Gender VoiceName File [Other Languages]
        if len(parts) >= 5:
            rows.append((parts[1], parts[4]))
    return rows


@functools.lru_cache(maxsize=None)
def espeak_variants() -> tuple[str, ...]:
    """Names of the espeak-ng voice variants (files under espeak-ng-data/voices/!v), sorted by lowercase."""
    if not shutil.which("espeak-ng"):
        return ()
    return tuple(sorted({file.split("/", 1)[1] for _, file in _espeak_table("variant") if file.startswith("!v/")},
                        key=str.lower))


def espeak_voices(with_variants: bool = True) -> list[Voice]:
    """Every English espeak-ng accent, plain and with every variant; [] when espeak-ng is missing."""
    if not shutil.which("espeak-ng"):
        log.warning("espeak-ng not installed: no espeak voices (run scripts/setup_tts.sh)")
        return []
    accents = sorted({lang for lang, file in _espeak_table("en")
                      if lang.startswith("en") and not file.startswith("mb/")})
    variants = [""] + (list(espeak_variants()) if with_variants else [])
    return [Voice("espeak", a, v) for a in accents for v in variants]


def flite_voices() -> list[Voice]:
    if not shutil.which("flite"):
        log.warning("flite not installed: no flite voices (run scripts/setup_tts.sh)")
        return []
    out = _run(["flite", "-lv"])
    available = set(out.split(":", 1)[-1].split())
    missing = [v for v in FLITE_VOICES if v not in available]
    if missing:
        log.warning("flite voices not available: %s", ", ".join(missing))
    return [Voice("flite", v) for v in FLITE_VOICES if v in available]


def festival_voices(names: Sequence[str] = FESTIVAL_VOICES, engine: str = "festival") -> list[Voice]:
    """The installed festival voices among `names`, as voices of `engine`."""
    if not shutil.which("festival"):
        log.warning("festival not installed: no %s voices (run scripts/setup_tts.sh)", engine)
        return []
    found = []
    for v in names:
        if any(list(Path(d).glob(f"*/{v}")) for d in FESTIVAL_DIRS):
            found.append(Voice(engine, v))
        else:
            log.warning("festival voice %s not installed", v)
    return found


def accent_voices() -> list[Voice]:
    """festival's non-English voices that `rnnt.corpus.accents` makes read English."""
    from rnnt.corpus.accents import ACCENT_VOICES

    return festival_voices(sorted(ACCENT_VOICES), "accent")


def discover_voices(engines: Iterable[str] = ENGINES, pattern: str | None = None,
                    reserved: Reserved | None = None) -> list[Voice]:
    """The available voices of `engines`, optionally only those whose id matches the regex `pattern`."""
    engines = list(engines)
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise ValueError(f"unknown TTS engines: {', '.join(sorted(unknown))} (known: {', '.join(ENGINES)})")
    voices: list[Voice] = []
    if "espeak" in engines:
        voices += espeak_voices()
    if "flite" in engines:
        voices += flite_voices()
    if "festival" in engines:
        voices += festival_voices()
    if "accent" in engines:
        voices += accent_voices()
    reserved = reserved or Reserved()
    voices = [v for v in voices if not reserved.is_reserved_voice(v.id)]
    if pattern:
        rx = re.compile(pattern)
        voices = [v for v in voices if rx.search(v.id)]
    return voices


def dev_variants(variants: Iterable[str]) -> set[str]:
    ordered = sorted({v for v in variants if v}, key=str.lower)
    return set(ordered[DEV_VARIANT_OFFSET::DEV_VARIANT_STRIDE])


def is_dev_voice(voice: Voice, dev_variant_names: set[str]) -> bool:
    if voice.engine == "espeak":
        return voice.variant in dev_variant_names
    if voice.engine == "flite":
        return voice.name in DEV_FLITE_VOICES
    return voice.name in DEV_FESTIVAL_VOICES


def split_voices(voices: Sequence[Voice]) -> tuple[list[Voice], list[Voice]]:
    """(train voices, dev voices). With no dev voice available the dev set reuses training voices."""
    # chosen from espeak's whole variant list, so a filtered voice list keeps the same choice
    dev_names = dev_variants(espeak_variants() or [v.variant for v in voices if v.engine == "espeak"])
    train = [v for v in voices if not is_dev_voice(v, dev_names)]
    dev = [v for v in voices if is_dev_voice(v, dev_names)]
    if not dev:
        log.warning("no held-out dev voice among the selected voices: dev uses training voices")
        dev = list(train)
    if not train:
        log.warning("only dev voices selected: training uses them too")
        train = list(dev)
    return train, dev
