"""KL in the reward, for the group-baseline algorithms (grpo, rloo, reinforce): verl's ``use_kl_in_reward``.

Each response's outcome reward is charged its whole KL to the reference before the baseline and the normalisation::

    r~_i = r_i - kl_reward_coef * sum_t m_{i,t} k(d_{i,t}),        d = log pi_old - log pi_ref

with ``k`` the reverse estimator ``kl_reward_estimator`` (k1 ``d``, the default as verl's ``algorithm.kl_penalty=kl``;
k2 ``d^2/2``; k3 ``e^-d + d - 1``). verl puts ``-coef * k`` on every token's reward and its GRPO estimator sums the
token rewards before normalising, which is this. It is v2's "GRPO + KL-reward" (arXiv 2601.10201 v2, Prop. 3.2,
App. F.1 (b)), the placement that collapses in its Table 1: the group std now depends on the KL, so the KL gradient
is weighted by the outcome's normaliser. The coefficient the paper ran is not given (verl's default is 0.001).

Try it: ``python -c "import torch; from algorithms import compute_advantages as c; \
print(c('grpo', torch.tensor([1., 1, 0, 0]), torch.zeros(4, dtype=torch.long), torch.ones(4, 1), \
torch.tensor([[.3], [-.1], [.5], [0]]), torch.zeros(4, 1), kl_reward_coef=1.0))"``
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.core import KL_ALIASES, LossConfig, Rollout, check, check_choice
from algorithms.loss import kl_estimate


@dataclass
class KLRewardConfig(LossConfig):
    """The shared loss fields plus the KL-in-reward of the group-baseline algorithms."""

    kl_reward_coef: float = 0.0  # r_i -= coef * sum_t k(d_t) before the baseline; 0 = off (verl use_kl_in_reward)
    kl_reward_estimator: str = "k1"  # k1 | k2 | k3, reverse KL per token (verl algorithm.kl_penalty, default kl = k1)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.kl_reward_coef >= 0, f"algo.kl_reward_coef must be >= 0 (got {self.kl_reward_coef})")
        check_choice("kl_reward_estimator", self.kl_reward_estimator, tuple(KL_ALIASES))


def uses_kl_reward(cfg) -> bool:
    """Whether ``cfg`` charges the KL in the reward (then the advantage needs pi_old's and pi_ref's log-probs)."""
    return getattr(cfg, "kl_reward_coef", 0.0) > 0


@torch.no_grad()
def shaped_rewards(rollout: Rollout, cfg: KLRewardConfig) -> torch.Tensor:
    """``[B]`` float64 rewards, less ``kl_reward_coef`` times each response's summed KL estimate when that is on."""
    r = rollout.rewards.detach().double()  # [B]
    if not uses_kl_reward(cfg):
        return r
    if rollout.old_logp is None or rollout.ref_logp is None:
        raise ValueError("kl_reward_coef > 0 needs rollout.old_logp and rollout.ref_logp")
    mask = rollout.response_mask.double()  # [B, T]
    k = kl_estimate(rollout.old_logp.detach().double(), rollout.ref_logp.detach().double(), cfg.kl_reward_estimator)
    return r - cfg.kl_reward_coef * (k * mask).sum(-1)
