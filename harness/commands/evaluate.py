"""``python -m harness eval``: evaluate a model (no training) on benchmarks with the paper's protocol.

Writes ``<results-dir>/<name>/run.json`` and ``<results-dir>/<name>/eval/<bench>/{samples.jsonl,
summary.json}`` (see ``harness/evaluate.py``). Every argument is checked, all benchmark data loaded
and the model loaded before anything is written, so bad input leaves nothing on disk.

The default name is ``eval-<model>-<hash>``: the model path's last meaningful part (``checkpoint``,
``final`` and the like are skipped: ``results/prl-s0/checkpoint/final`` -> ``prl-s0``) and a short hash
of the model and every setting that changes the samples, so different evaluations get different
folders and the same command finds its own folder again: ``--resume`` continues an interrupted
evaluation there (complete problems are kept, not sampled again).

    python -m harness eval --model tiny --bench arith --n 4
    python -m harness eval --model Qwen/Qwen2.5-Math-1.5B --bench all --n 8 --data-dir ../shared/benchmarks
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from pathlib import Path

from common.errors import HarnessError
from harness.progress import add_verbosity_flags

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
    p.add_argument("--model", required=True,
                   help="a built-in model (tiny, smollm2-135m), a local model directory, or a hub id")
    p.add_argument("--bench", default="all", help="'all', a benchmark name or a comma list (default all)")
    p.add_argument("--n", type=int, default=8, help="samples per problem (default 8, the paper's)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0; 0 = greedy)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1.0)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help=f"response length limit (default {PAPER_MAX_NEW_TOKENS}; {TINY_MAX_NEW_TOKENS} for tiny)")
    p.add_argument("--limit", type=int, default=None, help="only the first N problems of each benchmark")
    p.add_argument("--name", default=None, help="run name: <results-dir>/<name>/ (default from the model)")
    p.add_argument("--data-dir", default=None, help="folder with <bench>/test.jsonl (or set HARNESS_DATA_DIR)")
    p.add_argument("--engine", default="auto", help="rollout engine: auto (default: vllm when installed, for models "
                   "of 10M+ parameters, else hf), hf or vllm")
    p.add_argument("--hf-sampler", default="kv", choices=["kv", "generate"],
                   help="hf engine sampler: kv (KV-cache loop, default) or generate (model.generate)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="most prompts per generation chunk (default 64)")
    p.add_argument("--max-batch-tokens", type=int, default=32768,
                   help="prompts x n x (longest prompt + max new tokens) per chunk: bounds memory (default 32768)")
    p.add_argument("--too-long", default="skip", choices=["skip", "truncate"],
                   help="prompts longer than the context minus max new tokens: skip (default; counted as "
                        "skipped_too_long in summary.json) or truncate (keep their last tokens)")
    p.add_argument("--dtype", default="auto", help="model dtype: auto, float32, bfloat16, float16")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--results-dir", default="results", help="results root (default results)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing <results-dir>/<name>")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted evaluation in <results-dir>/<name> (same settings)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbosity_flags(p)
    p.set_defaults(func=run)
    return p


# path parts that say nothing about which model it is
_GENERIC = {"checkpoint", "checkpoints", "final", "last", "best", "model", "models", "hf", "huggingface",
            "weights", "snapshots", "main", "results", "runs", "output", "outputs", "."}
_STEP_DIR = re.compile(r"^(checkpoint|ckpt|step|global_step|iter)[-_]?\d+$", re.I)


def model_label(model: str) -> str:
    """The model path's last meaningful part: ``results/prl-s0/checkpoint/final`` -> ``prl-s0``,
    ``Qwen/Qwen2.5-Math-1.5B`` -> ``Qwen2.5-Math-1.5B``, ``out/run3/checkpoint-500`` -> ``run3-checkpoint-500``."""
    parts = [p for p in Path(model.rstrip("/")).parts if p not in ("/", "")]
    while len(parts) > 1 and parts[-1].lower() in _GENERIC:
        parts.pop()
    label = parts[-1] if parts else "model"
    if _STEP_DIR.match(label) and len(parts) > 1 and parts[-2].lower() not in _GENERIC:
        label = f"{parts[-2]}-{label}"
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", label).lstrip("._-+=,")[:80] or "model"


def eval_settings(args: argparse.Namespace, benches, max_new: int) -> dict:
    """Everything that changes the samples (the default name's hash; ``--resume`` checks it)."""
    model = args.model
    if Path(model).exists():
        model = str(Path(model).resolve())
    return {"model": model, "benches": list(benches), "n": args.n, "temperature": args.temperature,
            "top_p": args.top_p, "max_new_tokens": max_new, "limit": args.limit, "seed": args.seed,
            "engine": args.engine, "hf_sampler": args.hf_sampler, "batch_size": args.batch_size,
            "max_batch_tokens": args.max_batch_tokens, "too_long": args.too_long, "dtype": args.dtype}


def default_name(model: str, settings: dict | None = None) -> str:
    """``eval-<model label>-<6 hex of the settings' hash>`` (see :func:`model_label`)."""
    digest = hashlib.sha256(json.dumps(settings or {"model": model}, sort_keys=True).encode()).hexdigest()
    return f"eval-{model_label(model)}-{digest[:6]}"


def _check_resume(run_dir: Path, settings: dict) -> dict:
    """An interrupted evaluation continues only with the settings it was started with; returns its run.json."""
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    old = info.get("eval_settings")
    if old is None:
        raise HarnessError(f"cannot resume {run_dir}: it has no run.json from `harness eval` "
                           "(use --overwrite to start over)")
    diff = [f"{k} ({old.get(k)!r} -> {v!r})" for k, v in settings.items() if old.get(k) != v]
    if diff:
        raise HarnessError(f"cannot resume {run_dir}: its settings differ in {', '.join(diff[:4])}; "
                           "resume with the same settings or use --overwrite")
    return info


def _positive(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < 1:
        raise HarnessError(f"--{name} must be a positive integer (got {value})")


def run(args: argparse.Namespace) -> int:
    """Validate everything and load, then write: one function so the line between the two stays visible."""
    import torch

    from benchmarks import get_benchmark, resolve_benchmarks
    from benchmarks.loader import resolve_data_dir
    from harness.evaluate import evaluate
    from harness.models import TINY, load_model
    from harness.results import atomic_write_json, prepare_run_dir
    from harness.engines import SamplingParams, build_engine, check_engine, choose_engine

    # ---- validate everything, load data and model; nothing is written before this block ends
    benches = resolve_benchmarks(args.bench)
    _positive("n", args.n)
    _positive("limit", args.limit, allow_none=True)
    _positive("batch-size", args.batch_size)
    _positive("max-batch-tokens", args.max_batch_tokens)
    if args.resume and args.overwrite:
        raise HarnessError("--resume and --overwrite exclude each other")
    _positive("max-new-tokens", args.max_new_tokens, allow_none=True)
    max_new = args.max_new_tokens or (TINY_MAX_NEW_TOKENS if args.model == TINY else PAPER_MAX_NEW_TOKENS)
    SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=max_new,
                   seed=args.seed)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise HarnessError(f"--device must be cpu, cuda or cuda:N (got {args.device!r})")
    settings = eval_settings(args, benches, max_new)
    name = args.name or default_name(args.model, settings)
    run_dir = prepare_run_dir(args.results_dir, name, overwrite=args.overwrite, resume=args.resume, create=False)
    old = _check_resume(run_dir, settings) if args.resume else {}
    check_engine(args.engine)
    if args.data_dir is not None:
        resolve_data_dir(args.data_dir)   # an explicit --data-dir must exist even if unused (arith)
    problems = {b: get_benchmark(b).load(args.data_dir, limit=args.limit) for b in benches}
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=device)
    engine_name = choose_engine(args.engine, model)
    if old.get("engine", engine_name) != engine_name:  # e.g. auto, with vllm installed since
        raise HarnessError(f"cannot resume {run_dir}: it was sampled with the {old['engine']} engine and "
                           f"--engine {args.engine} now picks {engine_name}; pass --engine {old['engine']} "
                           "or use --overwrite")
    engine = build_engine(engine_name, model, tokenizer, seed=args.seed, sampler=args.hf_sampler,
                          max_batch_tokens=args.max_batch_tokens)

    # ---- from here on we write
    run_dir = prepare_run_dir(args.results_dir, name, overwrite=args.overwrite, resume=args.resume)
    info = {"name": name, "algo": None, "label": name, "seed": args.seed, "status": "running",
            "benches": list(benches), "settings": {}, "model": args.model, "eval_settings": settings,
            "engine": engine_name, "started": old.get("started", time.time())}
    if args.resume:
        info["resumes"] = old.get("resumes", []) + [{"time": time.time()}]
    atomic_write_json(run_dir / "run.json", info)
    summaries = evaluate(args.model, engine, tokenizer, benches, run_dir / "eval", n=args.n,
                         temperature=args.temperature, top_p=args.top_p, max_new_tokens=max_new,
                         limit=args.limit, seed=args.seed, data_dir=args.data_dir,
                         batch_size=args.batch_size, progress=not (args.no_progress or args.quiet),
                         problems=problems, resume=args.resume, max_batch_tokens=args.max_batch_tokens,
                         too_long=args.too_long)
    atomic_write_json(run_dir / "run.json", dict(info, status="finished"))
    for b, s in summaries.items():
        ks = "  ".join(f"pass@{k} {v:.4f}" for k, v in s["pass@k"].items())
        skipped = s["skipped_too_long"]["count"]
        note = f", {skipped} too long skipped" if skipped else ""
        note += f", {s['truncated_too_long']['count']} truncated" if s["truncated_too_long"]["count"] else ""
        print(f"{b:14s} avg@{s['n']} {s['avg@n']:.4f}  {ks}  maj@{s['n']} {s['maj@n']:.4f}  "
              f"({s['num_problems']} problems{note})")
    print(f"results: {run_dir}")
    return 0
