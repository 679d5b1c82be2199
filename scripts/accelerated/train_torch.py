"""Train the recipe's RNN-T on a lent GPU with PyTorch, from packed features; write weights in TensorFlow's layout.

The TensorFlow trainer (`rnnt train`) is the project's trainer; this script is its accelerated twin for a lent
GPU machine, which has PyTorch but no TensorFlow and no way to fetch it. It trains exactly `rnnt.model.RNNT`'s
network (`torch_model.py`) from the shards of `pack_features.py`, with feature-level augmentation
(`feature_augment.py`) and an auxiliary CTC head, and shares the batch plan (`rnnt.data.batching`) and error counts
(`rnnt.metrics`) with the project. `import_weights.py` turns the written weights into a checkpoint of a recipe run
folder, from which `rnnt recipe ... --stages export,evaluate,install` go on as usual.

    python scripts/accelerated/train_torch.py --data runs/accel/data --model-json runs/accel/data/model.json \
        --state /tmp/accel --out runs/accel/out --minutes 8 --total-steps 4000

Each call trains until `--minutes` have passed or `--total-steps` is reached, resuming from `--state` (full state) or
else from `--init` (weights only, e.g. those a previous machine returned). `--prune 8` trains the transducer on a band
of 8 label positions a frame around the model's own most likely alignments (`torch_model.pruned_rnnt_nll`): the joint,
most of a step's time, then runs with gradient on 8 nodes a frame instead of U+1. `--repeat real-train.jsonl=2` trains
on the clips of one corpus manifest twice an epoch, `--repeat generated=0.3` on a seeded 30% of the clips whose text
is of that origin (`pack_features.py`), `--repeat-ages 16:99=1.5 --ages ../shared/data/speechocean762/speakers.tsv` on
the clips of readers aged 16 or more half as often again; `--vtlp 0.9 1.1` warps each clip's mel axis by a factor from
that range with the tempo kept, a new speaker's vocal tract; `--pitch 0.8 1.25` moves each clip's harmonics by a
factor from that range with the formants and tempo kept, the same vocal tract at another voice pitch; `--tempo 0.8
0.95 --tempo-sources train.jsonl` slows the synthesized clips by 5 to 20% with the pitch and formants kept, and
`real-train.jsonl=1.0:1.6` among the sources reads the real clips 1 to 1.6 times as fast (a joined pair takes its
second clip's range); `--channel-share 0.5` moves half the clips' long-term spectral envelope part of the way to
another clip's of the batch, another microphone, room or timbre; `--tilt-share 0.3` passes 30% of the clips through a
random first-order filter (`--tilt-max 0.9`: `y[n] = x[n] - a x[n-1]` or its inverse, |a| <= 0.9), brighter or darker
than any training clip; `--gain -3 3` draws each clip's level from 13 dB quieter to 13 dB louder (default ±1 nat, 4.3
dB); `--level` then brings each clip to the level the runtime's level control would (`rnnt.level`), so training sees
what the runtime feeds the network. `--joint-bf16` runs the joint in bfloat16 autocast (the LSTMs, the log-softmax and
the loss's recursion stay in float32); `bench_step.py` times a step both ways, and on a CPU without bfloat16
instructions (AVX-512 BF16, AMX) the trainer warns that it is slower. `--snapshot-every 200` also writes the weights
every 200 steps to `OUT/snapshots/step-N`, for `average_weights.py` to average checkpoints along a run. `--consistency
0.2` trains each batch as two views of its clips, one time warp and every other augmentation drawn for each, and adds
0.2 times the symmetric KL between the views' CTC posteriors (`consistency_kl`): the encoder learns what the two
voices, channels and masks share. A step then costs twice the clips' work; the logged audio rate counts each clip
once. `--speaker-adversary 0.2 --speaker-corpus runs/recipe-default/corpus` trains a classifier of who speaks (each
real reader and synthesized voice the corpus manifests name) on the encoder's output frames and hands the encoder its
gradient reversed, times 0.2 (reached over `--adversary-ramp` steps), so that the joint reads less of the speaker
(`speaker_adversary.py`); it logs the classifier's loss and frame accuracy. `--join-share 0.5` joins the clips of half
the batches end to end in pairs (`join_pairs`: half the rows at twice the length), so the encoder learns to read an
utterance that follows another, as in a long stream where the runtime carries its state across endpoints
(`scripts/state_probe.py` measures both starts). A bundle holds no CTC head, so weights recovered from one
(`weights_from_bundle.py`) bring it as zeros; `--ctc-head-fit 300` first fits it alone for 300 batches on the encoder
held fixed (`fit_ctc_head`, its own AdamW at `--ctc-head-lr`), so that the auxiliary loss does not pull the trained
encoder towards a head still learning.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from feature_augment import LOG_FLOOR, Augmenter, level_features  # noqa: E402
from import_weights import read_weights, write_weights  # noqa: E402  (numpy only, like rnnt.metrics)
from rnnt.corpus.real import speaker_table  # noqa: E402
from rnnt.data.batching import plan_batches  # noqa: E402
from rnnt.metrics import align_counts  # noqa: E402
from shard_format import read_shard, shard_codes, shard_number, shard_origins  # noqa: E402
from speaker_adversary import SpeakerAdversary, clip_speakers, pack_ids  # noqa: E402
from torch_model import Transducer, ctc_nll, pruned_rnnt_nll, rnnt_nll  # noqa: E402


# ---------------------------------------------------------------- data
def load_shards(folder: str) -> dict:
    """Every clip of a pack; ``id`` is None where ``packed-ids.txt`` does not name them."""
    out: dict = {"feats": [], "tokens": [], "split": [], "source": [], "origin": []}
    counts, order = {}, []
    for path in sorted(glob.glob(os.path.join(folder, "shard-*.npz.xz"))):
        z = read_shard(path)
        counts[shard_number(path)] = len(z["lengths"])
        order.append(shard_number(path))
        feats, lengths = shard_codes(z), z["lengths"]
        tokens, tlen = z["tokens"], z["token_lengths"]
        fo, to = np.concatenate([[0], np.cumsum(lengths)]), np.concatenate([[0], np.cumsum(tlen)])
        for i in range(len(lengths)):
            out["feats"].append(feats[fo[i]:fo[i + 1]])
            out["tokens"].append(tokens[to[i]:to[i + 1]].astype(np.int64))
        out["split"] += z["split"].tolist()
        out["source"] += z["source"].tolist()
        out["origin"] += shard_origins(z).tolist()
        print(f"loaded {path}", file=sys.stderr)
    out["id"] = pack_ids(folder, counts, order)
    return out


def pad_batch(items: list[np.ndarray], dtype, multiple: int = 1, value: float = 0) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.asarray([len(x) for x in items])
    t = int(math.ceil(max(lengths.max(), 1) / multiple) * multiple)
    out = np.full((len(items), t) + items[0].shape[1:], value, dtype)
    for i, x in enumerate(items):
        out[i, :len(x)] = x
    return out, lengths


def join_pairs(idx: np.ndarray, feats: list[np.ndarray], tokens: list[np.ndarray]
               ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """A batch's clips joined in pairs (2k then 2k+1; an odd last one alone): their features and tokens end to end,
    and the clip each row counts as (the second of its pair), so the encoder learns to go on from another utterance's
    state with the same padded area."""
    rows = [idx[k:k + 2] for k in range(0, len(idx), 2)]
    joined_feats = [np.concatenate([feats[i] for i in r]) for r in rows]
    joined_tokens = [np.concatenate([tokens[i] for i in r]) for r in rows]
    return joined_feats, joined_tokens, np.asarray([r[-1] for r in rows])


def feature_batch(items: list[np.ndarray], args, device, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Dequantized log-mels [B, T, M] (log floor past each length; T a multiple of `multiple`) and lengths [B]."""
    q, lengths = pad_batch(items, np.uint8, multiple)
    x = torch.as_tensor(q, device=device).float() * args.step + args.floor
    lengths_t = torch.as_tensor(lengths, device=device)
    valid = torch.arange(x.shape[1], device=device)[None, :, None] < lengths_t[:, None, None]
    return torch.where(valid, x, torch.full_like(x, LOG_FLOOR)), lengths_t


