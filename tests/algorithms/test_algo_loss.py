"""Loss tests for algorithms/: gradients vs hand derivations, micro-batch accumulation, plugin contracts.

Run: /work/main/.venv/bin/python -m pytest tests/algorithms/test_algo_loss.py -q
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import pytest
import torch

import algorithms
from algorithms import Rollout, get_algorithm
from algorithms.core import LOSS_AGG_MODES, LossConfig

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs

F64 = torch.float64
NAMES = algorithms.names()  # every registered algorithm
PPO_NAMES = tuple(n for n in NAMES if n != "raft")
MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=F64)  # lengths 3, 2, 3, 1
N_TOK = 9.0
# log(pi / pi_old) per token; 0.5 -> 1.65 (> 1.2), -0.5 -> 0.61 (< 0.8), 1.5 -> 4.48 (> dual clip 3)
CLIPPED = torch.tensor([[0.5, -0.5, 1.5], [1.5, -0.5, 9.0], [1.5, 0.0, -0.5], [0.5, 9.0, 9.0]], dtype=F64)
SMALL = torch.tensor([[0.1, -0.05, 0.02], [-0.1, 0.07, 9.0], [0.0, 0.03, -0.08], [0.09, 9.0, 9.0]], dtype=F64)


def make(log_ratio, rewards=(1, 0, 1, 0), groups=(0, 0, 1, 1)):
    """A tiny batch: a leaf ``logp`` with grad, and a rollout whose old_logp = logp - log_ratio."""
    g = torch.Generator().manual_seed(0)
    logp = (-torch.rand(4, 3, generator=g, dtype=F64) * 2).requires_grad_(True)  # [B, T]
    old = logp.detach() - log_ratio
    ref = old - 0.1 * torch.randn(4, 3, generator=g, dtype=F64)
    ro = Rollout(response_ids=torch.zeros(4, 3, dtype=torch.long), response_mask=MASK.clone(),
                 group_ids=torch.tensor(groups), rewards=torch.tensor(rewards, dtype=F64), old_logp=old,
                 ref_logp=ref, newline_mask=torch.tensor([[0, 1, 0]] * 4, dtype=torch.bool))
    return logp, ro


def advantages(name, ro, **hp):
    algo = get_algorithm(name)
    cfg = algo.config_cls(**hp)
    return algo, cfg, algo.compute_advantages(ro, cfg)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", PPO_NAMES)
def test_unclipped_gradient_equals_direct_surrogate(name):
    logp, ro = make(SMALL)
    algo, cfg, adv = advantages(name, ro)
    assert adv.abs().sum() > 0  # non-trivial advantages in this batch
    loss, stats = algo.compute_loss(logp, None, ro, adv, cfg, num_tokens=None, num_seqs=None)
    (grad,) = torch.autograd.grad(loss, logp)
    lp = logp.detach().clone().requires_grad_(True)
    direct = -(MASK * adv * torch.exp(lp - ro.old_logp)).sum() / N_TOK  # -mean_t A ratio
    (expected,) = torch.autograd.grad(direct, lp)
    assert torch.allclose(grad, expected, atol=1e-12, rtol=0)
    assert math.isclose(stats["pg_loss"], direct.item(), abs_tol=1e-12)
    assert stats["clip_frac"] == 0.0


@pytest.mark.parametrize("name", PPO_NAMES)
def test_clipped_gradient_matches_hand_derivation(name):
    logp, ro = make(CLIPPED)
    algo, cfg, adv = advantages(name, ro)
    loss, stats = algo.compute_loss(logp, None, ro, adv, cfg, num_tokens=None, num_seqs=None)
    (grad,) = torch.autograd.grad(loss, logp)
    r = torch.exp(CLIPPED)
    # PPO-clip: the token's gradient -A r / N survives unless the ratio is clipped on the side that
    # the max() picks (A > 0: r > 1.2; A < 0: r < 0.8) or the dual clip caps it (A < 0: r > 3).
    active = ((adv > 0) & (r < 1.2)) | ((adv < 0) & (r > 0.8) & (r < 3.0))
    expected = torch.where(active, -adv * r / N_TOK, torch.zeros_like(r)) * MASK
    assert torch.allclose(grad, expected, atol=1e-12, rtol=0)
    assert (active & (MASK > 0)).any() and (~active & (adv != 0) & (MASK > 0)).any()  # both cases occur
    if name != "raftpp":  # RAFT++ advantages are >= 0; the others have tokens capped by the dual clip
        assert ((adv < 0) & (r > 3.0) & (MASK > 0)).any()
        assert ((adv < 0) & (r > 1.2) & (r < 3.0) & (MASK > 0)).any()
    clipped = (((adv > 0) & (r > 1.2)) | ((adv < 0) & (r < 0.8))) & (MASK > 0)
    assert math.isclose(stats["clip_frac"], clipped.sum().item() / N_TOK, abs_tol=1e-12)
    assert math.isclose(stats["ratio_mean"], (r * MASK).sum().item() / N_TOK, abs_tol=1e-12)


def test_dual_clip_off_keeps_large_ratio_gradient():
    logp, ro = make(CLIPPED)
    algo, cfg, adv = advantages("grpo", ro, dual_clip=0.0)
    (grad,) = torch.autograd.grad(algo.compute_loss(logp, None, ro, adv, cfg)[0], logp)
    r = torch.exp(CLIPPED)
    active = ((adv > 0) & (r < 1.2)) | ((adv < 0) & (r > 0.8))
    assert torch.allclose(grad, torch.where(active, -adv * r / N_TOK, 0 * r) * MASK, atol=1e-12, rtol=0)


@pytest.mark.parametrize("log_ratio", [SMALL, CLIPPED])
def test_raft_is_plain_nll_without_ratio_or_clip(log_ratio):
    logp, ro = make(log_ratio)
    algo, cfg, adv = advantages("raft", ro)
    loss, stats = algo.compute_loss(logp, None, ro, adv, cfg)
    (grad,) = torch.autograd.grad(loss, logp)
    lp = logp.detach().clone().requires_grad_(True)
    direct = -(MASK * adv * lp).sum() / N_TOK  # token-mean over ALL tokens, rejected ones included
    (expected,) = torch.autograd.grad(direct, lp)
    assert torch.allclose(grad, expected, atol=1e-12, rtol=0)
    assert torch.allclose(grad, -adv * MASK / N_TOK, atol=1e-12, rtol=0)
    assert math.isclose(loss.item(), direct.item(), abs_tol=1e-12)


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_kl_and_entropy_terms(kind):
    logp, ro = make(SMALL)
    entropy = torch.rand(4, 3, dtype=F64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    algo, cfg, adv = advantages("grpo", ro, kl_coef=0.1, kl_estimator=kind, entropy_coef=0.01)
    loss, stats = algo.compute_loss(logp, entropy, ro, adv, cfg)
    g_logp, g_ent = torch.autograd.grad(loss, (logp, entropy))
    lp = logp.detach().clone().requires_grad_(True)
    ent = entropy.detach().clone().requires_grad_(True)
    x = lp - ro.ref_logp
    kl = {"k1": x, "k2": 0.5 * x ** 2, "k3": torch.exp(-x) + x - 1}[kind]
    pg = -(MASK * adv * torch.exp(lp - ro.old_logp)).sum() / N_TOK
    direct = pg + 0.1 * (MASK * kl).sum() / N_TOK - 0.01 * (MASK * ent).sum() / N_TOK
    e_logp, e_ent = torch.autograd.grad(direct, (lp, ent))
    assert math.isclose(loss.item(), direct.item(), abs_tol=1e-12)
    assert torch.allclose(g_logp, e_logp, atol=1e-12, rtol=0) and torch.allclose(g_ent, e_ent, atol=1e-12, rtol=0)
    assert math.isclose(stats["kl_loss"], ((MASK * kl).sum() / N_TOK).item(), abs_tol=1e-12)
    assert math.isclose(stats["entropy"], ((MASK * ent).sum() / N_TOK).item(), abs_tol=1e-12)
    assert set(stats) == {"pg_loss", "kl_loss", "entropy", "clip_frac", "ratio_mean"}
    assert all(type(v) is float for v in stats.values())


def test_kl_coef_without_ref_is_an_error():
    logp, ro = make(SMALL)
    algo, cfg, adv = advantages("grpo", ro, kl_coef=0.1)
    with pytest.raises(ValueError, match="ref_logp"):
        algo.compute_loss(logp, None, replace(ro, ref_logp=None), adv, cfg)


# ----------------------------------------------------------------------------- micro-batches
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_micro_batches_sum_to_mini_batch(name, mode):
    logp, ro = make(CLIPPED)
    entropy = torch.rand(4, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    algo, cfg, adv = advantages(name, ro, loss_agg=mode, kl_coef=0.05, entropy_coef=0.01)
    full, full_stats = algo.compute_loss(logp, entropy, ro, adv, cfg)
    (full_grad,) = torch.autograd.grad(full, logp)
    n_tok, n_seq = ro.response_mask.sum().item(), float((ro.response_mask.sum(-1) > 0).sum())
    total, grad = 0.0, torch.zeros_like(logp)
    sums = dict.fromkeys(full_stats, 0.0)
    for rows in (torch.tensor([0, 1]), torch.tensor([2, 3])):  # halves with 5 and 4 tokens
        lp = logp.detach()[rows].requires_grad_(True)
        part, st = algo.compute_loss(lp, entropy[rows], ro.select(rows), adv[rows], cfg,
                                     num_tokens=n_tok, num_seqs=n_seq)
        part.backward()
        total += part.item()
        grad[rows] = lp.grad
        sums = {k: sums[k] + st[k] for k in sums}
    assert math.isclose(total, full.item(), abs_tol=1e-12)
    assert torch.allclose(grad, full_grad, atol=1e-12, rtol=0)
    assert all(math.isclose(sums[k], full_stats[k], abs_tol=1e-12) for k in sums)


def test_micro_batch_with_own_counts_differs():
    """The num_tokens argument matters: micro-batch means do not sum (or average) to the mini-batch mean."""
    logp, ro = make(CLIPPED)
    algo, cfg, adv = advantages("grpo", ro)
    full = algo.compute_loss(logp, None, ro, adv, cfg)[0].item()
    halves = [algo.compute_loss(logp[r], None, ro.select(r), adv[r], cfg)[0].item()
              for r in (torch.tensor([0, 1]), torch.tensor([2, 3]))]
    assert abs(sum(halves) / 2 - full) > 1e-3


# ----------------------------------------------------------------------------- plugin contracts
@pytest.mark.parametrize("name", NAMES)
def test_advantage_contract(name):
    _, ro = make(SMALL)
    ro = replace(ro, old_logp=ro.old_logp.float().requires_grad_(True), response_mask=MASK.float(),
                 ref_logp=ro.ref_logp.float().requires_grad_(True), rewards=ro.rewards.float())
    algo = get_algorithm(name)
    with torch.enable_grad():
        adv = algo.compute_advantages(ro, algo.config_cls())
    assert adv.shape == (4, 3) and adv.dtype == torch.float32
    assert not adv.requires_grad
    assert (adv[MASK == 0] == 0).all()
    assert torch.isfinite(adv).all()


@pytest.mark.parametrize("name", ["grpo", "rloo"])
def test_all_equal_group_gives_zero_advantage(name):
    _, ro = make(SMALL, rewards=(1, 1, 0, 0))
    assert (advantages(name, ro)[2] == 0).all()


ALT = {"eta": 1.0, "mode": "prm", "step_split": "newline", "step_len": 1, "scale_by_std": False, "eps": 0.5,
       "baseline": "none", "beta": 0.5, "kl_direction": "forward", "std": "unbiased", "suffix": "exclusive",
       "k3_baseline": "batch", "kl_reward_coef": 0.5, "kl_reward_estimator": "k3"}
NEEDS = {"kl_reward_estimator": {"kl_reward_coef": 0.5}}   # a field that acts only with another one set


@pytest.mark.parametrize("name", NAMES)
def test_every_plugin_field_changes_the_advantage(name):
    """Flag-effect: no dead config field."""
    _, ro = make(SMALL, rewards=(1, 0, 1, 1))
    cls = get_algorithm(name).config_cls
    own = [f.name for f in fields(cls) if f.name not in {g.name for g in fields(LossConfig)}]
    for field in own:
        base = advantages(name, ro, **NEEDS.get(field, {}))[2]
        alt = advantages(name, ro, **NEEDS.get(field, {}), **{field: ALT[field]})[2]
        assert not torch.allclose(alt, base, atol=1e-6), field


LOSS_ALT = {"loss_agg": "seq-mean-token-sum", "clip_eps_low": 0.05, "clip_eps_high": 0.6, "dual_clip": 0.0,
            "kl_coef": 0.1, "kl_estimator": "k1", "entropy_coef": 0.1}


@pytest.mark.parametrize("field", list(LOSS_ALT))
def test_every_loss_field_changes_the_loss_or_stats(field):
    logp, ro = make(CLIPPED)
    entropy = torch.ones(4, 3, dtype=F64)
    algo, cfg, adv = advantages("grpo", ro)
    base = algo.compute_loss(logp, entropy, ro, adv, cfg)
    alt = algo.compute_loss(logp, entropy, ro, adv, replace(cfg, **{field: LOSS_ALT[field]}))
    assert alt[0].item() != base[0].item() or alt[1] != base[1]
