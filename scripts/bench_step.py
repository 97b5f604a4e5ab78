"""One RL step's peak memory and where its time goes, before and after chunked log-probs and token-budget
micro-batches, side by side in one run.

Each variant runs ``python -m harness run --steps 1`` in its own child process (no evaluation) and reports
the child's peak resident memory (``os.wait4``'s rusage; a watchdog stops a child past ``--rss-limit-gb``
so that a variant that does not fit cannot take the machine down) and the step's time split from
``train/metrics.jsonl``: generate, log-prob passes without grad (old policy / reference), the update's
forward (including the loss) and backward, the optimizer, the weight sync. Variants:

- ``before``: the previous defaults, one backward pass over up to ``micro_batch_size`` 64 rows and full
  ``[B, T, V]`` logits (``train.max_micro_batch_tokens=0 train.logit_chunk_tokens=0``);
- ``after``: the current defaults.

Every variant samples the same responses (same seed), so the rewards and losses agree.

    python scripts/bench_step.py --model /tmp/smollm2-plain --train-data arith_word --algos grpo,prl \
        --prompts 8 --n 8 --max-new-tokens 128
"""

from __future__ import annotations

import argparse
import json
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


def variant_overrides(variant: str) -> list[str]:
    """A named variant's overrides, or an ad-hoc one: ``name=section.key=value+section.key=value``."""
    if variant in VARIANTS:
        return VARIANTS[variant]
    name, _, rest = variant.partition("=")
    if not rest:
        raise SystemExit(f"unknown variant {variant!r}: {', '.join(VARIANTS)} or name=section.key=value+...")
    return rest.split("+")


def run_variant(args, algo: str, variant: str, out: Path) -> dict:
    """One ``harness run`` step in a child: ``{peak_rss_gb, time_*_s, status, ...}``."""
    label = variant.partition("=")[0]
    cmd = [sys.executable, "-m", "harness", "run", "--algo", algo, "--model", args.model, "--steps", "1",
           "--seed", str(args.seed), "--train-data", args.train_data, "--bench", args.train_data,
           "--results-dir", str(out), "--name", f"{algo}-{label}", "--overwrite",
           "eval.before=false", "eval.after=false", "log.progress=false", "train.save_every=0",
           f"rollout.prompts_per_step={args.prompts}", f"rollout.n={args.n}",
           f"rollout.max_new_tokens={args.max_new_tokens}", *args.override, *variant_overrides(variant)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
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
                   prompt_len=m.get("prompt_len", float("nan")), logp_passes=m.get("logp_passes", 0),
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


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """The machine's float32 matrix-multiply rate at ``threads`` threads (best of ``repeats``)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def add_floor(row: dict, params: int, gflops: float, rows: int) -> None:
    """The step's compute floor at the matmul rate: 2 x params FLOPs per generated token, 6 x params per trained
    (prompt + response) token, 2 x params per token for each no-grad log-prob pass; and step time / floor."""
    if row.get("status") != "ok":
        return
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
