"""Unit tests for algorithms/: advantages, KL, aggregation, config validation (hand-computed values).

Loss-gradient, micro-batch and contract tests live in tests/algorithms/test_algo_loss.py.
Run: /work/main/.venv/bin/python -m pytest tests/algorithms/test_algorithms.py tests/algorithms/test_algo_loss.py -q
"""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

import algorithms
from algorithms import Rollout, aggregate_loss, compute_advantages, get_algorithm, kl_estimate
from algorithms.core import LossConfig
from algorithms.prl import PRLConfig
from common.errors import HarnessError

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs

F64 = torch.float64
ATOL = 1e-7


def ones(B, T):
    return torch.ones(B, T, dtype=F64)


def gid(*ids):
    return torch.tensor(ids, dtype=torch.long)


def rew(*r):
    return torch.tensor(r, dtype=F64)


def close(actual, expected, atol=ATOL):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    assert torch.allclose(actual, expected, atol=atol, rtol=0), f"{actual} != {expected}"


# ----------------------------------------------------------------------------- PEERS.md §6 vectors
@pytest.mark.parametrize("r, expected", [
    ([1, 0, 0, 1], [0.8660239, -0.8660239, -0.8660239, 0.8660239]),
    ([1, 0, 0, 0], [1.499997, -0.499999, -0.499999, -0.499999]),
    ([1, 1, 1, 1], [0, 0, 0, 0]),
])
def test_grpo_matches_verl_vectors(r, expected):
    adv = compute_advantages("grpo", rew(*r), gid(0, 0, 0, 0), ones(4, 3))
    assert adv.shape == (4, 3)
    close(adv, torch.tensor(expected, dtype=F64)[:, None].expand(4, 3), atol=1e-6)


def test_grpo_exact_formula_groups_singleton_padding_and_no_std():
    r, g = rew(1, 0, 1, 1, 1), gid(7, 7, 3, 3, 5)
    mask = ones(5, 2)
    mask[1, 1] = 0  # padding
    a = 0.5 / (math.sqrt(0.5) + 1e-6)  # group {1, 0}: mean 0.5, unbiased std sqrt(0.5)
    single = 1 / (1 + 1e-6)  # singleton group: mean 0, std 1 (verl)
    expected = torch.tensor([[a, a], [-a, 0], [0, 0], [0, 0], [single, single]], dtype=F64)
    close(compute_advantages("grpo", r, g, mask), expected, atol=1e-12)
    expected_centred = torch.tensor([[.5, .5], [-.5, 0], [0, 0], [0, 0], [1, 1]], dtype=F64)
    close(compute_advantages("grpo", r, g, mask, scale_by_std=False), expected_centred, atol=1e-12)
    close(compute_advantages("grpo", rew(1, 0), gid(0, 0), ones(2, 1), eps=0.5),
          [[0.5 / (math.sqrt(0.5) + 0.5)], [-0.5 / (math.sqrt(0.5) + 0.5)]], atol=1e-12)


def test_rloo_leave_one_out_and_singleton():
    close(compute_advantages("rloo", rew(1, 0, 0, 0), gid(0, 0, 0, 0), ones(4, 2)),
          torch.tensor([1, -1 / 3, -1 / 3, -1 / 3], dtype=F64)[:, None].expand(4, 2), atol=1e-12)
    # two groups + a singleton: {1, 1} -> 0, 0 ; {0, 1, 1} -> -1, .5, .5 ; {1} -> 1 (raw)
    adv = compute_advantages("rloo", rew(1, 1, 0, 1, 1, 1), gid(0, 0, 1, 1, 1, 2), ones(6, 1))
    close(adv[:, 0], [0, 0, -1, 0.5, 0.5, 1], atol=1e-12)


