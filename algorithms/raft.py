"""RAFT and RAFT++ (Xiong et al. 2025, "A Minimalist Approach to LLM Reasoning", arXiv 2504.11343).

Both use Minimal-RL's ``compute_raft_outcome_advantage``: ``A_i = max(R_i, 0)`` broadcast to the
tokens, i.e. 1 for correct responses and 0 otherwise with 0/1 rewards (rejection sampling).

- ``raft``: plain weighted NLL ``-A * logp`` (Minimal-RL ``policy_loss=vanilla``): no ratio, no clip.
  With token-mean the denominator counts the tokens of the zero-advantage (rejected) responses too, as
  in the reference code. ``clip_eps_low/high`` only feed the ``clip_frac`` metric here
  (as in Minimal-RL) and ``dual_clip`` is unused.
- ``raftpp``: the same advantage with the shared PPO-clip loss (``policy_loss=plusplus``), importance
  ratio and clipping for the off-policy mini-batches. (Minimal-RL's fork has no +-20 clamp on the
  log-ratio; here it is clamped like verl's current loss, which only matters for |log-ratio| > 20.)

The Minimal-RL scripts used ``kl_loss_coef=0.001`` (k3, on all responses); the default here is 0.0 like
the other plugins, set ``algo.kl_coef=0.001`` to match them.

Try it: ``python -m pytest tests/algorithms/test_algorithms.py -q -k raft``
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from algorithms.core import ALGORITHMS, Algorithm, LossConfig, Rollout, adv_dtype, broadcast
from algorithms.loss import compute_loss, nll_token_loss


@dataclass
class RAFTConfig(LossConfig):
    """RAFT / RAFT++ hyper-parameters: only the shared loss fields of LossConfig."""


@torch.no_grad()
def compute_raft_advantages(rollout: Rollout, cfg: RAFTConfig) -> torch.Tensor:
    """RAFT advantage ``[B, T]``: ``max(R_i, 0)`` on every valid token (1 = keep, 0 = rejected)."""
    scores = rollout.rewards.detach().double().clamp(min=0)  # [B]
    return broadcast(scores, rollout.response_mask).to(adv_dtype(rollout))


compute_raft_loss = partial(compute_loss, token_loss=nll_token_loss)
compute_raft_loss.__doc__ = ("RAFT loss: aggregated ``-A * logp`` (+ KL / entropy terms); "
                             "see algorithms.loss.compute_loss.")

ALGORITHMS.register("raft", Algorithm(
    name="raft",
    config_cls=RAFTConfig,
    compute_advantages=compute_raft_advantages,
    compute_loss=compute_raft_loss,
    needs_ref=False,
    summary="RAFT: NLL on the correct responses only (A = 1 if R > 0 else 0), no ratio/clip",
))

ALGORITHMS.register("raftpp", Algorithm(
    name="raftpp",
    config_cls=RAFTConfig,
    compute_advantages=compute_raft_advantages,
    compute_loss=compute_loss,
    needs_ref=False,
    summary="RAFT++: RAFT's positive-only advantage with the PPO-clip importance-ratio loss",
))
