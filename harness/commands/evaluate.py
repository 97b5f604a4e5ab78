"""``python -m harness eval``: evaluate a model (no training) on benchmarks with the paper's protocol.

Writes ``<results-dir>/<name>/run.json`` and ``<results-dir>/<name>/eval/<bench>/{samples.jsonl,
summary.json}`` (see ``harness/eval/evaluate.py``). Every argument is checked, all benchmark data loaded
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
from pathlib import Path

from common.errors import HarnessError
from harness.commands.run import parse_overrides
from harness.config import EvalConfig, RunConfig, build_config
from harness.progress import add_verbosity_flags
from harness.results import atomic_write_json, prepare_run_dir, read_run_info, refuse_changed, run_info

PAPER_MAX_NEW_TOKENS = 3072   # PRL eval/gen.py
TINY_MAX_NEW_TOKENS = 48      # the tiny model's arith solutions are ~30 characters

EPILOG = """examples:
  python -m harness eval --model tiny --bench arith --n 4
  python -m harness eval --model Qwen/Qwen2.5-Math-1.5B --bench all --data-dir ../shared/benchmarks
  python -m harness eval --model results/prl-s0/checkpoint/final --bench math500,aime24 --limit 50 --name prl-ckpt

--bench: 'all' (math500, minerva_math, olympiadbench), a name, or a comma list (see `harness ls`).
Output: results/<name>/eval/<bench>/samples.jsonl and summary.json (avg@n, pass@k for k = 1, 2, 4, ..., n, maj@n)."""


# flags -> config keys: `eval` builds a RunConfig through the same path as `run` (harness.config.build_config), so
# its defaults and limits are EvalConfig's; --section.key VALUE sets any other key of these sections
FLAGS = {"model": "model.name", "bench": "data.bench", "n": "eval.n", "temperature": "eval.temperature",
         "top_p": "eval.top_p", "max_new_tokens": "eval.max_new_tokens", "limit": "eval.limit", "name": "name",
         "data_dir": "data.data_dir", "engine": "rollout.engine", "hf_sampler": "rollout.hf_sampler", "seed": "seed",
         "batch_size": "eval.batch_size", "max_batch_tokens": "eval.max_batch_tokens", "too_long": "eval.too_long",
         "dtype": "model.dtype", "rollout_dtype": "rollout.dtype", "results_dir": "results_dir"}
SECTIONS = ("model.", "data.bench", "data.data_dir", "rollout.", "eval.")   # what an evaluation reads


def add_parser(subparsers) -> argparse.ArgumentParser:
    E = EvalConfig  # the defaults the help shows are the config's own
    p = subparsers.add_parser("eval", help="evaluate a model on benchmarks (avg@n, pass@k, maj@n)",
                              description=__doc__.splitlines()[0], epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="a built-in model (tiny, smollm2-135m), a local model directory, or a hub id")
    p.add_argument("--bench", default="all", help="'all', a benchmark name or a comma list (default all)")
    p.add_argument("--n", type=int, help=f"samples per problem (eval.n; default {E.n}, the paper's)")
    p.add_argument("--temperature", type=float,
                   help=f"sampling temperature (eval.temperature; default {E.temperature}; 0 = greedy)")
    p.add_argument("--top-p", type=float, help=f"nucleus sampling (eval.top_p; default {E.top_p})")
    p.add_argument("--max-new-tokens", type=int,
                   help=f"response length limit (default {PAPER_MAX_NEW_TOKENS}; {TINY_MAX_NEW_TOKENS} for tiny)")
    p.add_argument("--limit", type=int, help="only the first N problems of each benchmark (eval.limit)")
    p.add_argument("--name", help="run name: <results-dir>/<name>/ (default from the model and settings)")
    p.add_argument("--data-dir", help="folder with <bench>/test.jsonl (or set HARNESS_DATA_DIR)")
    p.add_argument("--engine", help="rollout engine: auto (default: vllm when installed, for models "
                   "of 10M+ parameters, else hf), hf or vllm")
    p.add_argument("--hf-sampler", choices=["kv", "generate"],
                   help="hf engine sampler: kv (KV-cache loop, default) or generate (model.generate)")
    p.add_argument("--seed", type=int, help="sampling seed (default 0)")
    p.add_argument("--batch-size", type=int,
                   help=f"most prompts per generation chunk (eval.batch_size; default {E.batch_size})")
    p.add_argument("--max-batch-tokens", type=int,
                   help="prompts x n x (longest prompt + max new tokens) per chunk: bounds memory "
                        f"(eval.max_batch_tokens; default {E.max_batch_tokens})")
    p.add_argument("--too-long", choices=["skip", "truncate"],
                   help="prompts longer than the context minus max new tokens: skip (default; counted as "
                        "skipped_too_long in summary.json) or truncate (keep their last tokens)")
    p.add_argument("--dtype", help="precision the model is loaded in: auto (its own), float32, bfloat16, float16")
    p.add_argument("--rollout-dtype", help="precision sampling computes in, as in `run` (rollout.dtype): auto "
                   "(default: bfloat16 for float32 models of 10M+ parameters on hardware with native bfloat16, "
                   "else the model's), policy, float32, bfloat16, float16")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--results-dir", help="results root (default results)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing <results-dir>/<name>")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted evaluation in <results-dir>/<name> (same settings)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbosity_flags(p)
    p.set_defaults(func=run, accepts_overrides=True)
    return p


def eval_config(args: argparse.Namespace) -> tuple[RunConfig, dict]:
    """The evaluation's RunConfig, built like `run`'s, and the overrides beyond the named flags (they change the
    samples, so they join the settings). A bad value is reported under its flag's name."""
    from harness.models import TINY  # lazy: harness.models imports torch (see harness/commands/__init__.py)

    extra = dict(o.split("=", 1) for o in parse_overrides(args.overrides_raw))
    stray = [k for k in extra if not k.startswith(SECTIONS)]
    if stray:
        raise HarnessError(f"harness eval does not read {', '.join(stray)} (it takes --model.*, --data.bench, "
                           "--data.data_dir, --rollout.*, --eval.* besides its flags)")
    given = {key: getattr(args, flag) for flag, key in FLAGS.items() if getattr(args, flag, None) is not None}
    if "eval.max_new_tokens" not in given and "eval.max_new_tokens" not in extra:
        given["eval.max_new_tokens"] = TINY_MAX_NEW_TOKENS if args.model == TINY else PAPER_MAX_NEW_TOKENS
    if "rollout.max_batch_tokens" not in extra:   # the engine's own budget: the evaluation's
        given["rollout.max_batch_tokens"] = given.get("eval.max_batch_tokens", EvalConfig.max_batch_tokens)
    if args.no_progress or args.quiet:
        given["log.progress"] = False
    overrides = [f"{k}={v}" if v != "" else f"{k}=''" for k, v in given.items()]
    overrides += [f"{k}={v}" for k, v in extra.items()]
    try:
        cfg = build_config({}, overrides, need_algo=False)
    except HarnessError as err:
        msg = str(err)
        for flag, key in FLAGS.items():
            msg = msg.replace(f"{key} must", f"--{flag.replace('_', '-')} must")
        raise HarnessError(msg) from None
    return cfg, extra


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


