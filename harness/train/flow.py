"""``harness run``: prepare -> base evaluation -> fit -> final evaluation -> close.

Each stage is one function below. :func:`harness.train.prepare.prepare` checks all input before the run
directory is created and loads the models and data; the base evaluation runs when fitting starts (a
Lightning callback: under DDP the process group exists only inside ``Trainer.fit``) and reuses a
shared evaluation of the same base model when there is one (:mod:`harness.eval.base_cache`);
:class:`harness.train.loop.RLModule` trains; the final evaluation scores the trained policy; :func:`close`
writes run.json. The ``run`` command then prints what was found (:mod:`harness.report.summary`).

With ``resume=True`` an existing run directory is continued: a complete base evaluation is kept,
training continues from ``checkpoint/last`` and an interrupted evaluation continues where it stopped.
SIGTERM and SIGINT stop the run at the next safe point (:mod:`harness.stop`); run.json then says
``"status": "interrupted"`` and ``--resume`` continues it.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import lightning as L
import torch

from benchmarks import get_benchmark
from benchmarks.grading import Grader
from common.rank import shard
from harness import stop
from harness.config import RunConfig
from harness.engines import LazyEngine, param_dtype
from harness.eval import base_cache
from harness.eval.evaluate import evaluate, load_problems, prompt_format, sampling_settings
from harness.progress import training_bar
from harness.results import append_jsonl, atomic_write_json
from harness.train import checkpoint
from harness.train.data import Reward
from harness.train.loop import RLModule
from harness.train.prepare import Prepared, make_trainer, prepare
from harness.train.wandb_log import init_wandb, log_run_evals


def run(cfg: RunConfig, *, overwrite: bool = False, resume: bool = False, label: str | None = None,
        settings: dict | None = None) -> Path:
    """Train and evaluate one run; ``label``/``settings`` (set by sweeps) go into run.json for tables and plots.

    The run directory is locked from before it is written until the run ends: a second process on it (``--overwrite``
    while the first still stops, ``--resume`` twice) gets a one-line error (exit 3) instead of mixing two runs' files.
    """
    with stop.stop_on_signals():
        run = prepare(cfg, overwrite=overwrite, resume=resume, label=label, settings=settings)
        if run is None:
            return Path(cfg.results_dir) / cfg.run_name
        with run.lock:
            _fit_evaluate_close(run)
    return run.run_dir


def _fit_evaluate_close(run: Prepared) -> None:

    t_start = time.time()
    metrics = MetricsLog(run.cfg, run.run_dir) if run.rank == 0 else None
    try:
        with Grader() as grader:
            engine, is_zero = fit(run, grader, metrics)
            try:
                if is_zero:
                    checkpoint.save_pretrained_atomic(run.policy, run.tokenizer, run.run_dir / "checkpoint" / "final")
                evaluate_final(run, engine, grader)
            finally:
                engine.close()
    except stop.Interrupted:
        if run.rank == 0:
            atomic_write_json(run.run_dir / "run.json", dict(run.info, status="interrupted"))
        raise
    if is_zero:
        close(run, metrics, time.time() - t_start)


def evaluate_base(run: Prepared, engine, grader) -> None:
    """Evaluate the base model on the benchmarks without a complete ``eval_base`` (before any update)."""

    cfg, out = run.cfg, run.run_dir / "eval_base"
    todo = [b for b in run.benches if not (run.resume and (out / b / "summary.json").is_file())]
    if not (cfg.eval.before and todo):
        return
    use_cache = cfg.eval.cache_base and shard()[1] == 1
    keys = {b: base_key(run, engine, grader, b) for b in todo} if use_cache else {}
    todo = [b for b in todo if not (use_cache and base_cache.restore(keys[b], b, _mkdir(out) / b))]
    if todo:
        _evaluate(run, engine, todo, out, grader)
    for b in todo if use_cache else ():
        base_cache.store(keys[b], b, out / b)


def fit(run: Prepared, grader, metrics) -> tuple:
    """Train from ``run.start`` to ``train.steps`` (the base evaluation first); returns (engine, is rank 0).

    A run whose training had finished (resumed for its evaluations) only evaluates the base model and
    loads the trained weights.
    """

    cfg = run.cfg
    engine = LazyEngine.from_config(cfg, run.tokenizer)
    if run.start >= cfg.train.steps:  # training had finished: only evaluations may be left
        if cfg.trainer.accelerator != "cpu" and torch.cuda.is_available():
            run.policy.to("cuda")
        engine.start(run.policy)
        evaluate_base(run, engine, grader)
        checkpoint.load_weights(run.policy, run.last)
        engine.sync_weights(run.policy)
        return engine, run.rank == 0
    module = RLModule(cfg, run.policy, run.ref, run.tokenizer, engine, run.source, Reward(grader),
                      metrics=metrics, run_dir=run.run_dir, start=run.start, resume_from=run.last)
    bars = training_bar(cfg.log.progress)  # RL steps, reward, KL, tok/s (harness/progress.py)
    trainer = make_trainer(cfg, steps=cfg.train.steps - run.start, callbacks=[BaseEvaluation(run, grader), *bars])
    trainer.fit(module)
    run.info["rollout_correction"] = module.correction   # train.rollout_correction as run (auto resolved)
    if module.stopped_by is not None:
        raise stop.Interrupted(module.stopped_by, f"stopped by {signal.Signals(module.stopped_by).name} after RL "
                               f"step {module.rollout_step} (checkpoint/last written); continue with --resume")
    return engine, trainer.is_global_zero


class BaseEvaluation(L.Callback):
    """Runs :func:`evaluate_base` when training starts: after the engine exists, before any update or resume."""

    def __init__(self, run: Prepared, grader) -> None:
        self.run, self.grader = run, grader

    def on_train_start(self, trainer, module) -> None:
        evaluate_base(self.run, module.engine, self.grader)


def evaluate_final(run: Prepared, engine, grader) -> None:
    if run.cfg.eval.after:
        _evaluate(run, engine, run.benches, run.run_dir / "eval", grader)


def close(run: Prepared, metrics, train_time_s: float) -> None:
    """Finish run.json and wandb, drop the resumable checkpoint."""
    if metrics is not None and metrics.wandb_run is not None:
        log_run_evals(metrics.wandb_run, run.run_dir)
        metrics.wandb_run.finish()
    run.info.update(status="finished", train_time_s=round(train_time_s, 1))
    atomic_write_json(run.run_dir / "run.json", run.info)
    if not run.cfg.train.keep_last:  # checkpoint/final holds the weights; the optimizer state is large
        shutil.rmtree(run.run_dir / "checkpoint" / "last", ignore_errors=True)


class MetricsLog:
    """Appends each step's metrics to ``train/metrics.jsonl`` (and wandb) on rank 0."""

    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        self.path = run_dir / "train" / "metrics.jsonl"
        self.wandb_run = None
        if cfg.log.wandb or cfg.log.wandb_project:
            self.wandb_run = init_wandb(cfg, run_dir)

    def __call__(self, metrics: dict) -> None:
        if shard()[0] != 0:
            return
        append_jsonl(self.path, [metrics])
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=metrics["step"])


