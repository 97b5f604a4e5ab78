"""Speed per RL step: this harness's ``grpo`` vs TRL's ``GRPOTrainer`` on the same job, on CPU (issue 7).

Both sides train the same model (``--model``: the warm-started ``tiny`` by default, or ``smollm2-135m``
or a local directory; TRL loads the same saved directory) for ``--steps`` steps on the same training
problems (``--train-data``: a harness training source, ``arith`` or ``arith_word``; step ``s`` gets the
same ``--prompts`` problems on both sides, and TRL gets each prompt as the harness sends it, chat
template included, as plain text), ``--n`` completions per prompt of at most ``--max-new-tokens``
tokens, temperature 1.0, top-p 1.0 and no top-k, one optimizer step per generation batch (TRL:
``per_device_train_batch_size x gradient_accumulation_steps = prompts x n`` with ``steps_per_generation
= gradient_accumulation_steps`` and ``num_iterations = 1``, ``--trl-micro-batch`` rows per pass;
harness: ``epochs = mini_batches = 1``, micro-batches by its token budget), the same AdamW (lr, betas,
weight decay 0, constant schedule, no warm-up, grad-norm clip 1.0), beta = 0 (no KL term), the
harness's outcome reward on both sides (:class:`harness.train.data.Reward`), float32, no gradient
checkpointing, no logging service, no checkpoints (the harness saves its final model, which is part
of its run), no evaluation.

What is timed (the model load is excluded on both sides; everything else is included):
  * harness: the wall time of ``harness.train.flow.run(cfg)`` minus the time spent in ``load_model``
    (policy and reference) and in starting and closing the rollout engine (~0 for ``hf``; vLLM's
    start and shutdown for ``vllm``, printed separately). It includes input checks, the run
    directory, the Lightning Trainer, every RL step and the final ``save_pretrained``.
  * TRL: the wall time of ``GRPOTrainer(...)`` construction plus ``trainer.train()``, with the model
    and tokenizer already loaded and the prompt dataset already built.
  ``phase/step`` = that time / steps. ``steady/step`` = the median interval between consecutive
  step ends from step 2 on (no start-up, no first-step warm-up). ``generate/step``: the harness's
  ``time_generate_s`` (engine.generate: tokenize, sample, decode); TRL's ``_generate``.
Runs alternate (TRL, harness[, harness-vllm], TRL, ...), each in a fresh subprocess that has
already imported its own packages, so background load hits both; the summary is the median over
repeats and the ratio harness / TRL. Runs use 1 torch thread by default: with 2 threads on a busy
2-core machine both sides slow down 10x or more from thread oversubscription and the numbers are noise.

Known differences in what a step does (same data, same sampling settings, same loss family):
  * sampling: the harness's ``hf`` engine uses its KV-cache sampler (``rollout.hf_sampler=kv``, the
    same distribution as ``generate``, tested token for token); TRL calls ``model.generate``.
    ``--harness-sampler generate`` times the harness with ``generate`` too.
  * neither side runs an old-policy or a reference forward pass here (one update per batch, beta 0).
  * AdamW: TRL's default ``adamw_torch_fused``, the harness ``torch.optim.AdamW`` (foreach).
  * the harness logs to train/metrics.jsonl and saves a resumable checkpoint after the last step and
    its final model; TRL keeps its logs in memory and saves nothing.
  * ``--engine vllm`` compares the harness's vLLM engine with TRL's transformers generation
    (TRL's own ``use_vllm`` stays off).

    HARNESS_CACHE_DIR=/tmp/hcache .venv-bench/bin/python scripts/bench_trl.py
    .venv-bench/bin/python scripts/bench_trl.py --prompts 8 --n 8 --max-new-tokens 32 --steps 5 --repeats 2
    .venv-bench/bin/python scripts/bench_trl.py --engine vllm     # adds the vLLM engine (from .venv-vllm)
    # the real model (issue 13): 8 x 8 story problems, 128 new tokens, TRL in micro-batches of 8 rows
    python scripts/bench_trl.py --model smollm2-135m --train-data arith_word --max-new-tokens 128 \
        --steps 2 --repeats 1 --threads 2 --lr 2e-5 --trl-micro-batch 8 --engine vllm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- shared pieces
def train_rows(a: argparse.Namespace, tokenizer) -> list[dict]:
    """The harness's training problems, step by step (``steps * prompts`` rows), with the prompt exactly as
    the harness sends it (:func:`harness.train.data.prompt_of`: the benchmark's prompt, through the chat
    template when the model has one): TRL gets it as a plain-text prompt, so it applies no template of its own."""
    from harness.config import DataConfig
    from harness.train.data import build_source, prompt_of

    src = build_source(DataConfig(train_data=a.train_data), a.seed, a.prompts)
    return [{"prompt": prompt_of(p, tokenizer), "answer": p.answer, "id": p.id, "problem": p.problem,
             "bench": p.bench} for step in range(a.steps) for p in src.batch(step)]


class TrainReward:
    """TRL reward function: the harness's own outcome reward (:class:`harness.train.data.Reward`, the
    evaluation grader), 1.0 for a correct answer. TRL passes no finish reasons, so a truncated completion keeps
    the grader's last-number fallback, which the harness denies it (rewards only; the timing is the same)."""

    __name__ = "harness_reward"

    def __init__(self) -> None:
        from benchmarks.grading import Grader
        from harness.train.data import Reward

        self.reward = Reward(Grader())

    def __call__(self, prompts, completions, answer, id, problem, bench, completion_ids=None, **_) -> list[float]:
        from harness.train.data import TrainProblem

        problems = [TrainProblem(*row) for row in zip(id, problem, answer, bench)]
        return self.reward(completions, problems)


