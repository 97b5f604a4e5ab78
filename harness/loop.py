"""The one Lightning RL loop shared by every algorithm.

Per step (``RLModule.training_step``): take this rank's prompts -> sample ``n`` responses each with
the rollout engine -> grade them (outcome reward 1/0) -> log-probs without grad where needed: the old
policy's when the batch gets more than one update or the advantage uses them (PRL), otherwise the
update pass's own detached log-probs serve (one update makes pi_old the current policy); the
reference's when the advantage (PRL) or a KL loss needs them or ``log.kl_to_ref`` is on -> the plugin's
advantages -> ``epochs x mini_batches`` optimizer steps of the plugin's loss, each accumulated over
micro-batches, with gradient clipping and a guard that skips non-finite updates -> sync the engine's
weights -> every ``train.save_every`` steps (and after the last one) a resumable checkpoint
(:mod:`harness.checkpoint`). Manual optimisation throughout (never ``optimizer_step``);
``rollout_step`` and ``optimizer_step`` are counted and logged explicitly because Lightning's
``global_step`` counts optimizer steps.

A resumed run loads ``checkpoint/last`` in ``on_train_start`` (after the base evaluation, which must
see the base weights): weights, optimizer, lr schedule, RNG states and the step counters. Every
random choice of a step is seeded by the step number (sampling, mini-batch order) and the prompts
are indexed by step, so a resumed run follows the uninterrupted trajectory.
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable

import lightning as L
import torch

from algorithms import get_algorithm, needs_ref_logp
from algorithms.core import Rollout
from harness.errors import HarnessError
from harness.rollout import SamplingParams


class NonFiniteError(HarnessError, RuntimeError):
    """Raised after ``train.max_bad_steps`` consecutive non-finite updates (a one-line CLI error, exit 2)."""


def token_logp_entropy(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, resp_len: int,
                       *, with_entropy: bool = True):
    """Log-probs (and entropies) of the last ``resp_len`` tokens of left-padded prompt+response rows.

    Args:
        input_ids: [B, P + T] left-padded prompts followed by right-padded responses.
        attention_mask: [B, P + T].
    Returns:
        logp [B, T] (float32), entropy [B, T] or None.
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)                 # [B, P+T]
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                logits_to_keep=resp_len + 1, use_cache=False)
    logits = out.logits[:, :-1].float()                                        # [B, T, V]
    targets = input_ids[:, -resp_len:]                                         # [B, T]
    logz = torch.logsumexp(logits, dim=-1)                                     # [B, T]
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz
    entropy = None
    if with_entropy:
        probs = torch.softmax(logits, dim=-1)
        entropy = logz - (probs * logits).sum(-1)
    return logp, entropy


