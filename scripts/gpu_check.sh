#!/usr/bin/env bash
# Checks for a lent CUDA machine (never CI), offline, with the packages installed there and this repository:
#
#   bash scripts/gpu_check.sh            # writes $OUT (default /tmp/gpu-check); a pass/fail table at the end
#
# scripts/gpu_checks.py lists them: CUDA, rollout speed of the hf samplers, each engine's sampling log-probs
# against the bf16 training forward (kv, generate, vLLM with its weight sync when vllm is importable), a short
# GRPO run on the GPU, and a few steps with FSDP at world size 1 and bf16-true.
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
python3 scripts/gpu_checks.py --out "$OUT"
