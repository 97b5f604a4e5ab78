"""The policy update of an RL step: ``train.epochs`` x ``train.mini_batches`` optimizer steps of the plugin's loss,
each accumulated over token-budgeted micro-batches, weighted by the rollout correction, and skipped (with a count)
when the loss or gradient is not finite on some rank. A part of :class:`harness.train.loop.RLModule`, which holds
the state these methods use (``cfg``, ``algo``, ``policy``, ``correction``, the step counters and timings).

    python -m harness run --algo grpo --bench arith --steps 3 --train.epochs 2 --train.mini_batches 2
"""

from __future__ import annotations

import math
import time

import torch

from algorithms.core import Rollout
from algorithms.correction import correction_weights
from common.errors import HarnessError
from harness.train.steps import total_grad_norm


class NonFiniteError(HarnessError, RuntimeError):
    """Raised after ``train.max_bad_steps`` consecutive non-finite updates (a one-line CLI error, exit 2)."""


class PolicyUpdate:
    """The update methods of :class:`harness.train.loop.RLModule` (a LightningModule with manual optimisation)."""

    def _update(self, rollout: Rollout, adv, ids, attn, T) -> tuple[dict, torch.Tensor]:
        """``epochs x mini_batches`` optimizer steps on the rollout.

        Returns:
            (mean loss statistics and ``grad_norm``, pi_old log-probs ``[B, T]``: the rollout's, or the
            update pass's own detached ones when it had none).
        """
        cfg = self.cfg
        opt, sched = self.optimizers(), self.lr_schedulers()
        B = ids.shape[0]
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + self.rollout_step)
        sums: dict[str, float] = {}
        norms = []
        n_updates = 0
        fill_old = torch.zeros_like(rollout.response_mask) if rollout.old_logp is None else None   # [B, T]
        for _ in range(cfg.train.epochs):
            order = torch.randperm(B, generator=gen) if cfg.train.mini_batches > 1 else torch.arange(B)
            for mb_idx in order.chunk(cfg.train.mini_batches):
                opt.zero_grad(set_to_none=True)
                finite = self._accumulate(rollout, adv, ids, attn, T, mb_idx.to(ids.device), sums, fill_old)
                t0 = time.perf_counter()
                grad_norm = self._optimizer_step(opt, sched, finite)
                self._times["optimizer"] += time.perf_counter() - t0
                if grad_norm is not None:
                    norms.append(grad_norm)
                n_updates += 1
        out = {k: v / max(n_updates, 1) for k, v in sums.items()}
        out["grad_norm"] = sum(norms) / len(norms) if norms else float("nan")
        return out, (fill_old if fill_old is not None else rollout.old_logp)

    def _accumulate(self, rollout: Rollout, adv, ids, attn, T, mb_idx, sums: dict, fill_old) -> bool:
        """Gradients of the mini-batch ``mb_idx``'s loss, accumulated over its micro-batches (each normalised
        by the mini-batch's counts, so the sum is the mini-batch loss). Adds the loss statistics to ``sums``
        up to the first non-finite loss and, on policy (``fill_old`` given), writes the update pass's own
        detached log-probs into ``fill_old`` as pi_old. Returns whether every loss was finite."""
        cfg = self.cfg
        mb_mask = rollout.response_mask[mb_idx]
        counts = dict(num_tokens=float(mb_mask.sum()), num_seqs=float((mb_mask.sum(-1) > 0).sum()))
        finite = True
        for micro in self._micro_batches(attn, mb_idx, T):
            sub = rollout.select(micro)
            t0 = time.perf_counter()
            logp, ent = self._logp(self.policy, ids, attn, micro, T, with_entropy=True,
                                   entropy_grad=cfg.algo.entropy_coef != 0)
            if fill_old is not None:  # on-policy: pi_old = the policy before this (only) update
                sub.old_logp = fill_old[micro] = logp.detach() * sub.response_mask
            loss, st = self.algo.compute_loss(logp, ent, sub, adv[micro], cfg.algo, **counts,
                                              is_weights=self._is_weights(sub))
            t1 = time.perf_counter()
            if not torch.isfinite(loss):  # still backward: DDP ranks must all reduce gradients
                finite = False
            self.manual_backward(loss)
            self._times["forward"] += t1 - t0
            self._times["backward"] += time.perf_counter() - t1
            if finite:
                for k, v in st.items():
                    sums[k] = sums.get(k, 0.0) + v
        return finite

    def _is_weights(self, sub: Rollout) -> torch.Tensor | None:
        """The rollout correction's token weights of a micro-batch (pi_old against the engine), or None."""
        if self.correction["mode"] == "none" or sub.rollout_logp is None:
            return None
        return correction_weights(sub.old_logp, sub.rollout_logp, self.correction["mode"], self.correction["c"])

    def _optimizer_step(self, opt, sched, finite: bool) -> float | None:
        """Clip and step when the loss and gradient are finite on every rank (returns the gradient norm), else skip
        the update (returns None) and stop after ``train.max_bad_steps`` skips in a row."""
        cfg = self.cfg
        grad_norm = total_grad_norm(self.policy)
        if self._all_ranks(finite) and math.isfinite(grad_norm):
            if cfg.train.grad_clip > 0:
                self.clip_gradients(opt, gradient_clip_val=cfg.train.grad_clip, gradient_clip_algorithm="norm")
            opt.step()
            sched.step()
            self.optimizer_steps += 1
            self.bad_steps = 0
            return grad_norm
        opt.zero_grad(set_to_none=True)
        self.skipped_updates += 1
        self.bad_steps += 1
        if self.bad_steps >= cfg.train.max_bad_steps:
            raise NonFiniteError(
                f"{self.bad_steps} consecutive updates (up to RL step {self.rollout_step + 1}) "
                "had a non-finite loss or gradient (train.max_bad_steps="
                f"{cfg.train.max_bad_steps}); stopped, the last checkpoint is intact "
                "(lower train.lr, or resume with --resume)")
        return None