def step_stats(t_start: float, step_ends: list[float]) -> dict:
    """Per-step intervals (first one from the start of the timed phase) and their steady median."""
    ends = [t_start] + step_ends
    intervals = [b - a for a, b in zip(ends, ends[1:])]
    steady = statistics.median(intervals[1:]) if len(intervals) > 1 else intervals[0]
    return {"step_intervals_s": [round(x, 4) for x in intervals], "steady_step_s": steady}


def _clocked(fn, spent: dict, key: str):
    """``fn`` wrapped to add its wall time to ``spent[key]``."""
    def wrapper(*args, **kw):
        t = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            spent[key] += time.perf_counter() - t
    return wrapper


# ---------------------------------------------------------------- workers (one run each, in a subprocess)
def run_harness(a: argparse.Namespace, workdir: Path) -> dict:
    import lightning
    import torch

    import harness.engines
    import harness.models
    import harness.train.flow
    import harness.train.loop
    from harness.config import build_config
    from harness.results import read_jsonl

    if a.threads:
        torch.set_num_threads(a.threads)
    spent = {"model_load": 0.0, "engine_start": 0.0, "engine_close": 0.0}
    marks: dict[str, float] = {}   # engine_start seconds already spent at fit start / at the first step end
    step_ends: list[float] = []
    fit_span: list[float] = []
    orig_step = harness.train.loop.RLModule.training_step
    orig_fit = lightning.Trainer.fit
    harness.engines.LazyEngine.start = _clocked(harness.engines.LazyEngine.start, spent, "engine_start")
    harness.engines.LazyEngine.close = _clocked(harness.engines.LazyEngine.close, spent, "engine_close")

    def timed_step(self, batch, batch_idx):
        out = orig_step(self, batch, batch_idx)
        step_ends.append(time.perf_counter())
        marks.setdefault("engine_at_step1", spent["engine_start"])
        return out

    def timed_fit(self, *args, **kw):
        fit_span.append(time.perf_counter())
        marks["engine_at_fit"] = spent["engine_start"]
        try:
            return orig_fit(self, *args, **kw)
        finally:
            fit_span.append(time.perf_counter())

    harness.models.load_model = _clocked(harness.models.load_model, spent, "model_load")
    harness.train.loop.RLModule.training_step = timed_step
    lightning.Trainer.fit = timed_fit
    cfg = build_config({}, [
        "algo.name=grpo", "algo.kl_coef=0.0", f"model.name={a.model}", "model.dtype=float32",
        f"data.train_data={a.train_data}",
        f"seed={a.seed}", f"results_dir={workdir}", "name=harness",
        f"rollout.engine={a.worker_engine}", f"rollout.prompts_per_step={a.prompts}", f"rollout.n={a.n}",
        "rollout.temperature=1.0", "rollout.top_p=1.0", f"rollout.max_new_tokens={a.max_new_tokens}",
        f"rollout.batch_size={a.prompts * a.n}", f"rollout.hf_sampler={a.harness_sampler}",
        f"train.steps={a.steps}", f"train.lr={a.lr}", "train.weight_decay=0.0", "train.warmup_steps=0",
        "train.grad_clip=1.0", "train.epochs=1", "train.mini_batches=1",
        f"train.micro_batch_size={a.prompts * a.n}",
        "eval.before=false", "eval.after=false", "log.progress=false", "log.wandb=false",
        "trainer.accelerator=cpu",
    ])
    t0 = time.perf_counter()
    run_dir = harness.train.flow.run(cfg, overwrite=True)
    total = time.perf_counter() - t0
    metrics = read_jsonl(run_dir / "train" / "metrics.jsonl")
    engine = spent["engine_start"] + spent["engine_close"]
    # the first step is timed from the start of fit, less an engine start that happened inside it
    step1_start = fit_span[0] + marks["engine_at_step1"] - marks["engine_at_fit"]
    return {
        "phase_s": total - spent["model_load"] - engine, "phase_incl_engine_s": total - spent["model_load"],
        "model_load_s": spent["model_load"], "engine_start_s": spent["engine_start"],
        "engine_close_s": spent["engine_close"], "fit_s": fit_span[1] - fit_span[0],
        "outside_fit_s": total - (fit_span[1] - fit_span[0]) - spent["model_load"],
        **step_stats(step1_start, step_ends),
        "response_len": statistics.mean(m["response_len"] for m in metrics),
        "reward": statistics.mean(m["reward_mean"] for m in metrics),
        "time_generate_s": sum(m["time_generate_s"] for m in metrics),
        "time_score_s": sum(m["time_score_s"] for m in metrics),
        "time_update_s": sum(m["time_update_s"] for m in metrics),
        "threads": torch.get_num_threads(),
    }


