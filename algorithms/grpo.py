"""GRPO: group-normalised outcome advantage + PPO-clip loss (Shao et al. 2024, DeepSeekMath, arXiv 2402.03300).

Advantage = verl ``compute_grpo_outcome_advantage``: for the n responses of one prompt,
``A_i = (R_i - mean_g R) / (std_g R + eps)`` with the unbiased (N-1) std and eps = 1e-6
(``scale_by_std=False`` -> ``R_i - mean_g R``, Dr.GRPO style), broadcast to every response token.
A group of one response gets mean 0 and std 1 (verl). ``kl_reward_coef`` charges each response its KL to the
reference before the normalisation (:mod:`algorithms.kl_reward`; v2's "GRPO + KL-reward"). Loss: the shared
PPO-clip loss of :mod:`algorithms.core` with verl's defaults (clip 0.2/0.2, dual clip 3, token-mean). ``kl_coef``
defaults to 0.0 as in the PRL repo's GRPO baseline script (verl's own ``kl_loss_coef`` default is
0.001, but its ``use_kl_loss`` default is off; DeepSeekMath used 0.04).

Try it: ``python -c "from algorithms import compute_advantages as c; import torch; print(c('grpo', torch.tensor([1.,0,0,1]), torch.zeros(4, dtype=torch.long), torch.ones(4, 2)))"``
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.core import ALGORITHMS, Algorithm, Rollout, adv_dtype, broadcast, check, group_normalized_scores
from algorithms.kl_reward import KLRewardConfig, shaped_rewards
from algorithms.loss import compute_loss


@dataclass
class GRPOConfig(KLRewardConfig):
    """GRPO hyper-parameters (plus the shared loss fields of LossConfig)."""

    scale_by_std: bool = True  # divide by the group std (verl norm_adv_by_std_in_grpo); False = mean-centre only
    eps: float = 1e-6  # added to the group std (verl 1e-6; TRL uses 1e-4)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.eps >= 0, f"algo.eps must be >= 0 (got {self.eps})")


@torch.no_grad()
def compute_grpo_advantages(rollout: Rollout, cfg: GRPOConfig) -> torch.Tensor:
    """GRPO advantage ``[B, T]``: the group-normalised outcome on every valid token, 0 on padding."""
    scores = group_normalized_scores(shaped_rewards(rollout, cfg), rollout.group_ids, scale_by_std=cfg.scale_by_std,
                                     eps=cfg.eps)
    return broadcast(scores, rollout.response_mask).to(adv_dtype(rollout))  # [B, T]


ALGORITHMS.register("grpo", Algorithm(
    name="grpo",
    config_cls=GRPOConfig,
    compute_advantages=compute_grpo_advantages,
    compute_loss=compute_loss,
    needs_ref=False,
    summary="GRPO: (R - group mean) / (group std + 1e-6) on every token, PPO-clip loss (verl)",
))
