"""Plan and build the training corpus: parallel, resumable, deterministic for a seed.

Output folder layout::

    build.json          settings, plan summary and measured statistics (written at start and at the end)
    mix.json            which manifests to mix in training, and the share of real speech per batch
    train.jsonl         synthesized training speech (relative audio paths)
    dev.jsonl           held-out voices reading held-out sentences (independent of the seed)
    real-train.jsonl    FSDD and speechocean762 recordings for training
    real-dev.jsonl      their held-out speakers / recordings
    babble.jsonl        the babble bank (other voices) used for babble noise, offline and on the fly
    items-<split>.jsonl per synthesized item: voice, speed, pitch, source, text given to the engine
    audio/<split>/NNNN/<id>-<key>.flac   16 kHz mono 16-bit FLAC
    real/<set>/<id>.flac                 decoded real recordings (unless real_copy is off)

Every synthesized item is a pure function of (seed, split, index) and of the sentence pools (walked in a seeded
order, so each sentence is used once before any repeats). Its file name carries a hash of everything that
determines its audio, so a resumed build skips exactly the items that are already done, and a changed
setting never reuses stale audio. Files are written to a temporary name and renamed, so a killed build leaves
no half-written file. The plan for fewer hours is a prefix of the plan for more.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rnnt.corpus.augment import AugmentConfig
from rnnt.corpus.real import REAL_SETS, RealClip, real_clips
from rnnt.corpus.reserved import default_shared_dir, load_reserved
from rnnt.corpus.text_sources import DEFAULT_SOURCE_WEIGHTS, SOURCES, Sentence, collect_sentences, split_dev
from rnnt.corpus.voices import DEFAULT_ENGINE_WEIGHTS, ENGINES, Voice, discover_voices, split_voices

__all__ = ["BuildConfig", "TtsItem", "Plan", "make_plan", "build_corpus", "corpus_stats", "write_flac",
           "ASSUMED_FLAC_BYTES_PER_SECOND"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: FLAC bytes per second assumed for the size estimate (16 kHz 16-bit; measured on a 2 h build: synthesized
#: 18.4 kB/s, speechocean762 decoded from Opus 16.5 kB/s)
ASSUMED_FLAC_BYTES_PER_SECOND = {"tts": 19000, "real": 17000}
#: seconds per (non-space) character at speed 1, per engine; fitted on a 2 h build (mean error ~8%)
SECONDS_PER_CHAR = {"espeak": 0.058, "flite": 0.064, "festival": 0.065, "accent": 0.065}
SECONDS_PER_COMMA = 0.2
DEV_SEED = 20240601  # dev items do not depend on the build seed
SPLIT_CODES = {"train": 1, "dev": 2, "babble": 3}
SPEED_RANGE = (0.8, 1.25)
PITCH_RANGE = (0.8, 1.25)


@dataclass(frozen=True)
class BuildConfig:
    output: str
    hours: float = 1.0  # synthesized training audio (estimated while planning; measured afterwards)
    seed: int = 0
    jobs: int = 0  # worker processes; 0: all cores
    shared: str | None = None  # default: $RNNT_SHARED or ../shared next to the repository
    dev_sentences: int = 200
    sources: tuple[str, ...] = SOURCES
    source_weights: dict = field(default_factory=lambda: dict(DEFAULT_SOURCE_WEIGHTS))
    engines: tuple[str, ...] = ENGINES
    engine_weights: dict = field(default_factory=lambda: dict(DEFAULT_ENGINE_WEIGHTS))
    voice_pattern: str | None = None  # regex over voice ids ("espeak:en-us+Storm", "flite:slt", ...)
    real: bool = True
    real_sets: tuple[str, ...] = REAL_SETS
    real_share: float = 0.25  # share of each training batch drawn from real speech
    real_copy: bool = True  # decode real recordings to FLAC in the corpus (else reference the originals)
    max_real: int | None = None  # at most this many real clips per set and split (small test builds)
    real_dev_speakers: int = 10
    augment_share: float = 0.3  # share of synthesized training items augmented offline
    augment: AugmentConfig = AugmentConfig()
    babble_clips: int = 64
    max_words: int = 30
    generated_count: int = 20000
    speed_range: tuple[float, float] = SPEED_RANGE  # TTS rate of the training items, log-uniform (dev: fixed)
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.hours < 0:
            raise ValueError("hours must not be negative")
        lo, hi = self.speed_range
        if not 0 < lo <= hi:
            raise ValueError(f"speed range must be 0 < low <= high, got {lo} {hi}")
        if not 0.0 <= self.real_share <= 1.0 or not 0.0 <= self.augment_share <= 1.0:
            raise ValueError("real_share and augment_share must be in [0, 1]")


@dataclass(frozen=True)
class TtsItem:
    split: str
    index: int
    voice: str
    text: str  # normalized transcript
    speak: str  # what the engine reads
    source: str
    speed: float
    pitch: float
    lead: float
    tail: float
    peak: float
    augment: bool
    seed: int
    sample_rate: int = 16000

    @property
    def id(self) -> str:
        return f"{self.split}-{self.index:07d}"

    @property
    def key(self) -> str:
        d = dataclasses.asdict(self)
        if not self.augment:
            d.pop("seed")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def relpath(self) -> str:
        return f"audio/{self.split}/{self.index // 1000:04d}/{self.id}-{self.key}.flac"

    def estimated_seconds(self) -> float:
        chars = len(self.speak) - self.speak.count(" ")
        per_char = SECONDS_PER_CHAR.get(self.voice.split(":", 1)[0], 0.062)
        return self.lead + self.tail + (per_char * chars + SECONDS_PER_COMMA * self.speak.count(",")) / self.speed


@dataclass
class Plan:
    train: list[TtsItem]
    dev: list[TtsItem]
    babble: list[TtsItem]
    real: list[RealClip]
    pools: dict[str, int]  # sentences available per source (training side)
    dev_sentence_count: int
    voices: dict[str, list[str]]  # split -> voice ids available
    estimated_seconds: dict[str, float]


def _weights(names: Iterable[str], weights: dict) -> tuple[list[str], np.ndarray]:
    names = [n for n in names if weights.get(n, 0) > 0]
    w = np.array([float(weights[n]) for n in names])
    if not names or w.sum() <= 0:
        raise ValueError("nothing to choose from (no voices or text sources with a positive weight)")
    return names, w / w.sum()


class _VoicePicker:
    def __init__(self, voices: Sequence[Voice], weights: dict) -> None:
        self.by_engine: dict[str, list[Voice]] = {}
        for v in voices:
            self.by_engine.setdefault(v.engine, []).append(v)
        engines = [e for e in ENGINES if e in self.by_engine]
        if not any(weights.get(e, 0) > 0 for e in engines):  # only engines of weight 0 chosen: all alike
            weights = dict.fromkeys(engines, 1.0)
        self.engines, self.p = _weights(engines, weights)

    def pick(self, rng: np.random.Generator) -> Voice:
        engine = self.engines[int(rng.choice(len(self.engines), p=self.p))]
        group = self.by_engine[engine]
        return group[int(rng.integers(len(group)))]


def _item(split: str, index: int, rng: np.random.Generator, voice: Voice, s: Sentence, augment: bool,
          seed: int, sample_rate: int, speed_range: tuple[float, float] = SPEED_RANGE) -> TtsItem:
    lo, hi = np.log(speed_range)
    speed = float(np.exp(rng.uniform(lo, hi)))
    lo, hi = np.log(PITCH_RANGE)
    pitch = float(np.exp(rng.uniform(lo, hi)))
    return TtsItem(split=split, index=index, voice=voice.id, text=s.text, speak=s.speak, source=s.source,
                   speed=round(speed, 4), pitch=round(pitch, 4), lead=round(float(rng.uniform(0.05, 0.3)), 3),
                   tail=round(float(rng.uniform(0.05, 0.3)), 3), peak=round(float(rng.uniform(0.3, 0.95)), 3),
                   augment=augment, seed=seed, sample_rate=sample_rate)


def make_plan(cfg: BuildConfig) -> Plan:
    """Everything the build will produce, without producing it (cheap except for reading the text)."""
    shared = default_shared_dir(cfg.shared)
    reserved = load_reserved(shared)
    pools = collect_sentences(shared, cfg.sources, reserved, max_words=cfg.max_words,
                              generated_count=cfg.generated_count)
    if not pools:
        raise ValueError("no sentences: check the text sources and the shared folder")
    train_pools, dev_sentences = split_dev(pools, cfg.dev_sentences, cfg.source_weights)
    voices = discover_voices(cfg.engines, cfg.voice_pattern, reserved)
    if not voices:
        raise ValueError("no TTS voice available (install them with scripts/setup_tts.sh)")
    train_voices, dev_voices = split_voices(voices)

    # training items: sources walked in a seeded order, sentence by sentence
    src_names, src_p = _weights([s for s in SOURCES if train_pools.get(s)], cfg.source_weights)
    perms = {s: np.random.default_rng([cfg.seed, 101, i]).permutation(len(train_pools[s]))
             for i, s in enumerate(SOURCES) if s in train_pools}
    counters = Counter()
    picker = _VoicePicker(train_voices, cfg.engine_weights)
    target = cfg.hours * 3600.0
    train, total = [], 0.0
    while total < target:
        i = len(train)
        rng = np.random.default_rng([cfg.seed, SPLIT_CODES["train"], i])
        src = src_names[int(rng.choice(len(src_names), p=src_p))]
        k = counters[src]
        counters[src] += 1
        pool = train_pools[src]
        s = pool[int(perms[src][k % len(pool)])]
        voice = picker.pick(rng)
        augment = bool(rng.random() < cfg.augment_share)
        item = _item("train", i, rng, voice, s, augment, cfg.seed, cfg.sample_rate, cfg.speed_range)
        train.append(item)
        total += item.estimated_seconds()

    # dev items: each held-out sentence once, by a held-out voice, clean; independent of the seed
    dev_picker = _VoicePicker(dev_voices, cfg.engine_weights)
    dev = []
    for i, s in enumerate(dev_sentences):
        rng = np.random.default_rng([DEV_SEED, SPLIT_CODES["dev"], i])
        dev.append(_item("dev", i, rng, dev_picker.pick(rng), s, False, DEV_SEED, cfg.sample_rate))

    # babble bank: training voices reading random training sentences
    babble = []
    flat = [s for name in src_names for s in train_pools[name]]
    needs_babble = cfg.augment_share > 0 and cfg.augment.babble_prob > 0 and train
    for i in range(cfg.babble_clips if needs_babble else 0):
        rng = np.random.default_rng([cfg.seed, SPLIT_CODES["babble"], i])
        s = flat[int(rng.integers(len(flat)))]
        babble.append(_item("babble", i, rng, picker.pick(rng), s, False, cfg.seed, cfg.sample_rate))

    real = real_clips(shared, reserved, sets=cfg.real_sets, dev_speakers=cfg.real_dev_speakers,
                      max_per_set=cfg.max_real) if cfg.real else []
    return Plan(train=train, dev=dev, babble=babble, real=real,
                pools={k: len(v) for k, v in train_pools.items()}, dev_sentence_count=len(dev_sentences),
                voices={"train": [v.id for v in train_voices], "dev": [v.id for v in dev_voices]},
                estimated_seconds={"train": total, "dev": sum(d.estimated_seconds() for d in dev),
                                   "babble": sum(b.estimated_seconds() for b in babble)})


# ---------------------------------------------------------------- workers

_WORKER: dict = {}


def _init_worker(out_dir: str, augment_cfg: AugmentConfig, sample_rate: int) -> None:
    _WORKER.update(out=out_dir, augment=augment_cfg, sample_rate=sample_rate, babble_key=None, babble=[])


def _babble_pool(paths: Sequence[str]) -> list[np.ndarray]:
    """The babble clips (loaded once per worker process)."""
    key = tuple(paths)
    if _WORKER.get("babble_key") != key:
        import soundfile

        _WORKER["babble"] = [soundfile.read(p, dtype="float32")[0] for p in key if os.path.exists(p)]
        _WORKER["babble_key"] = key
    return _WORKER["babble"]


def write_flac(path: str | os.PathLike, x: np.ndarray, sample_rate: int) -> None:
    """16-bit mono FLAC written atomically (temporary name in the same folder, then rename)."""
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{os.getpid()}-{path.name}"
    try:
        soundfile.write(str(tmp), np.clip(x, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _render_tts(item: TtsItem, babble_paths: Sequence[str] = ()) -> tuple[np.ndarray, list[str]]:
    from rnnt.corpus.augment import augment
    from rnnt.corpus.synth import synthesize, trim_silence

    x = synthesize(Voice.from_id(item.voice), item.speak, item.speed, item.pitch, item.sample_rate)
    x = trim_silence(x, item.sample_rate, item.lead, item.tail)
    peak = float(np.max(np.abs(x)))
    if peak > 0:
        x = x * np.float32(item.peak / peak)
    applied: list[str] = []
    if item.augment:
        rng = np.random.default_rng([item.seed, SPLIT_CODES[item.split], item.index, 7])
        x = augment(x, rng, item.sample_rate, _babble_pool(babble_paths), _WORKER.get("augment", AugmentConfig()),
                    applied)
    return x.astype(np.float32), applied


def _work(task: tuple) -> dict:
    kind, obj = task[:2]
    out = Path(_WORKER["out"])
    t0 = time.perf_counter()
    try:
        if kind == "tts":
            x, applied = _render_tts(obj, task[2] if len(task) > 2 else ())
            path, rate = out / obj.relpath, obj.sample_rate
        else:
            from rnnt.audio import load_audio

            rate = _WORKER["sample_rate"]
            x, applied = load_audio(obj.source, rate), []
            path = out / _real_relpath(obj)
        write_flac(path, x, rate)
        return {"kind": kind, "id": _task_id(task), "duration": x.size / rate, "applied": applied,
                "seconds": time.perf_counter() - t0}
    except Exception as e:  # one bad item must not stop a long build
        return {"kind": kind, "id": _task_id(task), "error": f"{type(e).__name__}: {e}",
                "seconds": time.perf_counter() - t0}


def _task_id(task: tuple) -> str:
    kind, obj = task[:2]
    return obj.id if kind == "tts" else f"{obj.corpus}/{obj.id}"


def _real_relpath(c: RealClip) -> str:
    return f"real/{c.corpus}/{c.id}.flac"


# ---------------------------------------------------------------- the build


def _clean_temp(out: Path) -> None:
    for sub in ("audio", "real"):
        for tmp in (out / sub).rglob(".tmp-*"):
            tmp.unlink(missing_ok=True)


def _existing_duration(path: Path) -> float | None:
    import soundfile

    try:
        info = soundfile.info(str(path))
        return info.frames / info.samplerate
    except Exception:
        return None


class _Workers:
    """A process pool (started on first use; none for jobs=1) that runs tasks with a progress bar."""

    def __init__(self, cfg: BuildConfig, out: Path, progress: bool) -> None:
        self.jobs = max(1, cfg.jobs or os.cpu_count() or 1)
        self.init_args = (str(out), cfg.augment, cfg.sample_rate)
        self.progress = progress
        self.pool = None

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.pool is not None:
            if exc_type is None:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()

    def run(self, tasks: list, desc: str) -> list[dict]:
        if not tasks:
            return []
        from tqdm import tqdm

        if self.jobs == 1:
            _init_worker(*self.init_args)
            it = map(_work, tasks)
        else:
            if self.pool is None:
                methods = multiprocessing.get_all_start_methods()
                # not fork: the parent may hold threads (TensorFlow in a test session)
                ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
                if ctx.get_start_method() == "forkserver":
                    ctx.set_forkserver_preload(["rnnt.corpus.build", "rnnt.corpus.synth", "rnnt.audio"])
                self.pool = ctx.Pool(self.jobs, initializer=_init_worker, initargs=self.init_args)
            chunk = max(1, min(16, len(tasks) // (self.jobs * 8)))
            it = self.pool.imap_unordered(_work, tasks, chunksize=chunk)
        results = []
        audio_s = 0.0
        with tqdm(total=len(tasks), desc=desc, unit="utt", file=sys.stderr, disable=not self.progress,
                  smoothing=0.05) as bar:
            for r in it:
                results.append(r)
                audio_s += r.get("duration", 0.0)
                bar.update(1)
                bar.set_postfix(audio_h=f"{audio_s / 3600:.2f}", refresh=False)
                if "error" in r:
                    log.warning("%s failed: %s", r["id"], r["error"])
        return results


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return str(n)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.flac")) if path.exists() else 0


def _split_stats(items: list[TtsItem], durations: dict[str, float]) -> dict:
    done = [it for it in items if it.id in durations]
    secs = [durations[it.id] for it in done]
    by_engine, by_source = Counter(), Counter()
    for it, s in zip(done, secs):
        by_engine[it.voice.split(":")[0]] += s / 3600
        by_source[it.source] += s / 3600
    return {
        "utterances": len(done),
        "failed": len(items) - len(done),
        "hours": round(sum(secs) / 3600, 4),
        "mean_seconds": round(float(np.mean(secs)), 3) if secs else 0.0,
        "max_seconds": round(float(np.max(secs)), 3) if secs else 0.0,
        "voices": len({it.voice for it in done}),
        "sentences": len({it.text for it in done}),
        "augmented": sum(it.augment for it in done),
        "hours_by_engine": {k: round(v, 4) for k, v in sorted(by_engine.items())},
        "hours_by_source": {k: round(v, 4) for k, v in sorted(by_source.items())},
    }


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _prune(out: Path, keep: set[str]) -> int:
    """Remove FLAC files under audio/ and real/ that the current plan does not use."""
    removed = 0
    for sub in ("audio", "real"):
        for p in (out / sub).rglob("*.flac"):
            if p.relative_to(out).as_posix() not in keep:
                p.unlink()
                removed += 1
    return removed


def build_corpus(cfg: BuildConfig, *, progress: bool = True, dry_run: bool = False, prune: bool = True) -> dict:
    """Build (or resume, or complete) the corpus described by `cfg`; returns the build summary (build.json)."""
    from rnnt.data.manifest import Utterance, write_manifest

    t_start = time.time()
    out = Path(cfg.output).resolve()
    shared = default_shared_dir(cfg.shared)
    plan = make_plan(cfg)
    t_plan = time.time() - t_start

    est_tts = plan.estimated_seconds["train"] + plan.estimated_seconds["dev"] + plan.estimated_seconds["babble"]
    est_real = 0.0
    if plan.real and cfg.real_copy:
        est_real = 5.3 * 3600 * (len(plan.real) / 6496)  # speechocean762 + FSDD: about 5.3 h for 6,496 clips
    est_bytes = est_tts * ASSUMED_FLAC_BYTES_PER_SECOND["tts"] + est_real * ASSUMED_FLAC_BYTES_PER_SECOND["real"]
    print(f"plan: {len(plan.train)} training utterances (~{plan.estimated_seconds['train'] / 3600:.2f} h), "
          f"{len(plan.dev)} dev, {len(plan.babble)} babble, {len(plan.real)} real clips; "
          f"{len(plan.voices['train'])} training voices, {len(plan.voices['dev'])} dev voices; "
          f"sentences per source {plan.pools}", file=sys.stderr)
    print(f"estimated size: {_fmt_bytes(est_bytes)} of FLAC for ~{(est_tts + est_real) / 3600:.2f} h "
          f"(assuming {ASSUMED_FLAC_BYTES_PER_SECOND['tts'] / 1000:.0f} kB/s synthesized, "
          f"{ASSUMED_FLAC_BYTES_PER_SECOND['real'] / 1000:.0f} kB/s real) in {out}", file=sys.stderr)

    summary = {"format_version": FORMAT_VERSION, "status": "planned",
               "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
               "shared": str(shared),
               "plan": {"train": len(plan.train), "dev": len(plan.dev), "babble": len(plan.babble),
                        "real": len(plan.real), "sentence_pools": plan.pools,
                        "dev_sentences": plan.dev_sentence_count,
                        "voices_available": {k: len(v) for k, v in plan.voices.items()},
                        "estimated_hours": {k: round(v / 3600, 4) for k, v in plan.estimated_seconds.items()},
                        "estimated_bytes": int(est_bytes)}}
    if dry_run:
        return summary

    out.mkdir(parents=True, exist_ok=True)
    _clean_temp(out)
    previous = {}
    if (out / "build.json").exists():
        try:
            previous = json.loads((out / "build.json").read_text(encoding="utf-8"))
        except ValueError:
            previous = {}
    summary["status"] = "running"
    summary["started"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write_json(out / "build.json", summary)

    # what is already there (resume) and what is left to do
    durations: dict[str, float] = {}
    todo: dict[str, list] = {"babble": [], "main": []}
    for split_items, phase in ((plan.babble, "babble"), (plan.train, "main"), (plan.dev, "main")):
        for it in split_items:
            d = _existing_duration(out / it.relpath)
            if d is None:
                todo[phase].append(("tts", it))
            else:
                durations[it.id] = d
    real_paths: dict[str, str] = {}
    for c in plan.real:
        key = f"{c.corpus}/{c.id}"
        if not cfg.real_copy:
            from rnnt.data.manifest import audio_duration

            durations[key] = audio_duration(c.source)
            real_paths[key] = c.source
            continue
        real_paths[key] = str(out / _real_relpath(c))
        d = _existing_duration(out / _real_relpath(c))
        if d is None:
            todo["main"].append(("real", c))
        else:
            durations[key] = d
    skipped = len(durations)
    print(f"resume: {skipped} files already built, {len(todo['babble']) + len(todo['main'])} to make",
          file=sys.stderr)

    with _Workers(cfg, out, progress) as workers:
        results = workers.run(todo["babble"], "babble")
        babble_paths = tuple(str(out / b.relpath) for b in plan.babble if (out / b.relpath).exists())
        main = [(kind, obj, babble_paths) if kind == "tts" and obj.augment else (kind, obj)
                for kind, obj in todo["main"]]
        results += workers.run(main, "corpus")
    failures = [r for r in results if "error" in r]
    for r in results:
        if "duration" in r:
            durations[r["id"]] = r["duration"]
    work_seconds = Counter()
    for r in results:
        work_seconds[r["kind"]] += r["seconds"]

    # manifests
    def tts_utts(items: list[TtsItem]) -> list:
        return [Utterance(audio=str(out / it.relpath), text=it.text, duration=durations[it.id], id=it.id,
                          speaker=it.voice) for it in items if it.id in durations]

    counts = {}
    for name, items in (("train", plan.train), ("dev", plan.dev), ("babble", plan.babble)):
        counts[name] = write_manifest(str(out / f"{name}.jsonl"), tts_utts(items), relative=True)
        with open(out / f"items-{name}.jsonl", "w", encoding="utf-8") as f:
            for it in items:
                rec = dataclasses.asdict(it)
                rec.update(id=it.id, audio=it.relpath, built=it.id in durations)
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    real_stats = {}
    for split in ("train", "dev"):
        clips = [c for c in plan.real if c.split == split and f"{c.corpus}/{c.id}" in durations]
        utts = [Utterance(audio=real_paths[f"{c.corpus}/{c.id}"], text=c.text,
                          duration=durations[f"{c.corpus}/{c.id}"], id=f"{c.corpus}-{c.id}", speaker=c.speaker)
                for c in clips]
        counts[f"real-{split}"] = write_manifest(str(out / f"real-{split}.jsonl"), utts, relative=cfg.real_copy)
        by_set = Counter()
        for u, c in zip(utts, clips):
            by_set[c.corpus] += u.duration / 3600
        real_stats[f"real-{split}"] = {"utterances": len(utts), "hours": round(sum(u.duration for u in utts) / 3600, 4),
                                       "speakers": len({c.speaker for c in clips}),
                                       "hours_by_set": {k: round(v, 4) for k, v in sorted(by_set.items())}}
    real_train = counts.get("real-train", 0) > 0
    mix = {"train": [{"manifest": "train.jsonl", "share": round(1 - cfg.real_share, 6) if real_train else 1.0}],
           "dev": ["dev.jsonl"], "babble": "babble.jsonl" if plan.babble else None}
    if real_train:
        mix["train"].append({"manifest": "real-train.jsonl", "share": cfg.real_share})
    if counts.get("real-dev", 0):
        mix["dev"].append("real-dev.jsonl")
    _write_json(out / "mix.json", mix)

    removed = 0
    if prune and not failures:
        keep = {it.relpath for it in plan.train + plan.dev + plan.babble}
        keep |= {_real_relpath(c) for c in plan.real} if cfg.real_copy else set()
        removed = _prune(out, keep)

    elapsed = time.time() - t_start
    tts_bytes = _dir_bytes(out / "audio")
    real_bytes = _dir_bytes(out / "real")
    tts_seconds = sum(durations.get(it.id, 0.0) for it in plan.train + plan.dev + plan.babble)
    total_build = float(previous.get("total_build_seconds", 0.0) or 0.0) + elapsed
    summary.update({
        "status": "complete" if not failures else "incomplete",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "build_seconds": round(elapsed, 1),
        "plan_seconds": round(t_plan, 1),
        "total_build_seconds": round(total_build, 1),
        "made_this_run": len(results) - len(failures),
        "skipped_existing": skipped,
        "failed": len(failures),
        "failures": [f"{r['id']}: {r['error']}" for r in failures[:20]],
        "worker_seconds": {k: round(v, 1) for k, v in sorted(work_seconds.items())},
        "jobs": cfg.jobs or os.cpu_count(),
        "pruned_files": removed,
        "manifests": counts,
        "stats": {"train": _split_stats(plan.train, durations), "dev": _split_stats(plan.dev, durations),
                  "babble": _split_stats(plan.babble, durations), **real_stats},
        "disk_bytes": {"tts": tts_bytes, "real": real_bytes, "total": tts_bytes + real_bytes},
        "tts_flac_bytes_per_second": round(tts_bytes / tts_seconds, 1) if tts_seconds else None,
    })
    _write_json(out / "build.json", summary)
    st = summary["stats"]
    print(f"built in {elapsed:.0f} s: train {st['train']['hours']:.3f} h ({st['train']['utterances']} utt, "
          f"{st['train']['voices']} voices, {st['train']['sentences']} sentences), dev {st['dev']['hours']:.3f} h, "
          + ", ".join(f"{k} {v['hours']:.3f} h" for k, v in real_stats.items())
          + f"; {_fmt_bytes(tts_bytes + real_bytes)} on disk; {len(failures)} failed", file=sys.stderr)
    return summary


def corpus_stats(folder: str | os.PathLike) -> dict:
    """Hours, utterances and speakers of each manifest in a built corpus, plus its build.json summary."""
    from rnnt.data.manifest import read_manifest

    folder = Path(folder)
    info = {}
    if (folder / "build.json").exists():
        info["build"] = json.loads((folder / "build.json").read_text(encoding="utf-8"))
    manifests = {}
    for path in sorted(folder.glob("*.jsonl")):
        if path.name.startswith("items-"):
            continue
        utts = read_manifest(str(path))
        manifests[path.name] = {"utterances": len(utts), "hours": round(sum(u.duration for u in utts) / 3600, 4),
                                "speakers": len({u.speaker for u in utts}),
                                "sentences": len({u.text for u in utts})}
    info["manifests"] = manifests
    return info
