#!/usr/bin/env bash
# GPU checks of issues 5 and 7 in one go, for a lent CUDA machine (never CI). From the repo root:
#
#   bash scripts/gpu_check.sh            # writes $OUT (default /tmp/gpu-check): rollout.txt/json, run.txt
#
# 1. rollout tokens/s on a random ~100M-parameter Llama (hidden 768, 14 layers, bf16): plain
#    model.generate vs generate with a static KV cache vs the harness's kv sampler (issue 5's 5x target
#    is static-or-kv vs plain generate);
# 2. a short GRPO run of the tiny model in bf16 on the GPU, with base and final arith evaluation.
#
# Packages: torch, transformers and lightning must be there. Pure-Python ones a machine may lack
# (omegaconf, antlr4-python3-runtime, math-verify, latex2sympy2_extended) can come as wheels in .whl/,
# which this script installs to /tmp/site first, e.g. prepared on the CPU machine with
#   pip download --no-deps --only-binary=:all: -d .whl omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 \
#       math-verify==0.9.0 latex2sympy2_extended==1.11.0
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HARNESS_CACHE_DIR=${HARNESS_CACHE_DIR:-/tmp/hcache} WANDB_MODE=disabled
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 - <<'EOF'
import torch, transformers, lightning
assert torch.cuda.is_available(), "no CUDA device"
print("torch", torch.__version__, "transformers", transformers.__version__, "lightning", lightning.__version__,
      torch.cuda.get_device_name())
EOF
python3 scripts/bench_rollout.py --model random:768x14 --device cuda --dtype bfloat16 \
    --engines generate,static,kv --prompts 32 --n 8 --max-new-tokens 256 --batch-size 256 --repeats 3 \
    --json "$OUT/rollout.json" 2>&1 | tee "$OUT/rollout.txt"
python3 -m harness run --algo grpo --bench arith --steps 20 --results-dir "$OUT/runs" --overwrite \
    --trainer.accelerator gpu --trainer.precision bf16-true --model.dtype bfloat16 --log.progress false \
    2>&1 | tee "$OUT/run.txt"
python3 - "$OUT/runs/grpo-arith-s0" <<'EOF'
import json, statistics, sys
from pathlib import Path
run = Path(sys.argv[1])
rows = [json.loads(line) for line in (run / "train/metrics.jsonl").read_text().splitlines()]
med = lambda k: statistics.median(r[k] for r in rows[2:])
print(f"per RL step (median of steps 3-{len(rows)}): generate {med('time_generate_s'):.3f} s, "
      f"update {med('time_update_s'):.3f} s, {med('tokens_per_s'):.0f} generated tokens/s")
for part in ("eval_base", "eval"):
    d = json.loads((run / part / "arith" / "summary.json").read_text())
    print(f"{part}: avg@{d['n']} {d['avg@n']:.3f}, pass@{d['n']} {d['pass@k'][str(d['n'])]:.3f}, {d['time_s']:.1f} s")
EOF