def test_reinforce_baselines():
    r, g = rew(1, 0, 0, 0), gid(0, 0, 0, 0)
    close(compute_advantages("reinforce", r, g, ones(4, 1))[:, 0], [0.75, -0.25, -0.25, -0.25], atol=1e-12)
    close(compute_advantages("reinforce", r, g, ones(4, 1), baseline="none")[:, 0], [1, 0, 0, 0], atol=1e-12)
    # batch mean is over the whole batch, group mean per prompt
    r2, g2 = rew(1, 0, 1, 1), gid(0, 0, 1, 1)
    close(compute_advantages("reinforce", r2, g2, ones(4, 1))[:, 0], [.25, -.75, .25, .25], atol=1e-12)
    close(compute_advantages("reinforce", r2, g2, ones(4, 1), baseline="group_mean")[:, 0], [.5, -.5, 0, 0],
          atol=1e-12)


def test_singleton_rule_reinforce_group_mean_equals_dr_grpo():
    # groups {1, 0}, {1, 1} and two singletons {1}, {0}: a singleton keeps its raw R (algorithms/core.py docstring)
    r, g = rew(1, 0, 1, 1, 1, 0), gid(7, 7, 3, 3, 5, 9)
    expected = [.5, -.5, 0, 0, 1, 0]
    reinforce = compute_advantages("reinforce", r, g, ones(6, 2), baseline="group_mean")
    close(reinforce[:, 0], expected, atol=0)
    close(reinforce, compute_advantages("grpo", r, g, ones(6, 2), scale_by_std=False), atol=0)
    close(compute_advantages("rloo", r, g, ones(6, 1))[4:, 0], [1, 0], atol=0)
    close(compute_advantages("grpo", rew(1.0), gid(0), ones(1, 1))[:, 0], [1 / (1 + 1e-6)], atol=1e-15)


def test_raft_keeps_only_positive_rewards():
    mask = ones(3, 2)
    mask[2, 1] = 0
    for name in ("raft", "raftpp"):
        close(compute_advantages(name, rew(1, 0, 1), gid(0, 0, 0), mask), [[1, 1], [0, 0], [1, 0]], atol=0)
        close(compute_advantages(name, rew(-1, 0.5, 2), gid(0, 0, 0), ones(3, 1))[:, 0], [0, 0.5, 2], atol=0)


def test_kl_estimators_peers_values_and_aliases():
    lp, ref = torch.tensor(-1.0, dtype=F64), torch.tensor(-1.5, dtype=F64)
    expected = {"k1": 0.5, "k2": 0.125, "k3": math.exp(-0.5) + 0.5 - 1}
    for kind, alias in (("k1", "kl"), ("k2", "mse"), ("k3", "low_var_kl")):
        close(kl_estimate(lp, ref, kind), expected[kind], atol=1e-12)
        close(kl_estimate(lp, ref, alias), expected[kind], atol=1e-12)
    assert abs(expected["k3"] - 0.1065307) < 1e-7  # PEERS.md §6
    # verl clamps: x = ref - lp clamped to [-20, 20], result to [-10, 10]
    close(kl_estimate(torch.tensor(0.0, dtype=F64), torch.tensor(-100.0, dtype=F64), "k3"), 10.0, atol=0)
    with pytest.raises(HarnessError, match=r"algo.kl_estimator must be one of .* \(got 'k4'\)"):
        kl_estimate(lp, ref, "k4")


def test_aggregation_peers_cross_check():
    loss = torch.tensor([[1, 1, 1, 1], [3, 99, 99, 99], [5, 5, 5, 5]], dtype=F64)  # 99/5 sit on padding
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=F64)  # third row empty
    close(aggregate_loss(loss, mask, "token-mean"), 1.4, atol=1e-12)
    close(aggregate_loss(loss, mask, "seq-mean-token-mean"), 2.0, atol=1e-12)
    close(aggregate_loss(loss, mask, "seq-mean-token-sum"), 3.5, atol=1e-12)
    # explicit mini-batch counts replace the batch's own
    close(aggregate_loss(loss, mask, "token-mean", num_tokens=10), 0.7, atol=1e-12)
    close(aggregate_loss(loss, mask, "seq-mean-token-sum", num_seqs=7), 1.0, atol=1e-12)
    close(aggregate_loss(loss, torch.zeros_like(mask), "token-mean"), 0.0, atol=0)  # empty batch -> 0, not nan
    with pytest.raises(HarnessError, match="algo.loss_agg must be one of token-mean, seq-mean-token-mean"):
        aggregate_loss(loss, mask, "seq-mean-token-sum-norm")