def run_trl(a: argparse.Namespace, workdir: Path) -> dict:
    import datasets
    import torch
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from harness.models import builtin_model_path

    if a.threads:
        torch.set_num_threads(a.threads)
    path = str(builtin_model_path(a.model) or a.model)
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    tok = AutoTokenizer.from_pretrained(path)
    load_s = time.perf_counter() - t
    ds = datasets.Dataset.from_list(train_rows(a, tok))
    rows = a.prompts * a.n
    micro = min(rows, a.trl_micro_batch or rows)
    args = GRPOConfig(
        output_dir=str(workdir / "trl"), report_to="none", save_strategy="no", logging_steps=1,
        disable_tqdm=True, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
        seed=a.seed, max_steps=a.steps, learning_rate=a.lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999, max_grad_norm=1.0,
        per_device_train_batch_size=micro, gradient_accumulation_steps=rows // micro,
        steps_per_generation=rows // micro, num_iterations=1, num_generations=a.n,
        max_completion_length=a.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
        beta=0.0, epsilon=0.2, loss_type="dapo", scale_rewards="group", shuffle_dataset=False,
        use_vllm=False, dataloader_num_workers=0,
    )
    step_ends: list[float] = []
    spent = {"generate": 0.0, "generate_and_score": 0.0}
    for name, key in (("_generate", "generate"), ("_generate_and_score_completions", "generate_and_score")):
        setattr(GRPOTrainer, name, _clocked(getattr(GRPOTrainer, name), spent, key))

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            step_ends.append(time.perf_counter())

    t0 = time.perf_counter()
    trainer = GRPOTrainer(model=model, reward_funcs=TrainReward(), args=args, train_dataset=ds,
                          processing_class=tok, callbacks=[StepClock()])
    t_train = time.perf_counter()
    trainer.train()
    phase = time.perf_counter() - t0
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert trainer.state.global_step == a.steps, trainer.state.global_step
    return {
        "phase_s": phase, "construct_s": t_train - t0, "model_load_s": load_s,
        **step_stats(t_train, step_ends),
        "response_len": statistics.mean(h["completions/mean_length"] for h in logs),
        "reward": statistics.mean(h["reward"] for h in logs),
        "time_generate_s": spent["generate"],
        "time_score_s": spent["generate_and_score"] - spent["generate"],  # reward + advantages (+ old logp if any)
        "time_update_s": step_ends[-1] - t_train - spent["generate_and_score"],  # the rest of train()
        "threads": torch.get_num_threads(),
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__,
                     "torch": torch.__version__},
        "optim": str(args.optim),
    }


