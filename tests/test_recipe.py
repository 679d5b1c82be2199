"""The recipe runs every stage on a tiny preset, installs a bundle the runtime loads, and resumes."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("tensorflow")


def test_tiny_recipe_end_to_end_and_resume(tmp_path):
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (scripts/setup_tts.sh)")
    from rnnt.recipe import PRESETS, Recipe
    from rnnt.runtime import Recognizer

    from rnnt.corpus.reserved import default_shared_dir
    from pathlib import Path

    if not (Path(default_shared_dir()) / "data").exists():
        pytest.skip("shared data not found")
    install = tmp_path / "models"
    recipe = Recipe(PRESETS["tiny"], str(tmp_path / "work"), progress=False, install_dir=install)
    state = recipe.run()
    assert set(state["stages"]) == {"corpus", "tokenizer", "train", "export", "evaluate", "install"}
    assert state["stages"]["train"]["step"] == PRESETS["tiny"].train.steps
    wer = state["stages"]["evaluate"]["wer"]
    assert set(wer) == {"float32", "dynamic", "int8"}
    assert all(0.0 <= r["wer"] for mode in wer.values() for r in mode.values())
    bundle = install / "default.tflite"
    assert bundle.exists() and state["installed"]["mode"] in ("dynamic", "int8")
    results = (install / "RESULTS.md").read_text()
    assert "| float32 |" in results and "| int8 |" in results and "rnnt recipe tiny" in results
    recognizer = Recognizer(str(bundle), beam=2)
    assert recognizer.transcribe([0.0] * 16000, 16000) is not None

    # a second run resumes: training is already at its last step, bundles are kept
    mtime = (tmp_path / "work" / "model-float32.tflite").stat().st_mtime
    again = Recipe(PRESETS["tiny"], str(tmp_path / "work"), progress=False, install_dir=install)
    state2 = again.run(("train", "export"))
    assert state2["stages"]["train"]["step"] == PRESETS["tiny"].train.steps
    assert (tmp_path / "work" / "model-float32.tflite").stat().st_mtime == mtime
    assert json.loads((tmp_path / "work" / "recipe.json").read_text())["config"]["name"] == "tiny"
