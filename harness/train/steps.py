"""The pieces of an RL step that need no module state: the step's logged values and the step loader (token
log-probs: :mod:`harness.train.logprobs`).

    python -c "from harness.train.steps import entropy_share as e; from types import SimpleNamespace as N; \
print(e({'pg_loss': 1.0, 'entropy': 2.0}, N(entropy_coef=0.1, kl_coef=0.0)))"
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, IterableDataset

from algorithms.core import Rollout
from algorithms.correction import mismatch_metrics
from common.rank import shard

_PRECISION_DTYPES = {"bf16": "bfloat16", "16": "float16", "64": "float64"}  # Lightning precision prefixes


def training_dtype(precision: str, param_dtype: str) -> str:
    """The precision the training forward computes in: Lightning's ``trainer.precision`` (``bf16-mixed`` and
    ``bf16-true`` compute in bfloat16, ``16-*`` in float16), else the parameters' own dtype."""
    return _PRECISION_DTYPES.get(str(precision).split("-")[0], param_dtype)


def resolve_correction(mode: str, sample_dtype: str, train_dtype: str) -> str:
    """``train.rollout_correction`` as run: ``auto`` is ``tis`` when the engine samples in another precision than
    training computes in, else ``none``."""
    if mode != "auto":
        return mode
    return "tis" if sample_dtype != train_dtype else "none"


def step_metrics(rollout: Rollout, adv: torch.Tensor, old_logp, ref_logp, c: float = 2.0) -> dict:
    """One RL step's reward, KL to the reference, response length and advantage statistics, and the
    rollout/training mismatch (:mod:`algorithms.correction`) when the engine returned sampling log-probs."""
    mask, rewards = rollout.response_mask, rollout.rewards
    n_tok = float(mask.sum())
    valid = mask.bool()
    mismatch = {} if rollout.rollout_logp is None else mismatch_metrics(old_logp, rollout.rollout_logp, mask, c)
    return {
        "reward_mean": rewards.mean().item(), "accuracy": (rewards > 0).float().mean().item(),
        "kl": ((old_logp - ref_logp)[valid].mean().item() if ref_logp is not None else float("nan")),
        "response_len": n_tok / mask.shape[0],
        "adv_mean": adv[valid].mean().item() if n_tok else 0.0,
        "adv_std": adv[valid].std().item() if n_tok > 1 else 0.0,
        **mismatch,
    }


def entropy_share(stats: dict, algo_cfg) -> float:
    """The entropy bonus's share of the loss: ``|c_H H| / (|pg_loss| + |c_KL kl_loss| + |c_H H|)``, 0 when off.

    ``H`` is the logged token-mean entropy, so with ``loss_agg`` other than ``token-mean`` the bonus term is
    approximated by ``c_H`` times the token mean. A coefficient too small to move the loss shows as ~0.
    """
    bonus = abs(algo_cfg.entropy_coef * stats.get("entropy", 0.0))
    kl_term = abs(algo_cfg.kl_coef * stats.get("kl_loss", 0.0))
    total = abs(stats.get("pg_loss", 0.0)) + kl_term + bonus
    return bonus / total if total > 0 and math.isfinite(total) else 0.0


def step_loader(source, steps: int, start: int = 0):
    """One batch per RL step ``start .. steps-1``: this rank's problems of that step from ``source``."""


    class Steps(IterableDataset):
        def __iter__(self):
            rank, world = shard()
            for step in range(start, steps):  # prompts are indexed by step: resuming = starting later
                yield source.batch(step, rank, world)

    return DataLoader(Steps(), batch_size=None, collate_fn=_identity)


def _identity(x):
    return x


def newline_token_ids(tokenizer) -> torch.Tensor:
    """Ids of the vocabulary's tokens that hold a newline (PRL splits responses into steps at them)."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return torch.tensor([i for i, t in enumerate(vocab) if t is not None and ("\n" in t or "Ċ" in t)], dtype=torch.long)


def total_grad_norm(model: torch.nn.Module) -> float:
    """The L2 norm of all of ``model``'s gradients together (0.0 when there are none)."""
    grads = [p.grad.detach().float().norm() for p in model.parameters() if p.grad is not None]
    return torch.stack(grads).norm().item() if grads else 0.0
