"""English read by festival's non-English voices (rnnt.corpus.accents)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnt.corpus import accents
from rnnt.corpus.accents import ACCENT_VOICES, FRONT_END_F0, Segment, map_segments
from rnnt.corpus.voices import Voice, accent_voices

INSTALLED = {v.name for v in accent_voices()}
needs_voice = pytest.mark.skipif("czech_machac" not in INSTALLED,
                                 reason="festvox-czech-machac not installed (scripts/setup_tts.sh)")


def test_a_phone_mapped_to_two_shares_its_duration_and_its_f0_moves_to_the_voice():
    voice = ACCENT_VOICES["czech_dita"]
    english = [Segment("pau", 0.2), Segment("ay", 0.2, ((0.05, 100.0), (0.15, 110.0)))]
    out = map_segments(english, voice, pitch=1.1)
    assert [s.phone for s in out] == ["#", "a", "j"]  # ay -> a j
    assert [s.duration for s in out] == pytest.approx([0.2, 0.1, 0.1])
    scale = voice.f0 / FRONT_END_F0 * 1.1
    assert out[1].f0[0] == pytest.approx((0.05, 100.0 * scale)) and len(out[1].f0) == 1
    assert out[2].f0[0] == pytest.approx((0.05, 110.0 * scale)) and len(out[2].f0) == 1  # from the phone's start


def test_a_dropped_phone_leaves_nothing_and_a_missing_diphone_gets_a_filler():
    italian = ACCENT_VOICES["pc_diphone"]
    out = map_segments([Segment("hh", 0.05), Segment("ae", 0.1)], italian)
    assert [s.phone for s in out] == ["E"]  # an Italian speaker drops h
    segments = [Segment("k", 0.08), Segment("b", 0.06)]
    assert [s.phone for s in map_segments(segments, italian)] == ["k", "b"]
    out = map_segments(segments, italian, missing=frozenset({"k-b"}))
    assert [s.phone for s in out] == ["k", "e", "b"]
    assert [s.duration for s in out] == pytest.approx([0.08 - accents.FILLER_SECONDS, accents.FILLER_SECONDS, 0.06])
    # the vowel cannot join either: the glide does
    out = map_segments(segments, italian, missing=frozenset({"k-b", "e-b"}))
    assert [s.phone for s in out] == ["k", "j", "b"]


def test_every_voice_maps_every_english_phone_and_the_probed_table_matches_the_maps():
    english = set(accents.PHONE_MAPS["czech"]) | {"pau"}
    table = json.loads(Path(accents.MISSING_FILE).read_text())
    assert set(table) == set(ACCENT_VOICES)
    for name, voice in ACCENT_VOICES.items():
        assert set(accents.PHONE_MAPS[voice.language]) == english - {"pau"}
        phones = set(accents.voice_phones(voice))
        for diphone in table[name]:
            a, _, b = diphone.partition("-")
            assert {a, b} <= phones, (name, diphone)


def test_segments_scheme_is_a_festival_segments_list():
    text = accents.segments_scheme([Segment("#", 0.2), Segment("a", 0.1, ((0.05, 200.0),))])
    assert text == "((# 0.2000) (a 0.1000 (0.0500 200.0)))"


@needs_voice
def test_an_accent_voice_reads_english_slower_at_a_lower_speed():
    from rnnt.corpus.synth import synthesize

    voice = Voice("accent", "czech_machac")
    slow = synthesize(voice, "nine cats jumped over the fence", speed=0.8)
    fast = synthesize(voice, "nine cats jumped over the fence", speed=1.25)
    assert fast.size > 16000 * 0.6 and np.sqrt(np.mean(fast ** 2)) > 0.01
    assert slow.size / fast.size == pytest.approx(1.25 / 0.8, rel=0.15)
    english = accents.english_segments("nine cats")
    assert [s.phone for s in english if s.phone != "pau"] == ["n", "ay", "n", "k", "ae", "t", "s"]


@pytest.mark.skipif(not INSTALLED, reason="no accent voice installed (scripts/setup_tts.sh)")
def test_the_fillers_join_every_diphone_of_english_sentences_in_each_installed_voice():
    english = accents.english_segments("She measured the thick azure jewels quickly, while a wise owl watched "
                                       "the judge's vision of the shy young zebra.")
    assert len(english) > 50
    for name in sorted(INSTALLED):
        missing = accents.missing_diphones(name)
        out = map_segments(english, ACCENT_VOICES[name], missing=missing)
        gaps = [f"{a.phone}-{b.phone}" for a, b in zip(out, out[1:]) if f"{a.phone}-{b.phone}" in missing]
        assert gaps == [], name