class RLModule(L.LightningModule):
    def __init__(self, cfg, policy, ref, tokenizer, make_prompt: Callable, reward_fn: Callable,
                 engine_factory: Callable, metrics_sink: Callable | None = None,
                 on_start: Callable | None = None, save_checkpoint: Callable | None = None,
                 resume_from=None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg
        self.policy = policy
        self.ref = ref
        self.tokenizer = tokenizer
        self.algo = get_algorithm(cfg.algo.name)
        self.make_prompt = make_prompt
        self.reward_fn = reward_fn
        self.engine_factory = engine_factory
        self.engine = None
        self.metrics_sink = metrics_sink
        self.on_start = on_start
        self.save_checkpoint = save_checkpoint   # (module) -> None, called on every rank
        self.resume_from = resume_from           # checkpoint/last folder to continue from, or None
        self.rollout_step = 0
        self.optimizer_steps = 0
        self.bad_steps = 0
        self.skipped_updates = 0
        if ref is not None:
            ref.requires_grad_(False).eval()
        self._newline_ids = None

    # ------------------------------------------------------------------ setup
    def configure_optimizers(self):
        t = self.cfg.train
        opt = torch.optim.AdamW(self.policy.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                                betas=tuple(t.betas))
        warm = t.warmup_steps * t.epochs * t.mini_batches
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        return [opt], [sched]

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # a list of TrainProblem; tensors are built on the device in training_step

    def on_train_start(self) -> None:
        if self.ref is not None:
            self.ref.to(self.device)
        if self.engine is None:  # built here: vLLM under DDP needs the process group to exist
            self.engine = self.engine_factory(self.policy)
        if self.on_start is not None:
            self.on_start(self.engine)
        if self.resume_from is not None:
            self._resume(self.resume_from)

    # ------------------------------------------------------------------ checkpoints
    def counters(self) -> dict:
        return {"step": self.rollout_step, "optimizer_steps": self.optimizer_steps,
                "skipped_updates": self.skipped_updates, "bad_steps": self.bad_steps,
                "world_size": self.trainer.world_size}

    def _resume(self, folder) -> None:
        from harness import checkpoint

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
            vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
            nl = [i for i, t in enumerate(vocab) if t is not None and ("\n" in t or "Ċ" in t)]
            self._newline_ids = torch.tensor(nl, dtype=torch.long)
        return torch.isin(ids, self._newline_ids.to(ids.device))

    # ------------------------------------------------------------------ rollout
    def _collate(self, gens) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        pad = self.tokenizer.pad_token_id
        P = max(len(g.prompt_ids) for g in gens)
        T = max(max(len(g.response_ids) for g in gens), 1)
        ids = torch.full((len(gens), P + T), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for r, g in enumerate(gens):
            p, s = g.prompt_ids, g.response_ids
            ids[r, P - len(p):P] = torch.tensor(p)
            attn[r, P - len(p):P] = 1
            if s:
                ids[r, P:P + len(s)] = torch.tensor(s)
                attn[r, P:P + len(s)] = 1
        return ids.to(self.device), attn.to(self.device), attn[:, P:].float().to(self.device), T

    @torch.no_grad()
    def _logp_no_grad(self, model, ids, attn, T) -> torch.Tensor:
        mb = self.cfg.train.micro_batch_size
        return torch.cat([token_logp_entropy(model, ids[i:i + mb], attn[i:i + mb], T, with_entropy=False)[0]
                          for i in range(0, ids.shape[0], mb)])

    def training_step(self, batch, batch_idx):
        cfg, step = self.cfg, self.rollout_step
        t0 = time.perf_counter()
        prompts = [self.make_prompt(p) for p in batch]
        params = SamplingParams(n=cfg.rollout.n, temperature=cfg.rollout.temperature,
                                top_p=cfg.rollout.top_p, max_new_tokens=cfg.rollout.max_new_tokens)
        gens = self.engine.generate(prompts, params, seed=(cfg.seed * 100_003 + step) * 64 + self.global_rank)
        t1 = time.perf_counter()
        rewards = torch.tensor(self.reward_fn([g.text for g in gens], [batch[g.prompt_index] for g in gens]),
                               dtype=torch.float32, device=self.device)
        t2 = time.perf_counter()
        ids, attn, mask, T = self._collate(gens)
        # One update per batch makes pi_old the current policy: its log-probs are the update pass's own
        # (detached), so the separate no-grad pass only runs when the advantage needs them first.
        old_logp = None
        if cfg.train.epochs * cfg.train.mini_batches > 1 or self.algo.needs_old_logp:
            old_logp = self._logp_no_grad(self.policy, ids, attn, T) * mask
        ref_logp = None
        if self.ref is not None:  # also logged as the KL to the reference
            ref_logp = self._logp_no_grad(self.ref, ids, attn, T) * mask
        resp_ids = ids[:, -T:]
        rollout = Rollout(response_ids=resp_ids, response_mask=mask,
                          group_ids=torch.tensor([g.prompt_index for g in gens], device=self.device),
                          rewards=rewards, old_logp=old_logp,
                          ref_logp=ref_logp if needs_ref_logp(self.algo, cfg.algo) else None,
                          newline_mask=self._newline_mask(resp_ids) & mask.bool())
        adv = self.algo.compute_advantages(rollout, cfg.algo)
        stats = self._update(rollout, adv, ids, attn, T)
        old_logp = rollout.old_logp  # filled by the update pass when it was skipped above
        if self.engine is not None:
            self.engine.sync_weights(self.policy)
        t3 = time.perf_counter()
        self.rollout_step += 1
        n_tok = float(mask.sum())
        valid = mask.bool()
        metrics = {
            "step": self.rollout_step, "optimizer_step": self.optimizer_steps,
            "reward_mean": rewards.mean().item(), "accuracy": (rewards > 0).float().mean().item(),
            "kl": ((old_logp - ref_logp)[valid].mean().item() if ref_logp is not None else float("nan")),
            "response_len": n_tok / len(gens),
            "adv_mean": adv[valid].mean().item() if n_tok else 0.0,
            "adv_std": adv[valid].std().item() if n_tok > 1 else 0.0,
            "lr": self.optimizers().param_groups[0]["lr"],
            "tokens_per_s": n_tok / max(t1 - t0, 1e-9),
            "time_generate_s": t1 - t0, "time_score_s": t2 - t1, "time_update_s": t3 - t2,
            "skipped_updates": self.skipped_updates, **stats,
        }
        self.log_dict({"reward": metrics["reward_mean"], "kl": metrics["kl"], "tok/s": metrics["tokens_per_s"]},
                      prog_bar=True, on_step=True, batch_size=len(gens))
        if self.metrics_sink is not None:
            self.metrics_sink(metrics)
        if os.environ.get("HARNESS_TRACE_DIR"):  # per-rank trace for multi-process tests
            self._trace(batch)
        every = cfg.train.save_every
        if self.save_checkpoint is not None and (
                (every and self.rollout_step % every == 0) or self.rollout_step == cfg.train.steps):
            self.save_checkpoint(self)
        return None

    def _trace(self, batch) -> None:
        from harness.results import append_jsonl

        checksum = sum(p.detach().double().sum().item() for p in self.policy.parameters())
        append_jsonl(os.path.join(os.environ["HARNESS_TRACE_DIR"], f"rank{self.global_rank}.jsonl"),
                     [{"step": self.rollout_step, "prompts": [p.id for p in batch], "param_sum": checksum}])

    # ------------------------------------------------------------------ update
    def _update(self, rollout: Rollout, adv, ids, attn, T) -> dict:
        cfg = self.cfg
        opt = self.optimizers()
        sched = self.lr_schedulers()
        B = ids.shape[0]
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + self.rollout_step)
        sums: dict[str, float] = {}
        norms = []
        n_updates = 0
        fill_old = None
        for _ in range(cfg.train.epochs):
            order = torch.randperm(B, generator=gen) if cfg.train.mini_batches > 1 else torch.arange(B)
            for mb_idx in order.chunk(cfg.train.mini_batches):
                mb_idx = mb_idx.to(ids.device)
                mb_mask = rollout.response_mask[mb_idx]
                num_tokens = float(mb_mask.sum())
                num_seqs = float((mb_mask.sum(-1) > 0).sum())
                opt.zero_grad(set_to_none=True)
                finite = True
                for micro in mb_idx.split(cfg.train.micro_batch_size):
                    sub = rollout.select(micro)
                    logp, ent = token_logp_entropy(self.policy, ids[micro], attn[micro], T,
                                                   with_entropy=True)
                    if sub.old_logp is None:  # on-policy: pi_old = the policy before this (only) update
                        sub.old_logp = logp.detach() * sub.response_mask
                        if fill_old is None:
                            fill_old = torch.zeros_like(rollout.response_mask, dtype=logp.dtype)
                        fill_old[micro] = sub.old_logp
                    loss, st = self.algo.compute_loss(logp, ent, sub, adv[micro], cfg.algo,
                                                      num_tokens=num_tokens, num_seqs=num_seqs)
                    if not torch.isfinite(loss):  # still backward: DDP ranks must all reduce gradients
                        finite = False
                    self.manual_backward(loss)
                    if finite:
                        for k, v in st.items():
                            sums[k] = sums.get(k, 0.0) + v
                grad_norm = self._grad_norm()
                if self._all_ranks(finite) and math.isfinite(grad_norm):
                    if cfg.train.grad_clip > 0:
                        self.clip_gradients(opt, gradient_clip_val=cfg.train.grad_clip,
                                            gradient_clip_algorithm="norm")
                    opt.step()
                    sched.step()
                    self.optimizer_steps += 1
                    norms.append(grad_norm)
                    self.bad_steps = 0
                else:
                    opt.zero_grad(set_to_none=True)
                    self.skipped_updates += 1
                    self.bad_steps += 1
                    if self.bad_steps >= cfg.train.max_bad_steps:
                        raise NonFiniteError(
                            f"{self.bad_steps} consecutive updates (up to RL step {self.rollout_step + 1}) "
                            "had a non-finite loss or gradient (train.max_bad_steps="
                            f"{cfg.train.max_bad_steps}); stopped, the last checkpoint is intact "
                            "(lower train.lr, or resume with --resume)")
                n_updates += 1
        if fill_old is not None:
            rollout.old_logp = fill_old
        out = {k: v / max(n_updates, 1) for k, v in sums.items()}
        out["grad_norm"] = sum(norms) / len(norms) if norms else float("nan")
        return out

    def _all_ranks(self, flag: bool) -> bool:
        """``flag`` and-ed over every process (the same skip decision on every DDP rank)."""
        if self.trainer.world_size == 1:
            return flag
        return bool(self.all_gather(torch.tensor(float(flag), device=self.device)).min().item() > 0)

    def _grad_norm(self) -> float:
        grads = [p.grad.detach().float().norm() for p in self.policy.parameters() if p.grad is not None]
        return torch.stack(grads).norm().item() if grads else 0.0
