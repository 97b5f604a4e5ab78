"""The rollout/training mismatch metrics and corrections (algorithms/correction.py), and how a run resolves them.

The TIS and mask gradients are checked against the hand-weighted surrogate on a small batch (float64), the
metrics against values worked out by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_algo_loss import MASK, N_TOK, SMALL, advantages, make

from algorithms import get_algorithm
from algorithms.correction import correction_weights, mismatch_metrics
from common.errors import HarnessError
from harness.train.steps import resolve_correction, training_dtype

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs

F64 = torch.float64
# log p_train - log p_rollout per token: u = e^x is 1, 1.65, 0.37 (< 1/2), 4.48 (> 2), ...
SHIFT = torch.tensor([[0.0, 0.5, -1.0], [1.5, 0.2, 7.0], [-0.3, 0.0, 0.9], [-2.0, 7.0, 7.0]], dtype=F64)


def test_weights_by_hand():
    train, rollout = torch.tensor([-1.0, -1.0, -1.0, -3.0]), torch.tensor([-1.0, -2.0, -1.5, -1.0])
    u = torch.tensor([1.0, math.e, math.exp(0.5), math.exp(-2.0)])
    torch.testing.assert_close(correction_weights(train, rollout, "tis", 2.0), u.clamp(max=2.0))
    torch.testing.assert_close(correction_weights(train, rollout, "mask", 2.0), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert torch.equal(correction_weights(train, rollout, "none", 2.0), torch.ones(4))
    with pytest.raises(HarnessError, match=r"train.rollout_correction_c must be > 1 \(got 1.0\)"):
        correction_weights(train, rollout, "tis", 1.0)


def test_metrics_by_hand():
    train = torch.tensor([[-1.0, -2.0, -1.0], [-0.5, 0.0, 0.0]])
    rollout = torch.tensor([[-1.0, -1.0, -3.0], [-0.5, -9.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    x = torch.tensor([0.0, -1.0, 2.0, 0.0], dtype=F64)            # log u of the valid tokens
    m = mismatch_metrics(train, rollout, mask, 2.0)
    assert math.isclose(m["mismatch_kl"], float((x.exp() - x - 1).mean()), rel_tol=1e-6)
    assert m["mismatch_logp_abs_max"] == 2.0                       # padding (|log u| = 9) left out
    assert m["mismatch_outside_frac"] == 0.5                       # e^-1 < 1/2 and e^2 > 2
    same = mismatch_metrics(train, train, mask)
    assert same == {"mismatch_kl": 0.0, "mismatch_logp_abs_max": 0.0, "mismatch_outside_frac": 0.0}
    assert all(math.isnan(v) for v in mismatch_metrics(train, rollout, torch.zeros(2, 3)).values())


@pytest.mark.parametrize("mode", ["tis", "mask"])
@pytest.mark.parametrize("name", ["grpo", "prl", "raft", "rloo"])
def test_corrected_gradient_equals_the_hand_weighted_one(name, mode):
    """The weight multiplies the per-token policy-gradient loss, with no gradient through it (KL and entropy terms
    unweighted): grad = grad of -sum_t m w A ratio / N (raft: -A logp) + kl_coef grad KL."""
    logp, ro = make(SMALL)
    ro.rollout_logp = ro.old_logp - SHIFT
    algo, cfg, adv = advantages(name, ro, kl_coef=0.1)
    w = correction_weights(ro.old_logp, ro.rollout_logp, mode, 2.0)
    assert 0 < float((w * MASK).sum()) < N_TOK * 2 and not torch.equal(w * MASK, MASK)  # weights that matter
    loss, _ = algo.compute_loss(logp, None, ro, adv, cfg, is_weights=w)
    (grad,) = torch.autograd.grad(loss, logp)
    lp = logp.detach().clone().requires_grad_(True)
    surrogate = lp if name == "raft" else torch.exp(lp - ro.old_logp)
    x = (ro.ref_logp - lp)
    direct = (-(MASK * w * adv * surrogate).sum() + 0.1 * (MASK * (x.exp() - x - 1)).sum()) / N_TOK
    (expected,) = torch.autograd.grad(direct, lp)
    torch.testing.assert_close(grad, expected, atol=1e-12, rtol=0)
    plain, _ = algo.compute_loss(logp, None, ro, adv, cfg)
    assert not torch.allclose(torch.autograd.grad(plain, logp)[0], grad)   # the weights changed the gradient


def test_auto_resolves_by_precision():
    assert training_dtype("32-true", "float32") == "float32"
    assert training_dtype("bf16-mixed", "float32") == "bfloat16"
    assert training_dtype("bf16-true", "float32") == "bfloat16"
    assert training_dtype("16-mixed", "float32") == "float16"
    assert training_dtype("32-true", "bfloat16") == "bfloat16"     # a bfloat16 policy trains in bfloat16
    assert resolve_correction("auto", "bfloat16", "float32") == "tis"
    assert resolve_correction("auto", "float32", "float32") == "none"
    assert resolve_correction("auto", "bfloat16", "bfloat16") == "none"
    assert resolve_correction("mask", "float32", "float32") == "mask"
    assert resolve_correction("none", "bfloat16", "float32") == "none"


def test_old_runs_resume_without_a_correction():
    from harness.config import build_config
    from harness.train.prepare import kept_on_resume

    cfg = build_config({}, ["algo.name=grpo"])
    assert cfg.train.rollout_correction == "auto"
    old = {"train.steps": 100, "train.lr": 5e-4}                   # a config.yaml saved before the key existed
    assert kept_on_resume(cfg, old).train.rollout_correction == "none"
    # resumed again: its config.yaml now says none, which the default keeps (no refusal, no switch to tis)
    assert kept_on_resume(cfg, {**old, "train.rollout_correction": "none"}).train.rollout_correction == "none"
    assert kept_on_resume(cfg, {**old, "train.rollout_correction": "tis"}).train.rollout_correction == "tis"
    asked = build_config({}, ["algo.name=grpo", "train.rollout_correction=mask"])
    assert kept_on_resume(asked, old) is asked                     # asked for explicitly: taken as asked
    assert kept_on_resume(cfg, {}) is cfg


@pytest.mark.slow
def test_resuming_an_old_run_twice(tmp_path, tiny_path):
    """A run whose config.yaml predates the setting resumes with none (where auto would be tis: bfloat16 sampling),
    and resumes again without a refusal."""
    import json

    import yaml

    from harness.config import build_config
    from harness.train.flow import run

    fast = ["algo.name=grpo", f"results_dir={tmp_path}", "name=old", "rollout.prompts_per_step=2", "rollout.n=2",
            "rollout.max_new_tokens=8", "eval.before=false", "eval.after=false", "log.progress=false",
            "train.keep_last=true", "rollout.engine=hf", "rollout.dtype=bfloat16"]   # auto alone would pick tis
    run_dir = run(build_config({}, [*fast, "train.steps=1"]))
    assert json.loads((run_dir / "run.json").read_text())["rollout_correction"]["mode"] == "tis"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    del saved["train"]["rollout_correction"]                        # as written before the setting existed
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    for steps in (2, 3):
        run(build_config({}, [*fast, f"train.steps={steps}"]), resume=True)
        assert json.loads((run_dir / "run.json").read_text())["rollout_correction"]["mode"] == "none"
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["rollout_correction"] == "none"


def test_plugins_accept_weights():
    for name in ("grpo", "prl", "raft", "raftpp", "reinforce", "rloo"):
        logp, ro = make(SMALL)
        algo, cfg, adv = advantages(name, ro)
        loss, _ = get_algorithm(name).compute_loss(logp, None, ro, adv, cfg, is_weights=torch.zeros_like(MASK))
        assert float(loss.detach()) == 0.0