# ---------------------------------------------------------------- orchestration
def vllm_python(a: argparse.Namespace) -> str | None:
    """An interpreter that can import vllm: this one, ``--vllm-python``, or ROOT/.venv-vllm."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    for cand in [a.vllm_python, ROOT / ".venv-vllm" / "bin" / "python"]:
        if cand and Path(cand).exists() and subprocess.run(
                [str(cand), "-c", "import vllm"], capture_output=True).returncode == 0:
            return str(cand)
    return None


def launch(a: argparse.Namespace, side: str, python: str) -> dict:
    """Run one timed job in a fresh interpreter; returns its result dict plus load averages."""
    with tempfile.TemporaryDirectory(prefix="bench-trl-") as tmp:
        out = Path(tmp) / "result.json"
        kind, _, engine = side.partition("-")
        cmd = [python, str(Path(__file__).resolve()), "--worker", kind, "--worker-engine", engine or "hf",
               "--result-file", str(out), "--workdir", tmp]
        for k in ("model", "train_data", "trl_micro_batch", "prompts", "n", "max_new_tokens", "steps", "lr", "seed",
                  "threads", "harness_sampler"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
        load_before = os.getloadavg()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"})
        if proc.returncode != 0 or not out.exists():
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
            raise SystemExit(f"{side} run failed (exit {proc.returncode})")
        res = json.loads(out.read_text())
    res.update(side=side, load_before=load_before, load_after=os.getloadavg())
    return res


def summarize(a: argparse.Namespace, runs: list[dict]) -> dict:
    sides = list(dict.fromkeys(r["side"] for r in runs))
    med = {s: {k: statistics.median(r[k] for r in runs if r["side"] == s)
               for k in ("phase_s", "steady_step_s", "time_generate_s", "response_len", "reward")} for s in sides}
    print(f"\nsettings: {a.model} on {a.train_data}, {a.prompts} prompts x {a.n} completions, {a.max_new_tokens} new tokens, {a.steps} steps, "
          f"lr {a.lr}, beta 0, T=1.0, seed {a.seed}, CPU threads {runs[0]['threads']}")
    print(f"{'side':14s} {'phase/step s':>13s} {'steady/step s':>14s} {'generate/step':>14s} {'rest/step':>10s} "
          f"{'resp len':>9s} {'reward':>7s}  per-run phase/step")
    for s in sides:
        per_run = ", ".join(f"{r['phase_s'] / a.steps:.2f}" for r in runs if r["side"] == s)
        m = med[s]
        gen = m["time_generate_s"] / a.steps
        print(f"{s:14s} {m['phase_s'] / a.steps:13.3f} {m['steady_step_s']:14.3f} {gen:14.3f} "
              f"{m['phase_s'] / a.steps - gen:10.3f} {m['response_len']:9.1f} "
              f"{m['reward']:7.3f}  [{per_run}]")
    targets = {"harness-hf": 0.5, "harness-vllm": 0.2}
    ratios = {}
    for s in sides[1:]:
        ratios[s] = {"phase": med[s]["phase_s"] / med["trl"]["phase_s"],
                     "steady": med[s]["steady_step_s"] / med["trl"]["steady_step_s"]}
        pairs = [h["steady_step_s"] / t["steady_step_s"] for t, h in
                 zip([r for r in runs if r["side"] == "trl"], [r for r in runs if r["side"] == s])]
        ratios[s]["steady_paired"] = pairs
        print(f"ratio {s} / trl (medians): phase {ratios[s]['phase']:.3f}, steady {ratios[s]['steady']:.3f} "
              f"(target <= {targets[s]}); steady per repeat: {', '.join(f'{x:.2f}' for x in pairs)}")
    for r in runs:
        if r["side"] == "harness-vllm":
            print(f"vLLM engine start + close (excluded from phase, like the model load): "
                  f"{r['engine_start_s']:.1f} s + {r['engine_close_s']:.1f} s")
    print("load average (1 min) before runs: " + ", ".join(f"{r['side']}={r['load_before'][0]:.2f}" for r in runs))
    return {"medians": med, "ratios": ratios}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="tiny, smollm2-135m or a local model directory")
    ap.add_argument("--train-data", default="arith", help="a training source of the harness: arith, arith_word")
    ap.add_argument("--trl-micro-batch", type=int, default=0,
                    help="TRL rows per forward/backward (gradient accumulation up to prompts x n; 0: all at "
                         "once); the harness picks its own micro-batches by token budget")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per RL step")
    ap.add_argument("--n", type=int, default=8, help="completions per prompt (group size)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per run (0: torch's default); 1 because with 2 threads on a busy "
                         "2-core machine both sides run 10x or more slower and the timings are noise")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each side, alternating")
    ap.add_argument("--engine", choices=["hf", "vllm"], default="hf",
                    help="vllm: also time the harness with its vLLM engine (TRL keeps use_vllm=False)")
    ap.add_argument("--harness-sampler", choices=["kv", "generate"], default="kv",
                    help="the harness hf engine's sampler (rollout.hf_sampler)")
    ap.add_argument("--vllm-python", default=None, help="interpreter with vllm (default: this one or .venv-vllm)")
    ap.add_argument("--json", default=None, help="also write all runs and the summary to this file")
    ap.add_argument("--worker", choices=["trl", "harness"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-engine", default="hf", help=argparse.SUPPRESS)
    ap.add_argument("--result-file", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.worker:
        fn = run_trl if a.worker == "trl" else run_harness
        Path(a.result_file).write_text(json.dumps(fn(a, Path(a.workdir))))
        return 0
    import importlib.util
    if importlib.util.find_spec("trl") is None:
        raise SystemExit("TRL is not installed in this interpreter: pip install -e '.[bench]'")
    sides = {"trl": sys.executable, "harness-hf": sys.executable}
    if a.engine == "vllm":
        py = vllm_python(a)
        if py is None:
            print("vllm is not importable here, in --vllm-python or in .venv-vllm: skipping the vLLM engine")
        else:
            sides["harness-vllm"] = py
    runs = []
    for rep in range(a.repeats):
        for side, py in sides.items():
            r = launch(a, side, py)
            print(f"[{rep + 1}/{a.repeats}] {side:13s} phase {r['phase_s']:7.2f} s ({r['phase_s'] / a.steps:.3f} s/step), "
                  f"steady {r['steady_step_s']:.3f} s/step, resp len {r['response_len']:.1f}, "
                  f"load {r['load_before'][0]:.2f}", flush=True)
            runs.append(r)
    summary = summarize(a, runs)
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "runs": runs, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
