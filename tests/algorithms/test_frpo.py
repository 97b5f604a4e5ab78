"""FRPO (arXiv 2601.10201 v2) against the hand-checked examples of the FRPO notes (§7, float64, beta 0.01, eps 1e-6),
the v1 code path it generalises (PRL, step_len 1) and its structural invariants."""

import pytest
import torch

import algorithms
from algorithms import compute_advantages

pytestmark = pytest.mark.fast

# §7 shared input: one prompt, G = 2, T = 4; response 2 has 3 tokens and a pad (its padded log-probs are junk)
LP_OLD = torch.tensor([[-0.5, -1.0, -0.2, -0.1], [-1.2, -0.3, -2.0, 7.0]], dtype=torch.float64)
LP_REF = torch.tensor([[-0.7, -0.8, -0.2, -0.4], [-1.0, -0.9, -1.5, -3.0]], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.float64)
GROUP = torch.zeros(2, dtype=torch.long)
R = torch.tensor([1.0, 0.0], dtype=torch.float64)


def frpo(rewards=R, group=GROUP, lp_old=LP_OLD, lp_ref=LP_REF, mask=MASK, **kw):
    return compute_advantages("frpo", rewards, group, mask, lp_old, lp_ref, **kw)


def close(a, expected):
    torch.testing.assert_close(a, torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0)


def test_t1_default_reverse_k1_inclusive_population_std():
    a = frpo()
    close(a, [[0.996998, 0.998998, 0.996998, 0.996998], [-0.998998, -1.000998, -0.994998, 0]])
    assert a[1, 3].item() == 0.0 and not a.requires_grad
    close(frpo(std="unbiased"), [[0.704106, 0.706106, 0.704106, 0.704106], [-0.706106, -0.708106, -0.702106, 0]])


def test_t2_exclusive_suffix_differs():
    close(frpo(suffix="exclusive"), [[0.998998, 0.996998, 0.996998, 0.999998], [-1.000998, -0.994998, -0.999998, 0]])


@pytest.mark.parametrize("direction,estimator,expected", [
    ("reverse", "k3", [[0.999188, 0.999376, 0.999590, 0.999590], [-1.003187, -1.002973, -1.001485, 0]]),   # V2
    ("forward", "k1", [[1.002998, 1.000998, 1.002998, 1.002998], [-1.000998, -0.998998, -1.004998, 0]]),   # V3
    ("forward", "k3", [[0.999098, 0.999312, 0.999499, 0.999499], [-1.003472, -1.003284, -1.001063, 0]]),   # V4
])
def test_t3_estimators_and_directions(direction, estimator, expected):
    close(frpo(kl_direction=direction, kl_estimator=estimator), expected)


