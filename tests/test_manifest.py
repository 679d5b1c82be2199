"""rnnt.data.manifest, rnnt.data.importers and the `rnnt manifest` command."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from rnnt.data import importers
from rnnt.data.manifest import ManifestError, Utterance, audio_duration, read_manifest, total_duration, write_manifest

REAL_DEV = "/work/shared/data/real-dev/transcripts.tsv"


def _sine(path, seconds: float, rate: int = 16000, fmt: str | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format=fmt)


# --- manifest ---------------------------------------------------------------------------------------------


def test_roundtrip_and_relative_paths(tmp_path):
    _sine(tmp_path / "data" / "a.wav", 0.5)
    utts = [
        Utterance(str(tmp_path / "data" / "a.wav"), "hello wörld", 0.5, id="a", speaker="s1"),
        Utterance(str(tmp_path / "data" / "b.wav"), "", 1.25),
    ]
    out = tmp_path / "m" / "train.jsonl"
    assert write_manifest(str(out), utts, relative=True) == 2
    lines = out.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert first == {"audio": "../data/a.wav", "text": "hello wörld", "duration": 0.5, "id": "a", "speaker": "s1"}
    assert set(json.loads(lines[1])) == {"audio", "text", "duration"}
    assert read_manifest(str(out)) == utts
    assert total_duration(utts) == pytest.approx(1.75)
    assert not [p for p in os.listdir(out.parent) if p.endswith(".tmp")]

    absolute = tmp_path / "abs.jsonl"
    write_manifest(str(absolute), utts)
    assert json.loads(absolute.read_text().splitlines()[0])["audio"] == utts[0].audio
    assert read_manifest(str(absolute)) == utts


def test_read_resolves_against_manifest_folder(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    m = tmp_path / "sub" / "m.jsonl"
    m.write_text('{"audio": "x/y.wav", "text": "t", "duration": 2}\n\n', encoding="utf-8")
    monkeypatch.chdir("/")
    [u] = read_manifest(str(m))
    assert u.audio == str(tmp_path / "sub" / "x" / "y.wav") and u.duration == 2.0 and u.id is None


@pytest.mark.parametrize(
    "line,message",
    [
        ("not json", "line"),
        ('["a"]', "JSON object"),
        ('{"audio": "a.wav", "text": "t"}', "missing duration"),
        ('{"audio": "a.wav", "text": 3, "duration": 1}', "'text'"),
        ('{"audio": "a.wav", "text": "t", "duration": -1}', "'duration'"),
        ('{"audio": "", "text": "t", "duration": 1}', "'audio'"),
    ],
)
def test_bad_line_reports_line_number(tmp_path, line, message):
    m = tmp_path / "bad.jsonl"
    m.write_text('{"audio": "a.wav", "text": "ok", "duration": 1}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"bad\.jsonl:2: .*" + message.replace("(", r"\(")):
        read_manifest(str(m))


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    out = tmp_path / "m.jsonl"
    write_manifest(str(out), [Utterance("a.wav", "old", 1.0)])

    def broken():
        yield Utterance("b.wav", "new", 1.0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_manifest(str(out), broken())
    assert [u.text for u in read_manifest(str(out))] == ["old"]
    assert os.listdir(tmp_path) == ["m.jsonl"]


def test_audio_duration(tmp_path):
    _sine(tmp_path / "a.flac", 1.5, rate=8000)
    assert audio_duration(str(tmp_path / "a.flac")) == pytest.approx(1.5)


# --- importers --------------------------------------------------------------------------------------------


def test_import_librispeech(tmp_path):
    root = tmp_path / "LibriSpeech" / "dev-clean"
    for spk, chap, n in [("84", "121123", 2), ("174", "50561", 1)]:
        folder = root / spk / chap
        lines = []
        for i in range(n):
            uid = f"{spk}-{chap}-{i:04d}"
            _sine(folder / f"{uid}.flac", 0.25 * (i + 1))
            lines.append(f"{uid} HELLO NUMBER {i}")
        (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    utts = importers.import_librispeech(str(tmp_path / "LibriSpeech"))
    assert len(utts) == 3
    by_id = {u.id: u for u in utts}
    u = by_id["84-121123-0001"]
    assert u.text == "HELLO NUMBER 1" and u.speaker == "84" and u.duration == pytest.approx(0.5)
    assert u.audio.endswith("84/121123/84-121123-0001.flac") and os.path.isabs(u.audio)


def test_import_librispeech_skips_missing_audio(tmp_path):
    folder = tmp_path / "1" / "2"
    _sine(folder / "1-2-0000.flac", 0.2)
    (folder / "1-2.trans.txt").write_text("1-2-0000 A\n1-2-0001 B\n")
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        utts = importers.import_librispeech(str(tmp_path))
    assert [u.id for u in utts] == ["1-2-0000"]


def test_import_common_voice(tmp_path):
    _sine(tmp_path / "clips" / "common_voice_en_1.wav", 0.5)
    _sine(tmp_path / "clips" / "common_voice_en_2.wav", 0.75)
    (tmp_path / "train.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\n"
        'abc\tcommon_voice_en_1.wav\tHe said "hi".\t2\n'
        "def\tcommon_voice_en_2.wav\tSecond one\t1\n"
        "ghi\tcommon_voice_en_3.wav\t\t0\n",  # empty sentence: skipped
        encoding="utf-8",
    )
    utts = importers.import_common_voice(str(tmp_path / "train.tsv"))
    assert [(u.id, u.text, u.speaker) for u in utts] == [
        ("common_voice_en_1", 'He said "hi".', "abc"),
        ("common_voice_en_2", "Second one", "def"),
    ]
    assert utts[1].duration == pytest.approx(0.75)
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="Common Voice"):
        importers.import_common_voice(str(tmp_path / "bad.tsv"))


def test_import_ljspeech(tmp_path):
    _sine(tmp_path / "wavs" / "LJ001-0001.wav", 0.5, rate=22050)
    _sine(tmp_path / "wavs" / "LJ001-0002.wav", 0.25, rate=22050)
    (tmp_path / "metadata.csv").write_text(
        "LJ001-0001|Printing, in 1 sense|Printing, in one sense\nLJ001-0002|Only raw text|\n", encoding="utf-8"
    )
    utts = importers.import_ljspeech(str(tmp_path))
    assert [(u.id, u.text) for u in utts] == [("LJ001-0001", "Printing, in one sense"), ("LJ001-0002", "Only raw text")]
    assert utts[0].duration == pytest.approx(0.5)


def test_import_tsv_any_extension_and_speakers(tmp_path):
    _sine(tmp_path / "audio" / "u1.wav", 0.5)
    _sine(tmp_path / "audio" / "u2.flac", 0.25)
    _sine(tmp_path / "audio" / "u3.ogg", 0.5, fmt="OGG")
    (tmp_path / "transcripts.tsv").write_text("u1\tone\nu2\ttwo words\n\nu3\tthree\n", encoding="utf-8")
    (tmp_path / "speakers.tsv").write_text("u1\tspk1\t30\tf\nu3\tspk3\t9\tm\n")
    utts = importers.import_tsv(str(tmp_path / "transcripts.tsv"))
    assert [(u.id, u.text, u.speaker) for u in utts] == [("u1", "one", "spk1"), ("u2", "two words", None),
                                                        ("u3", "three", "spk3")]
    assert utts[1].audio.endswith("u2.flac") and utts[1].duration == pytest.approx(0.25)

    other = tmp_path / "elsewhere"
    _sine(other / "u1.wav", 1.0)
    with pytest.warns(UserWarning, match="audio missing"):
        utts = importers.import_tsv(str(tmp_path / "transcripts.tsv"), audio_dir=str(other))
    assert [u.duration for u in utts] == [pytest.approx(1.0)]

    (tmp_path / "bad.tsv").write_text("u1 no tab\n")
    with pytest.raises(ValueError, match=r"bad\.tsv:1"):
        importers.import_tsv(str(tmp_path / "bad.tsv"))


def test_import_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        importers.import_tsv(str(tmp_path / "nope.tsv"))
    with pytest.raises(ValueError, match="no LibriSpeech"):
        importers.import_librispeech(str(tmp_path))
    (tmp_path / "audio").mkdir()
    (tmp_path / "t.tsv").write_text("x\tmissing\n")
    with pytest.raises(ValueError, match="no usable"), pytest.warns(UserWarning):
        importers.import_tsv(str(tmp_path / "t.tsv"))


@pytest.mark.skipif(not os.path.exists(REAL_DEV), reason="shared real-dev set absent")
def test_import_real_dev():
    utts = importers.import_tsv(REAL_DEV)
    assert len(utts) == 59
    assert all(u.audio.endswith(".flac") and os.path.exists(u.audio) for u in utts)
    assert 5 * 60 < total_duration(utts) < 8 * 60
    assert utts[0].id == "LJ002-0002" and utts[0].text.startswith("Under the conditions")


# --- command ----------------------------------------------------------------------------------------------


def _run_command(argv: list[str]) -> int:
    """Run `rnnt manifest` through its own parser (independent of the other sub-commands)."""
    import argparse

    from rnnt.commands import manifest

    parser = argparse.ArgumentParser(prog="rnnt")
    manifest.add_parser(parser.add_subparsers(dest="command"), "manifest")
    args = parser.parse_args(argv)
    return args.run(args)


def test_manifest_command(tmp_path, capsys):
    from rnnt.cli import UsageError

    _sine(tmp_path / "audio" / "a.wav", 0.5)
    _sine(tmp_path / "audio" / "b.wav", 3.0)
    (tmp_path / "transcripts.tsv").write_text("a\tshort\nb\tlong\n")
    out = tmp_path / "out" / "m.jsonl"
    rc = _run_command(["manifest", "tsv", str(tmp_path / "transcripts.tsv"), "-o", str(out), "--relative",
               "--max-duration", "2", "-q"])
    assert rc == 0
    assert "wrote 1 utterances" in capsys.readouterr().err
    assert json.loads(out.read_text())["audio"] == "../audio/a.wav"
    assert [u.id for u in read_manifest(str(out))] == ["a"]

    with pytest.raises(UsageError):
        _run_command(["manifest", "tsv", str(tmp_path / "nope.tsv"), "-o", str(out)])
    assert _run_command(["manifest", "ljspeech", str(tmp_path), "-o", str(out), "-q"]) == 1
    assert "metadata.csv" in capsys.readouterr().err
