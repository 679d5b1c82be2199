"""Mixing manifests at shares of audio time."""

import pytest

from rnnt.data.manifest import Utterance, write_manifest
from rnnt.data.mix import mix_manifests, parse_mix


def _manifest(path, name, n, seconds):
    write_manifest(str(path), [Utterance(f"/audio/{name}{i}.wav", name, seconds, id=f"{name}{i}") for i in range(n)])
    return str(path)


def _seconds(utts, name):
    return sum(u.duration for u in utts if u.text == name)


def test_plain_list_concatenates(tmp_path):
    a = _manifest(tmp_path / "a.jsonl", "a", 3, 1.0)
    b = _manifest(tmp_path / "b.jsonl", "b", 2, 2.0)
    mixed = mix_manifests(f"{a},{b}")
    assert [u.text for u in mixed] == ["a"] * 3 + ["b"] * 2


@pytest.mark.parametrize("share", [0.1, 0.25, 0.6])
def test_share_of_audio_time(tmp_path, share):
    synth = _manifest(tmp_path / "synth.jsonl", "s", 400, 2.0)  # 800 s
    real = _manifest(tmp_path / "real.jsonl", "r", 50, 1.0)  # 50 s
    mixed = mix_manifests(f"{synth},{real}@{share}", seed=3)
    got = _seconds(mixed, "r") / (_seconds(mixed, "r") + _seconds(mixed, "s"))
    assert abs(got - share) < 0.01
    assert _seconds(mixed, "s") == 800.0  # the unshared part is kept whole
    assert mixed == mix_manifests(f"{synth},{real}@{share}", seed=3)


def test_bad_specs():
    with pytest.raises(ValueError):
        parse_mix("a.jsonl@1.5")
    with pytest.raises(ValueError):
        parse_mix("a.jsonl@0.6,b.jsonl@0.5")
    with pytest.raises(ValueError):
        parse_mix("a.jsonl@x")
    with pytest.raises(ValueError):
        parse_mix(" , ")
