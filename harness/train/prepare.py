"""The first stage of ``harness run``: check every input, load the models and data, create the run directory.

All input (config, benchmark data, training data, model path, run name, trainer settings) is checked
before the run directory is created, so bad input leaves nothing under ``results/``. Resuming
(:func:`resume_plan`) checks that the saved configuration matches and finds the checkpoint to continue
from. The run directory layout is documented in ``results/README.md``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException

from algorithms import get_algorithm, needs_ref_logp
from benchmarks import get_benchmark, resolve_benchmarks
from common.errors import HarnessError
from common.locks import hold_lock
from common.rank import global_rank
from common.versions import package_versions
from harness.config import RunConfig, dump_yaml
from harness.engines import check_engine
from harness.models import load_model
from harness.results import (atomic_write_json, atomic_write_text, prepare_run_dir, read_jsonl, read_run_info,
                             refuse_changed, run_info)
from harness.train import checkpoint
from harness.train.data import build_source

log = logging.getLogger(__name__)

# keys that may differ between an interrupted run and its resumption: they do not change what is trained or
# evaluated (a different batch size only changes which random numbers are drawn from then on, e.g. after an OOM);
# "name": a run started without --name (config.yaml: null) is resumed with --name <its default name>
RESUME_MAY_CHANGE = ("name", "train.steps", "train.save_every", "train.keep_last", "log.", "eval.batch_size",
                     "eval.cache_base", "eval.max_batch_tokens", "rollout.batch_size", "rollout.max_batch_tokens",
                     "rollout.static_cache", "rollout.hf_sampler",
                     "rollout.gpu_memory_utilization", "results_dir", "data.data_dir", "model.attn_implementation",
                     "trainer.accelerator")


@dataclass
class Prepared:
    """Everything a run needs once its input is checked: config, directory, models, data and run.json."""

    cfg: RunConfig
    run_dir: Path
    rank: int
    resume: bool
    benches: tuple[str, ...]
    start: int                         # the RL step training starts at (a resumed run's checkpoint step)
    last: Path | None                  # checkpoint/last to continue from
    policy: Any
    ref: Any
    tokenizer: Any
    source: Any
    info: dict = field(default_factory=dict)   # run.json
    digest: str | None = None          # content hash of the base model (harness.eval.base_cache), once computed
    lock: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)   # the run's lock (rank 0), held
    #                                  from before the run directory is written until it is closed


def environment() -> dict:
    """``env.json``: git commit, Python, platform, CUDA device and package versions."""
    here = Path(__file__).parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=here, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                                    cwd=here, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        sha, dirty = None, None
    versions = package_versions()
    return {"git_sha": sha, "git_dirty": dirty, "python": versions.pop("python"), "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "packages": versions}


def make_trainer(cfg: RunConfig, *, steps: int, quiet: bool = False, callbacks=()):
    """The Lightning Trainer of a run; bad ``trainer.*`` settings raise a one-line HarnessError.

    ``quiet``: without Lightning's start-up lines (GPU/TPU available ...), for the early check.
    """

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
            use_distributed_sampler=False, num_sanity_val_steps=0, callbacks=list(callbacks))
    except (ValueError, TypeError, RuntimeError, ImportError, MisconfigurationException) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HarnessError(f"invalid trainer settings (accelerator={t.accelerator}, devices={t.devices}, "
                           f"strategy={t.strategy}, precision={t.precision}): {first}") from None
    finally:
        lg.setLevel(level)


def prepare(cfg: RunConfig, *, overwrite: bool = False, resume: bool = False, label: str | None = None,
            settings: dict | None = None) -> Prepared | None:
    """Check the input, load models and data, write config.yaml / env.json / run.json (rank 0).

    Returns None when ``resume`` finds the run already finished.
    """


    if not cfg.log.progress:  # no "Loading weights" / "Writing model shards" bars in logs either
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    benches = resolve_benchmarks(cfg.data.bench)
    rank = global_rank(devices_per_node=cfg.trainer.devices)
    run_dir = Path(cfg.results_dir) / cfg.run_name
    if rank == 0:  # ranks > 0 start after rank 0 created the directory
        prepare_run_dir(cfg.results_dir, cfg.run_name, overwrite=overwrite, resume=resume, create=False)
    plan = resume_plan(cfg, run_dir, rank) if resume else {"start": 0, "last": None, "old": {}}
    if plan.get("done"):
        log.warning("run %s already finished; nothing to resume", run_dir)
        return None
    cfg = plan.get("cfg", cfg)   # a resumed run keeps its rollout correction (kept_on_resume)
    check_engine(cfg.rollout.engine)
    make_trainer(cfg, steps=1, quiet=True)  # checks the trainer.* settings before anything is written
    for b, limit in cfg.eval.limits(list(benches)).items():
        get_benchmark(b).load(cfg.data.data_dir, limit=limit)
    source = build_source(cfg.data, cfg.seed, cfg.rollout.prompts_per_step)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    mkw = dict(dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code,
               attn_implementation=cfg.model.attn_implementation)
    policy, tokenizer = load_model(cfg.model.name, **mkw)
    policy.train()  # from_pretrained returns eval mode; engines switch to eval while sampling
    if cfg.train.gradient_checkpointing:  # each layer's activations recomputed in the backward
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ref = None  # the frozen reference: for PRL's advantage, a KL loss term, or the logged KL (log.kl_to_ref)
    if needs_ref_logp(get_algorithm(cfg.algo.name), cfg.algo) or cfg.log.kl_to_ref:
        ref, _ = load_model(cfg.model.name, **mkw)
    info = _run_info(cfg, plan, benches, resume, label, settings)
    lock = contextlib.ExitStack()   # rank 0 holds the run's lock until the run ends (Prepared.lock)
    if rank == 0:
        with contextlib.ExitStack() as failed:
            failed.enter_context(hold_lock(run_lock_path(cfg), f"run {cfg.run_name}"))
            run_dir = _write_run_dir(cfg, plan["start"], info, overwrite, resume)
            lock = failed.pop_all()
    return Prepared(cfg, run_dir, rank, resume, benches, plan["start"], plan["last"], policy, ref, tokenizer,
                    source, info, lock=lock)


def run_lock_path(cfg: RunConfig) -> Path:
    """``<results_dir>/.locks/<run>.lock``: beside the run directory, which ``--overwrite`` removes."""
    return Path(cfg.results_dir) / ".locks" / f"{cfg.run_name}.lock"


def _run_info(cfg: RunConfig, plan: dict, benches, resume: bool, label, settings) -> dict:
    old = plan["old"]
    return run_info(cfg.run_name, algo=cfg.algo.name, label=label or old.get("label") or cfg.algo.name,
                    seed=cfg.seed, benches=benches,
                    settings=settings if settings is not None else old.get("settings", {}), old=old,
                    resume={"from_step": plan["start"]} if resume else None)


def _write_run_dir(cfg: RunConfig, start: int, info: dict, overwrite: bool, resume: bool) -> Path:
    run_dir = prepare_run_dir(cfg.results_dir, cfg.run_name, overwrite=overwrite, resume=resume)
    if resume:
        truncate_metrics(run_dir / "train" / "metrics.jsonl", start)
        if start < cfg.train.steps:  # an evaluation of an older policy is stale
            shutil.rmtree(run_dir / "eval", ignore_errors=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    if not (run_dir / "env.json").exists():
        atomic_write_json(run_dir / "env.json", environment())
    atomic_write_json(run_dir / "run.json", info)
    return run_dir


def kept_on_resume(cfg: RunConfig, saved: dict) -> RunConfig:
    """``cfg`` for a resumed run: ``train.rollout_correction auto`` (the default) keeps what the run had, ``none``
    for a run saved before the setting existed; another value given for an old run is taken as asked."""
    if not saved or cfg.train.rollout_correction != "auto":
        return cfg
    return replace(cfg, train=replace(cfg.train, rollout_correction=saved.get("train.rollout_correction", "none")))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _saved_config(run_dir: Path) -> dict:

    path = run_dir / "config.yaml"
    return _flatten(yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def resume_plan(cfg: RunConfig, run_dir: Path, rank: int) -> dict:
    """Check that ``run_dir`` can be continued with ``cfg``; returns where to start.

    Returns ``{"start": step, "last": checkpoint folder or None, "old": previous run.json, "done": bool, "cfg": cfg
    as the run continues (:func:`kept_on_resume`)}``.
    Rank 0 first repairs a checkpoint swap cut short by a crash and refuses a changed configuration.
    """
    old = read_run_info(run_dir)
    saved = _saved_config(run_dir)
    cfg = kept_on_resume(cfg, saved)
    if rank == 0 and saved:
        now = _flatten(yaml.safe_load(dump_yaml(cfg)))
        fixed = {k: v for k, v in saved.items() if not k.startswith(RESUME_MAY_CHANGE)}
        refuse_changed(run_dir, "its config differs", fixed, now)
    last = checkpoint.recover(run_dir) if rank == 0 else (
        run_dir / "checkpoint" / checkpoint.LAST if checkpoint.read_state(run_dir) else None)
    state = checkpoint.read_state(run_dir) if last is not None else None
    start = state["step"] if state else 0
    if state is None and old.get("status") == "finished":
        if saved.get("train.steps") == cfg.train.steps:
            return {"start": cfg.train.steps, "last": None, "old": old, "done": True}
        raise HarnessError(f"cannot extend finished run {run_dir} to train.steps={cfg.train.steps}: its "
                           "resumable checkpoint was removed when it finished (set train.keep_last=true to keep it)")
    if start > cfg.train.steps:
        raise HarnessError(f"cannot resume {run_dir}: its checkpoint is at step {start}, after "
                           f"train.steps={cfg.train.steps}")
    return {"start": start, "last": last, "old": old, "done": False, "cfg": cfg}


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics of steps after the checkpoint (they will be redone) and a torn last line."""
    rows = read_jsonl(path, repair=True)
    keep = [r for r in rows if isinstance(r, dict) and r.get("step", 0) <= step]
    if len(keep) != len(rows):
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in keep))
