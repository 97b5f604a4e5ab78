"""Algorithm plugins: PRL, FRPO, GRPO, RAFT/RAFT++, REINFORCE/RLOO on one shared loss.

Each plugin module defines a config dataclass (a :class:`LossConfig` subclass whose fields are the
``algo.<field>`` CLI keys) and an advantage function, and registers an :class:`Algorithm` in
``ALGORITHMS``. The training loop only calls ``algo.compute_advantages(rollout, cfg)`` and
``algo.compute_loss(logp, entropy, rollout, adv, cfg, num_tokens=..., num_seqs=...)``.

Try it: ``python -c "import algorithms; print(algorithms.names())"``
"""

from __future__ import annotations

from dataclasses import fields

import torch

from algorithms.core import ALGORITHMS, Algorithm, LossConfig, Rollout, check
from algorithms.kl_reward import uses_kl_reward
from algorithms.loss import aggregate_loss, compute_loss, kl_estimate

# Built-ins register on import, in this order (`harness ls` lists them so).
from algorithms import prl, frpo, grpo, raft, reinforce  # noqa: E402,F401  isort: skip

__all__ = ["ALGORITHMS", "Algorithm", "LossConfig", "Rollout", "aggregate_loss", "compute_advantages",
           "compute_loss", "get_algorithm", "kl_estimate", "make_config", "names", "needs_old_logp",
           "needs_ref_logp"]


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm ``name``; unknown names raise HarnessError listing the available ones."""
    return ALGORITHMS.get(name)


def names() -> tuple[str, ...]:
    """Registered algorithm names, in registration order."""
    return ALGORITHMS.names()


def needs_ref_logp(algo: Algorithm, cfg: LossConfig) -> bool:
    """Whether the loop must compute ``rollout.ref_logp``: the advantage needs it, or a KL loss or reward is on."""
    return algo.needs_ref or cfg.kl_coef > 0 or uses_kl_reward(cfg)


def needs_old_logp(algo: Algorithm, cfg: LossConfig) -> bool:
    """Whether the advantage needs ``rollout.old_logp`` before the update (PRL, FRPO, a KL in the reward)."""
    return algo.needs_old_logp or uses_kl_reward(cfg)


def make_config(name: str, **hparams) -> LossConfig:
    """``get_algorithm(name).config_cls(**hparams)``; an unknown field raises HarnessError."""
    cls = get_algorithm(name).config_cls
    known = [f.name for f in fields(cls)]
    for key in hparams:
        check(key in known, f"unknown algo.{key} for {name}; allowed: {', '.join(known)}")
    return cls(**hparams)


@torch.no_grad()
def compute_advantages(name: str, rewards: torch.Tensor, group_ids: torch.Tensor, mask: torch.Tensor,
                       logp_old: torch.Tensor | None = None, logp_ref: torch.Tensor | None = None, *,
                       response_ids: torch.Tensor | None = None, newline_mask: torch.Tensor | None = None,
                       **hparams) -> torch.Tensor:
    """Advantages of algorithm ``name`` from plain tensors (convenience wrapper around the plugin).

    Args:
        name: registered algorithm name.
        rewards: ``[B]`` outcome rewards. group_ids: ``[B]`` prompt ids. mask: ``[B, T]`` response mask.
        logp_old: ``[B, T]`` log pi_old (zeros when None). logp_ref: ``[B, T]`` log pi_ref (PRL needs it).
        response_ids: ``[B, T]`` token ids (zeros when None). newline_mask: ``[B, T]`` bool (PRL newline split).
        **hparams: config fields of the plugin (e.g. ``eta``, ``step_len``, ``scale_by_std``, ``baseline``).

    Returns:
        ``[B, T]`` advantages, 0 outside ``mask``.
    """
    cfg = make_config(name, **hparams)
    mask = mask if mask.is_floating_point() else mask.float()
    if response_ids is None:
        response_ids = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
    rollout = Rollout(
        response_ids=response_ids,
        response_mask=mask,
        group_ids=group_ids,
        rewards=rewards,
        old_logp=torch.zeros_like(mask) if logp_old is None else logp_old,
        ref_logp=logp_ref,
        newline_mask=newline_mask,
    )
    return get_algorithm(name).compute_advantages(rollout, cfg)