def eval_settings(cfg: RunConfig, benches, extra: dict) -> dict:
    """Everything that changes the samples (the default name's hash; ``--resume`` checks it)."""
    model = cfg.model.name
    if Path(model).exists():
        model = str(Path(model).resolve())
    e, r = cfg.eval, cfg.rollout
    settings = {"model": model, "benches": list(benches), "n": e.n, "temperature": e.temperature, "top_p": e.top_p,
                "max_new_tokens": e.max_new_tokens, "limit": e.limit or None, "seed": cfg.seed, "engine": r.engine,
                "hf_sampler": r.hf_sampler, "batch_size": e.batch_size, "max_batch_tokens": e.max_batch_tokens,
                "too_long": e.too_long, "dtype": cfg.model.dtype}
    if r.dtype != "auto":   # keys added after the first release join only when set (older names stay valid)
        settings["rollout_dtype"] = r.dtype
    return {**settings, **extra}


def default_name(model: str, settings: dict | None = None) -> str:
    """``eval-<model label>-<6 hex of the settings' hash>`` (see :func:`model_label`)."""
    digest = hashlib.sha256(json.dumps(settings or {"model": model}, sort_keys=True).encode()).hexdigest()
    return f"eval-{model_label(model)}-{digest[:6]}"


def _resumed(run_dir: Path, settings: dict) -> dict:
    """The run.json of the evaluation ``--resume`` continues; refused unless it was started with ``settings``."""
    old = read_run_info(run_dir)
    if "eval_settings" not in old:
        raise HarnessError(f"cannot resume {run_dir}: it has no run.json from `harness eval` "
                           "(use --overwrite to start over)")
    refuse_changed(run_dir, "its settings differ", {k: old["eval_settings"].get(k) for k in settings}, settings,
                   show=4)
    return old


