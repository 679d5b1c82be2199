"""The training-corpus builder (`rnnt corpus build`): a tiny real build, resume, determinism, hold-outs,
reserved text, and the augmentation functions. TTS-dependent tests skip without espeak-ng
(`scripts/setup_tts.sh` installs it); shared-data checks skip without the shared folder."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from rnnt.corpus import augment as A
from rnnt.corpus.reserved import default_shared_dir, dev_set_sentences, load_reserved

HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_tts = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng not installed (scripts/setup_tts.sh)")
SHARED = default_shared_dir()
HAVE_SHARED = (SHARED / "data").is_dir()
needs_shared = pytest.mark.skipif(not HAVE_SHARED, reason=f"no shared data at {SHARED}")

ENGINES = ",".join(e for e, exe in (("espeak", "espeak-ng"), ("flite", "flite")) if shutil.which(exe))
BUILD_ARGS = ["--hours", "0.004", "--seed", "3", "--jobs", "2", "--dev-sentences", "4", "--max-real", "2",
              "--babble-clips", "2", "--augment-share", "0.5", "--sources", "shared,generated",
              "--generated-sentences", "2000", "--engines", ENGINES or "espeak", "--quiet"]


def _cli(*argv: str) -> int:
    from rnnt.cli import main

    return main(list(argv))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng not installed")
    out = tmp_path_factory.mktemp("corpus")
    assert _cli("corpus", "build", "-o", str(out), *BUILD_ARGS) == 0
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- the build ---------------------------------------------------------------------------------------------


@needs_tts
def test_manifests_load_and_audio_is_16k_mono_flac(built):
    from rnnt.data.manifest import read_manifest

    build = json.loads((built / "build.json").read_text())
    assert build["status"] == "complete" and build["failed"] == 0
    names = ["train.jsonl", "dev.jsonl"] + (["real-train.jsonl", "real-dev.jsonl"] if HAVE_SHARED else [])
    for name in names:
        utts = read_manifest(str(built / name))
        assert utts, name
        for u in utts:
            info = soundfile.info(u.audio)
            assert info.format == "FLAC" and info.samplerate == 16000 and info.channels == 1
            assert abs(info.frames / 16000 - u.duration) < 1e-3
            assert u.text and u.text == u.text.strip() and u.text == u.text.lower()
    train = read_manifest(str(built / "train.jsonl"))
    assert 0.5 * 0.004 * 3600 < sum(u.duration for u in train) < 3 * 0.004 * 3600
    for rec in _lines(built / "train.jsonl"):
        assert not Path(rec["audio"]).is_absolute()  # portable corpus folder
    mix = json.loads((built / "mix.json").read_text())
    shares = {m["manifest"]: m["share"] for m in mix["train"]}
    assert abs(sum(shares.values()) - 1) < 1e-9 and shares["train.jsonl"] > 0
    assert "dev.jsonl" in mix["dev"]
    assert build["stats"]["train"]["augmented"] >= 1


@needs_tts
def test_resume_does_no_work_and_keeps_manifests(built):
    before = {n: (built / n).read_text() for n in ("train.jsonl", "dev.jsonl", "real-train.jsonl")}
    assert _cli("corpus", "build", "-o", str(built), *BUILD_ARGS) == 0
    build = json.loads((built / "build.json").read_text())
    assert build["made_this_run"] == 0 and build["skipped_existing"] > 0 and build["pruned_files"] == 0
    for n, text in before.items():
        assert (built / n).read_text() == text


@needs_tts
def test_killed_build_leftovers_are_redone(built, tmp_path):
    out = tmp_path / "c"
    shutil.copytree(built, out)
    victim = _lines(out / "train.jsonl")[0]["audio"]
    (out / victim).unlink()
    (out / Path(victim).parent / ".tmp-123-half.flac").write_bytes(b"partial")
    assert _cli("corpus", "build", "-o", str(out), *BUILD_ARGS) == 0
    build = json.loads((out / "build.json").read_text())
    assert build["made_this_run"] == 1
    assert not list(out.rglob(".tmp-*"))
    # deterministic: the re-made file has the same samples as the original
    a, _ = soundfile.read(str(built / victim), dtype="int16")
    b, _ = soundfile.read(str(out / victim), dtype="int16")
    assert np.array_equal(a, b)


@needs_tts
def test_plan_is_deterministic_and_seeded(built):
    from rnnt.corpus.build import BuildConfig, make_plan

    cfg = BuildConfig(output=str(built), hours=0.004, seed=3, dev_sentences=4, max_real=2, babble_clips=2,
                      augment_share=0.5, sources=("shared", "generated"), engines=tuple(ENGINES.split(",")),
                      generated_count=2000)
    p1, p2 = make_plan(cfg), make_plan(cfg)
    assert p1.train == p2.train and p1.dev == p2.dev and p1.babble == p2.babble and p1.real == p2.real
    items = _lines(built / "items-train.jsonl")
    other = make_plan(dataclasses.replace(cfg, seed=4))
    assert [(i.text, i.voice) for i in other.train] != [(i.text, i.voice) for i in p1.train]
    assert other.dev == p1.dev  # the dev set does not depend on the seed
    more = make_plan(dataclasses.replace(cfg, hours=0.01))
    assert more.train[: len(p1.train)] == p1.train  # a longer build extends a shorter one
    assert len(items) > 0 and all(i["built"] for i in items)
    slow = make_plan(dataclasses.replace(cfg, hours=0.01, speed_range=(0.6, 0.7)))
    assert all(0.6 <= i.speed <= 0.7 for i in slow.train)
    assert not all(0.6 <= i.speed <= 0.7 for i in more.train)
    assert slow.dev == p1.dev  # the dev set keeps its rates
    with pytest.raises(ValueError, match="speed range"):
        dataclasses.replace(cfg, speed_range=(1.2, 0.9))


@needs_tts
def test_dev_voices_and_sentences_are_held_out(built):
    from rnnt.corpus.build import BuildConfig, make_plan

    train, dev = _lines(built / "train.jsonl"), _lines(built / "dev.jsonl")
    assert not {r["speaker"] for r in train} & {r["speaker"] for r in dev}
    assert not {r["text"] for r in train} & {r["text"] for r in dev}
    # on a bigger plan too (no synthesis): voices and sentences stay disjoint
    plan = make_plan(BuildConfig(output=str(built), hours=0.3, dev_sentences=50, sources=("shared", "generated"),
                                 engines=tuple(ENGINES.split(",")), max_real=20, generated_count=3000))
    assert not {i.voice for i in plan.train} & {i.voice for i in plan.dev}
    assert not {i.text for i in plan.train + plan.babble} & {i.text for i in plan.dev}
    assert set(plan.voices["train"]).isdisjoint(plan.voices["dev"])
    real_train = {c.speaker for c in plan.real if c.split == "train" and c.corpus == "speechocean762"}
    real_dev = {c.speaker for c in plan.real if c.split == "dev" and c.corpus == "speechocean762"}
    assert not real_train & real_dev
    assert all(int(c.id.split("_")[2]) <= 4 for c in plan.real if c.corpus == "fsdd" and c.split == "dev")


@needs_tts
def test_built_text_has_no_reserved_sentence(built):
    reserved = dev_set_sentences(SHARED) if HAVE_SHARED else set()
    for name in ("train.jsonl", "dev.jsonl", "babble.jsonl", "real-train.jsonl"):
        if (built / name).exists():
            assert not {r["text"] for r in _lines(built / name)} & reserved, name


@needs_shared
def test_reserved_sentences_never_enter_the_text_pool():
    from rnnt.corpus.reserved import normalize
    from rnnt.corpus.text_sources import collect_sentences, shared_text

    reserved = load_reserved(SHARED)
    assert len(reserved.sentences) > 50  # the dev sets' transcripts (LJ002-*)
    raw = {normalize(line) for line in shared_text(SHARED)}
    assert raw & reserved.sentences  # they are in ljspeech.txt: the filter has work to do
    pools = collect_sentences(SHARED, ("shared", "generated"), reserved, generated_count=500)
    texts = {s.text for pool in pools.values() for s in pool}
    assert texts and not texts & reserved.sentences
    assert reserved.is_reserved_voice("piper:en_US-joe-medium") and reserved.is_reserved_voice("piper:ja-hibari")
    assert not reserved.is_reserved_voice("espeak:en-us+Storm")
    assert reserved.is_reserved_id("LJ001-0001") and reserved.is_reserved_id("lj003-0100")
    with pytest.raises(ValueError):
        from rnnt.corpus.reserved import check_not_reserved_path

        check_not_reserved_path(SHARED / "reserved" / "eval.bin", SHARED)


@needs_tts
def test_manifest_feeds_the_training_pipeline(built):
    pytest.importorskip("tensorflow")
    from rnnt.config import FeatureConfig
    from rnnt.data.manifest import read_manifest
    from rnnt.data.pipeline import make_dataset

    class CharTok:
        def encode(self, text):
            return [27 if c == " " else ord(c) - 96 for c in text if c == " " or "a" <= c <= "z"]

    utts = read_manifest(str(built / "train.jsonl"))
    if (built / "real-train.jsonl").exists():
        utts += read_manifest(str(built / "real-train.jsonl"))
    ds = make_dataset(utts, CharTok(), FeatureConfig(), batch_seconds=60.0, max_batch_size=8, max_duration=30.0,
                      shuffle=False)
    n = sum(int(b["features"].shape[0]) for b in ds.as_numpy_iterator())
    assert n == len(utts)


# --- text and voices ---------------------------------------------------------------------------------------


def test_make_sentence_rules():
    from rnnt.corpus.text_sources import make_sentence, split_sentences

    s = make_sentence("\u201cWell,\u201d said Mr. Smith -- twenty-nine years.", "t")
    assert s.text == "well said mr smith twenty nine years" and '"' not in s.speak
    assert make_sentence("It cost $5 in 1984.", "t").speak == "it cost five dollars in nineteen eighty four"
    assert make_sentence("NASA launched it", "t") is None  # acronym: engines disagree
    assert make_sentence("x = y + 1;", "t") is None  # code
    assert make_sentence("Hi", "t") is None  # too short
    assert split_sentences("One two three. Four five six! Seven?") == ["One two three.", "Four five six!", "Seven?"]


def test_generated_text_is_normalized_words():
    from rnnt.corpus.text_sources import generated_sentences
    from rnnt.text import normalize_text

    gen = generated_sentences(300, seed=1)
    assert gen == generated_sentences(300, seed=1)
    assert all(s.text == normalize_text(s.text) and not any(c.isdigit() for c in s.speak) for s in gen)
    spelled = [s for s in gen if ", " in s.speak]
    assert spelled and all(normalize_text(s.speak) == s.text for s in spelled)


@needs_tts
def test_voices_discovery_and_synthesis():
    from rnnt.corpus.synth import synthesize
    from rnnt.corpus.voices import Voice, discover_voices, split_voices

    voices = discover_voices(("espeak",))
    accents = {v.name for v in voices}
    assert "en-us" in accents and "en-gb" in accents and len(voices) > len(accents)
    train, dev = split_voices(voices)
    assert dev and train and not set(train) & set(dev)
    assert all(Voice.from_id(v.id) == v for v in voices[:20])
    x = synthesize(Voice("espeak", "en-us"), "hello world", speed=1.2, pitch=0.9)
    assert x.dtype == np.float32 and x.ndim == 1 and 0.3 < x.size / 16000 < 3 and np.isfinite(x).all()


@needs_tts
def test_breathy_espeak_variants_are_deterministic(monkeypatch):
    # espeak-ng's whisper / f2 / victor noise depends on its environment strings: synth fixes them
    from rnnt.corpus.synth import synthesize
    from rnnt.corpus.voices import Voice

    v = Voice("espeak", "en-029", "whisperf")
    a = synthesize(v, "my number is seven eight", 1.1, 0.9)
    monkeypatch.setenv("RNNT_TEST_NOISE", "x" * 77)
    b = synthesize(v, "my number is seven eight", 1.1, 0.9)
    assert np.array_equal(a, b)


# --- augmentation ------------------------------------------------------------------------------------------


def _tone(n=16000, f=440.0):
    return (0.5 * np.sin(2 * np.pi * f * np.arange(n) / 16000)).astype(np.float32)


def test_augmentations_keep_shape_and_are_finite():
    rng = np.random.default_rng(0)
    x = _tone()
    pool = [_tone(8000, 300), _tone(12000, 500)]
    for y in (A.add_colored_noise(x, rng, 10, "pink"), A.add_babble(x, rng, pool, 10, 4),
              A.reverberate(x, A.synthetic_rir(rng, 16000, 0.5)), A.telephone(x), A.apply_gain(x, -6)):
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert abs(A.speed_perturb(x, 1.1).size - x.size / 1.1) <= 2
    assert abs(A.speed_perturb(x, 0.9).size - x.size / 0.9) <= 2
    always = A.AugmentConfig(speed_prob=0, reverb_prob=1, noise_prob=1, babble_prob=1, telephone_prob=1, gain_prob=1)
    applied = []
    y = A.augment(x, rng, 16000, pool, always, applied)
    assert y.shape == x.shape and np.isfinite(y).all() and np.abs(y).max() <= 1
    assert len(applied) == 5
    y1 = A.augment(x, np.random.default_rng(5), 16000, pool)
    y2 = A.augment(x, np.random.default_rng(5), 16000, pool)
    assert np.array_equal(y1, y2)
    assert np.array_equal(A.Augmenter(seed=1)(x), A.Augmenter(seed=1)(x))


def test_noise_snr_colour_and_telephone_band():
    rng = np.random.default_rng(1)
    x = _tone(32000)
    y = A.add_colored_noise(x, rng, 12.0, "white")
    snr = 10 * np.log10(np.mean(x ** 2) / np.mean((y - x) ** 2))
    assert abs(snr - 12.0) < 0.01
    pink = np.abs(np.fft.rfft(A.colored_noise(32000, rng, "pink"))) ** 2
    brown = np.abs(np.fft.rfft(A.colored_noise(32000, rng, "brown"))) ** 2
    assert pink[200:400].mean() > 10 * pink[10000:12000].mean()
    assert brown[200:400].mean() / brown[10000:12000].mean() > pink[200:400].mean() / pink[10000:12000].mean()
    high = A.telephone(_tone(16000, 6000))
    assert np.sqrt(np.mean(high ** 2)) < 0.02
    mid = A.telephone(_tone(16000, 1000))
    assert np.sqrt(np.mean(mid ** 2)) > 0.2
    rir = A.synthetic_rir(rng, 16000, 0.6)
    assert rir[0] == 1.0 and rir.size == int(0.6 * 16000)
