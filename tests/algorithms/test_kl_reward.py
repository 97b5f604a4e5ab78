"""The KL placements of v2 other than FRPO's: in the reward (grpo, rloo, reinforce) and in the loss (all), against
the FRPO notes' worked examples (§7 T6, float64)."""

import pytest
import torch

import algorithms
from algorithms import compute_advantages
from algorithms.core import Rollout
from algorithms.loss import compute_loss

pytestmark = pytest.mark.fast

# T6: G = 4, rewards [1, 1, 0, 0], per-response sum of d = [0.3, -0.1, 0.5, 0.0] (one token each)
R4 = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
D4 = torch.tensor([[0.3], [-0.1], [0.5], [0.0]], dtype=torch.float64)
G4, M4, Z4 = torch.zeros(4, dtype=torch.long), torch.ones(4, 1, dtype=torch.float64), torch.zeros(4, 1,
                                                                                                   dtype=torch.float64)


def test_grpo_kl_in_reward_moves_the_group_statistics():
    a = compute_advantages("grpo", R4, G4, M4, D4, Z4, kl_reward_coef=0.01)[:, 0]
    torch.testing.assert_close(a, torch.tensor([0.862556, 0.869474, -0.870339, -0.861691], dtype=torch.float64),
                               atol=1e-6, rtol=0)   # the unbiased std, as grpo (verl)
    r_tilde = R4 - 1.0 * D4[:, 0]
    big = compute_advantages("grpo", R4, G4, M4, D4, Z4, kl_reward_coef=1.0)[:, 0]
    torch.testing.assert_close(big, (r_tilde - r_tilde.mean()) / (r_tilde.std() + 1e-6))
    assert torch.equal(compute_advantages("grpo", R4, G4, M4, D4, Z4),              # off by default
                       compute_advantages("grpo", R4, G4, M4, Z4, Z4, kl_reward_coef=0.5))   # d = 0: nothing


def test_kl_in_reward_spreads_over_tokens_and_respects_padding():
    lp_old = torch.tensor([[-0.5, -1.0, 9.0], [-1.2, -0.3, -2.0]], dtype=torch.float64)
    lp_ref = torch.tensor([[-0.7, -0.8, -9.0], [-1.0, -0.9, -1.5]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.float64)
    g, r = torch.zeros(2, dtype=torch.long), torch.tensor([1.0, 0.0], dtype=torch.float64)
    for name, est in (("rloo", "k1"), ("reinforce", "k3")):
        a = compute_advantages(name, r, g, mask, lp_old, lp_ref, kl_reward_coef=0.1, kl_reward_estimator=est)
        k = algorithms.kl_estimate(lp_old, lp_ref, est) * mask
        shaped = r - 0.1 * k.sum(-1)                                           # the pad's huge d counts for nothing
        expected = shaped - (shaped.sum() - shaped) if name == "rloo" else shaped - shaped.mean()
        torch.testing.assert_close(a, expected[:, None] * mask)


def test_kl_reward_needs_and_refuses():
    grpo = algorithms.get_algorithm("grpo")
    on, off = grpo.config_cls(kl_reward_coef=0.001), grpo.config_cls()
    assert algorithms.needs_ref_logp(grpo, on) and algorithms.needs_old_logp(grpo, on)
    assert not algorithms.needs_ref_logp(grpo, off) and not algorithms.needs_old_logp(grpo, off)
    from common.errors import HarnessError

    with pytest.raises(HarnessError, match=r"algo.kl_reward_coef must be >= 0 \(got -1.0\)"):
        grpo.config_cls(kl_reward_coef=-1.0)
    with pytest.raises(HarnessError, match="algo.kl_reward_estimator must be one of"):
        grpo.config_cls(kl_reward_estimator="full")


def test_kl_in_the_loss_is_local_k3_and_not_ratio_weighted():
    """v2's GRPO + KL-loss: at theta = theta_old the k3 term's gradient on token t is (1 - u_t) / num_tokens (T6),
    with no future terms, and a ratio far from 1 does not scale it."""
    lp_old = torch.tensor([[-0.5, -1.0, -0.2, -0.1], [-1.2, -0.3, -2.0, 0.0]], dtype=torch.float64)
    lp_ref = torch.tensor([[-0.7, -0.8, -0.2, -0.4], [-1.0, -0.9, -1.5, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.float64)
    expected = torch.tensor([[0.181269, -0.221403, 0, 0.259182], [-0.221403, 0.451188, -0.648721, 0]],
                            dtype=torch.float64)
    cfg = algorithms.make_config("grpo", kl_coef=1.0, kl_estimator="k3")
    for shift in (0.0, 0.4):   # the policy moved away from pi_old: ratio e^0.4, the KL gradient is still local
        logp = (lp_old + shift).clone().requires_grad_(True)
        ro = Rollout(response_ids=torch.zeros(2, 4, dtype=torch.long), response_mask=mask,
                     group_ids=torch.zeros(2, dtype=torch.long), rewards=torch.zeros(2), old_logp=lp_old,
                     ref_logp=lp_ref)
        loss, _ = compute_loss(logp, None, ro, torch.zeros(2, 4, dtype=torch.float64), cfg)   # A = 0: KL alone
        loss.backward()
        u = torch.exp(lp_ref - lp_old - shift)
        torch.testing.assert_close(logp.grad * 7, (1 - u) * mask)
        if shift == 0.0:
            torch.testing.assert_close(logp.grad * 7, expected, atol=1e-6, rtol=0)