# ----------------------------------------------------------------------------- PRL (PRL.md §1.3)
ETA = 10.0
A_HAT = 0.5 / (math.sqrt(0.5) + 1e-6)  # group {1, 0}: mean 0.5, unbiased std sqrt(0.5)
D = torch.tensor([[0.1, 0.2, -0.3, 0.4, 0.5], [0.2, -0.1, 0.3, 7.0, 7.0]], dtype=F64)  # 7.0 on padding
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=F64)
# inclusive suffix sums S_t of d * mask: row 0 [.9, .8, .6, .9, .5], row 1 [.4, .2, .3, 0, 0]


def prl(mask=MASK, d=D, r=(1, 0), g=(0, 0), newline=None, requires_grad=False, **hp):
    ref = torch.full(d.shape, -1.0, dtype=F64)
    old = ref + d
    if requires_grad:
        ref.requires_grad_(True)
        old.requires_grad_(True)
    hp.setdefault("eta", ETA)
    return compute_advantages("prl", rew(*r), gid(*g), mask, old, ref, newline_mask=newline, **hp)


def test_prl_orm_step_len_hand_computed():
    # step_len 2 -> step ends at 1-based 2, 4 and the last valid token (row 0: 5; row 1: 3)
    adv = prl(step_len=2)
    close(adv[0], [A_HAT - .08, A_HAT - .08, A_HAT - .09, A_HAT - .09, A_HAT - .05], atol=1e-12)
    close(adv[1], [-A_HAT - .02, -A_HAT - .02, -A_HAT - .03, 0, 0], atol=1e-12)  # padding gets 0


def test_prl_orm_newline_split_hand_computed():
    newline = torch.tensor([[0, 0, 1, 0, 0], [1, 0, 0, 1, 1]], dtype=torch.bool)  # padding flags ignored
    adv = prl(step_split="newline", newline=newline)
    close(adv[0], [A_HAT - .06] * 3 + [A_HAT - .05] * 2, atol=1e-12)  # steps {0,1,2} end S=.6, {3,4} end S=.5
    close(adv[1], [-A_HAT - .04, -A_HAT - .03, -A_HAT - .03, 0, 0], atol=1e-12)  # steps {0}, {1,2}
    with pytest.raises(ValueError, match="newline_mask"):
        prl(step_split="newline")


def test_prl_prm_mode_is_per_token_raw_reward():
    adv = prl(mode="prm", step_len=2)  # step_len ignored in prm mode
    close(adv[0], [1 - .09, 1 - .08, 1 - .06, 1 - .09, 1 - .05], atol=1e-12)
    close(adv[1], [-.04, -.02, -.03, 0, 0], atol=1e-12)


def test_prl_one_step_when_step_len_ge_T():
    adv = prl(step_len=5)  # only the last valid token ends a step: all tokens get S at that token
    close(adv[0], [A_HAT - .05] * 5, atol=1e-12)
    close(adv[1], [-A_HAT - .03] * 3 + [0, 0], atol=1e-12)
    close(prl(step_len=1000), adv, atol=0)


def test_prl_large_eta_equals_grpo():
    grpo = compute_advantages("grpo", rew(1, 0), gid(0, 0), MASK)
    close(prl(eta=1e12, step_len=2), grpo, atol=1e-10)
    assert not torch.allclose(prl(step_len=2), grpo, atol=1e-3)  # and eta matters


