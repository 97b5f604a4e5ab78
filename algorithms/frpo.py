"""FRPO: Future-KL Regularized Policy Optimization (Yao, Wang, Bai, Zhang 2026, arXiv 2601.10201 v2, eq. 5.1, Alg. 1).

The GRPO advantage of the raw 0/1 rewards, minus ``beta`` times the KL still to come, per token, after the group
normalisation (the KL never enters the group mean or std)::

    A_{i,t} = sg( (r_i - mean_g r) / (std_g r + eps)  -  beta * S_{i,t} ),    S_{i,t} = sum_{j >= t} m_{i,j} k(d_{i,j})

with ``d = log pi_old - log pi_ref`` of the sampled tokens (computed once per rollout batch, fixed over its
mini-batches) and ``k`` the per-token estimator (v2 §2.1, App. E; reverse = KL(pi || pi_ref)):

    ============  ==========  ==========  ===================
    direction      k1          k2          k3
    ============  ==========  ==========  ===================
    reverse        d           d^2 / 2     e^-d + d - 1
    forward        -d          d^2 / 2     e^d - d - 1
    ============  ==========  ==========  ===================

The v2 default is ``beta`` 0.01, reverse k1, the inclusive suffix and the population (1/G) std with eps 1e-6
(Alg. 1 l.6-11); the whole advantage is detached and fed unchanged to the PPO-clip loss (``kl_coef`` stays 0).
Options and where each comes from, including what the paper leaves open: ``docs/algorithms.md``. Choices where the
paper is ambiguous:

- the estimator is used at every position, the current token included (App. E), not eq. 4.6's k1-now, k3-later;
- k3 values use verl's clamps (log-ratio to +-20, value to +-10: :func:`algorithms.loss.kl_estimate`);
- ``k3_baseline=batch`` (§6.2.2) subtracts ``D * (valid tokens the suffix sum covers)``, D the token mean of the
  estimator over the whole rollout batch; the paper writes ``(T - t) D``, one term short of the inclusive sum;
- a group of one response keeps mean 0 and std 1, as GRPO here; a group whose rewards are all equal gets
  outcome 0 and keeps the pure KL signal ``-beta S`` (the paper does not say whether such groups are skipped).

With ``std=unbiased`` this is the v1 code's ``prm.adv=orm, step_len=1`` (:mod:`algorithms.prl`, ``eta = 1/beta``).

Try it: ``python -m harness ls --algo frpo``
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.core import (ALGORITHMS, Algorithm, LossConfig, Rollout, adv_dtype, check, check_choice,
                             group_normalized_scores, process_share, suffix_sum)
from algorithms.loss import compute_loss, kl_estimate

KL_DIRECTIONS = ("reverse", "forward")
STD_KINDS = ("population", "unbiased")
SUFFIXES = ("inclusive", "exclusive")
K3_BASELINES = ("none", "batch")


@dataclass
class FRPOConfig(LossConfig):
    """FRPO hyper-parameters (plus the shared loss fields of LossConfig).

    ``kl_estimator`` is the future-KL estimator here (and the loss's, should ``kl_coef`` be set too)."""

    beta: float = 0.01  # future-KL coefficient (v2 Table 7: 0.01 for every model; = 1/eta of PRL)
    kl_estimator: str = "k1"  # k1 | k2 | k3, the per-token estimator of the future KL (v2 App. E: k1 default)
    kl_direction: str = "reverse"  # reverse: KL(pi || pi_ref) | forward: KL(pi_ref || pi), ratio reversed (Def. B.3)
    std: str = "population"  # population: 1/G std (v2 eq. 3.2) | unbiased: N-1 std (verl, PRL v1 code)
    suffix: str = "inclusive"  # inclusive: sum over j >= t (v2 default) | exclusive: j > t
    k3_baseline: str = "none"  # none | batch: minus the batch token mean times the suffix's token count (§6.2.2)
    eps: float = 1e-6  # added to the group std (v2 Alg. 1 l.7: eps_std, value not given; verl 1e-6)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.beta >= 0, f"algo.beta must be >= 0 (got {self.beta})")
        check_choice("kl_direction", self.kl_direction, KL_DIRECTIONS)
        check_choice("std", self.std, STD_KINDS)
        check_choice("suffix", self.suffix, SUFFIXES)
        check_choice("k3_baseline", self.k3_baseline, K3_BASELINES)
        check(self.eps >= 0, f"algo.eps must be >= 0 (got {self.eps})")


def per_token_kl(logp: torch.Tensor, logp_ref: torch.Tensor, estimator: str, direction: str) -> torch.Tensor:
    """The per-token KL estimate ``[B, T]`` of the table above (forward: the reverse estimator with the ratio
    reversed, v2 Def. B.3)."""
    return kl_estimate(logp, logp_ref, estimator) if direction == "reverse" else kl_estimate(logp_ref, logp, estimator)


@torch.no_grad()
def frpo_terms(rollout: Rollout, cfg: FRPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(outcome [B, 1], future [B, T])``, float64, with ``A = (outcome - future) * mask``; ``future`` is
    ``beta * S`` (less the baseline), 0 on padding."""
    if rollout.ref_logp is None or rollout.old_logp is None:
        raise ValueError("frpo needs rollout.old_logp and rollout.ref_logp")
    mask = rollout.response_mask.double()  # [B, T]
    est = per_token_kl(rollout.old_logp.detach().double(), rollout.ref_logp.detach().double(), cfg.kl_estimator,
                       cfg.kl_direction) * mask  # [B, T]; padding 0 whatever the padded log-probs hold
    S = suffix_sum(est)  # [B, T] sum_{j >= t}
    count = suffix_sum(mask)  # [B, T] valid tokens in that sum
    if cfg.suffix == "exclusive":
        S, count = S - est, count - mask
    if cfg.k3_baseline == "batch":
        S = S - count * (est.sum() / mask.sum().clamp(min=1))
    outcome = group_normalized_scores(rollout.rewards, rollout.group_ids, eps=cfg.eps,
                                      population=cfg.std == "population")  # [B]
    return outcome[:, None], cfg.beta * S * mask


@torch.no_grad()
def compute_frpo_advantages(rollout: Rollout, cfg: FRPOConfig) -> torch.Tensor:
    """FRPO advantage ``[B, T]`` (module docstring), 0 on padding, detached."""
    outcome, future = frpo_terms(rollout, cfg)
    return ((outcome - future) * rollout.response_mask.double()).to(adv_dtype(rollout))


@torch.no_grad()
def frpo_diagnostics(rollout: Rollout, cfg: FRPOConfig) -> dict[str, float]:
    """``process_share``: mean |future-KL part| / mean |outcome part| over response tokens (as PRL's)."""
    return process_share(*frpo_terms(rollout, cfg), rollout.response_mask)


ALGORITHMS.register("frpo", Algorithm(
    name="frpo",
    config_cls=FRPOConfig,
    compute_advantages=compute_frpo_advantages,
    compute_loss=compute_loss,
    needs_ref=True,
    needs_old_logp=True,
    diagnostics=frpo_diagnostics,
    summary="FRPO: GRPO outcome minus beta x per-token future KL to ref, after normalisation (arXiv 2601.10201 v2)",
))
