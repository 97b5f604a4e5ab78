"""Rollout/training mismatch of the engines, and what the sampling log-probs cost, side by side in one run.

For each engine (``kv``: the hf engine's kv sampler; ``vllm``), sampling precision (``float32``, ``bfloat16``) and
temperature, the engine samples ``--prompts`` x ``--n`` responses with its per-token log-probs; the float32 policy
then scores the same tokens as training does (``token_logp_entropy`` at the same temperature, chunked as the loop
chunks) and :func:`algorithms.correction.mismatch_metrics` compares the two: ``mismatch_kl`` (k3 estimate of
KL(rollout || training)), ``mismatch_logp_abs_max`` and the fraction of tokens whose ratio lies outside [1/C, C].
Then each engine times ``--repeats`` generate calls with and without log-probs, alternating, at temperature 1.0
(medians; the overhead is their ratio). One JSON with every row is written to ``--out``.

    python scripts/bench_mismatch.py --model smollm2-135m --threads 2 --out results/mismatch-smollm2/mismatch.json
    python scripts/bench_mismatch.py --model tiny --engines kv:float32,kv:bfloat16 --prompts 8   # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from bench_rollout import task_prompts  # noqa: E402

from algorithms.correction import mismatch_metrics  # noqa: E402
from harness.engines import SamplingParams, build_engine  # noqa: E402
from harness.models import load_model  # noqa: E402
from harness.train.batching import auto_logit_chunk, collate, sampling_logp  # noqa: E402
from harness.train.logprobs import token_logp_entropy  # noqa: E402


def training_logp(model, tok, gens, temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(training log-probs, engine log-probs, mask)`` ``[B, T]`` of the generations, row block by row block."""
    ids, attn, mask, T = collate(gens, tok.pad_token_id, "cpu")
    out = torch.zeros(mask.shape)
    with torch.no_grad():
        for rows in torch.arange(len(gens)).split(16):
            out[rows] = token_logp_entropy(model, ids[rows], attn[rows], T, with_entropy=False, temperature=temperature,
                                           chunk_tokens=auto_logit_chunk(model.config))[0]
    return out, sampling_logp(gens, T, "cpu"), mask


def measure(engine, model, tok, prompts, args, temperature: float) -> dict:
    params = SamplingParams(n=args.n, temperature=temperature, max_new_tokens=args.max_new_tokens, logprobs=True)
    t0 = time.perf_counter()
    gens = engine.generate(prompts, params, seed=args.seed)
    gen_s = time.perf_counter() - t0
    train, rollout, mask = training_logp(model, tok, gens, temperature)
    return {"temperature": temperature, "tokens": int(mask.sum()), "generate_s": round(gen_s, 2),
            **mismatch_metrics(train, rollout, mask, args.c)}


def overhead(engine, prompts, args) -> dict:
    """Median seconds of generate calls with and without log-probs (alternating), and their ratio."""
    times = {False: [], True: []}
    for r in range(args.repeats):
        for lp in ((False, True) if r % 2 == 0 else (True, False)):
            params = SamplingParams(n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens, logprobs=lp)
            t0 = time.perf_counter()
            gens = engine.generate(prompts, params, seed=args.seed + 1)
            times[lp].append((time.perf_counter() - t0) / max(sum(len(g.response_ids) for g in gens), 1))
    plain, with_lp = statistics.median(times[False]), statistics.median(times[True])
    return {"s_per_token_plain": plain, "s_per_token_logprobs": with_lp, "logprobs_overhead": with_lp / plain - 1}


def curves(run_dirs: list[str], out: Path) -> None:
    """Per-step reward and mismatch of the runs under ``run_dirs`` (a table) and their training plot."""
    from types import SimpleNamespace

    from harness.report.plots.training import plot_training
    from harness.report.runs import expand_dirs

    runs = []   # training curves only: these runs have no evaluation, which harness.report.runs.load_runs requires
    for path in expand_dirs(run_dirs)[0]:
        info = json.loads((path / "run.json").read_text())
        label = f"{path.parent.parent.name}" + "".join(f", {k.split('.')[-1]} {v}" for k, v in info["settings"].items())
        runs.append(SimpleNamespace(path=path, label=label, seed=info["seed"]))
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| run | " + " | ".join(f"step {i}" for i in range(1, 11)) + " |", "|---|" + "---:|" * 10]
    for run in runs:
        rows = [json.loads(x) for x in (run.path / "train" / "metrics.jsonl").read_text().splitlines()]
        for key, fmt in (("reward_mean", "{:.3f}"), ("mismatch_kl", "{:.2e}")):
            lines.append(f"| {run.label}: {key} | "
                         + " | ".join(fmt.format(r[key]) for r in rows[:10]) + " |")
    (out / "curves.md").write_text("\n".join(lines) + "\n")
    plot_training(runs, out / "training.png")
    print("\n".join(lines))
    print(f"wrote {out}/curves.md and {out}/training.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", nargs="+", default=None, help="instead: the curves of these runs' folders (to --out)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--engines", default="kv:float32,kv:bfloat16,vllm:float32,vllm:bfloat16",
                    help="comma list of ENGINE:DTYPE, ENGINE kv (hf engine, kv sampler) or vllm")
    ap.add_argument("--temperatures", default="0.6,1.0")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per setting for the log-prob overhead")
    ap.add_argument("--c", type=float, default=2.0, help="the ratio threshold C")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="JSON file for every row")
    args = ap.parse_args()
    if args.curves:
        return curves(args.curves, Path(args.out or "curves"))
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_model(args.model)
    model.float().eval()
    prompts = task_prompts(tok, "auto", args.prompts)
    rows = []
    print(f"{'engine':14s} {'T':>4s} {'tokens':>6s} {'mismatch_kl':>12s} {'|log u| max':>11s} {'outside':>8s} "
          f"{'lp overhead':>11s}", flush=True)
    for spec in args.engines.split(","):
        name, _, dtype = spec.partition(":")
        engine = build_engine({"kv": "hf"}.get(name, name), model, tok, dtype=dtype or "policy",
                              max_batch_tokens=16384, seed=args.seed)
        try:
            cost = overhead(engine, prompts, args)
            for t in (float(x) for x in args.temperatures.split(",")):
                row = {"engine": name, "dtype": engine.sample_dtype, **measure(engine, model, tok, prompts, args, t),
                       **cost}
                rows.append(row)
                print(f"{spec:14s} {t:4.1f} {row['tokens']:6d} {row['mismatch_kl']:12.3e} "
                      f"{row['mismatch_logp_abs_max']:11.3g} {row['mismatch_outside_frac']:8.4f} "
                      f"{cost['logprobs_overhead']:+10.1%}", flush=True)
        finally:
            if hasattr(engine, "close"):
                engine.close()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "threads": torch.get_num_threads(),
                                              "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