def test_prl_exact_zero_step_end_keeps_its_value():
    # uniform group -> A_hat = 0; step 0 ends at token 1 where S = -0.5 + 0.25 + 0.25 = 0 exactly.
    # The official left_fill_by_next_nonzero would give step 0 the next step's -0.25/eta.
    d = torch.tensor([[0.5, -0.5, 0.25, 0.25], [0, 0, 0, 0]], dtype=F64)
    adv = prl(mask=ones(2, 4), d=d, r=(1, 1), step_len=2)
    assert adv[0, 0].item() == 0.0 and adv[0, 1].item() == 0.0
    close(adv[0, 2:], [-0.25 / ETA] * 2, atol=1e-15)
    close(adv[1], [0, 0, 0, 0], atol=0)


def test_prl_singleton_group_uses_raw_reward_and_scale_by_std():
    adv = prl(g=(0, 1), step_len=2)  # two singleton groups: A_hat = R raw (official n == 1 path)
    close(adv[0], [1 - .08, 1 - .08, 1 - .09, 1 - .09, 1 - .05], atol=1e-12)
    close(adv[1], [-.02, -.02, -.03, 0, 0], atol=1e-12)
    adv = prl(step_len=2, scale_by_std=False)
    close(adv[0], [.5 - .08, .5 - .08, .5 - .09, .5 - .09, .5 - .05], atol=1e-12)


def test_prl_process_reward_is_detached():
    for mode in ("orm", "prm"):
        adv = prl(mode=mode, step_len=2, requires_grad=True)
        assert not adv.requires_grad and adv.grad_fn is None
    algo = get_algorithm("prl")
    assert algo.needs_ref
    with pytest.raises(ValueError, match="ref_logp"):
        compute_advantages("prl", rew(1, 0), gid(0, 0), MASK, D)


@pytest.mark.parametrize("split", ["length", "newline"])
def test_prl_orm_matches_naive_loop(split):
    """Vectorised PRL == the closed form of PRL.md §1.3 written as a plain loop, on random ragged rows."""
    g = torch.Generator().manual_seed(3)
    B, T, L, eta = 6, 13, 4, 3.0
    lens = [13, 1, 7, 4, 12, 9]
    mask = (torch.arange(T)[None] < torch.tensor(lens)[:, None]).to(F64)
    old, ref = -torch.rand(B, T, generator=g, dtype=F64), -torch.rand(B, T, generator=g, dtype=F64)
    newline = torch.rand(B, T, generator=g) < 0.3
    r, groups = rew(1, 0, 1, 1, 0, 0), gid(0, 0, 0, 1, 1, 1)
    adv = compute_advantages("prl", r, groups, mask, old, ref, newline_mask=newline, eta=eta, step_len=L,
                             step_split=split)
    for i in range(B):
        rg = r[groups == groups[i]]
        a_hat = (r[i] - rg.mean()) / (rg.std() + 1e-6)
        n = lens[i]
        ends = [t for t in range(n) if ((t + 1) % L == 0 if split == "length" else bool(newline[i, t]))]
        ends = sorted(set(ends) | {n - 1})
        for t in range(T):
            if t >= n:
                assert adv[i, t].item() == 0.0
                continue
            e = next(e for e in ends if e >= t)  # last token of t's step
            expected = a_hat - (old[i, e:n] - ref[i, e:n]).sum() / eta
            assert abs(adv[i, t].item() - expected.item()) < 1e-12


