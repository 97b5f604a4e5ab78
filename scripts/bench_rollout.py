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
    # the real model on arith_word chat prompts, with the share of the machine's matmul rate each engine reaches
    python scripts/bench_rollout.py --model smollm2-135m --prompts 8 --n 8 --max-new-tokens 48 --threads 2
    # rollouts in bfloat16 from the float32 policy (rollout.dtype): ENGINE:DTYPE (one vLLM engine per run)
    python scripts/bench_rollout.py --model smollm2-135m --engines kv,kv:bfloat16,vllm:bfloat16 --threads 2
    # GPU: a random ~100M-parameter Llama (hidden 768, 14 layers; the tiny character vocabulary),
    # plain generate vs static-cache generate vs the kv sampler
    python scripts/bench_rollout.py --model random:768x14 --device cuda --dtype bfloat16 \
        --engines generate,static,kv --prompts 32 --n 8 --max-new-tokens 256
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
from harness.engines import SamplingParams  # noqa: E402
from harness.engines.hf import HFEngine  # noqa: E402
from harness.models import TinySpec, build_tiny_model, build_tiny_tokenizer, load_model  # noqa: E402

VLLM_MIN_HEAD_DIM = 32  # smallest head size of vLLM's CPU attention kernels


def random_tiny():
    """The tiny architecture with fresh weights (no warm start); heads widened to head_dim 32."""
    tok = build_tiny_tokenizer()
    spec = TinySpec()
    if spec.hidden_size // spec.num_heads < VLLM_MIN_HEAD_DIM:
        heads = max(1, spec.hidden_size // VLLM_MIN_HEAD_DIM)
        spec = dataclasses.replace(spec, num_heads=heads, num_kv_heads=max(1, heads // 2))
    return build_tiny_model(tok, spec), tok


def random_llama(shape: str):
    """``random:HIDDENxLAYERS``: a random Llama with head size 64, GQA 4:1 and the tiny tokenizer."""
    try:
        hidden, layers = (int(x) for x in shape.split("x"))
    except ValueError:
        raise SystemExit(f"--model random:HIDDENxLAYERS, e.g. random:768x14 (got random:{shape})")
    if hidden % 256:
        raise SystemExit(f"random:{shape}: HIDDEN must be a multiple of 256")
    tok = build_tiny_tokenizer()
    heads = hidden // 64
    spec = TinySpec(hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=max(1, heads // 4),
                    intermediate_size=int(hidden * 8 / 3) // 64 * 64)
    return build_tiny_model(tok, spec), tok


def matmul_gflops(threads: int | None, size: int = 2048, repeats: int = 5, dtype=torch.float32) -> float:
    """The machine's own matrix-multiply rate (GFLOP/s, best of ``repeats``; float32 unless ``dtype``) on the
    benchmark's threads."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def task_prompts(tok, task: str, count: int) -> list[str]:
    """``arith`` plain prompts (the tiny model's task) or ``arith_word`` chat prompts (a real instruct model's)."""
    if task == "auto":
        task = "arith_word" if getattr(tok, "chat_template", None) else "arith"
    if task == "arith":
        return [plain_prompt(p.problem) for p in itertools.islice(train_stream(seed=0), count)]
    from benchmarks.arith_word import train_problems
    from benchmarks.spec import paper_prompt
    return [paper_prompt(p.problem, tok) for p in train_problems("bench-rollout", count)]


def timed(engine, prompts, params) -> tuple[float, int]:
    """Seconds and generated tokens of one ``generate`` call."""
    t0 = time.perf_counter()
    gens = engine.generate(prompts, params)
    return time.perf_counter() - t0, sum(len(g.response_ids) for g in gens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="random-tiny",
                    help="random-tiny (untrained tiny architecture), random:HIDDENxLAYERS, tiny, or a model path")
    ap.add_argument("--engines", default="generate,kv,vllm",
                    help="comma list of generate (model.generate), static (generate with a static KV cache), "
                         "kv (the KV-cache sampler), vllm, vllm-compile, each optionally :DTYPE (the engine samples "
                         "in that dtype from the --dtype model, as rollout.dtype does; at most one vllm engine); "
                         "the first one is the reference of the ratios")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (vllm follows its own platform)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--json", default=None, help="also write the rates to this file")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=256, help="transformers engine rows per call")
    ap.add_argument("--kv-cache-gib", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for both engines (default: torch's for transformers, 1 for vLLM)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per engine (median kept)")
    ap.add_argument("--task", default="auto", choices=["auto", "arith", "arith_word"],
                    help="prompts: arith (plain), arith_word (chat); auto: arith_word when the tokenizer has a "
                         "chat template")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    kinds = {name: name.partition(":")[0] for name in names}
    dtypes = {name: name.partition(":")[2] or None for name in names}
    unknown = [e for e in names if kinds[e] not in ("generate", "static", "kv", "vllm", "vllm-compile")
               or dtypes[e] not in (None, "float32", "bfloat16", "float16")]
    if unknown or not names:
        raise SystemExit(f"--engines: unknown {unknown}; allowed: generate, static, kv, vllm, vllm-compile, "
                         "each optionally :float32, :bfloat16 or :float16")
    if args.model == "random-tiny":
        model, tok = random_tiny()
    elif args.model.startswith("random:"):
        model, tok = random_llama(args.model.removeprefix("random:"))
    else:
        model, tok = load_model(args.model)
    model = model.to(device=args.device, dtype=getattr(torch, args.dtype)).eval()
    n_params = sum(p.numel() for p in model.parameters())
    prompts = task_prompts(tok, args.task, args.prompts)
    params = SamplingParams(n=args.n, temperature=args.temperature,
                            max_new_tokens=args.max_new_tokens, seed=0)
    warm = dataclasses.replace(params, n=1, max_new_tokens=8)
    print(f"model {args.model} ({n_params / 1e6:.2f}M params, {args.dtype}, {args.device}), {args.prompts} prompts x "
          f"n={args.n}, max_new_tokens={args.max_new_tokens}, T={args.temperature}, "
          f"threads: transformers {torch.get_num_threads()}, vllm {args.threads or torch.get_num_threads()}")

    makers = {
        "generate": lambda dtype: HFEngine(model, tok, batch_size=args.batch_size, sampler="generate", dtype=dtype),
        "static": lambda dtype: HFEngine(model, tok, batch_size=args.batch_size, sampler="generate",
                                         static_cache=True, dtype=dtype),
        "kv": lambda dtype: HFEngine(model, tok, batch_size=args.batch_size, sampler="kv", dtype=dtype),
    }
    engines = {}
    start_s = sync_s = None
    for name in names:
        if not kinds[name].startswith("vllm"):
            engines[name] = makers[kinds[name]](dtypes[name])
            continue
        from harness.engines.vllm import VLLMEngine

        t0 = time.perf_counter()
        engines[name] = VLLMEngine(model, tok, kv_cache_gib=args.kv_cache_gib, gen_threads=args.threads,
                                   dtype=dtypes[name],  # None: the model's
                                   enforce_eager=kinds[name] == "vllm")  # vllm-compile: vLLM compiles its model
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        engines[name].sync_weights(model)
        sync_s = time.perf_counter() - t0
    runs: dict[str, list[float]] = {name: [] for name in engines}
    low = sorted({d for d in dtypes.values() if d not in (None, "float32")})
    cpu = args.device == "cpu"
    matmul: dict[str, list[float]] = {d: [] for d in ("float32", *low)} if cpu else {}
    for engine in engines.values():
        engine.generate(prompts[:4], warm)
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        for name, engine in engines.items():
            secs, tokens = timed(engine, prompts, params)
            runs[name].append(tokens / secs)
        for d, rates in matmul.items():  # after every round; the best is kept (the machine's noise only slows)
            rates.append(matmul_gflops(args.threads, dtype=getattr(torch, d)))
    rate = {name: statistics.median(r) for name, r in runs.items()}
    best = {d: max(r) for d, r in matmul.items()}
    gflops = best.get("float32")
    for name, r in runs.items():
        share = f", {2 * n_params * rate[name] / 1e9 / gflops:.0%} of the matmul rate" if gflops else ""
        print(f"{name:>9}: {rate[name]:8.0f} tokens/s (median of {', '.join(f'{x:.0f}' for x in r)}){share}")
    for d, rates in matmul.items():
        shares = ", ".join(f"{name} at {2 * n_params * rate[name] / 1e9 / best[d]:.0%}"
                           for name in names if dtypes[name] == d)
        print(f"{d} 2048x2048 matmul: {best[d]:.0f} GFLOP/s (best of {', '.join(f'{x:.0f}' for x in rates)}, one "
              f"after each round)" + (f"; {shares} of it" if shares else ""))
    if gflops:
        print("decode counted as 2 x parameters FLOPs a token")
    ref = names[0]
    print(", ".join(f"{name} / {ref}: {rate[name] / rate[ref]:.2f}x" for name in names[1:]))
    vllm = next((name for name in names if kinds[name] == "vllm"), None)
    if "kv" in rate and vllm and ref != "kv":
        print(f"{vllm} / kv: {rate[vllm] / rate['kv']:.2f}x")
    if start_s is not None:
        print(f"vllm start {start_s:.1f} s, in-memory weight sync {sync_s * 1e3:.0f} ms")
    if args.json:
        import json
        Path(args.json).write_text(json.dumps({"args": vars(args), "params": n_params, "runs": runs,
                                               "tokens_per_s": rate, "matmul_gflops": gflops,
                                               "matmul_gflops_runs": matmul}, indent=2))


if __name__ == "__main__":
    main()