def clips_named(flag: str, name: str, train: np.ndarray, sources: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """A mask over all clips: those of corpus manifest `name` or of text origin `name` (a usage error when no
    training clip is one of them)."""
    mask = (sources == name) | (origins == name)
    if not mask[train].any():
        known = ", ".join(sorted(set(sources[train].tolist()) | set(origins[train].tolist())))
        raise SystemExit(f"{flag}: no training clip comes from {name!r} (sources and origins: {known})")
    return mask


def clip_ages(ids: list[str], table: str) -> np.ndarray:
    """Each clip's speaker age from a speakers table (`rnnt.corpus.real.speaker_table`), matched on the packed id
    after its corpus prefix (``speechocean762-000010011``); NaN where unknown."""
    ages = {uid: age for uid, (_, age) in speaker_table(table).items() if age is not None}
    return np.asarray([ages.get(i.partition("-")[2], math.nan) for i in ids], np.float64)


def age_repeats(items: list[str], ages: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Masks over all clips with their weights, one for each LO:HI=N of `--repeat-ages` (ages LO to HI, inclusive)."""
    out = []
    for item in items:
        span, _, times = item.partition("=")
        try:
            lo, hi = (float(v) for v in span.split(":"))
            n = float(times)
        except ValueError:
            lo = hi = n = math.nan
        if not (lo <= hi and 0 < n < math.inf):
            raise SystemExit(f"--repeat-ages wants LO:HI=N with LO <= HI and N a number > 0, got {item!r}")
        mask = (ages >= lo) & (ages <= hi)
        if not mask.any():
            raise SystemExit(f"--repeat-ages {item}: no clip's speaker is aged {lo:g} to {hi:g}")
        out.append((mask, n))
    return out


def repeat_sources(train: np.ndarray, sources: np.ndarray, repeats: list[str], origins: np.ndarray | None = None,
                   seed: int = 0, masks: Sequence[tuple[np.ndarray, float]] = ()) -> np.ndarray:
    """The training indices with the clips of each SOURCE=N in `repeats` present N times an epoch.

    SOURCE is a corpus manifest or a text origin (`pack_features.py`); weights of overlapping items multiply. A
    fractional N keeps a seeded draw of the clips for its last copy: ``generated=0.3`` trains on 30% of the
    generated sentences, ``real-train.jsonl=2.5`` on every real clip twice and half of them a third time. `masks`
    (a mask over all clips, a weight: `age_repeats`) multiply in the same way.
    """
    origins = sources if origins is None else origins
    weight = np.ones(len(train))
    for mask, n in masks:
        weight[mask[train]] *= n
    for item in repeats:
        source, _, times = item.rpartition("=")
        try:
            n = float(times)
        except ValueError:
            n = math.nan
        if not source or not 0 < n < math.inf:
            raise SystemExit(f"--repeat wants SOURCE=N with N a number > 0, got {item!r}")
        weight[clips_named(f"--repeat {item}", source, train, sources, origins)[train]] *= n
    if (weight == 1).all():
        return train
    whole = np.floor(weight)
    copies = whole.astype(np.int64) + (np.random.default_rng(seed).random(len(train)) < weight - whole)
    return np.repeat(train, copies)


def tempo_clip_ranges(train: np.ndarray, sources: np.ndarray, names: list[str], default: tuple[float, float],
                      origins: np.ndarray | None = None) -> np.ndarray | None:
    """[clips, 2]: the tempo range each clip draws its factor from: `default` for the clips of a named corpus manifest
    or text origin, a range of its own for a name given as SOURCE=LO:HI (a later name wins where two overlap), (1, 1)
    for the others; None when no name is given (every clip draws from `default`)."""
    if not names:
        return None
    origins = sources if origins is None else origins
    ranges = np.ones((len(sources), 2))
    for item in names:
        name, sep, span = item.partition("=")
        lo, hi = default
        if sep:
            try:
                lo, hi = (float(v) for v in span.split(":"))
            except ValueError:
                lo = hi = math.nan
            if not 0 < lo <= hi < math.inf:
                raise SystemExit(f"--tempo-sources wants SOURCE or SOURCE=LO:HI with 0 < LO <= HI, got {item!r}")
        ranges[clips_named("--tempo-sources", name, train, sources, origins)] = (lo, hi)
    return ranges


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: Transducer, data: dict, dev: list[int], args, device) -> dict:
    model.eval()
    stats: dict[str, list[float]] = {}
    fs = model.cfg["frame_stack"]
    for k in range(0, len(dev), 64):
        idx = dev[k:k + 64]
        x, flen = feature_batch([data["feats"][i] for i in idx], args, device, fs)
        if getattr(args, "level", False):
            x = level_features(x, flen)
        labels, ulen = pad_batch([data["tokens"][i] for i in idx], np.int64)
        labels, ulen_t = torch.as_tensor(labels, device=device), torch.as_tensor(ulen, device=device)
        enc = model.encode(x)
        tlen = torch.clamp(flen // fs, min=1)
        nll = rnnt_nll(model.lattice(enc, model.predict(labels)), labels, tlen, ulen_t)
        best = model.ctc_head(enc).argmax(-1).cpu().numpy()
        for n, i in enumerate(idx):
            src = data["source"][i]
            hyp = [int(c) for j, c in enumerate(best[n, : int(tlen[n])]) if c != 0 and (j == 0 or c != best[n, j - 1])]
            ref = data["tokens"][i].tolist()
            s = stats.setdefault(src, [0.0, 0.0, 0.0, 0.0, 0.0])
            s[0] += float(nll[n])
            s[1] += len(ref)
            s[2] += align_counts(ref, hyp).errors
            s[3] += len(ref)
            s[4] += 1
    model.train()
    # loss_per_utt (-log P(text | audio)) compares tokenizers; loss_per_token compares runs of one tokenizer
    return {src: {"loss_per_token": round(s[0] / max(s[1], 1), 3), "loss_per_utt": round(s[0] / max(s[4], 1), 2),
                  "ctc_greedy_cer": round(s[2] / max(s[3], 1), 4)}
            for src, s in stats.items()}


# ---------------------------------------------------------------- training
def fit_ctc_head(model: Transducer, prepare, plan: list, train: np.ndarray, args, step: int, log) -> None:
    """Fit a zero CTC head (``--ctc-head-fit``) on the encoder held fixed, before the run, so that the auxiliary loss
    does not pull a trained encoder towards a head that has not learnt yet. Its own AdamW at ``--ctc-head-lr``; the
    batches are augmented as in training (dropout on), from a plan of another seed."""
    head_opt = torch.optim.AdamW(model.ctc_head.parameters(), lr=args.ctc_head_lr, weight_decay=0.0)
    t0, losses = time.time(), []
    for k, batch in enumerate(plan[:args.ctc_head_fit]):
        _, x, _, labels, ulen_t, tlen, _ = prepare(train[batch], step + k, False)
        with torch.no_grad():
            enc = model.encode(x)
        ctc = ctc_nll(model.ctc_head(enc).log_softmax(-1), labels, tlen, ulen_t).sum() / ulen_t.sum().clamp(min=1)
        head_opt.zero_grad(set_to_none=True)
        ctc.backward()
        head_opt.step()
        losses.append(float(ctc.detach()))
        if (k + 1) % 50 == 0 or k + 1 == min(len(plan), args.ctc_head_fit):
            rec = {"ctc_head_fit": k + 1, "ctc_per_token": round(float(np.mean(losses[-50:])), 4),
                   "minutes": round((time.time() - t0) / 60, 2)}
            print(json.dumps(rec), file=sys.stderr, flush=True)
            log.write(json.dumps(rec) + "\n")
    model.zero_grad(set_to_none=True)


def lr_at(step: int, args, time_share: float | None = None) -> float:
    """Linear warm-up over `args.warmup` steps from `args.warmup_from`, then cosine decay to `args.min_lr` at
    `args.total_steps`, or, where `time_share` is given (``--cosine-by-time``), at the end of the call's minutes:
    the share of them spent."""
    end = args.warmup_from + args.warmup
    if step < end:
        return args.lr * (step - args.warmup_from + 1) / args.warmup
    progress = min(1.0, (step - end) / max(args.total_steps - end, 1) if time_share is None else time_share)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


def consistency_kl(log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The two views' disagreement (``--consistency``): log_probs [2n, T, V] of views A then B of n clips, lengths
    [2n]. Each view's posteriors against the other's held fixed, KL(B' || A) + KL(A' || B) summed over the vocabulary
    and the valid frames of the n pairs (as CR-CTC, Yao et al. 2024, does for CTC)."""
    n = log_probs.shape[0] // 2
    a, b = log_probs[:n], log_probs[n:]
    kl = (F.kl_div(a, b.detach(), log_target=True, reduction="none")
          + F.kl_div(b, a.detach(), log_target=True, reduction="none")).sum(-1)
    valid = torch.arange(log_probs.shape[1], device=log_probs.device)[None] < lengths[:n, None]
    return (kl * valid).sum()


def save_state(path: str, model: Transducer, opt, step: int, epoch: int, position: int, args,
               adversary: SpeakerAdversary | None = None, adversary_opt=None) -> None:
    """The full training state (weights, optimizer, where in the schedule and the epoch's plan, the speaker
    adversary's head and optimizer where there is one), atomically."""
    tmp = path + ".tmp"
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "epoch": epoch,
             "position": position, "warmup": [args.warmup_from, args.warmup]}
    if adversary is not None:
        state["adversary"] = {"head": adversary.state_dict(), "opt": adversary_opt.state_dict()}
    torch.save(state, tmp)
    os.replace(tmp, path)


def cpu_multiplies_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX-512 BF16 or AMX, from /proc/cpuinfo; True when it
    cannot tell). Without them bfloat16 is emulated and `--joint-bf16` slows a step down."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return True
    line = re.search(r"^flags\s*:(.*)$", cpuinfo, re.MULTILINE)
    return line is None or bool(set(line.group(1).split()) & {"avx512_bf16", "amx_bf16"})


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse instead of handing it back to the kernel (Linux only).

    By default every tensor over 32 MB is its own mmap, unmapped when freed, so each step faults in and zeroes its
    large tensors afresh (on the 2 cores: 31 M page faults and a quarter of the CPU time in the kernel in 4 minutes);
    with mmap off and trimming only past 2 GB the heap is reused (the same as environment variables: 2.8 M faults, 19%
    more audio a second). Trimming is off altogether (a threshold of -1 is SIZE_MAX to glibc): a step's peak can
    free more than 2 GB at once, and on a machine that hands freed pages back to its host (session 24) every step
    then faulted a gigabyte in again, 95% of the time in the kernel. Returns whether it applied.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, -1))
    except (OSError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="folders with shard-*.npz.xz and meta.json")
    p.add_argument("--model-json", required=True, help="the ModelConfig as JSON")
    p.add_argument("--state", required=True, help="folder for the full training state on this machine")
    p.add_argument("--out", required=True, help="folder for weights-*.npz and log.jsonl")
    p.add_argument("--init", help="folder of weights-*.npz to start from when --state has none")
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--total-steps", type=int, default=4000)
    p.add_argument("--cosine-by-time", action="store_true",
                   help="end the cosine when --minutes run out rather than at --total-steps (a device call of fixed "
                        "length whose step rate is not known beforehand)")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=2e-5)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--batch-seconds", type=float, default=600.0)
    p.add_argument("--max-batch", type=int, default=128)
    p.add_argument("--max-seconds", type=float, default=16.0)
    p.add_argument("--ctc-weight", type=float, default=0.3)
    p.add_argument("--prune", type=int, default=0, metavar="WIDTH",
                   help="train the transducer on a band of WIDTH label positions a frame (pruned loss; 0: the whole "
                        "lattice); the dev loss stays exact")
    p.add_argument("--joint-bf16", action="store_true",
                   help="run the joint (and the pruned loss's whole-lattice pass) in bfloat16 autocast, the "
                        "log-softmax and the recursion in float32 (bench_step.py times it against float32)")
    p.add_argument("--consistency", type=float, default=0.0, metavar="W",
                   help="train each batch as two views of its clips (their own frequency warps, channel, noise, "
                        "reverberation, gain and masks; one time warp) and add W times the symmetric KL between the "
                        "views' CTC posteriors; halve --batch-seconds and --max-batch to keep a step's size")
    p.add_argument("--join-share", type=float, default=0.0, metavar="SHARE",
                   help="share of batches whose clips are joined end to end in pairs (half the rows, twice the "
                        "length): utterances that start from another one's encoder state, as in a long stream")
    p.add_argument("--speaker-adversary", type=float, default=0.0, metavar="W",
                   help="a speaker classifier on the encoder's frames, its gradient reversed into the encoder times W "
                        "(speaker_adversary.py; needs --speaker-corpus)")
    p.add_argument("--speaker-corpus", metavar="DIR", help="the corpus folder whose manifests name each clip's speaker")
    p.add_argument("--adversary-ramp", type=int, default=200, metavar="STEPS",
                   help="steps over which the reversal grows from 0 to W after the run's start")
    p.add_argument("--adversary-lr", type=float, default=1e-3, help="the speaker classifier's learning rate")
    p.add_argument("--ctc-head-fit", type=int, default=0, metavar="BATCHES",
                   help="when --init's CTC head is zeros (weights_from_bundle.py), first fit it alone for BATCHES "
                        "batches on the encoder held fixed")
    p.add_argument("--ctc-head-lr", type=float, default=1e-3, help="the CTC head fit's learning rate")
    p.add_argument("--ctc-only-steps", type=int, default=0, help="train the encoder on CTC alone this long first")
    p.add_argument("--dropout", type=float, default=0.15)
    p.add_argument("--speed", type=float, nargs=2, default=(0.85, 1.15))
    p.add_argument("--vtlp", type=float, nargs=2, default=(1.0, 1.0), metavar=("LO", "HI"),
                   help="vocal-tract warp: every frequency times a factor in [LO, HI], the tempo kept")
    p.add_argument("--pitch", type=float, nargs=2, default=(1.0, 1.0), metavar=("LO", "HI"),
                   help="pitch warp: the harmonics times a factor in [LO, HI], the formants and tempo kept")
    p.add_argument("--tempo", type=float, nargs=2, default=(1.0, 1.0), metavar=("LO", "HI"),
                   help="tempo warp: the time axis shrinks by a factor in [LO, HI], the frequencies kept (0.8 0.95: "
                        "5 to 20%% slower)")
    p.add_argument("--tempo-sources", nargs="*", default=[], metavar="SOURCE[=LO:HI]",
                   help="corpus manifests or text origins whose clips get the tempo warp, e.g. train.jsonl, each "
                        "from --tempo's range or from its own, e.g. real-train.jsonl=1.0:1.6 (default: every clip "
                        "from --tempo's)")
    p.add_argument("--repeat", nargs="*", default=[], metavar="SOURCE=N",
                   help="train on the clips of a corpus manifest or text origin N times an epoch, e.g. "
                        "real-train.jsonl=3; a fraction keeps a seeded share, e.g. generated=0.3")
    p.add_argument("--repeat-ages", nargs="*", default=[], metavar="LO:HI=N",
                   help="weigh the clips whose speaker is aged LO to HI (--ages) N times, e.g. 16:99=1.5 0:15=0.6; "
                        "multiplies with --repeat")
    p.add_argument("--ages", metavar="TSV",
                   help="speakers table for --repeat-ages: utterance id, speaker, age (speechocean762/speakers.tsv)")
    p.add_argument("--channel-share", type=float, default=0.0, metavar="SHARE",
                   help="share of clips given part of another clip's long-term spectral envelope (a channel transfer)")
    p.add_argument("--gain", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LO", "HI"),
                   help="recording level: each clip's log-mels shifted by a draw from [LO, HI] nats (-3 3: about "
                        "13 dB either way)")
    p.add_argument("--level", action="store_true",
                   help="after the gain, each clip at the level the runtime's level control gives it (rnnt.level; "
                        "the dev losses too)")
    p.add_argument("--tilt-share", type=float, default=0.0, metavar="SHARE",
                   help="share of clips passed through a random first-order filter (a spectral tilt)")
    p.add_argument("--tilt-max", type=float, default=0.9, metavar="A",
                   help="the tilt filter's coefficient is drawn from [-A, A] (0.9: up to about 6 nats across the bands)")
    p.add_argument("--snr", type=float, nargs=2, default=(0.0, 25.0))
    p.add_argument("--noise-share", type=float, default=0.35)
    p.add_argument("--reverb-share", type=float, default=0.2)
    p.add_argument("--time-masks", type=int, default=5)
    p.add_argument("--freq-width", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--save-every", type=float, default=10.0, help="minutes between full-state saves (0: at the end only)")
    p.add_argument("--snapshot-every", type=int, default=0, metavar="STEPS",
                   help="also write the weights every STEPS steps to OUT/snapshots/step-N, for average_weights.py")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--return-freed-memory", action="store_true",
                   help="on the CPU, let glibc return freed memory to the kernel (its default; slower a step)")
    p.set_defaults(warmup_from=0)  # the step the warm-up starts at (a fine-tune's first step)
    args = p.parse_args(argv)
    t_start = time.time()
    device = torch.device(args.device)
    if device.type == "cpu" and not args.return_freed_memory:
        print("glibc keeps freed memory:", keep_freed_memory())
    if device.type == "cpu" and args.joint_bf16 and not cpu_multiplies_bf16():
        print("warning: --joint-bf16 on a CPU without avx512_bf16 or amx_bf16: bfloat16 is emulated, slower than "
              "float32 here", file=sys.stderr)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    with open(os.path.join(args.data[0], "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    args.floor, args.step = meta["floor"], meta["step"]
    with open(args.model_json, encoding="utf-8") as f:
        cfg = json.load(f)
    data: dict[str, list] = {"feats": [], "tokens": [], "split": [], "source": [], "origin": []}
    ids: list[str] | None = []
    for folder in args.data:
        part = load_shards(folder)
        for k in data:
            data[k] += part[k]
        ids = None if ids is None or part["id"] is None else ids + part["id"]
    fs = cfg["frame_stack"]
    split = np.asarray(data["split"])
    lengths = np.asarray([len(x) for x in data["feats"]])
    max_frames = int(args.max_seconds * 100)
    train = np.flatnonzero((split == meta["splits"]["train"]) & (lengths <= max_frames) & (lengths >= fs))
    sources, origins = np.asarray(data["source"]), np.asarray(data["origin"])
    masks = []
    if args.repeat_ages:
        if not args.ages or ids is None:
            raise SystemExit("--repeat-ages needs --ages and each pack's packed-ids.txt")
        masks = age_repeats(args.repeat_ages, clip_ages(ids, args.ages))
    train = repeat_sources(train, sources, args.repeat, origins, args.seed, masks)
    tempo_ranges = tempo_clip_ranges(train, sources, args.tempo_sources, tuple(args.tempo), origins)
    dev = np.flatnonzero(split == meta["splits"]["dev"]).tolist()
    noise = [feature_batch([data["feats"][i]], args, device)[0][0]
             for i in np.flatnonzero(split == meta["splits"]["noise"])]
    print(f"train {len(train)} utterances ({lengths[train].sum() / 360000:.2f} h an epoch), dev {len(dev)}, noise {len(noise)}",
          file=sys.stderr)

    torch.manual_seed(args.seed)
    model = Transducer(cfg, args.dropout).to(device)
    decay = [p_ for n, p_ in model.named_parameters() if p_.dim() > 1]
    other = [p_ for n, p_ in model.named_parameters() if p_.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    os.makedirs(args.state, exist_ok=True)
    state_path = os.path.join(args.state, "state.pt")
    step, epoch, position = 0, 0, 0  # position: batches of this epoch's plan already trained on
    st: dict = {}
    fresh_ctc_head = False  # weights whose CTC head is zeros (weights_from_bundle.py: a bundle has none)
    if os.path.exists(state_path):
        st = torch.load(state_path, map_location=device)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, epoch, position = st["step"], st["epoch"], st.get("position", 0)
        args.warmup_from, args.warmup = st.get("warmup", (0, args.warmup))
        print(f"resumed full state at step {step}", file=sys.stderr)
    elif args.init and glob.glob(os.path.join(args.init, "weights-*.npz")):
        w, step = read_weights(args.init)
        model.load_tf_weights(w)
        print(f"started from weights of step {step} (fresh optimizer)", file=sys.stderr)
        args.warmup_from, args.warmup = step, min(args.warmup, 100)  # a short re-warmup for the fresh optimizer
        fresh_ctc_head = not any(k.startswith("ctc_head/") and np.any(v) for k, v in w.items())
    else:
        sample = feature_batch([np.concatenate([data["feats"][i] for i in train[:400]])], args, device)[0][0]
        model.feature_mean.copy_(sample.mean(0))
        model.feature_std.copy_(sample.std(0, correction=0).clamp(min=1e-3))
    adversary = adversary_opt = None
    if args.speaker_adversary:
        if not args.speaker_corpus or ids is None:
            raise SystemExit("--speaker-adversary needs --speaker-corpus and each pack's packed-ids.txt")
        speaker_of, speaker_names = clip_speakers(ids, args.speaker_corpus)
        print(f"speakers: {len(speaker_names)}, {np.mean(speaker_of[np.unique(train)] >= 0):.1%} of the training "
              "clips named", file=sys.stderr)
        adversary = SpeakerAdversary(cfg["encoder_proj"], len(speaker_names)).to(device)
        adversary_opt = torch.optim.AdamW(adversary.parameters(), lr=args.adversary_lr, weight_decay=0.0)
        if "adversary" in st:
            adversary.load_state_dict(st["adversary"]["head"])
            adversary_opt.load_state_dict(st["adversary"]["opt"])
        adversary.train()
    model.train()
    aug = Augmenter(noise, device, cfg["num_mels"], args)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed * 1000003 + step)
    os.makedirs(args.out, exist_ok=True)
    # Line-buffered: a run stopped by a signal (a session's end) keeps every line it logged.
    log = open(os.path.join(args.out, "log.jsonl"), "a", encoding="utf-8", buffering=1)
    deadline = t_start + args.minutes * 60

    def plan_of(seed: int, epoch: int) -> list:
        """The training clips' batches (positions in `train`) for one epoch of a seed."""
        return plan_batches(lengths[train] / 100, batch_seconds=args.batch_seconds, max_batch_size=args.max_batch,
                            max_duration=args.max_seconds, seed=seed, epoch=epoch, sort_window=args.max_batch * 20)

    def prepare(idx: np.ndarray, step: int, paired: bool) -> tuple:
        """One batch of clips `idx` as the network trains on it: joined in pairs (``--join-share``), augmented,
        padded to the frame stack, SpecAugmented. Returns the rows' clips, features, frame lengths, labels, label
        lengths, encoder lengths and the seconds of distinct audio."""
        feat_items, token_items = [data["feats"][i] for i in idx], [data["tokens"][i] for i in idx]
        if args.join_share and np.random.default_rng([args.seed, step]).random() < args.join_share:
            feat_items, token_items, idx = join_pairs(idx, data["feats"], data["tokens"])
        x, flen_t = feature_batch(feat_items, args, device)
        seconds = float(flen_t.sum()) / 100
        if paired:
            idx, token_items = np.concatenate([idx, idx]), token_items + token_items
            x, flen_t = torch.cat([x, x]), torch.cat([flen_t, flen_t])
        x, flen_t = aug(x, flen_t, gen, None if tempo_ranges is None else torch.as_tensor(tempo_ranges[idx]), paired)
        x = F.pad(x, (0, 0, 0, (-x.shape[1]) % fs), value=LOG_FLOOR)
        # SpecAugment on normalized features, masks set to the mean (0 after normalization)
        x = aug.spec_augment(x, flen_t, gen, model.feature_mean.expand_as(x))
        labels, ulen = pad_batch(token_items, np.int64)
        labels, ulen_t = torch.as_tensor(labels, device=device), torch.as_tensor(ulen, device=device)
        return idx, x, flen_t, labels, ulen_t, torch.clamp(flen_t // fs, min=1), seconds

    if fresh_ctc_head and args.ctc_head_fit:
        fit_ctc_head(model, prepare, plan_of(args.seed + 1, 0), train, args, step, log)
    elif args.ctc_head_fit:
        print("--ctc-head-fit: the CTC head is trained already (a full state or a trained --init); not fitted",
              file=sys.stderr)
    t_train = time.time()  # the cosine by time starts here

    def time_share() -> float | None:
        return (time.time() - t_train) / max(deadline - t_train, 1.0) if args.cosine_by_time else None
    audio_seconds, t0, avg = 0.0, time.time(), None
    last_log = (t0, 0.0)  # time and audio seconds at the last log line, for the recent rate
    dropped = 0  # utterances the pruned loss's band could not hold (counted 0)
    paired = args.consistency > 0  # each batch as two views of its clips
    done = False
    saved = time.time()
    while not done:
        plan = plan_of(args.seed, epoch)
        for batch in plan[position:]:
            position += 1
            idx, x, flen_t, labels, ulen_t, tlen, seconds = prepare(train[batch], step, paired)
            audio_seconds += seconds
            enc = model.encode(x)
            transducer = step >= args.ctc_only_steps  # else an encoder warm-up on CTC alone, the transducer watched
            joint_precision = torch.autocast(device.type, torch.bfloat16, enabled=args.joint_bf16)
            with torch.set_grad_enabled(transducer), joint_precision:
                if args.prune:
                    enc_j, pred_j = model.joint_inputs(enc, model.predict(labels))
                    nll, held = pruned_rnnt_nll(model.joint, enc_j, pred_j, labels, tlen, ulen_t, args.prune)
                    dropped += int((~held).sum())
                else:
                    nll = rnnt_nll(model.lattice(enc, model.predict(labels)), labels, tlen, ulen_t)
            ctc_log_probs = model.ctc_head(enc).log_softmax(-1)
            ctc = ctc_nll(ctc_log_probs, labels, tlen, ulen_t)
            tokens = ulen_t.sum().clamp(min=1)
            loss = ((nll.sum() if transducer else 0.0) + (args.ctc_weight if transducer else 1.0) * ctc.sum()) / tokens
            if paired:
                disagreement = consistency_kl(ctc_log_probs, tlen) / tokens
                loss = loss + args.consistency * disagreement
            if adversary is not None:
                reversal = args.speaker_adversary * min(1.0, (step - args.warmup_from) / max(args.adversary_ramp, 1))
                speaker_ce, speaker_acc = adversary(enc, tlen, torch.as_tensor(speaker_of[idx], device=device),
                                                    reversal)
                loss = loss + speaker_ce
                adversary_opt.zero_grad(set_to_none=True)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, args, time_share())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            if torch.isfinite(loss) and torch.isfinite(gnorm):
                opt.step()
                if adversary is not None:
                    adversary_opt.step()
            step += 1
            per_token = float(nll.detach().sum() / tokens)
            avg = per_token if avg is None else 0.98 * avg + 0.02 * per_token
            if step % 50 == 0:
                now = time.time()
                rate, recent = audio_seconds / (now - t0), (audio_seconds - last_log[1]) / (now - last_log[0])
                last_log = (now, audio_seconds)
                rec = {"step": step, "loss_per_token": round(avg, 4), "ctc_per_token": round(float(ctc.detach().sum() / tokens), 4),
                       "lr": lr_at(step, args, time_share()), "grad_norm": round(float(gnorm), 3),
                       "audio_x": round(rate, 1), "audio_x_recent": round(recent, 1),  # since the call / last line
                       "minutes": round((now - t_start) / 60, 2)}
                if args.prune:
                    rec["outside_band"] = dropped
                if paired:
                    rec["consistency_per_token"] = round(float(disagreement), 4)
                if adversary is not None:
                    rec.update(speaker_ce=round(float(speaker_ce), 4), speaker_acc=round(float(speaker_acc), 4),
                               reversal=round(reversal, 4))
                print(json.dumps(rec), file=sys.stderr, flush=True)
                log.write(json.dumps(rec) + "\n")
            if args.snapshot_every and step % args.snapshot_every == 0:
                write_weights(os.path.join(args.out, "snapshots", f"step-{step}"), model.tf_weights(), step, cfg)
            if step % args.eval_every == 0:
                rec = {"step": step, "dev": evaluate(model, data, dev, args, device)}
                print(json.dumps(rec), file=sys.stderr, flush=True)
                log.write(json.dumps(rec) + "\n")
            if time.time() > deadline or step >= args.total_steps:
                done = True
                break
            if args.save_every and time.time() - saved > args.save_every * 60:
                save_state(state_path, model, opt, step, epoch, position, args, adversary, adversary_opt)
                saved = time.time()
        else:
            epoch, position = epoch + 1, 0
    rec = {"step": step, "final": True, "dev": evaluate(model, data, dev, args, device),
           "train_hours_seen": round(audio_seconds / 3600, 2)}
    print(json.dumps(rec), file=sys.stderr, flush=True)
    log.write(json.dumps(rec) + "\n")
    log.close()
    save_state(state_path, model, opt, step, epoch, position, args, adversary, adversary_opt)
    write_weights(args.out, model.tf_weights(), step, cfg)
    provenance = {"step": step, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
                  "train_hours": round(float(lengths[np.unique(train)].sum()) / 360000, 2),  # repeats once
                  "hours_seen_this_call": round(audio_seconds / 3600, 1),
                  "minutes_this_call": round((time.time() - t_start) / 60, 1),
                  "command": "train_torch.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    with open(os.path.join(args.out, "train.json"), "w", encoding="utf-8") as f:
        json.dump(provenance, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
