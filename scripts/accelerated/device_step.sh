#!/usr/bin/env bash
# Training on a lent GPU machine (the `device` tool's `run`), from the repository root there.
#   bash scripts/accelerated/device_step.sh data                      # keep carried shards in /root/accel/data
#   bash scripts/accelerated/device_step.sh train NAME MINUTES TOTAL_STEPS [train_torch.py options]
#   bash scripts/accelerated/device_step.sh fetch NAME                # weights of run NAME into $OUT
# Shards stay in /root/accel/data and each run's state in /root/accel/state-NAME for the machine's later calls;
# a run's log goes to $OUT/NAME.log. runs/accel/init (weights from an earlier machine, carried with a data call) seeds a run with no state.
set -euo pipefail
case $1 in
data)
    mkdir -p /root/accel/data
    cp runs/accel/data/meta.json runs/accel/data/model.json /root/accel/data/
    for f in runs/accel/data/shard-*.npz.xz; do [ -e "$f" ] && cp --update=none "$f" /root/accel/data/; done
    [ -d runs/accel/init ] && mkdir -p /root/accel/init && cp runs/accel/init/* /root/accel/init/
    ls -l /root/accel/data
    nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader ;;
train)
    name=$2 minutes=$3 total=$4; shift 4
    init=()
    [ -d /root/accel/init ] && init=(--init /root/accel/init)
    PYTHONUNBUFFERED=1 python3 scripts/accelerated/train_torch.py --data /root/accel/data \
        --model-json /root/accel/data/model.json --state "/root/accel/state-$name" --out "/root/accel/out-$name" \
        "${init[@]}" --minutes "$minutes" --total-steps "$total" "$@" > "$OUT/$name.log" 2>&1 ;;
fetch)
    cp "/root/accel/out-$2"/weights-*.npz "/root/accel/out-$2"/*.json "$OUT/" ;;
*)
    echo "usage: device_step.sh data | train NAME MINUTES TOTAL_STEPS [options] | fetch NAME" >&2; exit 2 ;;
esac
