"""Screen candidate weights by decoded WER: which snapshot, or which mean of neighbouring snapshots, to ship.

A trainer's dev loss does not rank candidates the way decoding does (run 11: docs/default-model.md), so each
candidate is exported as a bundle (dynamic-range int8 by default, what ships) and decoded through the runtime on the
recipe's dev sets, the way `rnnt recipe NAME --stages evaluate` does. A candidate is one folder of `weights-*.npz`
(`train_torch.py`'s `--out`, a snapshot, `average_weights.py`'s output) or, with `--mean N`, the element-wise mean of
N folders in a row (by step). Results go to `OUT/screen.jsonl`; a candidate already there (the same folders at the
same step, bundle mode and beam) is not screened again, so a run's `--out` trained further is screened anew; each
set's decoded utterances go to `OUT/NAME-MODE-beamB-SET.jsonl`.

With `--baseline NAME` (a candidate screened into the same OUT, e.g. the shipped weights' folder), each other
candidate's WER difference from it is printed a set with its paired-bootstrap standard deviation and the share of
resamples in which it is worse: whether a difference is more than the dev sets' sampling noise. The mean of the sets'
differences follows (each set resampled on its own, each weighed alike): small gains on every set can add up to more
than their noise. `--draws N` sets the resamples (2000 by default); run again with more, which decodes nothing again,
where a share sits near a rule's border.

With `--ensemble`, a group of N folders (`--mean N`, or all the folders with `--mean 0`) is not averaged: each folder
is exported on its own and the bundles are decoded together (`ensemble_step.py`: their joints combined at every step
of one beam search), the candidate `ens-NAME+NAME...`.

    python scripts/accelerated/screen_weights.py runs/accel/cpu12/out/snapshots/step-* --mean 5 --stride 2 \\
        --work-dir runs/recipe-default --out runs/screen12
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from average_weights import average  # noqa: E402
from ensemble_step import evaluate_ensemble  # noqa: E402
from import_weights import assign, named_variables, read_weights  # noqa: E402

DEFAULT_SETS = ("real-dev", "real-dev-lj", "synthetic-dev", "speechocean-dev")
DRAWS = 2000  # the paired bootstrap's resamples unless --draws says otherwise


def step_of(folder: str) -> int:
    """The training step the weights in a folder were written at (read alone, not the weights)."""
    paths = sorted(glob.glob(os.path.join(folder, "weights-*.npz")))
    if not paths:
        raise FileNotFoundError(f"no weights-*.npz in {folder}")
    with np.load(paths[0]) as z:
        return int(z["step"])


def candidates(folders: list[str], mean: int, stride: int) -> list[list[str]]:
    """Groups of `mean` folders in a row, ordered by step, every `stride` folders; each group is one candidate.
    `mean` 0: all the folders, in the order given, as one group."""
    if mean == 0:
        return [list(folders)]
    if mean < 1 or stride < 1:
        raise ValueError("--mean must be at least 0 and --stride at least 1")
    ordered = sorted(folders, key=step_of)
    if len(ordered) < mean:
        raise ValueError(f"{len(ordered)} folders, fewer than --mean {mean}")
    return [ordered[i:i + mean] for i in range(0, len(ordered) - mean + 1, stride)]


def candidate_name(group: list[str], ensemble: bool = False) -> str:
    """`step-A` for one snapshot (a folder so named), `NAME-step-A` for another folder (a run's output, a mean),
    `steps-A-B-N` for the mean of N folders from step A to step B, `ens-NAME+NAME...` for an ensemble."""
    if ensemble:
        return "ens-" + "+".join(candidate_name([f]) for f in group)
    steps = [step_of(f) for f in group]
    if len(group) > 1:
        return f"steps-{steps[0]}-{steps[-1]}-{len(group)}"
    base = os.path.basename(os.path.normpath(group[0]))
    return base if base == f"step-{steps[0]}" else f"{base}-step-{steps[0]}"


def export_candidate(group: list[str], path: str, tokens: list[str], features, mode: str,
                     cell_clip: float = 0.0) -> int:
    """Write the bundle of the mean of a group's weights, with the recipe's LSTM cell clip (the PyTorch trainer's
    model.json has none); returns its step (the latest)."""
    from export.tflite import export_bundle
    from rnnt.config import ModelConfig, config_from_dict
    from rnnt.model import RNNT

    with open(os.path.join(group[0], "model.json"), encoding="utf-8") as f:
        model_cfg = dataclasses.replace(config_from_dict(ModelConfig, json.load(f)), cell_clip=cell_clip)
    if model_cfg.vocab_size != len(tokens):
        raise ValueError(f"the weights' model has {model_cfg.vocab_size} tokens, the tokenizer {len(tokens)}")
    read = [read_weights(folder) for folder in group]
    weights, step = average([w for w, _ in read]), max(s for _, s in read)
    model = RNNT(model_cfg)
    assign(named_variables(model), {k: v for k, v in weights.items() if not k.startswith("ctc_head/")})
    export_bundle(model, tokens, features, path, quantization=mode,
                  training_info={"step": step, "screened": [os.path.abspath(f) for f in group]})
    return step


Counts = list[tuple[int, int]]  # (word errors, reference words) an utterance


def _differences(base: Counts, other: Counts, picks: np.ndarray) -> tuple[float, np.ndarray]:
    """The WER difference other - base on all utterances, and on each row of utterance indices `picks`."""
    if len(base) != len(other) or not base:
        raise ValueError(f"need the same utterances, got {len(base)} and {len(other)}")
    e_base, words = np.array(base, np.int64).T
    e_other = np.array([e for e, _ in other], np.int64)
    diffs = (e_other[picks].sum(1) - e_base[picks].sum(1)) / np.maximum(words[picks].sum(1), 1)
    return float((e_other.sum() - e_base.sum()) / max(words.sum(), 1)), diffs


def paired_bootstrap(base: Counts, other: Counts, draws: int = DRAWS, seed: int = 0) -> tuple[float, float, float]:
    """Two candidates' (word errors, reference words) on the same utterances: the WER difference other - base,
    its standard deviation over `draws` resamples of the utterances (the same draw for both), and the share of
    resamples in which `other` is worse. Tells a real difference from the dev sets' sampling noise."""
    return mean_bootstrap([(base, other)], draws, seed)


def mean_bootstrap(pairs: list[tuple[Counts, Counts]], draws: int = DRAWS, seed: int = 0) -> tuple[float, float, float]:
    """`paired_bootstrap` of the mean WER difference over several dev sets (one (base, other) pair a set), each
    set resampled on its own: whether a candidate's small gains on every set add up to more than their noise."""
    rng = np.random.default_rng(seed)
    total, spread = 0.0, np.zeros(draws)
    for base, other in pairs:
        d, diffs = _differences(base, other, rng.integers(0, max(len(base), 1), (draws, len(base))))
        total, spread = total + d / len(pairs), spread + diffs / len(pairs)
    return total, float(spread.std()), float(np.mean(spread > 0))


def word_counts(path: Path) -> dict[str, tuple[int, int]]:
    """Utterance id -> (word errors, reference words) from `rnnt eval --results` JSONL."""
    from rnnt.metrics import word_errors

    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        c = word_errors(r["ref"], r["hyp"])
        out[r["id"]] = (c.errors, c.reference_length)
    return out


def results_path(out: Path, name: str, mode: str, beam: int, set_name: str) -> Path:
    """Where a candidate's decoded results on one dev set go (`rnnt eval --results` JSONL), one file per bundle
    mode and beam, so screening the same weights another way keeps the first results."""
    return out / f"{name}-{mode}-beam{beam}-{set_name}.jsonl"


def _difference_text(diff: float, sd: float, worse: float) -> str:
    return f"{100 * diff:+.2f} (sd {100 * sd:.2f}, worse in {100 * worse:.1f}%)"


def compare_with(baseline: str, rows: list[dict], sets: dict[str, str], out: Path, mode: str, beam: int,
                 draws: int = DRAWS) -> None:
    """Print each candidate's WER difference from `baseline` a set, with its paired-bootstrap spread over `draws`
    resamples."""
    print(f"against {baseline}: WER difference a set (paired bootstrap over utterances, {draws} resamples)")
    paths = {s: results_path(out, baseline, mode, beam, s) for s in sets}
    base = {s: word_counts(path) for s, path in paths.items() if path.exists()}  # read once, not per candidate
    for row in rows:
        if row["name"] == baseline:
            continue
        cells, pairs = [], []
        for set_name in sets:
            other_path = results_path(out, row["name"], mode, beam, set_name)
            if set_name not in base or not other_path.exists():
                cells.append(f"{set_name} -")
                continue
            other = word_counts(other_path)
            ids = sorted(set(base[set_name]) & set(other))
            pairs.append(([base[set_name][i] for i in ids], [other[i] for i in ids]))
            cells.append(f"{set_name} " + _difference_text(*paired_bootstrap(*pairs[-1], draws=draws)))
        if len(pairs) > 1:
            cells.append(f"mean of {len(pairs)} sets " + _difference_text(*mean_bootstrap(pairs, draws)))
        print(f"  {row['name']}  " + "  ".join(cells))


def dev_sets(recipe, names: list[str]) -> dict[str, str]:
    """Name -> manifest of the recipe's dev sets that were asked for; `NAME=MANIFEST` names a manifest itself."""
    known = recipe.dev_sets()
    out = {}
    for name in names:
        if "=" in name:
            name, manifest = name.split("=", 1)
        elif name in known:
            manifest = known[name]
        else:
            raise ValueError(f"{name}: not a dev set of {recipe.work} (it has {', '.join(known)})")
        out[name] = manifest
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="folders of weights-*.npz (snapshots, a run's --out, a mean)")
    p.add_argument("--mean", type=int, default=1, metavar="N",
                   help="screen means of N folders in a row (default 1); 0: of all the folders")
    p.add_argument("--ensemble", action="store_true",
                   help="decode each group of folders as an ensemble of their bundles instead of their mean")
    p.add_argument("--combine", default="logprob", choices=("logprob", "prob"),
                   help="how an ensemble combines its members' joints (default logprob: a product of experts)")
    p.add_argument("--stride", type=int, default=1, help="folders between the first of one mean and the next")
    p.add_argument("--recipe", default="default", help="recipe preset: its feature settings go into the bundles")
    p.add_argument("--work-dir", help="recipe work folder: its tokenizer and dev sets (default: runs/recipe-NAME)")
    p.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), metavar="SET",
                   help=f"dev sets of the recipe, or NAME=MANIFEST (default: {' '.join(DEFAULT_SETS)})")
    p.add_argument("--limit", type=int,
                   help="utterances of sets other than real-dev* (default: the recipe's eval_limit_other)")
    p.add_argument("--beam", type=int, help="beam width (default: the recipe's eval_beam)")
    p.add_argument("--mode", default="dynamic", choices=("dynamic", "float32"),
                   help="bundle to decode (default dynamic)")
    p.add_argument("--out", required=True, help="folder for the bundles, the decoded results and screen.jsonl")
    p.add_argument("--baseline", metavar="NAME",
                   help="a screened candidate (e.g. the shipped weights) to compare the others with, utterance by "
                        "utterance (paired bootstrap)")
    p.add_argument("--draws", type=int, default=DRAWS,
                   help=f"resamples of the paired bootstrap (default {DRAWS}); more where a share is near a rule's "
                        "border")
    args = p.parse_args(argv)
    if args.draws < 1:
        p.error(f"--draws {args.draws}: need at least 1")

    from rnnt.recipe import PRESETS, Recipe, evaluate_bundle
    from rnnt.tokens import load_tokenizer

    recipe = Recipe(PRESETS[args.recipe], args.work_dir or f"runs/recipe-{args.recipe}", progress=False)
    if not recipe.tokenizer_path.exists():
        p.error(f"{recipe.tokenizer_path}: no tokenizer "
                f"(`rnnt recipe {args.recipe} --stages corpus,tokenizer` makes it)")
    tokens = list(load_tokenizer(str(recipe.tokenizer_path)).tokens)
    args.beam = args.beam or recipe.cfg.eval_beam
    try:
        groups = candidates(args.folders, args.mean, args.stride)
        sets = dev_sets(recipe, args.sets)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "screen.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    done = {(tuple(r["folders"]), r["step"], r["mode"], r["beam"], r.get("ensemble")) for r in rows}
    ensemble = args.combine if args.ensemble else None
    print("candidate  " + "  ".join(f"{name:>16}" for name in sets) + "  (WER, CER %)", flush=True)
    for group in groups:
        step = max(step_of(f) for f in group)
        if (tuple(os.path.abspath(f) for f in group), step, args.mode, args.beam, ensemble) in done:
            continue
        name = candidate_name(group, args.ensemble) + ("-prob" if ensemble == "prob" else "")
        members = [group] if not args.ensemble else [[f] for f in group]
        bundles = []
        for member in members:
            bundle = out / f"{candidate_name(member)}-{args.mode}.tflite"
            if not (args.ensemble and bundle.exists()):  # an ensemble reuses its members' screened bundles
                export_candidate(member, str(bundle), tokens, recipe.cfg.train.features, args.mode,
                                 recipe.cfg.train.model.cell_clip)
            bundles.append(str(bundle))
        scores = {}
        for set_name, manifest in sets.items():
            is_real = set_name.startswith("real-dev")
            limit = recipe.cfg.eval_limit if is_real else args.limit or recipe.cfg.eval_limit_other
            results = str(results_path(out, name, args.mode, args.beam, set_name))
            with contextlib.redirect_stdout(sys.stderr):  # rnnt eval's report; the table stays on stdout
                if args.ensemble:
                    scores[set_name] = evaluate_ensemble(bundles, manifest, beam=args.beam, limit=limit,
                                                         results_path=results, combine=args.combine)
                else:
                    scores[set_name] = evaluate_bundle(bundles[0], manifest, beam=args.beam, limit=limit,
                                                       results_path=results)
        row = {"name": name, "step": step, "folders": [os.path.abspath(f) for f in group], "mode": args.mode,
               "beam": args.beam, "wer": {k: round(v["wer"], 4) for k, v in scores.items()},
               "cer": {k: round(v["cer"], 4) for k, v in scores.items()}}
        if ensemble:
            row["ensemble"] = ensemble
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
        print(f"{name}  " + "  ".join(f"{100 * v['wer']:7.2f} ({100 * v['cer']:5.1f})" for v in scores.values()),
              flush=True)
    rows = [r for r in rows if r["mode"] == args.mode and r["beam"] == args.beam]
    real = [k for k in sets if k.startswith("real-dev")] or list(sets)
    best = min(rows, key=lambda r: float(np.mean([r["wer"].get(k, 1.0) for k in real])))
    print(f"best on {' + '.join(real)} (mean WER): {best['name']}")
    if args.baseline:
        if args.baseline not in {r["name"] for r in rows}:
            p.error(f"--baseline {args.baseline}: not a candidate screened in {log} "
                    f"({', '.join(r['name'] for r in rows)})")
        compare_with(args.baseline, rows, sets, out, args.mode, args.beam, args.draws)
    return 0


if __name__ == "__main__":
    sys.exit(main())
