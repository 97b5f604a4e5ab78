"""REINFORCE with a baseline, and RLOO (Ahmadian et al. 2024, "Back to Basics", arXiv 2402.14740).

- ``reinforce``: ``A_i = R_i - b`` broadcast to the tokens, with ``baseline`` = ``none`` (b = 0),
  ``batch_mean`` (b = mean of R over the whole rollout batch) or ``group_mean`` (b = mean over the
  prompt's n responses; OpenRLHF ``reinforce_baseline`` / Dr.GRPO, = ``grpo`` with ``scale_by_std=False``). No std
  scaling.
- ``rloo``: leave-one-out baseline ``A_i = R_i - (sum_g R - R_i) / (n - 1)`` (verl
  ``compute_rloo_outcome_advantage``, written there as ``(R_i - mean_g) n / (n - 1)``).

A group of one response gets ``A_i = R_i`` in both (the singleton rule of :mod:`algorithms.core`). Both take
``kl_reward_coef``: R is charged its KL to the reference before the baseline (:mod:`algorithms.kl_reward`).

Both use the shared PPO-clip loss (ratio 1 and no clipping on the first, on-policy mini-batch, where it
equals the REINFORCE gradient ``-A grad log pi``).

Try it: ``python -m pytest tests/algorithms/test_algorithms.py -q -k "reinforce or rloo"``
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.core import (ALGORITHMS, Algorithm, Rollout, adv_dtype, broadcast, check_choice, group_mean_std,
                             group_stats)
from algorithms.kl_reward import KLRewardConfig, shaped_rewards
from algorithms.loss import compute_loss

BASELINES = ("none", "batch_mean", "group_mean")


@dataclass
class ReinforceConfig(KLRewardConfig):
    """REINFORCE hyper-parameters (plus the shared loss fields of LossConfig)."""

    baseline: str = "batch_mean"  # none | batch_mean | group_mean ("none" with 0/1 rewards ~ RAFT++)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("baseline", self.baseline, BASELINES)


@dataclass
class RLOOConfig(KLRewardConfig):
    """RLOO hyper-parameters: the shared loss fields and the KL-in-reward of KLRewardConfig."""


@torch.no_grad()
def compute_reinforce_advantages(rollout: Rollout, cfg: ReinforceConfig) -> torch.Tensor:
    """REINFORCE advantage ``[B, T]``: ``R_i - baseline`` on every valid token."""
    r = shaped_rewards(rollout, cfg)  # [B]
    if cfg.baseline == "batch_mean":
        r = r - r.mean()
    elif cfg.baseline == "group_mean":
        r = r - group_mean_std(r, rollout.group_ids)[0]  # singleton group: baseline 0
    return broadcast(r, rollout.response_mask).to(adv_dtype(rollout))


@torch.no_grad()
def compute_rloo_advantages(rollout: Rollout, cfg: RLOOConfig) -> torch.Tensor:
    """RLOO advantage ``[B, T]``: ``R_i`` minus the mean reward of the other responses to the same prompt."""
    r = shaped_rewards(rollout, cfg)  # [B]
    mean, _, n = group_stats(r, rollout.group_ids)  # [B] each
    loo = (r - mean) * n / (n - 1).clamp(min=1)  # [B] = r - (sum - r) / (n - 1)
    return broadcast(torch.where(n > 1, loo, r), rollout.response_mask).to(adv_dtype(rollout))


ALGORITHMS.register("reinforce", Algorithm(
    name="reinforce",
    config_cls=ReinforceConfig,
    compute_advantages=compute_reinforce_advantages,
    compute_loss=compute_loss,
    needs_ref=False,
    summary="REINFORCE: R minus a batch-mean (or none / group-mean) baseline on every token, PPO-clip loss",
))

ALGORITHMS.register("rloo", Algorithm(
    name="rloo",
    config_cls=RLOOConfig,
    compute_advantages=compute_rloo_advantages,
    compute_loss=compute_loss,
    needs_ref=False,
    summary="RLOO: R minus the leave-one-out mean of the prompt's other responses, PPO-clip loss",
))
