"""Text normalization and number spelling."""

from __future__ import annotations

import os

import pytest

from rnnt.text import normalize_text, number_to_words, ordinal_words, year_words

LJSPEECH = "/work/shared/data/text/ljspeech.txt"


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (21, "twenty one"),
        (99, "ninety nine"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (999, "nine hundred ninety nine"),
        (1000, "one thousand"),
        (1001, "one thousand one"),
        (1234, "one thousand two hundred thirty four"),
        (20000, "twenty thousand"),
        (1000000, "one million"),
        (2003004, "two million three thousand four"),
        (1_000_000_000, "one billion"),
        (-5, "minus five"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    "n, words",
    [(1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (5, "fifth"), (8, "eighth"), (9, "ninth"),
     (12, "twelfth"), (20, "twentieth"), (21, "twenty first"), (100, "one hundredth"), (1000, "one thousandth")],
)
def test_ordinal_words(n, words):
    assert ordinal_words(n) == words


@pytest.mark.parametrize(
    "n, words",
    [(1984, "nineteen eighty four"), (1900, "nineteen hundred"), (1905, "nineteen oh five"),
     (1100, "eleven hundred"), (2005, "two thousand five"), (2010, "twenty ten"), (2024, "twenty twenty four")],
)
def test_year_words(n, words):
    assert year_words(n) == words


@pytest.mark.parametrize(
    "text, expected",
    [
        # LJSpeech-style text
        ("Under the conditions referred to in the previous chapter,",
         "under the conditions referred to in the previous chapter"),
        ("The new jail fell as far short of the demands made on it as did the old.",
         "the new jail fell as far short of the demands made on it as did the old"),
        ('an avowed "snatcher" and habitué of the Fortune of War, a public-house in Smithfield',
         "an avowed snatcher and habitue of the fortune of war a public house in smithfield"),
        ("He had a nice taste in bric-à-brac;", "he had a nice taste in bric a brac"),
        ("At Müller's execution (1864) there was", "at muller's execution eighteen sixty four there was"),
        ("Mr. Briggs' chain.", "mr briggs chain"),
        ("the debtors' side", "the debtors side"),
        # apostrophes and quotes
        ("Don't", "don't"),
        ("'hello'", "hello"),
        ("\u2018hello\u2019 isn\u2019t it", "hello isn't it"),
        ("rock 'n' roll", "rock n roll"),
        ("O'Connor said", "o'connor said"),
        # punctuation, hyphens, whitespace
        ("Stop!  What?\tNo...", "stop what no"),
        ("twenty-one -- a well-known fact \u2014 yes", "twenty one a well known fact yes"),
        ("[sic] _under_ {a} <b> a/b", "sic under a b a b"),
        ("  ", ""),
        ("", ""),
        # numbers
        ("I have 3 apples", "i have three apples"),
        ("1,234 people", "one thousand two hundred thirty four people"),
        ("1,000,000", "one million"),
        ("3.5", "three point five"),
        ("pi is 3.14.", "pi is three point one four"),
        ("0.5 and .5", "zero point five and point five"),
        ("the 1st, 2nd and 3rd", "the first second and third"),
        ("21st century", "twenty first century"),
        ("on the 4th of July", "on the fourth of july"),
        ("In 1984,", "in nineteen eighty four"),
        ("1066 and 2100", "one thousand sixty six and two thousand one hundred"),
        ("2000 2005 2009", "two thousand two thousand five two thousand nine"),
        ("2010 and 2024", "twenty ten and twenty twenty four"),
        ("the 1990s", "the nineteen nineties"),
        ("the '80s", "the eighties"),
        ("from 1990-1995", "from nineteen ninety nineteen ninety five"),
        ("$5", "five dollars"),
        ("$1", "one dollar"),
        ("$5.50", "five dollars fifty cents"),
        ("$0.25", "twenty five cents"),
        ("$2 million", "two million dollars"),
        ("$1,500", "one thousand five hundred dollars"),
        ("50%", "fifty percent"),
        ("12.5 %", "twelve point five percent"),
        ("a % sign", "a percent sign"),
        ("AT&T", "at and t"),
        ("salt & pepper", "salt and pepper"),
        ("at 10:30", "at ten thirty"),
        ("at 9:05", "at nine oh five"),
        ("at 7:00", "at seven o'clock"),
        ("agent 007", "agent zero zero seven"),
        ("mp3", "mp three"),
        ("\uff11\uff12", "twelve"),  # full-width digits via NFKC
        ("\ufb01ne", "fine"),  # ligature via NFKC
        ("ABC Def", "abc def"),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.skipif(not os.path.exists(LJSPEECH), reason="no LJSpeech text")
def test_ljspeech_corpus_is_clean_and_idempotent():
    with open(LJSPEECH, encoding="utf-8") as f:
        lines = f.read().splitlines()[:3000]
    allowed = set("abcdefghijklmnopqrstuvwxyz' ")
    for line in lines:
        norm = normalize_text(line)
        assert set(norm) <= allowed, (line, norm)
        assert normalize_text(norm) == norm
        assert "  " not in norm and norm == norm.strip()
