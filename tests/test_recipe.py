"""The recipe runs every stage on a tiny preset, installs a bundle the runtime loads, and resumes."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")


def test_tiny_recipe_end_to_end_and_resume(tmp_path):
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (scripts/setup_tts.sh)")
    from rnnt.audio import load_audio
    from rnnt.corpus.reserved import default_shared_dir
    from rnnt.recipe import PRESETS, Recipe
    from rnnt.runtime import Recognizer

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
    assert bundle.read_bytes() == (tmp_path / "work" / f"model-{state['installed']['mode']}.tflite").read_bytes()
    clip = json.loads((tmp_path / "work" / "corpus" / "dev.jsonl").read_text().splitlines()[0])["audio"]
    results = recognizer.transcribe(load_audio(str(tmp_path / "work" / "corpus" / clip)), 16000, keep_empty=True)
    assert results and results[-1].is_final

    # a second run resumes: training is already at its last step, bundles of that checkpoint are kept
    mtime = (tmp_path / "work" / "model-float32.tflite").stat().st_mtime
    again = Recipe(PRESETS["tiny"], str(tmp_path / "work"), progress=False, install_dir=install)
    state2 = again.run(("train", "export"))
    assert state2["stages"]["train"]["step"] == PRESETS["tiny"].train.steps
    assert (tmp_path / "work" / "model-float32.tflite").stat().st_mtime == mtime
    assert json.loads((tmp_path / "work" / "recipe.json").read_text())["config"]["name"] == "tiny"

    # new weights in the run (trained, or imported by import_weights.py): the kept bundles are exported again
    from rnnt.bundle import read_metadata
    from rnnt.recipe import stale_bundle_reason

    run, float_bundle = tmp_path / "work" / "run", tmp_path / "work" / "model-float32.tflite"
    assert stale_bundle_reason(float_bundle, run) is None
    checkpoints = run / "checkpoints"
    latest = read_metadata(str(float_bundle)).training["checkpoint"]
    for f in checkpoints.glob(Path(latest).name + ".*"):
        shutil.copy(f, checkpoints / f.name.replace(Path(latest).name, "ckpt-999"))
    (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-999"\n')
    assert "ckpt-999" in stale_bundle_reason(float_bundle, run)
    again.run(("export",))
    assert read_metadata(str(float_bundle)).training["checkpoint"] == str(checkpoints / "ckpt-999")
    assert stale_bundle_reason(float_bundle, run) is None


def test_tokenizer_stage_writes_the_configured_kind(tmp_path):
    from rnnt.recipe import PRESETS, Recipe
    from rnnt.tokens import load_tokenizer

    tiny = PRESETS["tiny"]
    chars = Recipe(tiny, str(tmp_path / "chars"), progress=False).stage_tokenizer()
    assert chars["path"].endswith("tokenizer.json") and chars["kind"] == "chars"
    assert load_tokenizer(chars["path"]).vocab_size == tiny.vocab_size == tiny.train.model.vocab_size

    work = tmp_path / "sp"
    (work / "corpus").mkdir(parents=True)
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8))) for _ in range(300)]
    lines = [json.dumps({"audio": "x.flac", "text": " ".join(rng.sample(words, 8)), "duration": 1.0})
             for _ in range(300)]
    (work / "corpus" / "train.jsonl").write_text("\n".join(lines) + "\n")
    sp_cfg = dataclasses.replace(tiny, tokenizer="sentencepiece", vocab_size=40)
    sp = Recipe(sp_cfg, str(work), progress=False)
    out = sp.stage_tokenizer()
    assert out["path"].endswith("tokenizer.model") and load_tokenizer(out["path"]).vocab_size == 40
    assert sp.train_config().tokenizer == out["path"]

    with pytest.raises(ValueError, match="character tokenizer has"):
        Recipe(dataclasses.replace(tiny, vocab_size=40), str(tmp_path / "bad"), progress=False).stage_tokenizer()
    with pytest.raises(ValueError, match="unknown tokenizer"):
        Recipe(dataclasses.replace(tiny, tokenizer="bpe"), str(tmp_path / "bad2"), progress=False).stage_tokenizer()


def test_results_name_the_accelerated_trainer_once_it_is_recorded(tmp_path):
    from rnnt.recipe import PRESETS, Recipe, results_markdown

    recipe = Recipe(PRESETS["tiny"], str(tmp_path / "work"), progress=False)
    recipe.state["stages"] = {"train": {"step": 12, "device": "CPU (2 cores)", "loss": 3.5},
                              "export": {"step": 12, "parameters": 1000}}
    plain = results_markdown(recipe.state)
    assert "12 of a 20-step schedule, on CPU (2 cores)" in plain and "learning rate" in plain
    assert "import_weights" not in plain

    recipe.record_training({"step": 40, "parameters": 1000, "trainer": "scripts/accelerated/train_torch.py",
                            "device": "NVIDIA H200", "command": "`train_torch.py --minutes 9`", "data": "12.9 h"})
    saved = json.loads((tmp_path / "work" / "recipe.json").read_text())
    assert saved["stages"]["train"]["device"] == "NVIDIA H200"
    recipe.state["stages"]["export"]["step"] = 40
    text = results_markdown(recipe.state)
    assert "40, trained on NVIDIA H200 by `scripts/accelerated/train_torch.py`" in text
    assert "`train_torch.py --minutes 9`" in text and "pack_features.py" in text and "12.9 h" in text
    assert "learning rate" not in text  # the TensorFlow trainer's settings did not make this model

    # a run going on from the recorded one keeps the history
    recipe.record_training({"step": 60, "parameters": 1000, "trainer": "scripts/accelerated/train_torch.py",
                            "device": "2 CPU cores", "command": "`train_torch.py --minutes 30`", "data": "run 2 too"},
                           continues=True)
    train = json.loads((tmp_path / "work" / "recipe.json").read_text())["stages"]["train"]
    assert train["step"] == 60 and train["device"] == "NVIDIA H200, then 2 CPU cores"
    assert train["command"] == "`train_torch.py --minutes 9`, then `train_torch.py --minutes 30`"
    assert train["data"] == "12.9 h; run 2 too"
    del recipe.state["stages"]["train"]
    with pytest.raises(ValueError, match="no training record"):
        recipe.record_training({"step": 1, "device": "x", "command": "y", "data": "z"}, continues=True)


def test_install_ships_the_bundle_best_on_all_real_speech_within_the_size_budget(tmp_path):
    from rnnt.recipe import MAX_SHIPPED_BYTES, PRESETS, Recipe, choose_shipped, real_speech_wer, results_markdown

    def rates(**wer):
        return {name.replace("_", "-"): {"wer": w} for name, w in wer.items()}

    # level on the two real dev sets, 4 points apart on speechocean762's held-out speakers, the other way round on
    # the synthetic set: the real speech decides, every real set weighed alike
    wer = {
        "dynamic": rates(real_dev=0.812, real_dev_lj=0.812, speechocean_dev=0.72, fsdd_dev=0.02, synthetic_dev=0.5),
        "int8": rates(real_dev=0.811, real_dev_lj=0.812, speechocean_dev=0.76, fsdd_dev=0.02, synthetic_dev=0.4),
        "float32": rates(real_dev=0.5, real_dev_lj=0.5, speechocean_dev=0.5, fsdd_dev=0.0, synthetic_dev=0.3),
    }
    assert real_speech_wer(wer["dynamic"]) == pytest.approx((0.812 + 0.812 + 0.72 + 0.02) / 4)
    sizes = {"dynamic": 10_900_000, "int8": 11_100_000, "float32": 41_300_000}
    assert choose_shipped(wer, sizes) == "dynamic"  # never the float bundle, however good
    assert choose_shipped(wer, {**sizes, "dynamic": MAX_SHIPPED_BYTES + 1}) == "int8"
    with pytest.raises(RuntimeError, match="at most"):
        choose_shipped(wer, {"dynamic": MAX_SHIPPED_BYTES + 1, "int8": MAX_SHIPPED_BYTES + 1})
    tie = {"dynamic": wer["int8"], "int8": wer["int8"]}
    assert choose_shipped(tie, {"dynamic": 2, "int8": 1}) == "int8"  # the smaller file
    synthetic_only = {m: rates(synthetic_dev=w) for m, w in (("dynamic", 0.3), ("int8", 0.2))}
    assert choose_shipped(synthetic_only, sizes) == "int8"

    recipe = Recipe(PRESETS["tiny"], str(tmp_path / "work"), progress=False)
    recipe.state["installed"] = {"mode": "dynamic", "bytes": 10_900_000,
                                 "real_speech_wer": {"dynamic": 0.591, "int8": 0.6008}}
    text = results_markdown(recipe.state)
    assert "lowest mean WER over the real-speech dev sets (dynamic 59.10%, int8 60.08%)" in text


def test_real_dev_recordings_are_evaluated_per_source(tmp_path):
    from rnnt.data.manifest import read_manifest
    from rnnt.recipe import PRESETS, Recipe

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = [{"audio": f"real/fsdd/{i}_theo_0.flac", "text": "zero", "duration": 0.5, "id": f"fsdd-{i}_theo_0"}
            for i in range(3)]
    rows += [{"audio": f"real/speechocean762/{i}.flac", "text": "mike likes it", "duration": 2.0,
              "id": f"speechocean762-{i}"} for i in range(2)]
    (corpus / "real-dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (corpus / "dev.jsonl").write_text(json.dumps({"audio": "a.flac", "text": "a", "duration": 1.0}) + "\n")
    sets = Recipe(PRESETS["tiny"], str(tmp_path), progress=False).dev_sets()
    assert sets["synthetic-dev"] == str(corpus / "dev.jsonl")
    speechocean, fsdd = read_manifest(sets["speechocean-dev"]), read_manifest(sets["fsdd-dev"])
    assert [u.id for u in speechocean] == ["speechocean762-0", "speechocean762-1"]
    assert [u.id for u in fsdd] == [f"fsdd-{i}_theo_0" for i in range(3)]
    assert fsdd[0].audio == str(corpus / "real" / "fsdd" / "0_theo_0.flac")  # resolved against the corpus folder
    assert "speechocean-fsdd-dev" not in sets


def test_int8_calibration_draws_training_clips_from_each_source(tmp_path):
    from rnnt.data.manifest import read_manifest
    from rnnt.recipe import write_calibration_manifest

    def manifest(name: str, n: int) -> Path:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"audio": f"{name}/{i}.flac", "text": "a", "duration": 1.0,
                                            "id": f"{name}-{i}"}) + "\n" for i in range(n)))
        return path

    synthetic, real = manifest("train", 50), manifest("real-train", 3)
    out = tmp_path / "calibration.jsonl"
    assert write_calibration_manifest(out, [synthetic, real, tmp_path / "missing.jsonl"], 10) == 10
    ids = [u.id for u in read_manifest(str(out))]
    assert len(set(ids)) == 10
    assert sorted(i for i in ids if i.startswith("real-train")) == ["real-train-0", "real-train-1", "real-train-2"]
    assert ids[1].startswith("real-train") and ids[3].startswith("real-train")  # interleaved from the start
    assert read_manifest(str(out))[0].audio == str(tmp_path / "train" / ids[0].split("-")[1]) + ".flac"
    write_calibration_manifest(tmp_path / "again.jsonl", [synthetic, real], 10)
    assert (tmp_path / "again.jsonl").read_text() == out.read_text()  # the same clips each time
    with pytest.raises(RuntimeError, match="no clips"):
        write_calibration_manifest(out, [tmp_path / "missing.jsonl"], 4)


def test_wordpiece_preset_is_the_default_recipe_with_word_pieces(tmp_path):
    from rnnt.recipe import PRESETS, Recipe

    wp, default = PRESETS["wordpiece"], PRESETS["default"]
    assert (wp.tokenizer, wp.vocab_size) == ("sentencepiece", 256)
    # the same corpus, model and training otherwise: retarget_vocab.py moves the default model's weights to it
    assert dataclasses.replace(wp, name="default", tokenizer="chars", vocab_size=30) == default
    recipe = Recipe(wp, str(tmp_path / "work"), progress=False)
    assert recipe.tokenizer_path.name == "tokenizer.model" and recipe.train_config().model.vocab_size == 256
