#!/usr/bin/env bash
# Miniature reproduction on the real model (SmolLM2-135M-Instruct): PRL vs GRPO, RAFT++ and RLOO, and PRL's eta,
# sized for a 2-core CPU machine (about 2 hours). The protocol is results/mini-repro-smollm2/protocol.yaml: the same for
# every run. See results/mini-repro-smollm2/REPRODUCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # two runs at once share a 2-core machine (vLLM samples on 1 thread)
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}  # GiB of KV cache per run (the default share of RAM: ~3)
OUT=${OUT:-results/mini-repro-smollm2}
COMMON=(--config results/mini-repro-smollm2/protocol.yaml --results-dir "$OUT" --launcher submitit-local --max-parallel 2
        --no-report)   # the reports are the two tables below
python -m harness sweep --name main --grid algo.name=prl,grpo,raftpp,rloo --seeds 0,1 "${COMMON[@]}"
python -m harness sweep --name prl-eta --algo prl --grid algo.eta=10,1000 --seeds 0,1 "${COMMON[@]}"
# tables (+ plots); the eta ablation includes the main sweep's PRL runs (eta = 100, the default)
METRICS=(--metric avg@n,pass@2,pass@4,pass@8)   # pass@1 = avg@8 (unbiased, from the same 8 samples)
python -m harness table "$OUT/main" --baseline grpo "${METRICS[@]}" --out "$OUT/report/main"
python -m harness table "$OUT/main" "$OUT/prl-eta" --baseline prl "${METRICS[@]}" --out "$OUT/report/prl-eta"
# supplementary: T = 1.0 (the paper's evaluation temperature) on arith_word, base model and seed-0 policies
T1=(--bench arith_word --limit 32 --n 8 --temperature 1.0 --max-new-tokens 128 --engine vllm --seed 0 --quiet
    --results-dir "$OUT/t1" --overwrite)
python -m harness eval --model smollm2-135m --name base_s0 "${T1[@]}"
for algo in grpo prl raftpp rloo; do
  python -m harness eval --model "$OUT/main/runs/${algo}_s0/checkpoint/final" --name "${algo}_s0" "${T1[@]}"
done
# reports only: no checkpoints, job files, locks or job logs
find "$OUT" -type d \( -name checkpoint -o -name submitit -o -name locks -o -name logs \) -prune -exec rm -rf {} +