# ----------------------------------------------------------------------------- configs and registry
@pytest.mark.parametrize("cls, kw, message", [
    (LossConfig, {"clip_eps_low": 1.0}, "algo.clip_eps_low must be in [0, 1) (got 1.0)"),
    (LossConfig, {"clip_eps_high": -0.1}, "algo.clip_eps_high must be > 0 (got -0.1)"),
    (LossConfig, {"dual_clip": 1.0}, "algo.dual_clip must be 0 (off) or > 1 (got 1.0)"),
    (LossConfig, {"kl_coef": -1}, "algo.kl_coef must be >= 0 (got -1)"),
    (LossConfig, {"loss_agg": "x"}, "algo.loss_agg must be one of token-mean, seq-mean-token-mean, "
                                    "seq-mean-token-sum (got 'x')"),
    (LossConfig, {"kl_estimator": "k9"}, "algo.kl_estimator must be one of k1, kl, k2, mse, k3, low_var_kl "
                                         "(got 'k9')"),
    (PRLConfig, {"eta": 0}, "algo.eta must be > 0 (got 0)"),
    (PRLConfig, {"eta": -1}, "algo.eta must be > 0 (got -1)"),
    (PRLConfig, {"step_len": 0}, "algo.step_len must be >= 1 (got 0)"),
    (PRLConfig, {"mode": "x"}, "algo.mode must be one of orm, prm (got 'x')"),
    (PRLConfig, {"step_split": "nn"}, "algo.step_split must be one of length, newline (got 'nn')"),
    (PRLConfig, {"clip_eps_low": -0.1}, "algo.clip_eps_low must be in [0, 1) (got -0.1)"),  # base checks still run
    (get_algorithm("grpo").config_cls, {"eps": -1}, "algo.eps must be >= 0 (got -1)"),
    (get_algorithm("reinforce").config_cls, {"baseline": "x"},
     "algo.baseline must be one of none, batch_mean, group_mean (got 'x')"),
])
def test_invalid_hyperparameters(cls, kw, message):
    with pytest.raises(HarnessError) as err:
        cls(**kw)
    assert str(err.value) == message


def test_unknown_hparam_and_unknown_algorithm():
    with pytest.raises(HarnessError, match=r"unknown algo.etaa for prl; allowed: .*eta"):
        compute_advantages("prl", rew(1, 0), gid(0, 0), MASK, D, D, etaa=1)
    with pytest.raises(HarnessError) as err:
        get_algorithm("grpoo")
    msg = str(err.value)
    assert "'grpoo'" in msg and "did you mean grpo" in msg and "\n" not in msg
    assert "available: prl, frpo, grpo, raft, raftpp, reinforce, rloo" in msg


def test_registry_contents_and_configs_work_with_omegaconf():
    assert algorithms.names() == ("prl", "frpo", "grpo", "raft", "raftpp", "reinforce", "rloo")
    for name in algorithms.names():
        algo = get_algorithm(name)
        assert algo.name == name and algo.summary and "\n" not in algo.summary
        assert issubclass(algo.config_cls, LossConfig)
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(algo.config_cls),
                                                  OmegaConf.from_dotlist(["kl_coef=0.001"])))
        assert isinstance(cfg, algo.config_cls) and cfg.kl_coef == 0.001
        assert algorithms.needs_ref_logp(algo, cfg) and algorithms.needs_ref_logp(algo, algo.config_cls()) == (
            name in ("prl", "frpo"))
    cfg = OmegaConf.merge(OmegaConf.structured(PRLConfig), OmegaConf.from_dotlist(["eta=200", "step_len=16"]))
    assert OmegaConf.to_object(cfg) == PRLConfig(eta=200.0, step_len=16)
    with pytest.raises(HarnessError, match=r"algo.eta must be > 0 \(got -5"):
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PRLConfig), OmegaConf.from_dotlist(["eta=-5"])))


def test_rollout_select():
    ro = Rollout(response_ids=torch.arange(6).view(3, 2), response_mask=ones(3, 2), group_ids=gid(0, 0, 1),
                 rewards=rew(1, 0, 1), old_logp=torch.zeros(3, 2), ref_logp=None)
    sub = ro.select(torch.tensor([2, 0]))
    assert sub.response_ids.tolist() == [[4, 5], [0, 1]] and sub.group_ids.tolist() == [1, 0]
    assert sub.rewards.tolist() == [1, 1] and sub.ref_logp is None and sub.newline_mask is None
    assert ro.response_ids.shape == (3, 2)  # original untouched
