"""Text normalization shared by training (tokenizer targets) and evaluation (WER references/hypotheses).

`normalize_text` applies, in order:

1. Unicode NFKC; typographic apostrophes (’ ‘ ʼ ` ´) become ``'``; diacritics are dropped (``Müller`` ->
   ``muller``); lowercase.
2. Numbers and symbols are spelled out (always as plain words, never with "and"):
   - currency ``$5`` -> "five dollars", ``$1`` -> "one dollar", ``$5.50`` -> "five dollars fifty cents",
     ``$0.25`` -> "twenty five cents", ``$2 million`` -> "two million dollars" (also £ pounds, € euros);
   - ordinals ``1st 2nd 21st 100th`` -> "first second twenty first one hundredth";
   - times ``10:30`` -> "ten thirty", ``9:05`` -> "nine oh five", ``7:00`` -> "seven o'clock";
   - decimals ``3.5`` -> "three point five", ``3.14`` -> "three point one four", ``.5`` -> "point five";
   - integers, with thousands commas ``1,234`` -> "one thousand two hundred thirty four";
   - a bare 4-digit number 1100-1999 or 2010-2099 is read as a year: ``1984`` -> "nineteen eighty four",
     ``1900`` -> "nineteen hundred", ``1905`` -> "nineteen oh five", ``2024`` -> "twenty twenty four";
     2000-2009 stay cardinals ("two thousand five");
   - a plural ``s`` after a number: ``1990s`` -> "nineteen nineties", ``80s`` -> "eighties";
   - digits with a leading zero are read one by one: ``007`` -> "zero zero seven"; so are runs longer than 15;
   - ``50%`` -> "fifty percent", ``%`` -> "percent", ``&`` -> "and".
3. Hyphens and dashes become spaces; other punctuation becomes a space; an apostrophe is kept only between
   two word characters (``don't``; ``'hello'`` -> ``hello``; ``debtors'`` -> ``debtors``).
4. Whitespace is collapsed to single spaces; leading and trailing space is stripped.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text", "number_to_words", "ordinal_words", "year_words", "digits_to_words"]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion"]
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_MAX_CARDINAL_DIGITS = 15


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest:
        words.append(_ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """Cardinal in words: 105 -> "one hundred five", -3 -> "minus three", 0 -> "zero".

    Numbers of 10**18 and up are read digit by digit.
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n == 0:
        return "zero"
    if n >= 1000 ** len(_SCALES):
        return digits_to_words(str(n))
    words: list[str] = []
    for power in range(len(_SCALES) - 1, -1, -1):
        group = (n // 1000**power) % 1000
        if group:
            words += _below_thousand(group)
            if _SCALES[power]:
                words.append(_SCALES[power])
    return " ".join(words)


def digits_to_words(digits: str) -> str:
    """Read a digit string one digit at a time: "007" -> "zero zero seven"."""
    return " ".join(_ONES[int(d)] for d in digits)


def ordinal_words(n: int) -> str:
    """Ordinal in words: 1 -> "first", 21 -> "twenty first", 100 -> "one hundredth"."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_words(n: int) -> str:
    """A year as spoken: 1984 -> "nineteen eighty four", 1900 -> "nineteen hundred", 1905 -> "nineteen oh five".

    Years 2000-2009 (and any not of four digits) are read as cardinals: 2005 -> "two thousand five".
    """
    if not 1000 <= n <= 9999 or 2000 <= n <= 2009:
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    if low < 10:
        return f"{number_to_words(high)} oh {_ONES[low]}"
    return f"{number_to_words(high)} {number_to_words(low)}"


def _plural(words: str) -> str:
    """Plural of the last word of a number: "eighty" -> "eighties", "six" -> "sixes"."""
    head, _, last = words.rpartition(" ")
    if last.endswith("y"):
        last = last[:-1] + "ies"
    elif last.endswith("x"):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def _is_year(digits: str) -> bool:
    if len(digits) != 4 or digits[0] == "0":
        return False
    n = int(digits)
    return 1100 <= n <= 1999 or 2010 <= n <= 2099


def _integer_words(digits: str) -> str:
    """An integer digit string (commas already removed) in words."""
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > _MAX_CARDINAL_DIGITS:
        return digits_to_words(digits)
    return number_to_words(int(digits))


def _decimal_words(whole: str, frac: str) -> str:
    head = _integer_words(whole) + " " if whole else ""
    return f"{head}point {digits_to_words(frac)}"


_CURRENCY = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros")}
_INT = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"

_NUMBER_RE = re.compile(
    rf"""
    (?P<cur>[$£€])\s?(?P<cwhole>{_INT})(?:\.(?P<cfrac>\d+))?(?:\s(?P<cscale>thousand|million|billion|trillion)\b)?
  | (?P<ord>{_INT})(?P<osuf>st|nd|rd|th)\b
  | (?<![\d:])(?P<hour>\d{{1,2}}):(?P<minute>\d\d)(?![\d:])
  | (?P<whole>{_INT})?(?:(?<![\w.])|(?<=\d))\.(?P<frac>\d+)(?P<dpct>\s?%)?
  | (?P<int>{_INT})(?P<plural>s\b)?(?P<ipct>\s?%)?
    """,
    re.VERBOSE,
)


def _currency(m: re.Match) -> str:
    singular, plural = _CURRENCY[m["cur"]]
    whole = m["cwhole"].replace(",", "")
    frac = m["cfrac"]
    if m["cscale"]:
        amount = _decimal_words(whole, frac) if frac else _integer_words(whole)
        return f"{amount} {m['cscale']} {plural}"
    if frac and len(frac) != 2:
        return f"{_decimal_words(whole, frac)} {plural}"
    units = int(whole)
    cents = int(frac) if frac else 0
    parts = []
    if units or not cents:
        parts.append(f"{_integer_words(whole)} {singular if units == 1 else plural}")
    if cents:
        parts.append(f"{number_to_words(cents)} {'cent' if cents == 1 else 'cents'}")
    return " ".join(parts)


def _spell_number(m: re.Match) -> str:
    if m["cur"]:
        words = _currency(m)
    elif m["ord"]:
        words = ordinal_words(int(m["ord"].replace(",", "")))
    elif m["hour"]:
        hour, minute = int(m["hour"]), int(m["minute"])
        if minute == 0:
            words = f"{number_to_words(hour)} o'clock"
        elif minute < 10:
            words = f"{number_to_words(hour)} oh {_ONES[minute]}"
        else:
            words = f"{number_to_words(hour)} {number_to_words(minute)}"
    elif m["frac"] is not None:
        words = _decimal_words((m["whole"] or "").replace(",", ""), m["frac"])
        if m["dpct"]:
            words += " percent"
    else:
        digits = m["int"]
        plain = digits.replace(",", "")
        if _is_year(digits) and not m["ipct"]:
            words = year_words(int(plain))
        else:
            words = _integer_words(plain)
        if m["plural"]:
            words = _plural(words)
        if m["ipct"]:
            words += " percent"
    return f" {words} "


_APOSTROPHES = str.maketrans({c: "'" for c in "\u2019\u2018\u02bc`\u00b4\u2032"})
_SYMBOLS = {"%": " percent ", "&": " and "}
_SYMBOL_RE = re.compile("[%&]")
# Everything that is neither a word character, whitespace nor an apostrophe; plus the underscore.
_PUNCT_RE = re.compile(r"[^\w\s']|_")
# An apostrophe not between two word characters.
_LOOSE_APOSTROPHE_RE = re.compile(r"(?<!\w)'|'(?!\w)")
_SPACE_RE = re.compile(r"\s+")


def _fold_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", kept)


def normalize_text(text: str) -> str:
    """Normalize a transcript to lowercase spoken-form words separated by single spaces (see module doc)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    text = _fold_diacritics(text).lower()
    text = _NUMBER_RE.sub(_spell_number, text)
    text = _SYMBOL_RE.sub(lambda m: _SYMBOLS[m.group()], text)
    text = _PUNCT_RE.sub(" ", text)
    text = _LOOSE_APOSTROPHE_RE.sub(" ", text)
    return _SPACE_RE.sub(" ", text).strip()
