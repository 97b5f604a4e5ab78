#!/usr/bin/env bash
# Miniature reproduction on the real model (SmolLM2-135M-Instruct), second edition: GRPO, PRL (v1), FRPO (v2), RAFT++
# and RLOO, and v2's KL placements, with the corrected update; plus the single GRPO run of results/smollm2-135m.
# The protocol is results/mini-repro-smollm2/protocol.yaml, the same for every run; see the REPRODUCE.md there.
#
#   bash scripts/mini_repro_smollm2.sh          # both streams at once (one run each on a 2-core machine), then report
#   bash scripts/mini_repro_smollm2.sh main     # one stream: the main grid (5 algorithms x 2 seeds), then the GRPO run
#   bash scripts/mini_repro_smollm2.sh kl       # the other: the KL placements (5 rows x 2 seeds)
#   bash scripts/mini_repro_smollm2.sh report   # tables and plots only
#   bash scripts/mini_repro_smollm2.sh prune    # delete checkpoints, job files and logs (ends resuming: last step)
#
# Rerunning resumes: a sweep skips its finished runs and an interrupted run continues from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # two runs at once share a 2-core machine (one thread each)
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}  # GiB of KV cache per run (the default share of RAM: ~5)
OUT=${OUT:-results/mini-repro-smollm2}
SMOL=${SMOL:-results/smollm2-135m}
COMMON=(--config results/mini-repro-smollm2/protocol.yaml --results-dir "$OUT" --seeds 0,1 --no-report --quiet)

main_rows() {   # 5 algorithms x 2 seeds, one run after another (the first evaluates the base model); then the GRPO run
  python -m harness sweep --name main --grid algo.name=grpo,prl,frpo,raftpp,rloo "${COMMON[@]}"
  # one seed, no evaluation: a demonstration that the real-model path learns
  local resume=(); [ -f "$SMOL/rl-grpo-arith_word/run.json" ] && resume=(--resume)
  python -m harness run --algo grpo --model smollm2-135m --train-data arith_word --data.word_max_steps 1 \
      --bench arith_word --steps 14 --rollout.prompts_per_step 8 --rollout.n 8 --rollout.temperature 0.6 \
      --rollout.max_new_tokens 128 --rollout.dtype policy --train.lr 2e-5 --train.max_micro_batch_tokens 1024 \
      --train.save_every 2 --engine vllm --eval.before false --eval.after false --results-dir "$SMOL" \
      --name rl-grpo-arith_word --quiet "${resume[@]}"
  python -m harness sweep --status "$OUT/main"   # what finished, and where
  echo "single GRPO run: $SMOL/rl-grpo-arith_word (train/metrics.jsonl)"
}
kl_rows() {     # v2's KL placements, seed 0 of every row first, then seed 1
  local seeds
  for seeds in 0 0,1; do   # a sweep rerun with more seeds keeps its finished runs
    python -m harness sweep --name grpo-kl-loss --algo grpo --grid algo.kl_coef=0.001 --grid algo.kl_estimator=k3 \
        "${COMMON[@]}" --seeds $seeds
    python -m harness sweep --name grpo-kl-reward --algo grpo --grid algo.kl_reward_coef=0.01 \
        --grid algo.kl_reward_estimator=k1 "${COMMON[@]}" --seeds $seeds
    python -m harness sweep --name frpo-reverse-k3 --algo frpo --grid algo.kl_direction=reverse \
        --grid algo.kl_estimator=k3 "${COMMON[@]}" --seeds $seeds
    python -m harness sweep --name frpo-forward-k1 --algo frpo --grid algo.kl_direction=forward \
        --grid algo.kl_estimator=k1 "${COMMON[@]}" --seeds $seeds
    python -m harness sweep --name frpo-reverse-k3-baseline --algo frpo --grid algo.kl_direction=reverse \
        --grid algo.kl_estimator=k3 --grid algo.k3_baseline=batch "${COMMON[@]}" --seeds $seeds
  done
  for name in grpo-kl-loss grpo-kl-reward frpo-reverse-k3 frpo-forward-k1 frpo-reverse-k3-baseline; do
    python -m harness sweep --status "$OUT/$name"   # what finished, and where
  done
}
prune() {       # what is committed: no checkpoints, job files, locks or job logs
  find "$OUT" "$SMOL" -type d \( -name checkpoint -o -name submitit -o -name locks -o -name .locks -o -name logs \) \
      -prune -exec rm -rf {} +
}

case "${1:-all}" in
  main) main_rows ;;
  kl) kl_rows ;;
  report) bash scripts/mini_repro_smollm2_report.sh ;;
  prune) prune ;;
  all) main_rows & a=$!; kl_rows & b=$!; wait $a $b; bash scripts/mini_repro_smollm2_report.sh; prune ;;
  *) echo "usage: $0 [all|main|kl|report|prune] (got '$1')" >&2; exit 2 ;;
esac
