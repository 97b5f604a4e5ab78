"""Shared pieces of every algorithm plugin: the rollout record, the loss config, the registry and the group-baseline
helpers. The loss they all share is :mod:`algorithms.loss`.

Everything here is a pure function of tensors (no model, no optimizer), so each plugin in
``algorithms/`` is only an advantage function plus a config.

Singleton groups (the one rule for every group baseline; a prompt can end up with one response, e.g. when
``rollout.n`` is 1): a group of one response has no peers, so its group mean counts as 0 and its group std as 1
(:func:`group_mean_std`). Hence ``A = R`` for ``grpo`` with ``scale_by_std=False`` (Dr.GRPO), ``reinforce`` with
``baseline=group_mean`` and ``rloo``, and ``A = R / (1 + eps)`` for ``grpo`` with std scaling: verl
``compute_grpo_outcome_advantage`` (mean 0, std 1 for a group of size 1, with or without
``norm_adv_by_std_in_grpo``) and ``compute_rloo_outcome_advantage`` (``A = R``) in
``verl/trainer/ppo/core_algos.py``. (verl's
``rloo_vectorized`` gives 0 there instead; PRL's ``orm`` mode keeps the raw R, as its code's ``n == 1`` path does.)

Try it: ``python -c "import torch; from algorithms.core import group_mean_std as g; \
print(g(torch.tensor([1., 0., 1.]), torch.tensor([0, 0, 1])))"``
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Callable

import torch

from common.errors import HarnessError
from common.registry import Registry

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
KL_ALIASES = {"k1": "k1", "kl": "k1", "k2": "k2", "mse": "k2", "k3": "k3", "low_var_kl": "k3"}


# ----------------------------------------------------------------------------- records and configs
@dataclass
class Rollout:
    """One RL step's batch: B = prompts * n rows, right-padded to T response tokens."""

    response_ids: torch.Tensor  # [B, T] long
    response_mask: torch.Tensor  # [B, T] float, 1 on valid response tokens (EOS included), 0 on padding
    group_ids: torch.Tensor  # [B] long, rows of the same prompt share an id
    rewards: torch.Tensor  # [B] float, outcome reward (1/0 from the grader)
    old_logp: torch.Tensor | None  # [B, T] float, log pi_old (no grad); None until the update's forward pass
    #   when the loop skips the separate old-policy pass (one update per batch, advantage not using it)
    ref_logp: torch.Tensor | None  # [B, T] float, log pi_ref (no grad), None if not computed
    newline_mask: torch.Tensor | None = None  # [B, T] bool, token text contains "\n" (PRL newline split)
    rollout_logp: torch.Tensor | None = None  # [B, T] float, the engine's log-prob of each sampled token under the
    #   distribution it drew it from (its precision, its kernels); None when the engine gave none

    def select(self, idx: torch.Tensor) -> "Rollout":
        """Rows ``idx`` of every field (for mini/micro-batches); None fields stay None."""
        return replace(self, **{f.name: _rows(getattr(self, f.name), idx) for f in fields(self)})


