#!/usr/bin/env bash
# Rollout/training mismatch on the real model (SmolLM2-135M-Instruct), sized for a 2-core CPU machine (about 75 min):
# 1. the engines' mismatch and the cost of sampling log-probs (scripts/bench_mismatch.py);
# 2. three short GRPO runs at T = 0.6 (results/mismatch-smollm2/protocol.yaml): bfloat16 sampling with
#    train.rollout_correction tis, the same with none, and float32 sampling; then their training curves.
# See results/mismatch-smollm2/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/mismatch-smollm2}
python scripts/bench_mismatch.py --model smollm2-135m --threads 2 --out "$OUT/mismatch.json"
COMMON=(--config "$OUT/protocol.yaml" --results-dir "$OUT" --no-report --quiet)
python -m harness sweep --name bf16 --grid train.rollout_correction=tis,none --rollout.dtype bfloat16 "${COMMON[@]}"
python -m harness sweep --name fp32 --rollout.dtype policy --train.rollout_correction none "${COMMON[@]}"
python scripts/bench_mismatch.py --curves "$OUT/bf16" "$OUT/fp32" --out "$OUT/curves"
find "$OUT" -type d \( -name checkpoint -o -name submitit -o -name locks -o -name logs \) -prune -exec rm -rf {} +
