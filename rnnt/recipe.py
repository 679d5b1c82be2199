"""The default-model recipe: corpus -> tokenizer -> training -> export and quantization -> evaluation -> install.

Every stage resumes: the corpus build skips finished files, the tokenizer is kept once written, a bundle while it
holds the run's latest checkpoint, training resumes from its last checkpoint. `work_dir/recipe.json` records the
settings and each stage's results; `RESULTS.md` (next to the installed model) is written from it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rnnt.config import ModelConfig, TrainConfig, config_to_dict
from rnnt.decoding import DEFAULT_BEAM

STAGES = ("corpus", "tokenizer", "train", "export", "evaluate", "install")
MODES = ("float32", "dynamic", "int8")
REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(__file__).resolve().parent / "models"
MAX_SHIPPED_BYTES = 20 * 1024 * 1024
SHIPPABLE_MODES = ("dynamic", "int8")  # the quantized bundles the install stage chooses from


@dataclass(frozen=True)
class RecipeConfig:
    """Everything that decides the model a recipe produces."""

    name: str = "default"
    corpus_hours: float = 24.0
    real_share: float = 0.5
    max_real: int | None = None  # cap real clips per set (small test builds)
    engines: tuple[str, ...] = ("espeak", "flite", "festival")
    tokenizer: str = "chars"  # "chars" (letters, apostrophe, word start) or "sentencepiece"
    vocab_size: int = 30  # sentencepiece size; with "chars" it must equal len(CHAR_BASE)
    eval_beam: int = DEFAULT_BEAM
    eval_limit: int | None = None  # utterances per real dev set (None: all)
    eval_limit_other: int | None = 100  # utterances of the synthetic, speechocean762 and FSDD dev sets
    calibration_utterances: int = 100
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        batch_seconds=160.0, max_batch_size=32, max_duration=16.0, learning_rate=1.5e-3, warmup_steps=300,
        decay_steps=8000, steps=8000, checkpoint_every=200, eval_every=500, eval_utterances=60,
        spec_augment=True, spec_augment_time_masks=3, spec_augment_freq_width=20, ctc_weight=0.5,
        speed_perturb=True, augment_share=0.2,
        model=ModelConfig(vocab_size=30, frame_stack=4, encoder_layers=4, encoder_units=1024, encoder_proj=256,
                          time_reduction_after=-1, embed_dim=96, predictor_units=320, predictor_proj=192,
                          joint_dim=320, chunk_frames=12, cell_clip=10.0),
    ))

    def __post_init__(self) -> None:
        from rnnt.tokens import CHAR_BASE

        if self.tokenizer not in ("chars", "sentencepiece"):
            raise ValueError(f"unknown tokenizer {self.tokenizer!r} (chars or sentencepiece)")
        if self.tokenizer == "chars" and self.vocab_size != len(CHAR_BASE):
            raise ValueError(f"a character tokenizer has {len(CHAR_BASE)} tokens, not {self.vocab_size}")


PRESETS: dict[str, RecipeConfig] = {
    "default": RecipeConfig(),
    # the default recipe's corpus and model with a word-piece vocabulary (scripts/accelerated/retarget_vocab.py
    # moves the default model's weights to it)
    "wordpiece": RecipeConfig(name="wordpiece", tokenizer="sentencepiece", vocab_size=256),
    # a minutes-long smoke run of every stage (tests, CI)
    "tiny": RecipeConfig(
        name="tiny", corpus_hours=0.01, max_real=6, engines=("espeak",), eval_beam=2, eval_limit=4,
        calibration_utterances=4,
        train=TrainConfig(
            batch_seconds=40.0, max_batch_size=8, max_duration=12.0, learning_rate=2e-3, warmup_steps=5,
            decay_steps=20, steps=12, checkpoint_every=6, eval_every=12, eval_utterances=4, spec_augment=True,
            spec_augment_time_masks=3, spec_augment_freq_width=20, ctc_weight=0.3,
            model=ModelConfig(vocab_size=30, frame_stack=4, encoder_layers=2, encoder_units=48, encoder_proj=32,
                              time_reduction_after=-1, embed_dim=16, predictor_units=48, predictor_proj=32,
                              joint_dim=48, chunk_frames=12),
        ),
    ),
}


def shared_dir() -> Path:
    from rnnt.corpus.reserved import default_shared_dir

    return Path(default_shared_dir())


class Recipe:
    """Runs the stages of one recipe in `work_dir`."""

    def __init__(self, cfg: RecipeConfig, work_dir: str, *, progress: bool = True,
                 install_dir: Path | None = None):
        self.cfg = cfg
        self.work = Path(work_dir).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.install_dir = Path(install_dir) if install_dir else MODELS_DIR
        self.state_path = self.work / "recipe.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        self.state["config"] = config_to_dict(cfg)

    # --- bookkeeping ---
    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        os.replace(tmp, self.state_path)

    def _log(self, message: str) -> None:
        print(f"[recipe {self.cfg.name}] {message}", file=sys.stderr, flush=True)

    @property
    def corpus(self) -> Path:
        return self.work / "corpus"

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    def bundle(self, mode: str) -> Path:
        return self.work / f"model-{mode}.tflite"

    def record_training(self, record: dict, continues: bool = False) -> None:
        """Record a training done outside `stage_train` (the accelerated trainer), for RESULTS.md.

        With `continues`, the training went on from the recorded one: its device and command follow the recorded
        ones after ", then" and its data after "; ", so the record keeps the whole history."""
        if continues:
            before = self.training_to_continue()
            record = {**record, "device": f"{before.get('device', '?')}, then {record['device']}",
                      "command": f"{before['command']}, then {record['command']}",
                      "data": f"{before.get('data', '?')}; {record['data']}"}
        self.state.setdefault("stages", {})["train"] = record
        self._save()

    def training_to_continue(self) -> dict:
        """The recorded accelerated training a continuing run appends to; a ValueError where there is none (a
        TensorFlow run's record names no command)."""
        before = self.state.get("stages", {}).get("train")
        if not before or "command" not in before:
            raise ValueError(f"{self.state_path} has no training record to continue")
        return before

    def run(self, stages: tuple[str, ...] = STAGES) -> dict:
        for stage in STAGES:
            if stage in stages:
                started = time.time()
                self._log(f"stage {stage}")
                result = getattr(self, f"stage_{stage}")()
                self.state.setdefault("stages", {})[stage] = {"seconds": round(time.time() - started, 1), **result}
                self._save()
        return self.state

    # --- stages ---
    def stage_corpus(self) -> dict:
        from rnnt.corpus.build import BuildConfig, build_corpus

        cfg = self.cfg
        build = BuildConfig(output=str(self.corpus), hours=cfg.corpus_hours, seed=cfg.train.seed,
                            real_share=cfg.real_share, max_real=cfg.max_real, engines=cfg.engines)
        summary = build_corpus(build, progress=self.progress)
        return {"command": f"rnnt corpus build --hours {cfg.corpus_hours} --seed {cfg.train.seed} -o corpus/",
                "stats": summary.get("stats", {})}

    def _train_text(self) -> list[str]:
        from rnnt.data.manifest import read_manifest

        lines = []
        for name in ("train.jsonl", "real-train.jsonl"):
            path = self.corpus / name
            if path.exists():
                lines += [u.text for u in read_manifest(str(path))]
        return lines

    @property
    def tokenizer_path(self) -> Path:
        return self.work / ("tokenizer.json" if self.cfg.tokenizer == "chars" else "tokenizer.model")

    def stage_tokenizer(self) -> dict:
        from rnnt.tokens import CharTokenizer, train_sentencepiece

        path = self.tokenizer_path
        if not path.exists():
            if self.cfg.tokenizer == "chars":
                CharTokenizer().save(str(path))
            else:
                train_sentencepiece(self._train_text(), self.cfg.vocab_size, str(path.with_suffix("")))
        return {"path": str(path), "kind": self.cfg.tokenizer, "vocab_size": self.cfg.vocab_size}

    def train_config(self) -> TrainConfig:
        cfg = self.cfg
        mix = f"{self.corpus / 'train.jsonl'}"
        if (self.corpus / "real-train.jsonl").exists() and cfg.real_share > 0:
            mix += f",{self.corpus / 'real-train.jsonl'}@{cfg.real_share}"
        return dataclasses.replace(
            cfg.train, train_manifest=mix, dev_manifest=str(self.corpus / "dev.jsonl"),
            tokenizer=str(self.tokenizer_path),
            model=dataclasses.replace(cfg.train.model, vocab_size=cfg.vocab_size),
        )

    def stage_train(self) -> dict:
        from rnnt.training.distribute import make_strategy
        from rnnt.training.trainer import Trainer

        cfg = self.train_config()
        trainer = Trainer(cfg, str(self.run_dir), strategy=make_strategy("auto"), progress=self.progress)
        started = time.time()
        result = trainer.train(cfg.steps)
        params = sum(int(v.shape.num_elements()) for v in trainer.model.trainable_variables)
        return {"step": result.step, "loss": result.loss, "dev_wer": result.dev_wer, "parameters": params,
                "seconds_this_call": round(time.time() - started, 1), "device": _device_name()}

    def stage_export(self) -> dict:
        from rnnt.cli import main as cli

        out = {}
        for mode in MODES:
            path = self.bundle(mode)
            stale = path.exists() and stale_bundle_reason(path, self.run_dir)
            if stale:
                self._log(f"exporting {mode} again: {stale}")
            if stale or not path.exists():
                args = ["export", str(self.run_dir), "-o", str(path), "--mode", mode]
                if mode == "int8":
                    calibration = self.work / "calibration.jsonl"
                    write_calibration_manifest(calibration, [self.corpus / "train.jsonl",
                                                             self.corpus / "real-train.jsonl"],
                                               self.cfg.calibration_utterances)
                    args += ["--calibration", str(calibration), "--max-utterances", str(self.cfg.calibration_utterances)]
                if cli(args) != 0:
                    raise RuntimeError(f"export of {mode} bundle failed")
            out[mode] = {"path": str(path), "bytes": path.stat().st_size}
        return {**out, **_exported_model(self.bundle(MODES[0]))}

    def dev_sets(self) -> dict[str, str]:
        """Name -> manifest of each evaluation set (real dev sets imported from shared/ into the work folder)."""
        from rnnt.data.importers import import_tsv
        from rnnt.data.manifest import read_manifest, write_manifest

        sets = {}
        for name in ("real-dev", "real-dev-lj"):
            tsv = shared_dir() / "data" / name / "transcripts.tsv"
            manifest = self.work / f"{name}.jsonl"
            if tsv.exists() and not manifest.exists():
                write_manifest(str(manifest), import_tsv(str(tsv)))
            if manifest.exists():
                sets[name] = str(manifest)
        sets["synthetic-dev"] = str(self.corpus / "dev.jsonl")
        real = self.corpus / "real-dev.jsonl"
        if real.exists():  # held-out real recordings, one set per source: FSDD's digits come first in the file
            split = {"speechocean-dev": self.work / "speechocean-dev.jsonl", "fsdd-dev": self.work / "fsdd-dev.jsonl"}
            if any(not m.exists() or m.stat().st_mtime < real.stat().st_mtime for m in split.values()):
                rows = read_manifest(str(real))
                for name, manifest in split.items():
                    part = [u for u in rows if (u.id or "").startswith("fsdd-") == (name == "fsdd-dev")]
                    if part:
                        write_manifest(str(manifest), part)
            sets.update({name: str(m) for name, m in split.items() if m.exists()})
        return sets

    def stage_evaluate(self) -> dict:
        results = {}
        sets = self.dev_sets()
        for mode in MODES:
            for name, manifest in sets.items():
                limit = self.cfg.eval_limit if name.startswith("real-dev") else self.cfg.eval_limit_other
                results.setdefault(mode, {})[name] = evaluate_bundle(
                    str(self.bundle(mode)), manifest, beam=self.cfg.eval_beam, limit=limit,
                    results_path=str(self.work / f"eval-{mode}-{name}.jsonl"))
                self._log(f"{mode} {name}: WER {100 * results[mode][name]['wer']:.2f}%")
        baseline = pocketsphinx_baseline({k: v for k, v in sets.items() if k.startswith("real-dev")},
                                         self.work / "pocketsphinx.json", self.cfg.eval_limit)
        return {"wer": results, "pocketsphinx": baseline}

    def stage_install(self) -> dict:
        wer = self.state["stages"]["evaluate"]["wer"]
        chosen = choose_shipped(wer, {m: self.bundle(m).stat().st_size for m in SHIPPABLE_MODES})
        self.install_dir.mkdir(parents=True, exist_ok=True)
        target = self.install_dir / "default.tflite"
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(self.bundle(chosen), tmp)
        os.replace(tmp, target)
        by_mode = {m: round(real_speech_wer(wer[m]), 4) for m in SHIPPABLE_MODES if m in wer}
        self.state["installed"] = {"mode": chosen, "path": str(target), "bytes": target.stat().st_size,
                                   "real_speech_wer": by_mode}
        (self.install_dir / "RESULTS.md").write_text(results_markdown(self.state))
        return self.state["installed"]


def real_speech_wer(results: dict) -> float:
    """The mean WER of one bundle over the real-speech dev sets it was evaluated on (every set but the
    synthesized one: real-dev, real-dev-lj, speechocean762's and FSDD's held-out speakers), each set weighed alike;
    the synthetic set's WER where no real set was evaluated."""
    rates = [r["wer"] for name, r in results.items() if name != "synthetic-dev"]
    return sum(rates) / len(rates) if rates else results["synthetic-dev"]["wer"]


def choose_shipped(wer: dict, sizes: dict) -> str:
    """The quantized bundle to ship: of those at most MAX_SHIPPED_BYTES (`sizes`: mode -> bytes), the one with
    the lowest `real_speech_wer` (`wer`: mode -> set -> {"wer": ...}), the smaller file on a tie."""
    candidates = [m for m in SHIPPABLE_MODES if m in sizes and m in wer and sizes[m] <= MAX_SHIPPED_BYTES]
    if not candidates:
        raise RuntimeError(f"no quantized bundle is at most {MAX_SHIPPED_BYTES} bytes")
    return min(candidates, key=lambda m: (real_speech_wer(wer[m]), sizes[m]))


def write_calibration_manifest(path: Path, sources: list[Path], count: int, seed: int = 0) -> int:
    """Write `count` training clips for int8 calibration, drawn evenly from `sources` (synthesized and real
    speech, interleaved; a source short of its share leaves the rest to the others): ranges from real voices
    as well as synthesized ones, and no dev clip. Returns the number written."""
    import random

    from rnnt.data.manifest import read_manifest, write_manifest

    pools = [read_manifest(str(p)) for p in sources if p.exists()]
    rng = random.Random(seed)
    for pool in pools:
        rng.shuffle(pool)
    picked: list = []
    while len(picked) < count and any(pools):
        for pool in pools:
            if pool and len(picked) < count:
                picked.append(pool.pop())
    if not picked:
        raise RuntimeError(f"no clips for int8 calibration in {', '.join(map(str, sources))}")
    return write_manifest(str(path), picked)


def eval_jobs() -> int:
    """Processes an evaluation decodes with: the cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def evaluate_bundle(bundle: str, manifest: str, *, beam: int, limit: int | None, results_path: str) -> dict:
    """WER/CER of a bundle on a manifest, through the same path as `rnnt eval` (the runtime, with endpoints)."""
    from rnnt.cli import main as cli
    from rnnt.metrics import corpus_error_rates

    args = ["eval", manifest, "--model", bundle, "--beam", str(beam), "--results", results_path, "--worst", "0",
            "--no-progress", "--jobs", str(eval_jobs())]
    if limit:
        args += ["--limit", str(limit)]
    started = time.time()
    if cli(args) != 0:
        raise RuntimeError(f"evaluation of {bundle} on {manifest} failed")
    rows = [json.loads(line) for line in Path(results_path).read_text().splitlines() if line.strip()]
    words, chars = corpus_error_rates((r["ref"], r["hyp"]) for r in rows)
    return {"wer": words.rate, "cer": chars.rate, "utterances": len(rows), "seconds": round(time.time() - started, 1)}


def pocketsphinx_baseline(sets: dict[str, str], out_json: Path, limit: int | None) -> dict:
    """pocketsphinx (bundled en-us model) on the same clips and normalization, if it is installed."""
    script = REPO / "scripts" / "baseline_pocketsphinx.py"
    if not script.exists() or not sets:
        return {}
    if not out_json.exists():
        cmd = [sys.executable, str(script), *sets.values(), "--json", str(out_json)]
        if limit:
            cmd += ["--limit", str(limit)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    summary = json.loads(out_json.read_text())
    by_path = {v: k for k, v in sets.items()}
    return {by_path.get(k, k): v for k, v in summary.items()}


def _device_name() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU" if gpus else f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def stale_bundle_reason(bundle: Path, run_dir: Path) -> str | None:
    """Why a kept bundle is not an export of the run's latest checkpoint (new weights trained or imported since),
    or None when it is one or the run has no checkpoint to compare with."""
    from export.checkpoint import RunError, checkpoint_date, resolve_checkpoint
    from rnnt.bundle import BundleError, read_metadata

    try:
        _, prefix = resolve_checkpoint(str(run_dir))
    except RunError:
        return None
    try:
        training = read_metadata(str(bundle)).training
    except BundleError as e:
        return f"{bundle.name} cannot be read ({e})"
    date = checkpoint_date(prefix)
    if training.get("checkpoint") != prefix or training.get("date") != date:
        return (f"{bundle.name} holds {training.get('checkpoint')} (step {training.get('step')}, "
                f"{training.get('date')}), the run's latest checkpoint is {prefix} ({date})")
    return None


def _exported_model(bundle: Path) -> dict:
    """The training step and parameter count of the checkpoint a bundle was exported from."""
    from rnnt.bundle import read_metadata
    from rnnt.model import RNNT

    meta = read_metadata(str(bundle))
    params = sum(int(v.shape.num_elements()) for v in RNNT(meta.model).trainable_variables)
    return {"step": meta.training.get("step"), "parameters": params}


def _tokenizer_text(cfg: dict) -> str:
    if cfg.get("tokenizer", "sentencepiece") == "chars":
        return f"characters (letters, apostrophe, a word-start token; {cfg['vocab_size']} tokens with blank and unknown)"
    return f"sentencepiece unigram, {cfg['vocab_size']} tokens with blank"


def _spec_augment_text(train: dict) -> str:
    if not train["spec_augment"]:
        return "no SpecAugment"
    return (f"SpecAugment (2 frequency masks up to {train.get('spec_augment_freq_width', 27)} bins, "
            f"{train.get('spec_augment_time_masks', 10)} time masks up to 5% of the utterance)")


def results_markdown(state: dict) -> str:
    """RESULTS.md in the manner of icefall: command, data, steps, WER per dev set for float and int8."""
    cfg = state["config"]
    stages = state.get("stages", {})
    train = stages.get("train", {})
    export = stages.get("export", {})
    evaluation = stages.get("evaluate", {})
    installed = state.get("installed", {})
    # the bundles' checkpoint: a training call stopped early records no train stage, so the export stage says
    step, params = export.get("step", train.get("step", "?")), export.get("parameters", train.get("parameters"))
    finished = train.get("step") == step
    name, work = cfg["name"], f"runs/recipe-{cfg['name']}"
    if train.get("trainer"):  # trained by scripts/accelerated, recorded by its import_weights.py
        rebuild = [f"rnnt recipe {name} --stages corpus,tokenizer --work-dir {work}",
                   f"python scripts/accelerated/pack_features.py {work} runs/accel/data",
                   "# to go on from the shipped model where its run folders are gone (a fresh checkout):",
                   "python scripts/accelerated/weights_from_bundle.py rnnt/models/default.tflite -o runs/accel/init",
                   "# train_torch.py --init runs/accel/init ... on the CPU, or on a GPU machine with PyTorch, calls of",
                   "# scripts/accelerated/device_step.sh (docs/default-model.md)",
                   f"python scripts/accelerated/import_weights.py runs/accel/out --recipe {name}",
                   f"rnnt recipe {name} --stages export,evaluate,install --work-dir {work}"]
        share = f"the packed clips ({train.get('data', '?')})"
        training = [f"- steps: {step}, trained on {train.get('device', '?')} by `{train['trainer']}`, then imported "
                    "into the recipe's run folder with `scripts/accelerated/import_weights.py`",
                    f"- commands: {train.get('command', '?')}"]
    else:
        rebuild = [f"rnnt recipe {name} --work-dir {work}"]
        share = f"at {cfg['real_share']:.0%} of the audio time"
        training = [
            f"- steps: {step} of a {cfg['train']['decay_steps']}-step schedule, on {train.get('device', '?')}"
            + (f", final loss {train['loss']:.3f}" if finished and isinstance(train.get("loss"), float)
               and train["loss"] == train["loss"] else ""),
            f"- settings: learning rate {cfg['train']['learning_rate']}, batch {cfg['train']['batch_seconds']} s of "
            f"audio, {_spec_augment_text(cfg['train'])}, speed perturbation {cfg['train']['speed_perturb']}, "
            f"on-the-fly augmentation share {cfg['train']['augment_share']}, "
            f"auxiliary CTC weight {cfg['train'].get('ctc_weight', 0.0)}"]
    lines = [
        f"# Results of `rnnt recipe {name}`",
        "",
        "Rebuild with:",
        "",
        "```sh",
        'pip install -e ".[train]"',
        *rebuild,
        "```",
        "",
        "## Data",
        "",
        f"- corpus: `{stages.get('corpus', {}).get('command', '')}` (synthesized speech from espeak-ng, flite and "
        f"festival voices, plus the real recordings of `../shared/data` (speechocean762, FSDD), {share})",
        f"- tokenizer: {_tokenizer_text(cfg)}",
        "",
        "## Model and training",
        "",
        f"- model: `{json.dumps(cfg['train']['model'])}`",
        f"- parameters: {params:,}" if isinstance(params, int) else "- parameters: ?",
        *training,
        "- how the recipe got here, and what each change bought: `docs/default-model.md`",
        "",
        "## Word error rates",
        "",
        f"Beam {cfg['eval_beam']}, through the runtime (`rnnt eval`, with its default recording-level control, "
        "`rnnt.level`), text normalized with `rnnt.text.normalize_text`; "
        f"real dev sets whole, the synthetic, speechocean762 and FSDD dev sets' first {cfg['eval_limit_other']} "
        "utterances.",
        "",
    ]
    wer = evaluation.get("wer", {})
    set_names = sorted({name for mode in wer.values() for name in mode})
    header = "| bundle | size | " + " | ".join(set_names) + " |"
    lines += [header, "|" + "---|" * (2 + len(set_names))]
    for mode, results in wer.items():
        size = export.get(mode, {}).get("bytes", 0) / 1e6
        cells = [f"{100 * results[n]['wer']:.2f}%" if n in results else "" for n in set_names]
        lines.append(f"| {mode} | {size:.1f} MB | " + " | ".join(cells) + " |")
    ps = evaluation.get("pocketsphinx") or {}
    if ps and "error" not in ps:
        cells = [f"{100 * ps[n]['wer']:.2f}%" if n in ps else "" for n in set_names]
        lines.append("| pocketsphinx 5 (en-us) | | " + " | ".join(cells) + " |")
    shipped = f"Shipped: the `{installed.get('mode', '?')}` bundle ({installed.get('bytes', 0) / 1e6:.1f} MB) as " \
              "`rnnt/models/default.tflite`"
    chosen_by = installed.get("real_speech_wer") or {}
    if len(chosen_by) > 1:
        shipped += (", the quantized bundle with the lowest mean WER over the real-speech dev sets (" +
                    ", ".join(f"{m} {100 * w:.2f}%" for m, w in chosen_by.items()) + ")")
    lines += ["", shipped + ".", ""]
    return "\n".join(lines)
