"""Numeric guards (issue 6): a NaN/Inf loss or gradient skips the update, is counted and logged; K in a row stop the run.

The algorithm's ``compute_loss`` is wrapped (through ``harness.train.loop.get_algorithm``) so that chosen
RL steps produce a NaN or Inf loss, or a finite loss whose gradient is NaN; ``RLModule._update`` is
wrapped to snapshot the policy's parameters around every update.

    .venv/bin/python -m pytest tests/train/test_numeric_guards.py -q
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import harness.train.loop as loop
from common.errors import HarnessError
from harness.cli import main
from harness.config import build_config
from harness.train.flow import run

FAST = ["algo.name=grpo", "rollout.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=24",
        "eval.before=false", "eval.after=false", "log.progress=false", "train.lr=1e-3"]


class _NanGrad(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss with a non-finite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


def _poison(monkeypatch, bad_steps, kind: str) -> dict:
    """Make RL steps in ``bad_steps`` (1-based; None = all) non-finite; returns {step: (before, after)} params."""
    state = {"step": 0, "params": {}}
    real_get, real_update = loop.get_algorithm, loop.RLModule._update

    def get_algorithm(name):
        algo = real_get(name)

        def compute_loss(logp, ent, sub, adv, cfg, **kw):
            loss, stats = algo.compute_loss(logp, ent, sub, adv, cfg, **kw)
            if bad_steps is None or state["step"] in bad_steps:
                if kind == "nan_loss":
                    loss = loss * float("nan")
                elif kind == "inf_loss":
                    loss = loss + float("inf")
                else:  # nan_grad
                    loss = loss + 0.0 * _NanGrad.apply(logp.sum())
                    assert torch.isfinite(loss)
            return loss, stats
        return dataclasses.replace(algo, compute_loss=compute_loss)

    def update(self, *args, **kwargs):
        state["step"] = self.rollout_step + 1
        before = {k: v.detach().clone() for k, v in self.policy.state_dict().items()}
        try:
            return real_update(self, *args, **kwargs)
        finally:
            state["params"][state["step"]] = (before, {k: v.detach().clone()
                                                       for k, v in self.policy.state_dict().items()})

    monkeypatch.setattr(loop, "get_algorithm", get_algorithm)
    monkeypatch.setattr(loop.RLModule, "_update", update)
    return state


def _metrics(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nan_loss", "inf_loss", "nan_grad"])
def test_non_finite_step_is_skipped_and_counted(kind, tmp_path, monkeypatch, tiny_path):
    state = _poison(monkeypatch, {2}, kind)
    run_dir = run(build_config({}, [*FAST, "train.steps=3", f"results_dir={tmp_path}", "name=r"]))
    rows = _metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["skipped_updates"] for r in rows] == [0, 1, 1]
    assert [r["optimizer_step"] for r in rows] == [1, 1, 2]
    assert math.isnan(rows[1]["grad_norm"]) and math.isfinite(rows[2]["grad_norm"])
    params = state["params"]
    assert _same(*params[2]), "the skipped step changed the parameters"
    assert not _same(*params[1]) and not _same(*params[3])
    assert all(torch.isfinite(v).all() for v in params[3][1].values())
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_consecutive_bad_steps_stop_the_run(tmp_path, monkeypatch, tiny_path):
    _poison(monkeypatch, None, "nan_loss")
    cfg = build_config({}, [*FAST, "train.steps=6", "train.max_bad_steps=3", f"results_dir={tmp_path}", "name=r"])
    with pytest.raises(loop.NonFiniteError) as err:
        run(cfg)
    msg = str(err.value)
    assert "\n" not in msg and "3 consecutive" in msg and isinstance(err.value, HarnessError)
    rows = _metrics(tmp_path / "r")
    assert [r["skipped_updates"] for r in rows] == [1, 2]   # the third bad step raises before it is logged


@pytest.mark.slow
def test_bad_steps_through_the_cli_keep_the_last_checkpoint(tmp_path, monkeypatch, capsys, tiny_path):
    """Steps 3.. are NaN, max_bad_steps=2: exit 2 with one line; checkpoint/last is step 3 = the step-2 weights."""
    from safetensors.torch import load_file

    state = _poison(monkeypatch, {3, 4, 5, 6}, "nan_loss")
    argv = ["run", "--algo", "grpo", "--steps", "6", "--name", "r", "--results-dir", str(tmp_path),
            "--train.max_bad_steps", "2", "--train.save_every", "1", *[f"--{o}" for o in FAST[1:]]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 2 consecutive updates (up to RL step 4)") and err.count("\n") == 1, err
    last = tmp_path / "r" / "checkpoint" / "last"
    assert json.loads((last / "state.json").read_text())["step"] == 3
    saved = load_file(str(last / "model.safetensors"))
    after_step2 = state["params"][2][1]
    assert all(torch.equal(saved[k], after_step2[k]) for k in saved)
    assert not (tmp_path / "r" / "checkpoint" / "final").exists()
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "running"
