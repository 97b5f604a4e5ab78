"""Rollout throughput: the vLLM engine vs the transformers engine, side by side (issue 5).

The engines sample the same prompts (``arith`` training problems) with the same settings from
the same policy: vLLM, the transformers engine with its KV-cache sampler (``hf_sampler=kv``, the
default) and with ``model.generate`` (``hf_sampler=generate``). The script prints generated tokens per
second for each, the ratios to ``generate``, the vLLM
start time and the in-memory weight-sync time. A warm-up call precedes the timed calls, which
alternate between the engines (the median is kept) so that load from other processes hits both.
An untrained model rarely samples EOS, so its responses all run to ``--max-new-tokens``; a
warm-started one stops early at varied lengths, as RL rollouts do. The transformers engine's
``--batch-size`` matters a lot on small models (batch 1 is ~15x slower than 256 on ``tiny``).

    python scripts/bench_rollout.py                       # untrained tiny architecture
    python scripts/bench_rollout.py --model tiny --prompts 64 --n 8 --max-new-tokens 96 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.arith import plain_prompt, train_stream  # noqa: E402
from harness.hf_engine import HFEngine  # noqa: E402
from harness.models import TinySpec, build_tiny_model, build_tiny_tokenizer, load_model  # noqa: E402
from harness.rollout import SamplingParams  # noqa: E402

VLLM_MIN_HEAD_DIM = 32  # smallest head size of vLLM's CPU attention kernels


def random_tiny():
    """The tiny architecture with fresh weights (no warm start); heads widened to head_dim 32."""
    tok = build_tiny_tokenizer()
    spec = TinySpec()
    if spec.hidden_size // spec.num_heads < VLLM_MIN_HEAD_DIM:
        heads = max(1, spec.hidden_size // VLLM_MIN_HEAD_DIM)
        spec = dataclasses.replace(spec, num_heads=heads, num_kv_heads=max(1, heads // 2))
    return build_tiny_model(tok, spec), tok


def timed(engine, prompts, params) -> tuple[float, int]:
    """Seconds and generated tokens of one ``generate`` call."""
    t0 = time.perf_counter()
    gens = engine.generate(prompts, params)
    return time.perf_counter() - t0, sum(len(g.response_ids) for g in gens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="random-tiny",
                    help="random-tiny (untrained tiny architecture), tiny, or a model path/hub id")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=256, help="transformers engine rows per call")
    ap.add_argument("--kv-cache-gib", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for both engines (default: torch's for transformers, 1 for vLLM)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per engine (median kept)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from harness.vllm_engine import VLLMEngine

    model, tok = random_tiny() if args.model == "random-tiny" else load_model(args.model)
    model = model.float().eval()
    n_params = sum(p.numel() for p in model.parameters())
    prompts = [plain_prompt(p.problem) for p in itertools.islice(train_stream(seed=0), args.prompts)]
    params = SamplingParams(n=args.n, temperature=args.temperature,
                            max_new_tokens=args.max_new_tokens, seed=0)
    warm = dataclasses.replace(params, n=1, max_new_tokens=8)
    print(f"model {args.model} ({n_params / 1e6:.2f}M params, float32), {args.prompts} prompts x "
          f"n={args.n}, max_new_tokens={args.max_new_tokens}, T={args.temperature}, "
          f"threads: transformers {torch.get_num_threads()}, vllm {args.threads or 1}")

    t0 = time.perf_counter()
    vllm_engine = VLLMEngine(model, tok, kv_cache_gib=args.kv_cache_gib,
                             gen_threads=args.threads or 1)
    start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vllm_engine.sync_weights(model)
    sync_s = time.perf_counter() - t0
    engines = {"generate": HFEngine(model, tok, batch_size=args.batch_size, sampler="generate"),
               "kv": HFEngine(model, tok, batch_size=args.batch_size, sampler="kv"),
               "vllm": vllm_engine}
    runs: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        engine.generate(prompts[:4], warm)
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        for name, engine in engines.items():
            secs, tokens = timed(engine, prompts, params)
            runs[name].append(tokens / secs)
    rate = {name: statistics.median(r) for name, r in runs.items()}
    for name, r in runs.items():
        print(f"{name:>9}: {rate[name]:8.0f} tokens/s (median of {', '.join(f'{x:.0f}' for x in r)})")
    print(f"vllm / generate: {rate['vllm'] / rate['generate']:.2f}x, kv / generate: "
          f"{rate['kv'] / rate['generate']:.2f}x, vllm / kv: {rate['vllm'] / rate['kv']:.2f}x  "
          f"(vllm start {start_s:.1f} s, weight sync {sync_s * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
