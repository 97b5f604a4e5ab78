#!/usr/bin/env bash
# Miniature reproduction of the paper's comparison on CPU (tiny warm-started model, arith).
# Same budget for every method: 100 RL steps x 16 prompts x 8 responses, lr 5e-4, max 48 new tokens;
# evaluation on the arith test split (200 problems) with n = 8 at temperature 1.0. See results/mini-repro/REPRODUCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # two sweeps share a 2-core machine
OUT=${OUT:-results/mini-repro}
COMMON=(--bench arith --steps 100 --results-dir "$OUT" --rollout.prompts_per_step 16 --rollout.n 8
        --train.lr 5e-4 --eval.n 8 --in-process)
python -m harness sweep --name main --grid algo.name=prl,grpo,raftpp,rloo --seeds 0,1,2 "${COMMON[@]}" &
( python -m harness sweep --name prl-eta --algo prl --grid algo.eta=10,1000 --seeds 0,1,2 "${COMMON[@]}"
  python -m harness sweep --name prl-step_len --algo prl --grid algo.step_len=1,8 --seeds 0,1,2 "${COMMON[@]}"
  python -m harness sweep --name entropy --grid algo.name=prl,grpo --grid algo.entropy_coef=0.01 --seeds 0,1,2 "${COMMON[@]}" ) &
wait
python -m harness sweep --name extra --grid algo.name=raft,reinforce --seeds 0 "${COMMON[@]}"
# tables (+ plots): the ablations include the main sweep's runs (eta=100, step_len=64, entropy_coef=0 are the defaults)
python -m harness table "$OUT/main" --baseline grpo --out "$OUT/report/main"
python -m harness table "$OUT/main" "$OUT/prl-eta" "$OUT/prl-step_len" --baseline prl --out "$OUT/report/prl-ablation"
python -m harness table "$OUT/main" "$OUT/entropy" --baseline grpo --out "$OUT/report/entropy"
find "$OUT" -type d -name checkpoint -prune -exec rm -rf {} +   # reports only, no checkpoints
