#!/usr/bin/env bash
# Training on a lent GPU machine (the `device` tool's `run`), from the repository root there.
#   bash scripts/accelerated/device_step.sh data [DATA [INIT]]           # keep carried shards in /root/accel/data
#   bash scripts/accelerated/device_step.sh train NAME MINUTES TOTAL_STEPS [train_torch.py options]
#   bash scripts/accelerated/device_step.sh fetch NAME [K]               # weights of run NAME into $OUT/NAME
# DATA (default runs/accel/data) holds meta.json, model.json and the shards this call carries (pack_features.py's
# or repack_shards.py's); INIT (default runs/accel/init) weights to start from, as weights-*.npz or .npz.xz.
# Shards stay in /root/accel/data and each run's state in /root/accel/state-NAME for the machine's later calls;
# a run's log goes to $OUT/NAME.log. Options given to train override its --init and --model-json.
# fetch writes the end's weights in float16 to $OUT/NAME and, with K, the mean of the last K snapshots to
# $OUT/NAME-mean (a call returns 64 MB at most).
set -euo pipefail
case $1 in
data)
    src=${2:-runs/accel/data} init=${3:-runs/accel/init}
    mkdir -p /root/accel/data
    cp "$src/meta.json" "$src/model.json" /root/accel/data/
    for f in "$src"/shard-*.npz.xz; do
        if [ -e "$f" ] && [ ! -e "/root/accel/data/${f##*/}" ]; then cp "$f" /root/accel/data/; fi
    done
    if [ -d "$init" ]; then
        mkdir -p /root/accel/init && cp "$init"/* /root/accel/init/
        for f in /root/accel/init/*.npz.xz; do [ -e "$f" ] && xz -d -f "$f"; done
    fi
    ls -l /root/accel/data /root/accel/init 2>/dev/null || true
    if command -v nvidia-smi > /dev/null; then nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader; fi ;;
train)
    name=$2 minutes=$3 total=$4; shift 4
    init=()
    [ -d /root/accel/init ] && init=(--init /root/accel/init)
    PYTHONUNBUFFERED=1 python3 scripts/accelerated/train_torch.py --data /root/accel/data \
        --model-json /root/accel/data/model.json --state "/root/accel/state-$name" --out "/root/accel/out-$name" \
        "${init[@]}" --minutes "$minutes" --total-steps "$total" "$@" > "$OUT/$name.log" 2>&1 ;;
fetch)
    name=$2 out=/root/accel/out-$2
    python3 scripts/accelerated/average_weights.py "$out" -o "$OUT/$name" --float16
    cp "$out/train.json" "$OUT/$name/"  # its log is $OUT/NAME.log (a call returns 8 files at most)
    if [ -n "${3:-}" ]; then
        mapfile -t last < <(ls -d "$out"/snapshots/step-* | sort -t- -k2 -n | tail -n "$3")
        python3 scripts/accelerated/average_weights.py "${last[@]}" -o "$OUT/$name-mean" --float16
    fi ;;
*)
    echo "usage: device_step.sh data [DATA [INIT]] | train NAME MINUTES TOTAL_STEPS [options] | fetch NAME [K]" >&2
    exit 2 ;;
esac
