"""scripts/baseline_pocketsphinx.py on two real clips (skipped without pocketsphinx or the real dev data)."""

from __future__ import annotations

import importlib.util
import json
import math
import os

import pytest

from rnnt.corpus.reserved import default_shared_dir

pytest.importorskip("pocketsphinx")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "baseline_pocketsphinx.py")
REAL_DEV = os.path.join(default_shared_dir(), "data", "real-dev")


def _load_script():
    spec = importlib.util.spec_from_file_location("baseline_pocketsphinx", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clean_hypothesis():
    baseline = _load_script()
    assert baseline.clean_hypothesis("<s> <sil> the(2) [NOISE] cat ++UH++ sat(3) </s>") == "the cat sat"


def test_two_real_clips(tmp_path):
    tsv = os.path.join(REAL_DEV, "transcripts.tsv")
    if not os.path.isfile(tsv):
        pytest.skip("real dev data absent")
    with open(tsv, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()][:2]
    manifest = tmp_path / "two.jsonl"
    with open(manifest, "w", encoding="utf-8") as f:
        for clip, text in rows:
            audio = os.path.join(REAL_DEV, "audio", clip + ".flac")
            if not os.path.isfile(audio):
                pytest.skip(f"{audio} absent")
            f.write(json.dumps({"audio": audio, "text": text, "duration": 1.0, "id": clip}) + "\n")

    baseline = _load_script()
    out, results = tmp_path / "summary.json", tmp_path / "results.jsonl"
    assert baseline.main([str(manifest), "--json", str(out), "--results", str(results), "--no-progress"]) == 0

    summary = json.loads(out.read_text())
    entry = summary[str(manifest)]
    assert {"wer", "cer", "utterances", "seconds"} <= set(entry)
    assert entry["utterances"] == 2 and entry["seconds"] > 0
    for key in ("wer", "cer"):
        assert math.isfinite(entry[key]) and 0.0 <= entry[key] <= 1.5, entry
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["id"] for r in lines] == [clip for clip, _ in rows]
    assert all("(" not in r["hyp_norm"] and "<" not in r["hyp_norm"] for r in lines)
