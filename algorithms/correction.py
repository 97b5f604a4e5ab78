"""Rollout/training mismatch: how far the sampler's token probabilities stray from the trainer's, and the
token weights that correct the policy gradient for it.

The rollout engine samples token ``y_t`` with probability ``p_rollout`` (its own kernels, its precision: vLLM or
the kv sampler in bfloat16); the update scores it with ``p_train``, the training model's pi_old (the old-policy
log-prob of the same token, same temperature). With ``u = p_train / p_rollout`` per valid token:

- ``mismatch_kl``: token mean of ``u - log u - 1`` (k3), an unbiased estimate of KL(rollout || training) from
  the rollout's own samples (verl's ``rollout_is`` metrics, Schulman's k3);
- ``mismatch_logp_abs_max``: max ``|log u|``;
- ``mismatch_outside_frac``: share of tokens with ``u`` outside ``[1/C, C]``.

Corrections (``train.rollout_correction``), a constant per-token weight ``w`` on the policy-gradient term
(no gradient through it; the KL and entropy terms are not weighted):

- ``tis``: ``w = min(u, C)``, truncated importance sampling (Yao et al. 2025, "Your efficient RL framework
  secretly brings you off-policy RL training"; verl ``rollout_is`` token level; TRL
  ``vllm_importance_sampling_mode="token_truncate"``);
- ``mask``: ``w = 1`` inside ``[1/C, C]``, else 0 (IcePop, Ling team 2025, masks both sides; TRL's
  ``token_mask`` only the upper). A masked token keeps its place in the aggregation's token count, as in TRL.

    python -c "import torch; from algorithms.correction import correction_weights as w; \
print(w(torch.tensor([-1.0, -1.0, -3.0]), torch.tensor([-1.0, -2.0, -1.0]), 'tis', 2.0))"
"""

from __future__ import annotations

import torch

from algorithms.core import check

CORRECTIONS = ("none", "tis", "mask")


def _log_ratio(train_logp: torch.Tensor, rollout_logp: torch.Tensor) -> torch.Tensor:
    """``log u = log p_train - log p_rollout`` ``[B, T]``, clamped to +-20 (as the PPO ratio)."""
    return (train_logp.detach().float() - rollout_logp.float()).clamp(-20, 20)


@torch.no_grad()
def correction_weights(train_logp: torch.Tensor, rollout_logp: torch.Tensor, mode: str, c: float) -> torch.Tensor:
    """Per-token weights ``[B, T]`` of the policy-gradient loss (module docstring); no gradient.

    Args:
        train_logp: ``[B, T]`` log pi_old of the sampled tokens (the training model's).
        rollout_logp: ``[B, T]`` the engine's log-prob of the same tokens.
        mode: ``tis`` | ``mask`` (``none``: all ones). c: the threshold C > 1.
    """
    check(mode in CORRECTIONS, f"train.rollout_correction must be one of {', '.join(CORRECTIONS)} (got {mode!r})")
    check(c > 1, f"train.rollout_correction_c must be > 1 (got {c})")
    log_u = _log_ratio(train_logp, rollout_logp)                              # [B, T]
    if mode == "tis":
        return log_u.exp().clamp(max=c)
    if mode == "mask":
        return (log_u.abs() <= torch.log(torch.tensor(c))).float()
    return torch.ones_like(log_u)


@torch.no_grad()
def mismatch_metrics(train_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor,
                     c: float = 2.0) -> dict[str, float]:
    """``mismatch_kl``, ``mismatch_logp_abs_max`` and ``mismatch_outside_frac`` over the valid tokens of ``mask``
    ``[B, T]`` (module docstring); NaN when there is none."""
    valid = mask.bool()
    if not valid.any():
        return dict.fromkeys(("mismatch_kl", "mismatch_logp_abs_max", "mismatch_outside_frac"), float("nan"))
    log_u = _log_ratio(train_logp, rollout_logp)[valid].double()             # [N]
    k3 = log_u.exp() - log_u - 1
    outside = (log_u.abs() > torch.log(torch.tensor(float(c), dtype=torch.float64))).double()
    values = torch.stack([k3.mean(), log_u.abs().max(), outside.mean()]).tolist()
    return dict(zip(("mismatch_kl", "mismatch_logp_abs_max", "mismatch_outside_frac"), values))
