#!/usr/bin/env bash
# Miniature reproduction on the real model (SmolLM2-135M-Instruct): PRL vs GRPO, RAFT++ and RLOO, and PRL's eta,
# sized for a 2-core CPU machine (about 2 hours). The protocol is results/mini-repro-smollm2/protocol.yaml: the same for
# every run. See results/mini-repro-smollm2/REPRODUCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # two runs at once share a 2-core machine (vLLM samples on 1 thread)
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}  # GiB of KV cache per run (the default share of RAM: ~3)
OUT=${OUT:-results/mini-repro-smollm2}
COMMON=(--config results/mini-repro-smollm2/protocol.yaml --results-dir "$OUT" --launcher submitit-local --max-parallel 2)
python -m harness sweep --name main --grid algo.name=prl,grpo,raftpp,rloo --seeds 0,1 "${COMMON[@]}"
python -m harness sweep --name prl-eta --algo prl --grid algo.eta=10,1000 --seeds 0,1 "${COMMON[@]}"
# tables (+ plots); the eta ablation includes the main sweep's PRL runs (eta = 100, the default)
python -m harness table "$OUT/main" --baseline grpo --out "$OUT/report/main"
python -m harness table "$OUT/main" "$OUT/prl-eta" --baseline prl --out "$OUT/report/prl-eta"
find "$OUT" -type d \( -name checkpoint -o -name .submitit \) -prune -exec rm -rf {} +   # no checkpoints or job logs
