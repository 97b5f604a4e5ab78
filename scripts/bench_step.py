"""One RL step's peak memory, where its time goes and how far it is from its compute floor, for several
settings side by side in one run.

Each variant runs ``python -m harness run --steps 1`` in its own child process (no evaluation) and reports
the child's peak resident memory (``os.wait4``'s rusage, the same figure as ``/usr/bin/time -v``; a watchdog
stops a child past ``--rss-limit-gb`` so that a variant that does not fit cannot take the machine down) and
the step's time split from ``train/metrics.jsonl``: generate, log-prob passes without grad (old policy /
reference), the update's forward (including the loss) and backward, the optimizer, the weight sync.

The compute floor is the step's FLOPs at the machine's float32 matmul rate (a 2048 x 2048 matmul at the
same threads, measured before and after the runs; the higher is used): 2 x parameters per generated token,
6 x parameters per trained (prompt + response) token, 2 x parameters per token for each no-grad log-prob
pass (``logp_passes``). Prefill, attention and padding are not counted, so the floor is a lower bound.

Variants: ``before`` (one backward pass over up to 64 rows and full ``[B, T, V]`` logits), ``after`` (the
current defaults), or ad hoc, ``name[@CHECKOUT]=section.key=value+section.key=value``, where ``@CHECKOUT``
runs another checkout (an older commit's ``git worktree``; its metrics may lack ``prompt_len`` and
``logp_passes``, so its floor is left out). Every variant samples the same responses (same seed, same engine),
so the rewards and losses agree.

    python scripts/bench_step.py --model smollm2-135m --algos grpo,prl --prompts 8 --n 8 --max-new-tokens 128 \
        --variants "before@/tmp/old=rollout.engine=vllm,after,mb1024=train.max_micro_batch_tokens=1024" \
        --override rollout.temperature=0.6
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VARIANTS = {"before": ["train.max_micro_batch_tokens=0", "train.logit_chunk_tokens=0", "train.micro_batch_size=64"],
            "after": []}
PHASES = ("generate", "score", "logp", "forward", "backward", "optimizer", "sync")


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def parse_variant(variant: str) -> tuple[str, Path, list[str]]:
    """``(label, checkout, overrides)`` of a named variant or an ad-hoc one,
    ``name[@CHECKOUT]=section.key=value+section.key=value`` (``@CHECKOUT``: run another checkout of this
    repository, e.g. an older commit's git worktree, to compare its defaults side by side)."""
    head, _, rest = variant.partition("=")
    label, _, code = head.partition("@")
    if variant in VARIANTS:
        return variant, ROOT, VARIANTS[variant]
    if not rest and not code:
        raise SystemExit(f"unknown variant {variant!r}: {', '.join(VARIANTS)} or name[@CHECKOUT]=section.key=value+...")
    return label, Path(code).resolve() if code else ROOT, rest.split("+") if rest else []


def run_variant(args, algo: str, variant: str, out: Path) -> dict:
    """One ``harness run`` step in a child: ``{peak_rss_gb, time_*_s, status, ...}``."""
    label, code, overrides = parse_variant(variant)
    cmd = [sys.executable, "-m", "harness", "run", "--algo", algo, "--model", args.model, "--steps", "1",
           "--seed", str(args.seed), "--train-data", args.train_data, "--bench", args.train_data,
           "--results-dir", str(out), "--name", f"{algo}-{label}", "--overwrite",
           "eval.before=false", "eval.after=false", "log.progress=false", "train.save_every=0",
           f"rollout.prompts_per_step={args.prompts}", f"rollout.n={args.n}",
           f"rollout.max_new_tokens={args.max_new_tokens}", *args.override, *overrides]
    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    t0 = time.perf_counter()
    with open(out / f"{algo}-{label}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=out)
        killed = threading.Event()

        def watch():
            while proc.poll() is None:
                if _rss_kb(proc.pid) > args.rss_limit_gb * 2**20:
                    killed.set()
                    proc.kill()
                    return
                time.sleep(0.2)

        threading.Thread(target=watch, daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)
    row = {"algo": algo, "variant": label, "peak_rss_gb": usage.ru_maxrss / 2**20,
           "wall_s": time.perf_counter() - t0, "exit": os.waitstatus_to_exitcode(status)}
    metrics = out / f"{algo}-{label}" / "train" / "metrics.jsonl"
    if killed.is_set():
        row["status"] = f"stopped past {args.rss_limit_gb} GB"
    elif row["exit"] != 0 or not metrics.is_file():
        row["status"] = f"failed (exit {row['exit']}, see {out / (algo + '-' + label)}.log)"
    else:
        m = json.loads(metrics.read_text().splitlines()[0])
        row.update(status="ok", reward=m["reward_mean"], response_len=m["response_len"], pg_loss=m["pg_loss"],
                   prompt_len=m.get("prompt_len", float("nan")), logp_passes=m.get("logp_passes", float("nan")),
                   **{f"{p}_s": m.get(f"time_{p}_s", float("nan")) for p in PHASES},
                   update_s=m["time_update_s"])
        row["step_s"] = row["generate_s"] + row["score_s"] + row["update_s"]
    return row


def n_params(model: str) -> int:
    """Parameters of the model (tied weights once), counted on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from harness.models import builtin_model_path

    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(builtin_model_path(model) or model))
    return sum(p.numel() for p in net.parameters())


def matmul_gflops(threads: int) -> float:
    """The machine's float32 matrix-multiply rate at ``threads`` threads (``scripts/bench_rollout.py``'s)."""
    import torch

    from scripts.bench_rollout import matmul_gflops as rate

    torch.set_num_threads(threads)
    return rate(threads, repeats=10)


def add_floor(row: dict, params: int, gflops: float, rows: int) -> None:
    """The step's compute floor at the matmul rate: 2 x params FLOPs per generated token, 6 x params per trained
    (prompt + response) token, 2 x params per token for each no-grad log-prob pass; and step time / floor."""
    if row.get("status") != "ok" or not math.isfinite(row["prompt_len"] + row["logp_passes"]):
        return  # failed, or an older checkout that does not log prompt_len / logp_passes
    gen, trained = rows * row["response_len"], rows * (row["prompt_len"] + row["response_len"])
    flops = params * (2 * gen + 6 * trained + 2 * trained * row["logp_passes"])
    row.update(floor_s=flops / (gflops * 1e9), floor_generate_s=2 * params * gen / (gflops * 1e9))
    row.update(step_over_floor=row["step_s"] / row["floor_s"],
               generate_over_floor=row["generate_s"] / row["floor_generate_s"])


def table(rows: list[dict]) -> str:
    cols = ["peak_rss_gb", *(f"{p}_s" for p in PHASES), "update_s", "step_s", "floor_s", "step_over_floor",
            "generate_over_floor", "reward"]
    heads = [c.removesuffix("_s").replace("_over_", "/").replace("generate", "gen") for c in cols]
    lines = [f"{'algo':6s} {'variant':10s} " + " ".join(f"{c:>8s}" for c in heads) + "  status"]
    for r in rows:
        vals = [f"{r[c]:8.3g}" if isinstance(r.get(c), (int, float)) else f"{'-':>8s}" for c in cols]
        lines.append(f"{r['algo']:6s} {r['variant']:10s} " + " ".join(vals) + f"  {r['status']}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--train-data", default="arith_word")
    ap.add_argument("--algos", default="grpo,prl")
    ap.add_argument("--variants", default="before,after")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rss-limit-gb", type=float, default=14.0, help="stop a child past this resident memory")
    ap.add_argument("--override", action="append", default=[], help="another section.key=value, repeatable")
    ap.add_argument("--out", default=None, help="folder for the runs and bench_step.json (default: a temp dir)")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_step-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    params, rates, rows = n_params(args.model), [matmul_gflops(args.threads)], []
    for algo in args.algos.split(","):
        for variant in args.variants.split(","):
            rows.append(run_variant(args, algo, variant, out))
            print(f"{algo} {variant}: {rows[-1]['status']}", flush=True)
    rates.append(matmul_gflops(args.threads))
    gflops = max(rates)
    for row in rows:
        add_floor(row, params, gflops, args.prompts * args.n)
    (out / "bench_step.json").write_text(json.dumps({"args": vars(args), "params": params, "matmul_gflops": rates,
                                                     "rows": rows}, indent=1))
    print(f"\n{args.prompts} prompts x {args.n} responses x up to {args.max_new_tokens} tokens, {args.model} "
          f"({params / 1e6:.1f}M parameters), {args.threads} threads; float32 matmul "
          f"{' / '.join(f'{r:.0f}' for r in rates)} GFLOP/s before / after the runs (floor at the higher)\n"
          + table(rows) + f"\n\nwritten: {out / 'bench_step.json'}")


if __name__ == "__main__":
    main()