def _rows(x: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x[idx]


def check(ok: bool, message: str) -> None:
    """Raise a one-line :class:`HarnessError` with ``message`` unless ``ok``."""
    if not ok:
        raise HarnessError(message)


def check_choice(field: str, value: object, allowed) -> None:
    """``algo.<field>`` must be one of ``allowed``."""
    check(value in allowed, f"algo.{field} must be one of {', '.join(allowed)} (got {value!r})")


@dataclass
class LossConfig:
    """Loss hyper-parameters shared by every algorithm (defaults = verl's actor defaults)."""

    loss_agg: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum (verl loss_agg_mode)
    clip_eps_low: float = 0.2  # PPO clip: ratio >= 1 - clip_eps_low (verl clip_ratio_low)
    clip_eps_high: float = 0.2  # PPO clip: ratio <= 1 + clip_eps_high (verl clip_ratio_high; DAPO uses 0.28)
    dual_clip: float = 3.0  # dual-clip bound c for A < 0 (verl clip_ratio_c); 0 disables, else must be > 1
    kl_coef: float = 0.0  # KL-to-reference loss coefficient; 0 = off (PRL/GRPO scripts; verl use_kl_loss=False)
    kl_estimator: str = "k3"  # k1 | k2 | k3 (verl aliases kl | mse | low_var_kl accepted)
    entropy_coef: float = 0.0  # entropy bonus coefficient (loss -= coef * entropy); verl default 0

    def __post_init__(self) -> None:
        check_choice("loss_agg", self.loss_agg, LOSS_AGG_MODES)
        check(0 <= self.clip_eps_low < 1, f"algo.clip_eps_low must be in [0, 1) (got {self.clip_eps_low})")
        check(self.clip_eps_high > 0, f"algo.clip_eps_high must be > 0 (got {self.clip_eps_high})")
        check(self.dual_clip == 0 or self.dual_clip > 1,
              f"algo.dual_clip must be 0 (off) or > 1 (got {self.dual_clip})")
        check(self.kl_coef >= 0, f"algo.kl_coef must be >= 0 (got {self.kl_coef})")
        check_choice("kl_estimator", self.kl_estimator, tuple(KL_ALIASES))
        check(math.isfinite(self.entropy_coef), f"algo.entropy_coef must be finite (got {self.entropy_coef})")


@dataclass(frozen=True)
class Algorithm:
    """A registered algorithm: its config class and its two pure functions."""

    name: str
    config_cls: type  # subclass of LossConfig
    compute_advantages: Callable  # (rollout, cfg) -> [B, T], 0 outside response_mask, no grad
    compute_loss: Callable  # (logp, entropy, rollout, adv, cfg, *, num_tokens, num_seqs) -> (loss, stats)
    needs_ref: bool  # whether the advantage itself needs rollout.ref_logp (kl_coef > 0 needs it too)
    summary: str  # one line for `harness ls`
    needs_old_logp: bool = False  # whether the advantage itself needs rollout.old_logp
    diagnostics: Callable | None = None  # (rollout, cfg) -> {name: float} logged per step, e.g. PRL's process share


ALGORITHMS: Registry[Algorithm] = Registry("algorithm")


# ----------------------------------------------------------------------------- advantage helpers
def group_stats(scores: torch.Tensor, group_ids: torch.Tensor):
    """Per-row mean, unbiased std and size of the row's group.

    Args:
        scores: ``[B]`` float.
        group_ids: ``[B]`` long; rows with the same id form a group.

    Returns:
        ``(mean [B], std [B], size [B])``; ``std`` is the N-1 (``torch.std``) estimate, 0 for size 1.
    """
    _, inv = torch.unique(group_ids, return_inverse=True)  # [B] group index 0..G-1
    G = int(inv.max()) + 1 if inv.numel() else 0
    zeros = scores.new_zeros(G)
    size = zeros.index_add(0, inv, torch.ones_like(scores))  # [G]
    mean = zeros.index_add(0, inv, scores) / size  # [G]
    dev2 = zeros.index_add(0, inv, (scores - mean[inv]) ** 2)  # [G]
    std = (dev2 / (size - 1).clamp(min=1)).sqrt()  # [G]
    return mean[inv], std[inv], size[inv]


def group_mean_std(scores: torch.Tensor, group_ids: torch.Tensor, *,
                   population: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Group mean and std per row with the singleton rule (module docstring): 0 and 1 for a group of one.

    Args:
        scores: ``[B]`` float. group_ids: ``[B]`` long.
        population: the 1/G std (FRPO v2 eq. 3.2) instead of the unbiased N-1 one (verl, ``torch.std``).

    Returns:
        ``(mean [B], std [B])``.
    """
    mean, std, size = group_stats(scores, group_ids)  # [B] each
    if population:
        std = std * ((size - 1) / size).sqrt()
    single = size == 1
    return torch.where(single, torch.zeros_like(mean), mean), torch.where(single, torch.ones_like(std), std)


@torch.no_grad()
def group_normalized_scores(rewards: torch.Tensor, group_ids: torch.Tensor, *, scale_by_std: bool = True,
                            eps: float = 1e-6, population: bool = False) -> torch.Tensor:
    """GRPO outcome score per response (verl ``compute_grpo_outcome_advantage`` before broadcasting).

    Args:
        rewards: ``[B]`` outcome rewards. group_ids: ``[B]`` prompt ids.
        scale_by_std: divide by ``std + eps``. eps: std offset. population: the 1/G std (else N-1).

    Returns:
        ``[B]`` float64 scores (singleton rule: module docstring).
    """
    r = rewards.detach().double()  # [B]
    mean, std = group_mean_std(r, group_ids, population=population)  # [B] each; singleton: 0, 1
    return (r - mean) / (std + eps) if scale_by_std else r - mean


def broadcast(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Outcome scores ``[B]`` broadcast to every valid token: ``[B, T]``, 0 on padding."""
    return scores.to(mask.dtype if mask.is_floating_point() else torch.float32)[:, None] * mask


def adv_dtype(rollout: Rollout) -> torch.dtype:
    """Advantages are float32, or float64 when the rollout's log-probs are float64."""
    logp = rollout.old_logp if rollout.old_logp is not None else rollout.ref_logp
    return torch.float32 if logp is None else torch.promote_types(logp.dtype, torch.float32)


def process_share(outcome: torch.Tensor, process: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """``{"process_share": mean |process part| / mean |outcome part|}`` over the response tokens of ``mask``, for
    an advantage ``outcome [B, 1] - process [B, T]`` (PRL, FRPO). Near 0: the KL term barely moves the advantage."""
    valid = mask > 0  # [B, T]
    if not valid.any():
        return {"process_share": 0.0}
    out_abs, proc_abs = outcome.expand_as(process)[valid].abs().mean(), process[valid].abs().mean()
    return {"process_share": (proc_abs / out_abs).item() if out_abs > 0 else float("inf") if proc_abs > 0 else 0.0}


def suffix_sum(x: torch.Tensor) -> torch.Tensor:
    """Inclusive suffix sum along the last dim: ``out[..., t] = sum_{k >= t} x[..., k]``."""
    return x.flip(-1).cumsum(-1).flip(-1)