def _evaluate(run: Prepared, engine, benches, out_dir: Path, grader) -> None:
    """:func:`harness.eval.evaluate.evaluate` of ``benches`` with the run's ``eval`` settings."""
    evaluate(engine, run.tokenizer, load_problems(run.cfg, benches), out_dir, run.cfg, resume=run.resume,
             shard=shard(), grader=grader)


def base_key(run: Prepared, engine, grader, bench: str) -> str:
    """The base-evaluation cache key of ``bench``: the base weights, the data, the grader and the settings the
    summary records (:func:`harness.eval.evaluate.sampling_settings`, the engine and the prompt format)."""
    if run.digest is None:  # of the base weights: computed before any update
        run.digest = base_cache.model_digest(run.policy, run.tokenizer)
    settings = dict(sampling_settings(run.cfg, bench), engine=engine.kind, prompt=prompt_format(run.tokenizer))
    sampled_in = engine.sample_dtype
    if sampled_in != param_dtype(run.policy):  # only then: earlier runs' cached evaluations (the policy's
        settings["dtype"] = sampled_in         # dtype) still match
    source = get_benchmark(bench).source(run.cfg.data.data_dir)
    return base_cache.cache_key(model=run.cfg.model.name, digest=run.digest, bench=bench, settings=settings,
                                grader=grader.describe(bench), data=base_cache.data_digest(source))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