def test_k2_is_the_same_in_both_directions():
    rev, fwd = frpo(kl_estimator="k2"), frpo(kl_estimator="k2", kl_direction="forward")
    d = (LP_OLD - LP_REF) * MASK
    torch.testing.assert_close(rev, fwd)
    torch.testing.assert_close(rev[0, 3], torch.tensor(0.999998 - 0.01 * 0.5 * 0.3 ** 2, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    assert (rev[0] <= 0.999998 + 1e-12).all() and d.abs().sum() > 0      # k2 >= 0: it only lowers A


def test_t4_k3_with_the_batch_baseline_counts_the_inclusive_terms():
    # D = token mean of reverse k3 over the 7 valid tokens; b_t = D x (valid tokens in the suffix sum)
    close(frpo(kl_estimator="k3", k3_baseline="batch"),
          [[1.001474, 1.001090, 1.000732, 1.000161], [-1.001474, -1.001831, -1.000914, 0]])
    # with the exclusive suffix the count is one less: the paper's literal (T - t) D with the inclusive sum differs
    excl = frpo(kl_estimator="k3", k3_baseline="batch", suffix="exclusive")
    assert not torch.allclose(excl, frpo(kl_estimator="k3", k3_baseline="batch"))


def test_t5_uniform_group_keeps_the_kl_signal():
    close(frpo(rewards=torch.tensor([1.0, 1.0], dtype=torch.float64)),
          [[-0.003, -0.001, -0.003, -0.003], [0.001, -0.001, 0.005, 0]])


def test_t7_group_of_five_std_conventions():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    zeros, mask = torch.zeros(5, 2, dtype=torch.float64), torch.ones(5, 2, dtype=torch.float64)
    pop = compute_advantages("frpo", r, torch.zeros(5, dtype=torch.long), mask, zeros, zeros)[:, 0]
    unb = compute_advantages("frpo", r, torch.zeros(5, dtype=torch.long), mask, zeros, zeros, std="unbiased")[:, 0]
    close(pop, [1.224742, -0.816495, -0.816495, 1.224742, -0.816495])
    close(unb, [1.095443, -0.730295, -0.730295, 1.095443, -0.730295])


def _random(seed=0, B=12, T=9, G=4):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, T, dtype=torch.float64)
    for i, length in enumerate(torch.randint(1, T + 1, (B,), generator=g).tolist()):
        mask[i, length:] = 0
    lp_old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    lp_ref = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    rewards = torch.randint(0, 2, (B,), generator=g).double()
    return rewards, torch.arange(B) // G, lp_old, lp_ref, mask


def test_t8_invariants_on_random_batches():
    beta = 0.01
    for seed in range(5):
        r, g, lp_old, lp_ref, mask = _random(seed)
        a = frpo(r, g, lp_old, lp_ref, mask)
        assert (a * (1 - mask)).abs().max() == 0                                        # 1. padding is 0
        grpo_pop = frpo(r, g, lp_old, lp_old, mask)                                      # 2. d = 0: plain GRPO
        for est in ("k1", "k2", "k3"):
            for direction in ("reverse", "forward"):
                torch.testing.assert_close(frpo(r, g, lp_old, lp_old, mask, kl_estimator=est,
                                                kl_direction=direction), grpo_pop)
        d = (lp_old - lp_ref) * mask
        both = mask[:, :-1] * mask[:, 1:]
        torch.testing.assert_close((a[:, :-1] - a[:, 1:]) * both, -beta * d[:, :-1] * both)   # 3. differences
        last = mask.sum(-1).long() - 1
        rows = torch.arange(len(r))
        torch.testing.assert_close(a[rows, last], grpo_pop[rows, last] - beta * d[rows, last])  # 4. last token
        shifted = frpo(r, g, lp_old + 0.7 * mask[:, :1] * (torch.arange(len(r)) == 0)[:, None], lp_ref, mask)
        n_left = mask.flip(-1).cumsum(-1).flip(-1)                                       # 5. constant shift of row 0
        torch.testing.assert_close(shifted[0], a[0] - beta * 0.7 * n_left[0] * mask[0])
        outcome = algorithms.core.group_normalized_scores(r, g, population=True)         # 6. outcome mean 0
        for k in g.unique():
            assert abs(outcome[g == k].mean().item()) < 1e-9


def test_frpo_with_unbiased_std_is_prl_step_len_1():
    for seed in range(3):
        r, g, lp_old, lp_ref, mask = _random(seed)
        a = frpo(r, g, lp_old, lp_ref, mask, std="unbiased", beta=0.01)
        p = compute_advantages("prl", r, g, mask, lp_old, lp_ref, step_len=1, eta=100.0)
        nonzero = p != 0      # PRL's code gives a step that ends on exactly 0.0 the next step's value; none here
        assert nonzero.sum() == mask.sum()
        torch.testing.assert_close(a, p.to(a.dtype))


def test_singleton_group_is_treated_as_grpo_treats_it():
    mask, zeros = torch.ones(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64)
    a = compute_advantages("frpo", torch.tensor([1.0], dtype=torch.float64), torch.zeros(1, dtype=torch.long), mask,
                           zeros, zeros)
    g = compute_advantages("grpo", torch.tensor([1.0], dtype=torch.float64), torch.zeros(1, dtype=torch.long), mask,
                           zeros, zeros)
    torch.testing.assert_close(a, g.to(a.dtype))


def test_bad_options_are_refused_with_one_line():
    from common.errors import HarnessError

    for kw, match in [({"kl_direction": "sideways"}, "algo.kl_direction must be one of reverse, forward"),
                      ({"std": "sample"}, "algo.std must be one of population, unbiased"),
                      ({"suffix": "all"}, "algo.suffix must be one of inclusive, exclusive"),
                      ({"k3_baseline": "group"}, "algo.k3_baseline must be one of none, batch"),
                      ({"beta": -1.0}, "algo.beta must be >= 0"), ({"kl_estimator": "k4"}, "algo.kl_estimator")]:
        with pytest.raises(HarnessError, match=match):
            frpo(**kw)


def test_process_share_is_logged():
    algo = algorithms.get_algorithm("frpo")
    from algorithms.core import Rollout

    ro = Rollout(response_ids=torch.zeros(2, 4, dtype=torch.long), response_mask=MASK, group_ids=GROUP, rewards=R,
                 old_logp=LP_OLD, ref_logp=LP_REF)
    share = algo.diagnostics(ro, algo.config_cls())["process_share"]
    d = (LP_OLD - LP_REF) * MASK
    S = d.flip(-1).cumsum(-1).flip(-1)
    assert share == pytest.approx((0.01 * S[MASK > 0]).abs().mean().item() / 0.999998, rel=1e-6)


def test_ls_describes_every_frpo_option_with_its_source(capsys):
    from harness.cli import main

    assert main(["ls", "--algo", "frpo"]) == 0
    out = capsys.readouterr().out
    for field, source in [("beta", "Table 7"), ("kl_estimator", "App. E"), ("kl_direction", "Def. B.3"),
                          ("std", "eq. 3.2"), ("suffix", "v2 default"), ("k3_baseline", "§6.2.2"), ("eps", "Alg. 1")]:
        line = next(x for x in out.splitlines() if x.strip().startswith(f"algo.{field} "))
        assert source in line, line