def run(args: argparse.Namespace) -> int:
    """Validate everything and load, then write: one function so the line between the two stays visible."""
    import torch

    from benchmarks import resolve_benchmarks
    from benchmarks.loader import resolve_data_dir
    from harness.engines import LazyEngine, check_engine, choose_engine
    from harness.eval.evaluate import evaluate, load_problems
    from harness.models import load_model

    # ---- validate everything, load data and model; nothing is written before this block ends
    if args.resume and args.overwrite:
        raise HarnessError("--resume and --overwrite exclude each other")
    cfg, extra = eval_config(args)
    benches = resolve_benchmarks(cfg.data.bench)
    cfg.eval.limits(benches)   # a bench_limit for a benchmark not evaluated is a typo
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise HarnessError(f"--device must be cpu, cuda or cuda:N (got {args.device!r})")
    settings = eval_settings(cfg, benches, extra)
    name = cfg.name or default_name(cfg.model.name, settings)
    run_dir = prepare_run_dir(cfg.results_dir, name, overwrite=args.overwrite, resume=args.resume, create=False)
    old = _resumed(run_dir, settings) if args.resume else {}
    check_engine(cfg.rollout.engine)
    if cfg.data.data_dir is not None:
        resolve_data_dir(cfg.data.data_dir)   # an explicit --data-dir must exist even if unused (arith)
    problems = load_problems(cfg, benches)
    model, tokenizer = load_model(cfg.model.name, dtype=cfg.model.dtype, device=device,
                                  trust_remote_code=cfg.model.trust_remote_code)
    engine_name = choose_engine(cfg.rollout.engine, model)
    if old.get("engine", engine_name) != engine_name:  # e.g. auto, with vllm installed since
        raise HarnessError(f"cannot resume {run_dir}: it was sampled with the {old['engine']} engine and "
                           f"--engine {cfg.rollout.engine} now picks {engine_name}; pass --engine {old['engine']} "
                           "or use --overwrite")
    engine = LazyEngine.from_config(cfg, tokenizer).start(model)   # as a run's rollouts and evaluations

    # ---- from here on we write
    run_dir = prepare_run_dir(cfg.results_dir, name, overwrite=args.overwrite, resume=args.resume)
    info = run_info(name, algo=None, label=name, seed=cfg.seed, benches=benches, settings={}, old=old,
                    resume={} if args.resume else None, model=cfg.model.name, eval_settings=settings,
                    engine=engine_name)
    atomic_write_json(run_dir / "run.json", info)
    try:
        summaries = evaluate(engine, tokenizer, problems, run_dir / "eval", cfg, resume=args.resume)
    finally:
        engine.close()
    atomic_write_json(run_dir / "run.json", dict(info, status="finished"))
    _print_summaries(summaries)
    print(f"results: {run_dir}")
    return 0


def _print_summaries(summaries: dict[str, dict]) -> None:
    for b, s in summaries.items():
        ks = "  ".join(f"pass@{k} {v:.4f}" for k, v in s["pass@k"].items())
        skipped = s["skipped_too_long"]["count"]
        note = f", {skipped} too long skipped" if skipped else ""
        note += f", {s['truncated_too_long']['count']} truncated" if s["truncated_too_long"]["count"] else ""
        print(f"{b:14s} avg@{s['n']} {s['avg@n']:.4f}  {ks}  maj@{s['n']} {s['maj@n']:.4f}  "
              f"({s['num_problems']} problems{note})")
