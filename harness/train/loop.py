"""The one Lightning RL loop shared by every algorithm (:class:`RLModule`, manual optimisation).

Per step: sample ``rollout.n`` responses per prompt -> grade them -> no-grad log-probs where needed (pi_old,
reference), all of ``softmax(logits / rollout.temperature)`` -> the plugin's advantages -> ``epochs x mini_batches``
optimizer steps of the plugin's loss over token-budgeted micro-batches, weighted by ``train.rollout_correction``, with
a guard that skips non-finite updates -> sync the engine's weights -> checkpoint every ``train.save_every`` steps.
Every random choice is seeded by the step, so a resumed run follows the uninterrupted trajectory. The step in full,
its logged timings and how a run resumes: ``docs/training.md``.

    python -m harness run --algo grpo --bench arith --steps 3
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import lightning as L
import torch

from algorithms import get_algorithm, needs_old_logp, needs_ref_logp
from algorithms.core import Rollout
from common.errors import HarnessError
from harness import stop
from harness.engines import SamplingParams, param_dtype
from harness.train import checkpoint
from harness.train.batching import (auto_logit_chunk, auto_token_budget, collate, micro_inputs, pad_right,
                                    plan_micro_batches, sampling_logp)
from harness.train.data import prompt_of
from harness.train.logprobs import token_logp_entropy
from harness.train.steps import (entropy_share, newline_token_ids, resolve_correction, step_loader, step_metrics,
                                 training_dtype)
from harness.train.update import NonFiniteError, PolicyUpdate  # noqa: F401  (NonFiniteError re-exported)


class RLModule(PolicyUpdate, L.LightningModule):
    """The RL loop as a LightningModule; built from objects, it owns training and nothing else.

    Args:
        cfg: the :class:`harness.config.RunConfig`.
        policy, ref: the trained model and the frozen reference (None when nothing needs it).
        tokenizer: pads the batches and finds newline tokens (PRL's step split).
        engine: a :class:`harness.engines.LazyEngine`, started in ``on_fit_start``.
        source: the training source (:mod:`harness.train.data`); prompts are its benchmarks' prompts.
        reward: ``(texts, problems) -> [float]``, e.g. :class:`harness.train.data.Reward`.
        metrics: ``(dict) -> None`` called with every step's metrics (rank 0 writes them).
        run_dir: where ``checkpoint/last`` is written (None: no checkpoints).
        start: the RL step to begin at (a resumed run's checkpoint step).
        resume_from: the ``checkpoint/last`` folder to load when training starts, or None.
    """

    def __init__(self, cfg, policy, ref, tokenizer, engine, source, reward, *, metrics=None, run_dir=None,
                 start: int = 0, resume_from=None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg
        self.policy, self.ref, self.tokenizer = policy, ref, tokenizer
        self.algo = get_algorithm(cfg.algo.name)
        self.engine, self.source, self.reward = engine, source, reward
        self.metrics, self.run_dir = metrics, run_dir
        self.start, self.resume_from = start, resume_from
        self.rollout_step = 0
        self.optimizer_steps = 0
        self.bad_steps = 0
        self.skipped_updates = 0
        self.stopped_by: int | None = None   # the signal that stopped training early, if any
        if ref is not None:
            ref.requires_grad_(False).eval()
        t = cfg.train  # memory settings; unset, they follow the model (harness.train.batching)
        self._token_budget = auto_token_budget(policy.config) if t.max_micro_batch_tokens is None \
            else t.max_micro_batch_tokens
        self._logit_chunk = auto_logit_chunk(policy.config) if t.logit_chunk_tokens is None else t.logit_chunk_tokens
        self._newline_ids = None
        self.correction: dict = {"mode": "none"}  # train.rollout_correction as run (run.json), set in on_fit_start
        self._times: dict[str, float] = defaultdict(float)  # this step's seconds per phase (time_*_s metrics)

    # ------------------------------------------------------------------ setup
    def configure_optimizers(self):
        t = self.cfg.train
        opt = torch.optim.AdamW(self.policy.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                                betas=tuple(t.betas))
        warm = t.warmup_steps * t.epochs * t.mini_batches
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        return [opt], [sched]

    def train_dataloader(self):
        return step_loader(self.source, self.cfg.train.steps, self.start)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # a list of TrainProblem; tensors are built on the device in training_step

    def on_fit_start(self) -> None:
        if self.ref is not None:
            self.ref.to(self.device)
        self.engine.start(self.policy)  # here: vLLM under DDP needs the process group to exist
        t = self.cfg.train
        sampled = self.engine.sample_dtype
        trained = training_dtype(self.cfg.trainer.precision, param_dtype(self.policy))
        self.correction = {"mode": resolve_correction(t.rollout_correction, sampled, trained),
                           "c": t.rollout_correction_c, "sample_dtype": sampled, "train_dtype": trained}

    def on_train_start(self) -> None:
        stop.install()  # over Lightning's SIGTERM handler, registered after on_fit_start
        if self.resume_from is not None:
            self._resume(self.resume_from)

    # ------------------------------------------------------------------ checkpoints
    def counters(self) -> dict:
        return {"step": self.rollout_step, "optimizer_steps": self.optimizer_steps,
                "skipped_updates": self.skipped_updates, "bad_steps": self.bad_steps,
                "world_size": self.trainer.world_size}

    def save_checkpoint(self) -> None:
        """Write ``checkpoint/last`` (every rank calls this; rank 0 writes the shared files)."""

        checkpoint.save(self.run_dir, policy=self.policy, optimizer=self.optimizers().optimizer,
                        scheduler=self.lr_schedulers(), state=self.counters(), rank=self.global_rank,
                        barrier=self.trainer.strategy.barrier)

    def _resume(self, folder) -> None:

        state = checkpoint.load(folder, policy=self.policy, optimizer=self.optimizers().optimizer,
                                scheduler=self.lr_schedulers(), rank=self.global_rank)
        if state.get("world_size", 1) != self.trainer.world_size:
            raise HarnessError(f"checkpoint {folder} was written by {state.get('world_size')} processes, "
                               f"this run has {self.trainer.world_size}: resume with the same devices")
        self.rollout_step, self.optimizer_steps = state["step"], state["optimizer_steps"]
        self.skipped_updates, self.bad_steps = state["skipped_updates"], state["bad_steps"]
        self.engine.sync_weights(self.policy)

    def _newline_mask(self, ids: torch.Tensor) -> torch.Tensor:
        if self._newline_ids is None:
            self._newline_ids = newline_token_ids(self.tokenizer)
        return torch.isin(ids, self._newline_ids.to(ids.device))

    # ------------------------------------------------------------------ rollout
    def _micro_batches(self, attn, rows, T) -> list[torch.Tensor]:
        return plan_micro_batches(attn, rows, T, max_rows=self.cfg.train.micro_batch_size,
                                  max_tokens=self._token_budget)

    def _logp(self, model, ids, attn, micro, T, *, with_entropy=False, entropy_grad=False):
        """``(logp [m, T], entropy [m, T] or None)`` of rows ``micro``, cut to their own padding."""
        m_ids, m_attn, m_T = micro_inputs(ids, attn, micro, T)
        logp, ent = token_logp_entropy(model, m_ids, m_attn, m_T, with_entropy=with_entropy,
                                       chunk_tokens=self._logit_chunk, entropy_grad=entropy_grad,
                                       temperature=self.cfg.rollout.temperature)
        return pad_right(logp, T), pad_right(ent, T)

    @torch.no_grad()
    def _logp_no_grad(self, model, ids, attn, T) -> torch.Tensor:
        t0 = time.perf_counter()
        out = torch.zeros(ids.shape[0], T, device=ids.device)                  # [B, T]
        for micro in self._micro_batches(attn, torch.arange(ids.shape[0], device=ids.device), T):
            out[micro] = self._logp(model, ids, attn, micro, T)[0]
        self._times["logp"] += time.perf_counter() - t0
        return out

    def _sample(self, batch):
        """``rollout.n`` responses per problem of the step (prompt-major), seeded by the step and rank."""
        r = self.cfg.rollout
        params = SamplingParams(n=r.n, temperature=r.temperature, top_p=r.top_p, max_new_tokens=r.max_new_tokens,
                                logprobs=True)
        seed = (self.cfg.seed * 100_003 + self.rollout_step) * 64 + self.global_rank
        return self.engine.generate([prompt_of(p, self.tokenizer) for p in batch], params, seed=seed)

    def _rollout(self, gens, rewards) -> tuple[Rollout, tuple]:
        """The :class:`Rollout` of a step's generations, and (ids, attn, T, ref_logp) for the update."""
        cfg = self.cfg
        ids, attn, mask, T = collate(gens, self.tokenizer.pad_token_id, self.device)
        # One update per batch makes pi_old the current policy: its log-probs are the update pass's own
        # (detached), so the separate no-grad pass only runs when the advantage needs them first.
        old_logp = None
        if cfg.train.epochs * cfg.train.mini_batches > 1 or needs_old_logp(self.algo, cfg.algo):
            old_logp = self._logp_no_grad(self.policy, ids, attn, T) * mask
        ref_logp = None
        if self.ref is not None:  # also logged as the KL to the reference
            ref_logp = self._logp_no_grad(self.ref, ids, attn, T) * mask
        resp_ids = ids[:, -T:]
        rollout = Rollout(response_ids=resp_ids, response_mask=mask,
                          group_ids=torch.tensor([g.prompt_index for g in gens], device=self.device),
                          rewards=rewards, old_logp=old_logp,
                          ref_logp=ref_logp if needs_ref_logp(self.algo, cfg.algo) else None,
                          newline_mask=self._newline_mask(resp_ids) & mask.bool(),
                          rollout_logp=sampling_logp(gens, T, self.device))
        return rollout, (ids, attn, T, ref_logp)

    def training_step(self, batch, batch_idx):
        cfg = self.cfg
        t0 = time.perf_counter()
        gens = self._sample(batch)
        t1 = time.perf_counter()
        rewards = torch.tensor(self.reward([g.text for g in gens], [batch[g.prompt_index] for g in gens],
                                           [g.finish_reason for g in gens]), dtype=torch.float32, device=self.device)
        t2 = time.perf_counter()
        self._times = defaultdict(float)
        rollout, (ids, attn, T, ref_logp) = self._rollout(gens, rewards)
        adv = self.algo.compute_advantages(rollout, cfg.algo)
        stats, old_logp = self._update(rollout, adv, ids, attn, T)
        t_sync = time.perf_counter()
        self.engine.sync_weights(self.policy)
        t3 = time.perf_counter()
        self._times["sync"] = t3 - t_sync
        self.rollout_step += 1
        metrics = {"step": self.rollout_step, "optimizer_step": self.optimizer_steps,
                   **step_metrics(rollout, adv, old_logp, ref_logp, cfg.train.rollout_correction_c),
                   "lr": self.optimizers().param_groups[0]["lr"],
                   "prompt_len": sum(len(g.prompt_ids) for g in gens) / len(gens),
                   "logp_passes": (rollout.old_logp is not None) + (ref_logp is not None),  # no-grad passes run
                   "tokens_per_s": float(rollout.response_mask.sum()) / max(t1 - t0, 1e-9),
                   "time_generate_s": t1 - t0, "time_score_s": t2 - t1, "time_update_s": t3 - t2,
                   **{f"time_{k}_s": self._times[k] for k in ("logp", "forward", "backward", "optimizer", "sync")},
                   "skipped_updates": self.skipped_updates, **stats,
                   "entropy_share": entropy_share(stats, cfg.algo),
                   **(self.algo.diagnostics(rollout, cfg.algo) if self.algo.diagnostics else {})}
        bar = {"reward": metrics["reward_mean"], "kl": metrics["kl"], "mismatch": metrics.get("mismatch_kl", math.nan),
               "tok/s": metrics["tokens_per_s"]}
        self.log_dict(bar, prog_bar=True, on_step=True, batch_size=len(gens))
        if self.metrics is not None:
            self.metrics(metrics)
        self._end_of_step()
        return None

    def _end_of_step(self) -> None:
        """Checkpoint every ``train.save_every`` steps and after the last; stop here on SIGTERM/SIGINT."""
        every, steps = self.cfg.train.save_every, self.cfg.train.steps
        saved = self.run_dir is not None and ((every and self.rollout_step % every == 0)
                                              or self.rollout_step == steps)
        if saved:
            self.save_checkpoint()
        signum = stop.requested()
        if not self._all_ranks(signum is None) and self.rollout_step < steps:  # any rank asked to stop
            if self.run_dir is not None and not saved:
                self.save_checkpoint()
            self.stopped_by = signum or 15
            self.trainer.should_stop = True

    def _all_ranks(self, flag: bool) -> bool:
        """``flag`` and-ed over every process (the same skip decision on every DDP rank)."""
        if self.trainer.world_size == 1:
            return flag
        return bool(self.all_gather(torch.tensor(float(flag), device=self.device)).min().item() > 0)
