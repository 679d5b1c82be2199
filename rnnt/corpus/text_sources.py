"""Sentences for the synthesized corpus.

Sources (each yields raw sentences; `make_sentence` turns one into a `Sentence` or rejects it):

- ``shared``: `<shared>/data/text/*.txt` (LJSpeech and LibriSpeech dev-clean text, one sentence a line);
- ``fortunes``: the Debian fortune files (`fortunes-min`, `fortunes`), except code / ascii-art ones;
- ``bible``: the King James Bible of Debian `bible-kjv`, verse by verse, split into sentences;
- ``wordnet``: the quoted usage examples of the WordNet 3.0 glosses (Debian `wordnet-base`);
- ``generated``: numbers, years, dates, times, money, spelled letters and digit strings, written as words.

A `Sentence` has the normalized transcript `text` (`rnnt.text.normalize_text`) and `speak`, what the TTS
engine is given. `speak` is the cleaned original (punctuation helps prosody) unless the sentence holds digits
or symbols an engine could read differently from the normalizer; then it is the transcript itself. Letters
to be spelled are spoken as capitals separated by commas ("A, B, C"), which every engine reads as letter names.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from rnnt.corpus.reserved import Reserved, normalize

__all__ = [
    "Sentence",
    "SOURCES",
    "DEFAULT_SOURCE_WEIGHTS",
    "make_sentence",
    "split_sentences",
    "shared_text",
    "fortunes",
    "bible_kjv",
    "wordnet_examples",
    "generated_sentences",
    "collect_sentences",
    "split_dev",
]

log = logging.getLogger(__name__)

SOURCES = ("shared", "fortunes", "bible", "wordnet", "generated")
#: share of synthesized items drawn from each source (renormalized over the sources available)
DEFAULT_SOURCE_WEIGHTS = {"shared": 0.35, "fortunes": 0.12, "bible": 0.13, "wordnet": 0.15, "generated": 0.25}

FORTUNE_DIR = "/usr/share/games/fortunes"
WORDNET_DIR = "/usr/share/wordnet"
#: fortune files that are mostly code, ascii art, Debian/Linux jargon or not English
FORTUNE_SKIP = {"ascii-art", "perl", "translate-me", "debian", "linux", "linuxcookie", "computers"}

MIN_WORDS = 2
MAX_WORDS = 30


@dataclass(frozen=True)
class Sentence:
    text: str  # normalized transcript
    speak: str  # what the TTS engine reads
    source: str


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "`": "'", "\u00b4": "'",
                         "\u2013": "-", "\u2014": " - ", "\t": " "})
_DROP_CHARS = re.compile(r"[\"()\[\]{}*_]")
_SPEAKABLE = re.compile(r"^[A-Za-z0-9 ,.;:?!'\-$%&]+$")
_NEEDS_NORMALIZED = re.compile(r"[0-9$%&]")
_CAPS_TOKEN = re.compile(r"\b[A-Z]{2,}\b")
_SPACE = re.compile(r"\s+")


def _ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def clean_speak(raw: str) -> str:
    """Typographic quotes and dashes folded, brackets and quote marks dropped, spaces collapsed."""
    text = _ascii_fold(unicodedata.normalize("NFKC", raw).translate(_QUOTES))
    text = _DROP_CHARS.sub(" ", text)
    text = text.replace("--", " - ")
    return _SPACE.sub(" ", text).strip(" -")


def make_sentence(raw: str, source: str, *, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS,
                  allow_caps: bool = False) -> Sentence | None:
    """A `Sentence` from raw text, or None when it is unsuitable (odd characters, acronyms, too short/long)."""
    speak = clean_speak(raw)
    if not speak or not _SPEAKABLE.match(speak):
        return None
    if not allow_caps and _CAPS_TOKEN.search(speak.replace("I'", "i'")):
        return None  # acronyms, roman numerals and shouting: engines disagree with the normalizer
    text = normalize(speak)
    if not text or not re.fullmatch(r"[a-z' ]+", text):
        return None
    n = text.count(" ") + 1
    if n < min_words or n > max_words:
        return None
    if _NEEDS_NORMALIZED.search(speak):
        speak = text
    return Sentence(text=text, speak=speak, source=source)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
_CLAUSE_END = re.compile(r"(?<=[;:])\s+")


def split_sentences(paragraph: str, max_words: int = MAX_WORDS) -> list[str]:
    """Split at sentence ends; pieces still longer than `max_words` are split at ';' and ':'."""
    out = []
    for piece in _SENTENCE_END.split(paragraph.strip()):
        if len(piece.split()) <= max_words:
            out.append(piece)
            continue
        buf = ""
        for clause in _CLAUSE_END.split(piece):
            joined = f"{buf} {clause}".strip()
            if buf and len(joined.split()) > max_words:
                out.append(buf)
                buf = clause
            else:
                buf = joined
        if buf:
            out.append(buf)
    return [p.strip() for p in out if p.strip()]


# ---------------------------------------------------------------- sources


def shared_text(shared: str | os.PathLike) -> Iterator[str]:
    """Lines of `<shared>/data/text/*.txt` (LJSpeech, LibriSpeech dev-clean), files in name order."""
    folder = Path(shared) / "data" / "text"
    files = sorted(folder.glob("*.txt"))
    if not files:
        log.warning("no text files in %s", folder)
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield line.strip()


def _fortune_entries(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        entry: list[str] = []
        for line in f:
            line = line.rstrip("\n")
            if line.strip() == "%":
                if entry:
                    yield "\n".join(entry)
                entry = []
            else:
                entry.append(line)
        if entry:
            yield "\n".join(entry)


def fortunes(root: str = FORTUNE_DIR) -> Iterator[str]:
    """Sentences of the fortune files (attributions, indented verse and dialog markers dropped)."""
    folder = Path(root)
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.suffix in (".dat", ".u8") or path.name in FORTUNE_SKIP or not path.is_file() or path.is_symlink():
            continue
        for entry in _fortune_entries(path):
            lines = []
            for line in entry.split("\n"):
                stripped = line.strip()
                if not stripped or stripped.startswith(("--", "- ")) or re.match(r"^[A-Z][\w.]*:\s", stripped):
                    continue
                lines.append(stripped)
            if lines:
                yield from split_sentences(" ".join(lines))


def bible_kjv(program: str = "bible") -> Iterator[str]:
    """Sentences of the King James Bible, read through Debian's `bible` program."""
    exe = shutil.which(program)
    if not exe:
        return
    try:
        out = subprocess.run([exe, "-l10000", "ge1:1-re22:21"], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=120, check=True).stdout
    except (subprocess.SubprocessError, OSError) as e:
        log.warning("bible-kjv unreadable: %s", e)
        return
    for line in out.splitlines():
        m = re.match(r"^\s+\d+\s+(.*)$", line)
        if m:
            yield from split_sentences(m.group(1))


