"""``python -m harness eval``: evaluate a model (no training) on benchmarks with the paper's protocol.

Writes ``<results-dir>/<name>/run.json`` and ``<results-dir>/<name>/eval/<bench>/{samples.jsonl,
summary.json}`` (see ``harness/evaluate.py``). Every argument is checked, all benchmark data loaded
and the model loaded before anything is written, so bad input leaves nothing on disk.

    python -m harness eval --model tiny --bench arith --n 4
    python -m harness eval --model Qwen/Qwen2.5-Math-1.5B --bench all --n 8 --data-dir ../shared/benchmarks
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from common.errors import HarnessError

PAPER_MAX_NEW_TOKENS = 3072   # PRL eval/gen.py
TINY_MAX_NEW_TOKENS = 48      # the tiny model's arith solutions are ~30 characters

EPILOG = """examples:
  python -m harness eval --model tiny --bench arith --n 4
  python -m harness eval --model Qwen/Qwen2.5-Math-1.5B --bench all --data-dir ../shared/benchmarks
  python -m harness eval --model results/prl-s0/checkpoint/final --bench math500,aime24 --limit 50 --name prl-ckpt

--bench: 'all' (math500, minerva_math, olympiadbench), a name, or a comma list (see `harness ls`).
Output: results/<name>/eval/<bench>/samples.jsonl and summary.json (avg@n, pass@k for k = 1, 2, 4, ..., n, maj@n)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="evaluate a model on benchmarks (avg@n, pass@k, maj@n)",
                              description=__doc__.splitlines()[0], epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="'tiny', a local model directory, or a hub id")
    p.add_argument("--bench", default="all", help="'all', a benchmark name or a comma list (default all)")
    p.add_argument("--n", type=int, default=8, help="samples per problem (default 8, the paper's)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0; 0 = greedy)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1.0)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help=f"response length limit (default {PAPER_MAX_NEW_TOKENS}; {TINY_MAX_NEW_TOKENS} for tiny)")
    p.add_argument("--limit", type=int, default=None, help="only the first N problems of each benchmark")
    p.add_argument("--name", default=None, help="run name: <results-dir>/<name>/ (default from the model)")
    p.add_argument("--data-dir", default=None, help="folder with <bench>/test.jsonl (or set HARNESS_DATA_DIR)")
    p.add_argument("--engine", default="hf", help="rollout engine: hf (default) or vllm")
    p.add_argument("--hf-sampler", default="kv", choices=["kv", "generate"],
                   help="hf engine sampler: kv (KV-cache loop, default) or generate (model.generate)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="prompts per generation chunk (default 64)")
    p.add_argument("--dtype", default="auto", help="model dtype: auto, float32, bfloat16, float16")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--results-dir", default="results", help="results root (default results)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing <results-dir>/<name>")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def default_name(model: str) -> str:
    """``tiny`` -> ``eval-tiny``; ``Qwen/Qwen2.5-Math-1.5B`` or ``/x/y/final`` -> ``eval-<last part>``."""
    last = Path(model.rstrip("/")).name or "model"
    return "eval-" + re.sub(r"[^A-Za-z0-9._=,+-]", "_", last)[:100]


def _positive(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < 1:
        raise HarnessError(f"--{name} must be a positive integer (got {value})")


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmarks import get_benchmark, resolve_benchmarks
    from benchmarks.loader import resolve_data_dir
    from harness.evaluate import evaluate
    from harness.models import TINY, load_model
    from harness.results import atomic_write_json, prepare_run_dir
    from harness.engines import build_engine, check_engine
    from harness.rollout import SamplingParams

    # ---- validate everything, load data and model; nothing is written before this block ends
    benches = resolve_benchmarks(args.bench)
    _positive("n", args.n)
    _positive("limit", args.limit, allow_none=True)
    _positive("batch-size", args.batch_size)
    _positive("max-new-tokens", args.max_new_tokens, allow_none=True)
    max_new = args.max_new_tokens or (TINY_MAX_NEW_TOKENS if args.model == TINY else PAPER_MAX_NEW_TOKENS)
    SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=max_new,
                   seed=args.seed)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise HarnessError(f"--device must be cpu, cuda or cuda:N (got {args.device!r})")
    name = args.name or default_name(args.model)
    prepare_run_dir(args.results_dir, name, overwrite=args.overwrite, create=False)
    check_engine(args.engine)
    if args.data_dir is not None:
        resolve_data_dir(args.data_dir)   # an explicit --data-dir must exist even if unused (arith)
    problems = {b: get_benchmark(b).load(args.data_dir, limit=args.limit) for b in benches}
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=device)
    engine = build_engine(args.engine, model, tokenizer, seed=args.seed, sampler=args.hf_sampler)

    # ---- from here on we write
    run_dir = prepare_run_dir(args.results_dir, name, overwrite=args.overwrite)
    info = {"name": name, "algo": None, "label": name, "seed": args.seed, "status": "running",
            "benches": list(benches), "settings": {}, "model": args.model, "started": time.time()}
    atomic_write_json(run_dir / "run.json", info)
    summaries = evaluate(args.model, engine, tokenizer, benches, run_dir / "eval", n=args.n,
                         temperature=args.temperature, top_p=args.top_p, max_new_tokens=max_new,
                         limit=args.limit, seed=args.seed, data_dir=args.data_dir,
                         batch_size=args.batch_size, progress=not args.no_progress, problems=problems)
    atomic_write_json(run_dir / "run.json", dict(info, status="finished"))
    for b, s in summaries.items():
        ks = "  ".join(f"pass@{k} {v:.4f}" for k, v in s["pass@k"].items())
        print(f"{b:14s} avg@{s['n']} {s['avg@n']:.4f}  {ks}  maj@{s['n']} {s['maj@n']:.4f}  "
              f"({s['num_problems']} problems)")
    print(f"results: {run_dir}")
    return 0
