#!/usr/bin/env bash
# Tables and plots of results/mini-repro-smollm2 (second edition) and of results/smollm2-135m/rl-grpo-arith_word, from
# their run directories (scripts/mini_repro_smollm2.sh runs them); see results/mini-repro-smollm2/REPRODUCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/mini-repro-smollm2}
SMOL=${SMOL:-results/smollm2-135m}
METRICS=(--metric avg@n,pass@2,pass@4,pass@8,pass@16,bootstrap_pass@16)   # n = 16; pass@1 = avg@16
# the main grid: GRPO, PRL, FRPO, RAFT++ and RLOO against GRPO
python -m harness table "$OUT/main" --baseline grpo "${METRICS[@]}" --out "$OUT/report/main"
# v2's KL placements (Table 1 and Fig. 3 in miniature): GRPO and FRPO of the main grid with the five KL rows
KL=("$OUT"/main/runs/grpo_s* "$OUT"/main/runs/frpo_s* "$OUT"/grpo-kl-loss "$OUT"/grpo-kl-reward "$OUT"/frpo-reverse-k3
    "$OUT"/frpo-forward-k1 "$OUT"/frpo-reverse-k3-baseline)
python -m harness table "${KL[@]}" --baseline grpo "${METRICS[@]}" --out "$OUT/report/kl"
# v2's FRPO ablations as paired tests: direction and estimator against FRPO's default (reverse k1), and the k3
# baseline against reverse k3 without it
python -m harness table "$OUT"/main/runs/frpo_s* "$OUT"/frpo-reverse-k3 "$OUT"/frpo-forward-k1 --baseline frpo \
    "${METRICS[@]}" --out "$OUT/report/frpo-kl" --no-plots
python -m harness table "$OUT"/frpo-reverse-k3 "$OUT"/frpo-reverse-k3-baseline \
    --baseline "frpo kl_direction=reverse kl_estimator=k3" "${METRICS[@]}" --out "$OUT/report/frpo-k3-baseline" --no-plots
# the single GRPO run evaluates nothing: its training curves only
python -c "import json, sys; from pathlib import Path; from harness.report.plots import plot_training
from harness.report.runs import Run
d = Path(sys.argv[1]); i = json.loads((d / 'run.json').read_text())
print('wrote', plot_training([Run(d, i, {}, {}, i['algo'], i['seed'])], d / 'report' / 'training.png'))" \
    "$SMOL/rl-grpo-arith_word"
