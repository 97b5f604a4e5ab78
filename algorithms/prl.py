"""PRL: Process Reward Learning (Yao, Wang, Zhang 2026, arXiv 2601.10201), as in the official code.

The KL-regularised objective ``E[r] - (1/eta) KL(pi || pi_ref)`` is split into per-step rewards: each
step is charged the log-ratio "cost-to-go" from its last token to the end of the response. With
``d_t = (log pi_old(a_t) - log pi_ref(a_t)) * mask_t`` and the inclusive suffix sum
``S_t = sum_{k >= t} d_k`` (official repo ``ray_trainer.py``, ``adv_estimator=prm``):

- ``mode="orm"``: ``Ahat_i = (R_i - mean_g R) / (std_g R + 1e-6)`` (GRPO; a singleton group keeps the
  raw R_i, like the code's ``rollout.n == 1`` path). Steps end every ``step_len`` tokens
  (``step_split="length"``) or at tokens containing a newline (``"newline"``); the last valid token always
  ends a step. Every token of step j gets ``A_t = Ahat_i - S_{e_j} / eta`` (e_j = last token of step j).
- ``mode="prm"``: per token, ``A_t = R_i - S_t / eta`` (raw 0/1 reward, no baseline, no steps).

The process reward is built from already-computed log-probs and detached (no gradient through d_t).
The loss is the shared PPO-clip loss (verl defaults); ``kl_coef`` stays 0 as in the PRL scripts, since
the KL lives in the advantage.

Deviations from the official code (deliberate):
- Steps are explicit segments: a step whose end value is exactly 0.0 keeps 0.0 instead of inheriting
  the next step's value (``left_fill_by_next_nonzero`` treats exact zeros as empty).
- The newline split uses a per-token "text contains \\n" mask (``Rollout.newline_mask``) instead of
  matching the single token id ``tokenizer.encode("\\n")[0]``, which misses merged tokens like ".\\n"
  and, with a BOS-prepending tokenizer, matches nothing.
- The orm/raw choice is per group (singleton group -> raw R_i) instead of global on ``rollout.n``.

Try it: ``python -m pytest tests/algorithms/test_algorithms.py -q -k prl``
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.core import (ALGORITHMS, Algorithm, LossConfig, Rollout, adv_dtype, check, check_choice,
                             group_normalized_scores, group_stats, process_share, suffix_sum)
from algorithms.loss import compute_loss

PRL_MODES = ("orm", "prm")
STEP_SPLITS = ("length", "newline")


@dataclass
class PRLConfig(LossConfig):
    """PRL hyper-parameters (plus the shared loss fields of LossConfig)."""

    eta: float = 100.0  # KL weight is 1/eta; must be > 0. Paper scripts: 100 (Qwen-7B), 200 (Llama-3B), 1
    mode: str = "orm"  # orm: group-normalised outcome + step-level KL | prm: raw outcome + token-level KL
    step_split: str = "length"  # length: a step every step_len tokens | newline: a step ends at each "\n" token
    step_len: int = 64  # tokens per step for step_split=length (scripts: 64, 128, 256; run names 16, 1); >= 1
    scale_by_std: bool = True  # orm: divide by the group std (verl norm_adv_by_std_in_grpo)
    eps: float = 1e-6  # orm: added to the group std (verl)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.eta > 0, f"algo.eta must be > 0 (got {self.eta})")
        check_choice("mode", self.mode, PRL_MODES)
        check_choice("step_split", self.step_split, STEP_SPLITS)
        check(self.step_len >= 1, f"algo.step_len must be >= 1 (got {self.step_len})")
        check(self.eps >= 0, f"algo.eps must be >= 0 (got {self.eps})")


def step_ends(mask: torch.Tensor, step_split: str, step_len: int,
              newline_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Which valid tokens end a step.

    Args:
        mask: ``[B, T]`` response mask (right-padded).
        step_split: ``length`` (1-based positions that are multiples of ``step_len``) or ``newline``
            (tokens flagged in ``newline_mask``). The last valid token always ends a step.
        newline_mask: ``[B, T]`` bool, needed for ``newline``.

    Returns:
        ``[B, T]`` bool.
    """
    valid = mask > 0  # [B, T]
    B, T = mask.shape
    if step_split == "length":
        pos = torch.arange(1, T + 1, device=mask.device)  # [T] 1-based
        ends = (pos % step_len == 0).expand(B, T) & valid
    else:
        if newline_mask is None:
            raise ValueError("step_split='newline' needs rollout.newline_mask")
        ends = newline_mask.bool() & valid
    has_any = valid.any(-1)  # [B]
    last = T - 1 - valid.flip(-1).to(torch.int8).argmax(-1)  # [B] last valid index
    ends = ends.clone()
    ends[torch.arange(B, device=mask.device)[has_any], last[has_any]] = True
    return ends