def wordnet_examples(root: str = WORDNET_DIR) -> Iterator[str]:
    """The quoted usage examples of WordNet glosses, in file order."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = Path(root) / f"data.{pos}"
        if not path.is_file():
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # license header
                _, _, gloss = line.partition("|")
                for example in re.findall(r'"([^"]+)"', gloss):
                    yield example


# ---------------------------------------------------------------- generated text

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MONTHS = ("january february march april may june july august september october november december").split()
_DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_WORDS = ("cat dog house river apple table green yellow window garden music paper water quick zebra jump "
          "violin wizard pocket mirror basket hello world spring autumn castle rocket silver orange dinner "
          "bridge forest camera yogurt kitten pencil ticket guitar island lemon market number quiet").split()
_THINGS = ("people apples books cars days miles years dollars pages boxes students houses minutes steps "
           "birds trees letters points votes questions").split()


def _templates() -> dict:
    from rnnt.text import digits_to_words, number_to_words, ordinal_words, year_words

    def cardinal(r):
        k = r.integers(0, 4)
        hi = (10, 100, 1000, 1_000_000)[k]
        return number_to_words(int(r.integers(0, hi)))

    def digits(r, lo=3, hi=10):
        s = "".join(str(d) for d in r.integers(0, 10, size=int(r.integers(lo, hi + 1))))
        words = digits_to_words(s)
        return words.replace("zero", "oh") if r.random() < 0.3 else words

    def year(r):
        return year_words(int(r.integers(1100, 2100)))

    def date(r):
        month, day = _MONTHS[r.integers(12)], ordinal_words(int(r.integers(1, 29)))
        forms = [f"{month} {day}", f"the {day} of {month}", f"{month} {day} {year(r)}",
                 f"{_DAYS[r.integers(7)]} the {day} of {month}", f"{_DAYS[r.integers(7)]} {month} {day}"]
        return forms[r.integers(len(forms))]

    def time(r):
        h = int(r.integers(1, 13))
        m = int(r.choice([0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, int(r.integers(60))]))
        hw = number_to_words(h)
        if m == 0:
            forms = [f"{hw} o'clock", hw]
        elif m < 10:
            forms = [f"{hw} oh {number_to_words(m)}"]
        else:
            forms = [f"{hw} {number_to_words(m)}"]
        if m == 30:
            forms.append(f"half past {hw}")
        if m == 15:
            forms.append(f"quarter past {hw}")
        if m == 45:
            forms.append(f"quarter to {number_to_words(h % 12 + 1)}")
        t = forms[r.integers(len(forms))]
        tail = ["", " in the morning", " in the afternoon", " in the evening", " at night"][r.integers(5)]
        return t + tail

    def money(r):
        d, c = int(r.integers(0, 1000)), int(r.integers(0, 100))
        unit = ["dollar", "pound", "euro"][r.integers(3)]
        parts = [f"{number_to_words(d)} {unit}{'' if d == 1 else 's'}"]
        if c:
            parts.append(f"{number_to_words(c)} cent{'' if c == 1 else 's'}")
        return " and ".join(parts) if r.random() < 0.5 else " ".join(parts)

    def letters(r, lo=2, hi=8):
        return [_LETTERS[i] for i in r.integers(0, 26, size=int(r.integers(lo, hi + 1)))]

    def t_cardinal(r):
        n = cardinal(r)
        forms = [n, f"there were {n} {_THINGS[r.integers(len(_THINGS))]}", f"page {n}", f"number {n}",
                 f"about {n} {_THINGS[r.integers(len(_THINGS))]} in total", f"add {cardinal(r)} and {n}"]
        return forms[r.integers(len(forms))], None

    def t_digits(r):
        d = digits(r)
        forms = [d, f"my number is {d}", f"the code is {d}", f"call {d}", f"the pin is {digits(r, 4, 4)}",
                 f"account {d}", f"dial {digits(r, 7, 10)} please"]
        return forms[r.integers(len(forms))], None

    def t_year(r):
        y = year(r)
        forms = [y, f"in {y}", f"it was built in {y}", f"the year {y}", f"born in {y}"]
        return forms[r.integers(len(forms))], None

    def t_date(r):
        d = date(r)
        forms = [d, f"on {d}", f"the meeting is on {d}", f"my birthday is {d}", f"see you {d}"]
        return forms[r.integers(len(forms))], None

    def t_time(r):
        t = time(r)
        forms = [t, f"at {t}", f"it is {t}", f"wake me up at {t}", f"the train leaves at {t}", f"set an alarm for {t}"]
        return forms[r.integers(len(forms))], None

    def t_money(r):
        m = money(r)
        forms = [m, f"it costs {m}", f"that will be {m}", f"i paid {m}"]
        return forms[r.integers(len(forms))], None

    def t_ordinal(r):
        o = ordinal_words(int(r.integers(1, 200)))
        forms = [o, f"the {o} time", f"she came {o}", f"on the {o} floor", f"the {o} of the month"]
        return forms[r.integers(len(forms))], None

    def t_letters(r):
        ls = letters(r)
        spoken = ", ".join(ls)
        lower = " ".join(ls).lower()
        forms = [("", ""), ("the code is ", "the code is "), ("my initials are ", "my initials are "),
                 ("spell ", "spell "), ("press ", "press ")]
        pre_t, pre_s = forms[r.integers(len(forms))]
        return pre_t + lower, pre_s + spoken

    def t_spelled(r):
        w = _WORDS[r.integers(len(_WORDS))]
        ls = list(w.upper())
        forms = [(f"{w} is spelled {' '.join(w)}", f"{w} is spelled {', '.join(ls)}"),
                 (f"{' '.join(w)} {w}", f"{', '.join(ls)}. {w}"),
                 (" ".join(w), ", ".join(ls))]
        return forms[r.integers(len(forms))]

    def t_mixed(r):
        ls = letters(r, 1, 3)
        d = digits(r, 2, 5)
        return (" ".join(ls).lower() + " " + d, ", ".join(ls) + ", " + d)

    return {"cardinal": (t_cardinal, 3), "digits": (t_digits, 3), "year": (t_year, 1), "date": (t_date, 2),
            "time": (t_time, 2), "money": (t_money, 1), "ordinal": (t_ordinal, 1), "letters": (t_letters, 2),
            "spelled": (t_spelled, 1), "mixed": (t_mixed, 1)}


def generated_sentences(count: int, seed: int = 0) -> list[Sentence]:
    """`count` generated sentences (before de-duplication), a pure function of (count, seed)."""
    templates = _templates()
    names = sorted(templates)
    weights = np.array([templates[n][1] for n in names], dtype=float)
    weights /= weights.sum()
    rng = np.random.default_rng([seed, 0x6E75])
    out = []
    for _ in range(count):
        name = names[rng.choice(len(names), p=weights)]
        text, speak = templates[name][0](rng)
        text = normalize(text)
        if text:
            out.append(Sentence(text=text, speak=speak or text, source="generated"))
    return out


# ---------------------------------------------------------------- the pool


def _stable_hash(text: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.sha1(f"{salt}\0{text}".encode()).digest()[:8], "big")


def collect_sentences(
    shared: str | os.PathLike,
    sources: Sequence[str] = SOURCES,
    reserved: Reserved | None = None,
    *,
    max_words: int = MAX_WORDS,
    generated_count: int = 20000,
    limit_per_source: int | None = None,
) -> dict[str, list[Sentence]]:
    """Sentences by source, normalized, de-duplicated across sources (first source wins), reserved removed.

    A pure function of the inputs (the installed Debian packages included), in a stable order; the last few
    results are cached in the process.
    """
    pools = _collect(str(shared), tuple(sources), reserved or Reserved(), max_words, generated_count,
                     limit_per_source)
    return {k: list(v) for k, v in pools}


@functools.lru_cache(maxsize=4)
def _collect(shared: str, sources: tuple[str, ...], reserved: Reserved, max_words: int, generated_count: int,
             limit_per_source: int | None) -> tuple[tuple[str, tuple[Sentence, ...]], ...]:
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown text sources: {', '.join(sorted(unknown))} (known: {', '.join(SOURCES)})")
    seen: set[str] = set()
    pools: dict[str, list[Sentence]] = {}
    dropped_reserved = 0

    def add(name: str, raws: Iterable[str] | Iterable[Sentence], **kw) -> None:
        nonlocal dropped_reserved
        kept = []
        for raw in raws:
            s = raw if isinstance(raw, Sentence) else make_sentence(raw, name, max_words=max_words, **kw)
            if s is None or s.text in seen:
                continue
            if reserved.is_reserved_text(s.text, normalized=True):
                dropped_reserved += 1
                continue
            seen.add(s.text)
            kept.append(s)
            if limit_per_source and len(kept) >= limit_per_source:
                break
        if kept:
            pools[name] = kept
        else:
            log.warning("text source %r gave no sentences (is its package installed?)", name)

    for name in SOURCES:  # fixed order: de-duplication does not depend on the order asked for
        if name not in sources:
            continue
        if name == "shared":
            add(name, shared_text(shared))
        elif name == "fortunes":
            add(name, fortunes())
        elif name == "bible":
            add(name, bible_kjv())
        elif name == "wordnet":
            add(name, wordnet_examples(), min_words=3)
        elif name == "generated":
            add(name, generated_sentences(generated_count))
    if dropped_reserved:
        log.info("dropped %d reserved (dev-set) sentences", dropped_reserved)
    return tuple((k, tuple(v)) for k, v in pools.items())


def split_dev(
    pools: dict[str, list[Sentence]], count: int, weights: dict[str, float] | None = None, salt: str = "dev"
) -> tuple[dict[str, list[Sentence]], list[Sentence]]:
    """Hold out `count` sentences for dev, spread over sources by `weights`; picked by a hash of the text.

    Independent of the build seed, so builds with different seeds share one dev set.
    Returns (train pools, dev sentences).
    """
    weights = {k: (weights or DEFAULT_SOURCE_WEIGHTS).get(k, 0.0) for k in pools}
    total = sum(weights.values()) or 1.0
    names = sorted(pools, key=lambda k: -weights[k])
    dev: list[Sentence] = []
    train: dict[str, list[Sentence]] = {}
    remaining = count
    for i, name in enumerate(names):
        n = remaining if i == len(names) - 1 else min(remaining, round(count * weights[name] / total))
        n = min(n, max(0, len(pools[name]) - 1))
        chosen = set(sorted(range(len(pools[name])), key=lambda j: _stable_hash(pools[name][j].text, salt))[:n])
        dev.extend(pools[name][j] for j in sorted(chosen))
        train[name] = [s for j, s in enumerate(pools[name]) if j not in chosen]
        remaining -= n
    return train, dev
