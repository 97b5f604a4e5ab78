"""The loss every plugin shares: verl's ``compute_policy_loss_vanilla`` (PPO clip with dual clip, Ye et al. 2020
arXiv 1912.09729), with verl's ``agg_loss`` aggregation, ``kl_penalty`` estimators (Schulman's k1/k2/k3), entropy
bonus and ``rollout_is_weights`` (``verl/trainer/ppo/core_algos.py``).

Deviations from verl (all deliberate):
- ``aggregate_loss`` takes the whole mini-batch's token / sequence counts, so micro-batch losses sum
  exactly to the mini-batch loss (the newer verl engine path does the same via ``global_batch_info``).
- seq-mean-token-mean divides by ``max(len_i, 1)`` instead of ``len_i + 1e-8`` (exact for len_i >= 1).

Try it: ``python -c "from algorithms import kl_estimate; import torch; print(kl_estimate(torch.tensor(-1.), torch.tensor(-1.5), 'k3'))"``
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch

from algorithms.core import KL_ALIASES, LOSS_AGG_MODES, LossConfig, Rollout, check_choice


def kl_estimate(logp: torch.Tensor, logp_ref: torch.Tensor, kind: str) -> torch.Tensor:
    """Elementwise KL(pi || pi_ref) estimate from sampled-token log-probs (verl ``kl_penalty``).

    Args:
        logp: ``[...]`` log pi(a_t). logp_ref: same shape, log pi_ref(a_t).
        kind: ``k1``/``kl`` (logp - ref), ``k2``/``mse`` (0.5 (logp - ref)^2), ``k3``/``low_var_kl``
            (x = clamp(ref - logp, -20, 20); clamp(e^x - x - 1, -10, 10)).
    """
    check_choice("kl_estimator", kind, tuple(KL_ALIASES))
    kind = KL_ALIASES[kind]
    if kind == "k1":
        return logp - logp_ref
    if kind == "k2":
        return 0.5 * (logp - logp_ref) ** 2
    x = (logp_ref - logp).clamp(-20, 20)
    return (x.exp() - x - 1).clamp(-10, 10)


def aggregate_loss(loss: torch.Tensor, mask: torch.Tensor, mode: str, *,
                   num_tokens: float | None = None, num_seqs: float | None = None) -> torch.Tensor:
    """Reduce a per-token loss ``[B, T]`` to a scalar (verl ``agg_loss``).

    Args:
        loss: ``[B, T]`` per-token loss. mask: ``[B, T]`` 1 on valid tokens.
        mode: ``token-mean`` = sum(m L) / num_tokens; ``seq-mean-token-mean`` = sum_i (sum_t m L / len_i)
            / num_seqs; ``seq-mean-token-sum`` = sum_i sum_t m L / num_seqs.
        num_tokens: valid tokens of the whole mini-batch (None: this batch's ``mask.sum()``).
        num_seqs: non-empty sequences of the whole mini-batch (None: this batch's count).
            Passing the mini-batch counts makes the micro-batch losses sum to the mini-batch loss.
    """
    check_choice("loss_agg", mode, LOSS_AGG_MODES)
    mask = mask.to(loss.dtype)
    if mode == "token-mean":
        denom = mask.sum() if num_tokens is None else num_tokens
        return (loss * mask).sum() / max(float(denom), 1.0)
    lengths = mask.sum(-1)  # [B]
    per_seq = (loss * mask).sum(-1)  # [B]
    if mode == "seq-mean-token-mean":
        per_seq = per_seq / lengths.clamp(min=1)
    denom = (lengths > 0).sum() if num_seqs is None else num_seqs
    return per_seq.sum() / max(float(denom), 1.0)


def ppo_clip_token_loss(logp, old_logp, adv, cfg: LossConfig):
    """Per-token PPO-clip surrogate with dual clip (verl ``compute_policy_loss_vanilla``).

    Args:
        logp: ``[B, T]`` with grad. old_logp, adv: ``[B, T]`` constants. cfg: clip settings.

    Returns:
        ``(loss [B, T], clipped [B, T] bool, ratio [B, T])``.
    """
    ratio = torch.exp((logp - old_logp).clamp(-20, 20))  # [B, T]
    loss1 = -adv * ratio
    loss2 = -adv * ratio.clamp(1 - cfg.clip_eps_low, 1 + cfg.clip_eps_high)
    loss = torch.maximum(loss1, loss2)  # pessimistic bound
    if cfg.dual_clip > 0:  # for A < 0 cap the loss at -c A so a huge ratio cannot blow it up
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * cfg.dual_clip), loss)
    return loss, loss2 > loss1, ratio


def nll_token_loss(logp, old_logp, adv, cfg: LossConfig):
    """Per-token ``-A * logp`` (RAFT's plain weighted NLL: no ratio, no clip); same outputs as PPO-clip.

    As in Minimal-RL's ``policy_loss=vanilla``, the clip fraction and ratio are still computed, as
    metrics only.
    """
    _, clipped, ratio = ppo_clip_token_loss(logp.detach(), old_logp, adv, cfg)
    return -adv * logp, clipped, ratio


def compute_loss(logp: torch.Tensor, entropy: torch.Tensor | None, rollout: Rollout, adv: torch.Tensor,
                 cfg: LossConfig, *, num_tokens: float | None = None, num_seqs: float | None = None,
                 token_loss: Callable = ppo_clip_token_loss, is_weights: torch.Tensor | None = None):
    """Policy loss + ``kl_coef`` * KL-to-ref loss - ``entropy_coef`` * entropy, aggregated by ``cfg.loss_agg``.

    Every log-prob here (``logp``, ``old_logp``, ``ref_logp``) and the entropy are of the sampling temperature's
    distribution, ``softmax(logits / T)`` (:func:`harness.train.logprobs.token_logp_entropy`), as in TRL
    (``GRPOTrainer._get_per_token_logps_and_entropies`` divides by ``temperature``) and verl (``dp_actor.py``
    ``logits.div_(temperature)``, the reference included). Top-p is not applied: like both peers, the update scores
    the tempered, un-truncated distribution (with ``top_p < 1`` the sampler's own log-probs, renormalised over the
    nucleus, exceed these; the mismatch metrics then include that gap).

    Args:
        logp: ``[B, T]`` log pi_theta of the response tokens, with grad (computed in >= float32).
        entropy: ``[B, T]`` policy entropy per position (may be None when ``entropy_coef == 0``).
        rollout: the (micro-)batch; uses ``old_logp``, ``ref_logp``, ``response_mask``.
        adv: ``[B, T]`` advantages (constants).
        cfg: the algorithm's config (a :class:`LossConfig`).
        num_tokens, num_seqs: whole mini-batch counts for gradient accumulation (see ``aggregate_loss``).
        token_loss: per-token surrogate, :func:`ppo_clip_token_loss` (default) or :func:`nll_token_loss`.
        is_weights: ``[B, T]`` constant weights of the per-token policy-gradient loss (the rollout correction,
            :func:`algorithms.correction.correction_weights`; verl's ``rollout_is_weights``), or None.

    Returns:
        ``(loss, stats)``: scalar loss, and python floats ``pg_loss``, ``kl_loss``, ``entropy``,
        ``clip_frac``, ``ratio_mean``. Each stat is this batch's share of the mini-batch value
        (``entropy``, ``clip_frac``, ``ratio_mean`` are token means over ``num_tokens``), so summing the
        stats of the micro-batches of one mini-batch gives the mini-batch value.
    """
    logp = logp.to(torch.promote_types(logp.dtype, torch.float32))  # bf16 log-ratios lose small differences
    mask = rollout.response_mask.to(logp.dtype)  # [B, T]
    adv = adv.detach().to(logp.dtype)
    agg = partial(aggregate_loss, mask=mask, mode=cfg.loss_agg, num_tokens=num_tokens, num_seqs=num_seqs)
    tok_mean = partial(aggregate_loss, mask=mask, mode="token-mean", num_tokens=num_tokens)

    per_token, clipped, ratio = token_loss(logp, rollout.old_logp.to(logp.dtype), adv, cfg)
    if is_weights is not None:
        per_token = per_token * is_weights.detach().to(logp.dtype)
    pg_loss = agg(per_token)
    loss = pg_loss
    kl_loss = logp.new_zeros(())
    if rollout.ref_logp is not None:  # always logged when available, added only when kl_coef > 0
        lp = logp if cfg.kl_coef > 0 else logp.detach()
        kl_loss = agg(kl_estimate(lp, rollout.ref_logp.to(logp.dtype), cfg.kl_estimator))
    elif cfg.kl_coef > 0:
        raise ValueError("kl_coef > 0 needs rollout.ref_logp")
    if cfg.kl_coef > 0:
        loss = loss + cfg.kl_coef * kl_loss
    ent = logp.new_zeros(())
    if entropy is not None:
        ent = tok_mean(entropy.detach())
        if cfg.entropy_coef != 0:
            loss = loss - cfg.entropy_coef * agg(entropy)
    elif cfg.entropy_coef != 0:
        raise ValueError("entropy_coef != 0 needs the entropy tensor")
    values = torch.stack([pg_loss.detach(), kl_loss.detach(), ent, tok_mean(clipped.to(logp.dtype)),
                          tok_mean(ratio.detach())]).tolist()  # one device sync
    return loss, dict(zip(("pg_loss", "kl_loss", "entropy", "clip_frac", "ratio_mean"), values))