def fill_from_step_end(values: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """Give every token the value at the end of its step (the first step end at or after it).

    Args:
        values: ``[B, T]``. ends: ``[B, T]`` bool step ends.

    Returns:
        ``[B, T]``; tokens after the last step end get 0. Exact-zero end values are kept (no skipping).
    """
    B, T = values.shape
    ends_l = ends.long()
    step = ends_l.cumsum(-1) - ends_l  # [B, T] 0-based step index of each token
    slot = torch.where(ends, step, torch.full_like(step, T))  # [B, T] non-ends go to a dump column T
    table = values.new_zeros(B, T + 1).scatter_add(1, slot, torch.where(ends, values, torch.zeros_like(values)))
    return table.gather(1, step.clamp(max=T))  # [B, T]


@torch.no_grad()
def prl_terms(rollout: Rollout, cfg: PRLConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The two parts of the PRL advantage, ``A = outcome - process`` (float64, not yet masked).

    Returns:
        ``outcome`` ``[B, 1]`` (group-normalised or raw R_i) and ``process`` ``[B, T]`` (the KL cost-to-go
        over eta, per token for ``prm``, at each step's end for ``orm``).
    """
    if rollout.ref_logp is None or rollout.old_logp is None:
        raise ValueError("prl needs rollout.old_logp and rollout.ref_logp")
    mask = rollout.response_mask.double()  # [B, T]
    d = (rollout.old_logp.detach().double() - rollout.ref_logp.detach().double()) * mask  # [B, T]
    kl_to_go = suffix_sum(d) / cfg.eta  # [B, T] S_t / eta
    r = rollout.rewards.detach().double()  # [B]
    if cfg.mode == "prm":
        return r[:, None], kl_to_go  # per-token, raw reward
    outcome = group_normalized_scores(r, rollout.group_ids, scale_by_std=cfg.scale_by_std, eps=cfg.eps)
    single = group_stats(r, rollout.group_ids)[2] == 1
    outcome = torch.where(single, r, outcome)  # [B] n == 1: raw reward (official code)
    ends = step_ends(mask, cfg.step_split, cfg.step_len, rollout.newline_mask)  # [B, T]
    return outcome[:, None], fill_from_step_end(kl_to_go, ends)


@torch.no_grad()
def compute_prl_advantages(rollout: Rollout, cfg: PRLConfig) -> torch.Tensor:
    """PRL advantage ``[B, T]`` (see the module docstring), 0 on padding, detached.

    Args:
        rollout: needs ``rewards``, ``group_ids``, ``response_mask``, ``old_logp``, ``ref_logp``
            (and ``newline_mask`` for ``step_split="newline"``).
        cfg: :class:`PRLConfig`.
    """
    outcome, process = prl_terms(rollout, cfg)
    adv = outcome - process  # [B, T]
    return (adv * rollout.response_mask.double()).to(adv_dtype(rollout))


@torch.no_grad()
def prl_diagnostics(rollout: Rollout, cfg: PRLConfig) -> dict[str, float]:
    """``process_share``: mean |process part| / mean |outcome part| over response tokens.

    Near 0 means the KL term (at this ``eta``) barely changes the advantage: PRL then trains like GRPO.
    """
    return process_share(*prl_terms(rollout, cfg), rollout.response_mask)


ALGORITHMS.register("prl", Algorithm(
    name="prl",
    config_cls=PRLConfig,
    compute_advantages=compute_prl_advantages,
    compute_loss=compute_loss,
    needs_ref=True,
    needs_old_logp=True,
    diagnostics=prl_diagnostics,
    summary="PRL: GRPO outcome minus (1/eta) x step-level KL-to-ref cost-to-go (arXiv 2601.10201)",
))
