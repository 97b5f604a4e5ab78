"""End-to-end RL on the tiny model: every algorithm trains, and PRL/GRPO learn."""

from __future__ import annotations

import json
import math

import pytest
import torch

import algorithms
from harness.config import build_config
from harness.train.flow import run

FAST = ["rollout.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=32",
        "eval.before=false", "eval.after=false", "log.progress=false"]


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]


def _params(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(str(path / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("algo", algorithms.names())
def test_every_algorithm_trains(algo, tmp_path, tiny_path):
    cfg = build_config({}, [f"algo.name={algo}", "train.steps=2", f"results_dir={tmp_path}",
                            "algo.kl_coef=0.01", *FAST])
    run_dir = run(cfg)
    rows = _metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[-1]["optimizer_step"] == 2
    for r in rows:
        for key in ("reward_mean", "kl", "entropy", "response_len", "adv_mean", "adv_std",
                    "grad_norm", "lr", "tokens_per_s", "time_generate_s", "time_score_s",
                    "time_update_s", "pg_loss", "kl_loss"):
            assert math.isfinite(r[key]), (key, r[key])
        assert 0 <= r["reward_mean"] <= 1 and r["response_len"] > 0
        assert r["prompt_len"] >= len("1+2=\n")  # tiny: one token per character of the arith prompt
        # the reference runs (kl_coef > 0); the old policy's own pass only when the advantage needs it (PRL)
        assert r["logp_passes"] == 1 + algorithms.get_algorithm(algo).needs_old_logp
    before, after = _params(tiny_path), _params(run_dir / "checkpoint" / "final")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["algo"] == algo
    assert "algo:\n  loss_agg" in (run_dir / "config.yaml").read_text()


def test_bfloat16_rollouts_train_a_float32_policy(tmp_path, tiny_path, monkeypatch):
    """``rollout.dtype=bfloat16``: the sampler is built in bfloat16, training and the saved weights stay float32."""
    from harness.engines import kv_decode

    dtypes, init = [], kv_decode.KVDecoder.__init__

    def recorded(self, model, dtype=None):
        dtypes.append(dtype)
        init(self, model, dtype)

    monkeypatch.setattr(kv_decode.KVDecoder, "__init__", recorded)
    from harness.train import update

    weights = []   # the update's TIS weights of each micro-batch

    def spy(*args):
        weights.append(loop_weights(*args))
        return weights[-1]

    loop_weights = update.correction_weights
    monkeypatch.setattr(update, "correction_weights", spy)
    cfg = build_config({}, ["algo.name=grpo", "train.steps=1", f"results_dir={tmp_path}", "rollout.engine=hf",
                            "rollout.dtype=bfloat16", *FAST])
    run_dir = run(cfg)
    assert dtypes == [torch.bfloat16]
    assert len(weights) == 1 and weights[0].max() <= 2.0 and (weights[0] != 1).any()   # min(u, C) per token
    row = _metrics(run_dir)[0]
    assert math.isfinite(row["grad_norm"]) and row["response_len"] > 0
    # train.rollout_correction auto: tis, as sampling (bfloat16) and training (float32) precisions differ
    assert json.loads((run_dir / "run.json").read_text())["rollout_correction"] == {
        "mode": "tis", "c": 2.0, "sample_dtype": "bfloat16", "train_dtype": "float32"}
    assert 1e-6 < row["mismatch_kl"] < 0.1 and row["mismatch_logp_abs_max"] > 1e-3
    before, after = _params(tiny_path), _params(run_dir / "checkpoint" / "final")
    assert {t.dtype for t in after.values()} == {torch.float32}
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_micro_batching_matches_full_batch(tmp_path, tiny_path, monkeypatch):
    """micro_batch_size 4, or micro-batches of at most 150 padded tokens with logits in chunks of 16 tokens,
    x accumulation, or gradient checkpointing == one micro-batch of 16 (same seed, same data)."""
    import functools

    from transformers import modeling_utils

    recomputed, checkpoint = set(), modeling_utils.checkpoint

    def counted(name, *args, **kwargs):
        recomputed.add(name)
        return checkpoint(*args, **kwargs)

    outs = []
    for name, extra in [("mbs16", ["train.micro_batch_size=16"]), ("mbs4", ["train.micro_batch_size=4"]),
                        ("tok150", ["train.max_micro_batch_tokens=150", "train.logit_chunk_tokens=16"]),
                        ("ckpt", ["train.micro_batch_size=16", "train.gradient_checkpointing=true"])]:
        monkeypatch.setattr(modeling_utils, "checkpoint", functools.partial(counted, name))
        cfg = build_config({}, ["algo.name=grpo", "train.steps=1", f"results_dir={tmp_path}",
                                f"name={name}", *extra, *FAST])
        outs.append(_params(run(cfg) / "checkpoint" / "final"))
    assert recomputed and not recomputed - {"ckpt"}  # checkpointing ran, and only where asked
    for other in outs[1:]:
        for k in outs[0]:
            torch.testing.assert_close(outs[0][k], other[k], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_skipped_old_policy_pass_gives_the_same_update(tmp_path, tiny_path, monkeypatch):
    """One update per batch: the update pass's own log-probs as pi_old == a separate no-grad pass."""
    import dataclasses

    import harness.train.loop as loop

    passes = {"old": 0, "ref": 0}
    orig = loop.RLModule._logp_no_grad

    def counting(self, model, *a):
        passes["ref" if model is self.ref else "old"] += 1
        return orig(self, model, *a)

    monkeypatch.setattr(loop.RLModule, "_logp_no_grad", counting)
    outs = []
    for forced in (False, True):
        algo = algorithms.get_algorithm("grpo")
        monkeypatch.setattr(loop, "get_algorithm",
                            lambda name, a=dataclasses.replace(algo, needs_old_logp=forced): a)
        cfg = build_config({}, ["algo.name=grpo", "train.steps=2", f"results_dir={tmp_path}",
                                f"name=forced{forced}", *FAST])
        run_dir = run(cfg)
        outs.append((_params(run_dir / "checkpoint" / "final"), _metrics(run_dir)))
    assert passes == {"old": 2, "ref": 0}  # only the forced run ran the old pass; no reference at kl_coef 0
    for k in outs[0][0]:
        torch.testing.assert_close(outs[0][0][k], outs[1][0][k], rtol=1e-5, atol=1e-7)
    for a, b in zip(outs[0][1], outs[1][1]):
        assert a["ratio_mean"] == pytest.approx(1.0, abs=1e-6) and a["clip_frac"] == 0
        assert a["pg_loss"] == pytest.approx(b["pg_loss"], rel=1e-4, abs=1e-7)
        assert math.isnan(a["kl"])


@pytest.mark.slow
def test_reference_runs_for_the_logged_kl_when_asked(tmp_path, tiny_path):
    cfg = build_config({}, ["algo.name=grpo", "train.steps=2", f"results_dir={tmp_path}", "log.kl_to_ref=true",
                            *FAST])
    rows = _metrics(run(cfg))
    assert math.isfinite(rows[-1]["kl"]) and rows[-1]["kl"] != 0 and rows[0]["kl"] == pytest.approx(0, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["prl", "grpo"])
def test_learning_raises_reward(algo, tmp_path, tiny_path, monkeypatch):
    """Training on the same 8 arith prompts every step clearly raises their reward (from about 0.3).

    A fixed prompt set isolates the RL update from generalisation: whether a few steps on the random
    arith stream lift the reward depends on the warm start, which differs between CPUs.
    """
    from harness.train.data import ArithSource

    first_batch = ArithSource.batch
    monkeypatch.setattr(ArithSource, "batch", lambda self, step, rank=0, world=1: first_batch(self, 0, rank, world))
    cfg = build_config({}, [f"algo.name={algo}", "train.steps=16", f"results_dir={tmp_path}", "seed=1",
                            "rollout.prompts_per_step=8", "rollout.n=8", "rollout.max_new_tokens=32",
                            "train.lr=5e-4", "eval.before=false", "eval.after=false", "log.progress=false"])
    rewards = [r["reward_mean"] for r in _metrics(run(cfg))]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert first < 0.5 and last > first + 0.25, rewards


@pytest.mark.slow
def test_train_data_from_local_jsonl(tmp_path, tiny_path):
    """Issue 3 item 7: RL prompts from a local JSONL of math problems, graded by math-verify."""
    data = tmp_path / "train.jsonl"
    rows = [{"question": f"What is {a} + {b}?", "final": f"\\frac{{{a + b}}}{{1}}"} for a, b in
            [(1, 2), (3, 4), (5, 6), (7, 8), (2, 9)]]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = build_config({}, ["algo.name=grpo", "train.steps=2", f"results_dir={tmp_path}",
                            f"data.train_data={data}", "data.problem_field=question",
                            "data.answer_field=final", *FAST])
    rows_out = _metrics(run(cfg))
    assert [r["step"] for r in rows_out] == [1, 2]
    assert all(math.isfinite(r["pg_loss"]) for r in rows_out)


def test_train_data_reward_uses_math_verify():
    from benchmarks.grading import Grader
    from harness.train.data import Reward, TrainProblem

    probs = [TrainProblem("a", "q", "\\frac{1}{2}", "math500"), TrainProblem("b", "q", "3", "math500")]
    with Grader() as grader:
        got = Reward(grader)(["so \\boxed{0.5}", "\\boxed{4}"], probs)
    assert got == [1.0, 0.0]


@pytest.mark.slow
def test_training_reward_sees_finish_reasons(tmp_path, tiny_path, monkeypatch):
    """The RL reward gets each response's finish reason, so a truncated one gets no last-number fallback."""
    from harness.train.data import Reward

    seen, call = [], Reward.__call__
    monkeypatch.setattr(Reward, "__call__", lambda self, t, p, f=None: seen.append(f) or call(self, t, p, f))
    cfg = build_config({}, ["algo.name=grpo", "train.steps=1", f"results_dir={tmp_path}", "rollout.max_new_tokens=3",
                            "rollout.prompts_per_step=2", "rollout.n=2", "eval.before=false", "eval.after=false",
                            "log.progress=false"])
    run(cfg)
    assert len(seen) == 1 and len(seen[0]) == 4 and set(seen[0]) <= {"stop", "length"} and "length" in seen[0]


@pytest.mark.parametrize("content,match", [
    ("", "empty file"), ('{"problem": "x"\n', "invalid JSON"),
    ('{"q": "x", "answer": "1"}\n', "no field 'problem'"),
    ('{"problem": "x", "answer": ""}\n', "empty problem or answer"),
])
def test_train_data_bad_files(tmp_path, content, match):
    from common.errors import HarnessError
    from harness.train.data import FileSource

    f = tmp_path / "t.jsonl"
    f.write_text(content)
    with pytest.raises(HarnessError, match=match):
        FileSource(str(f), seed=0, per_rank=2)


@pytest.mark.slow
def test_cli_run_at_temperature_half_writes_the_mismatch_metrics(tmp_path, tiny_path):
    """At T = 0.5 the update scores ``log_softmax(logits / 0.5)``: the kv sampler's float32 log-probs of its own
    tokens equal the training pass's, so the measured mismatch is float rounding (untempered it is ~0.1)."""
    from tests.conftest import run_cli

    proc = run_cli(["run", "--algo", "grpo", "--steps", "2", "--engine", "hf", "--name", "t05", "--results-dir",
                    str(tmp_path), "--rollout.temperature", "0.5", "--eval.before", "false", "--eval.after", "false",
                    "--rollout.prompts_per_step", "4", "--rollout.n", "4", "--quiet"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _metrics(tmp_path / "t05")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert 0 <= r["mismatch_kl"] < 1e-6 and r["mismatch_logp_abs_max"] < 1e-3 and r["mismatch_outside_frac"] == 0
    info = json.loads((tmp_path / "t05" / "run.json").read_text())
    assert info["rollout_correction"]["mode"] == "none"      # auto: float32 sampling of a float32 policy


@pytest.mark.slow
def test_kl_in_the_reward_makes_the_loop_compute_old_and_ref_logprobs(tmp_path, tiny_path):
    """grpo with algo.kl_reward_coef: the advantage needs pi_old and pi_ref before the update (2 no-grad passes)."""
    cfg = build_config({}, ["algo.name=grpo", "algo.kl_reward_coef=0.5", "train.steps=2", f"results_dir={tmp_path}",
                            *FAST])
    rows = _metrics(run(cfg))
    assert [r["logp_passes"] for r in rows] == [2, 2] and rows[-1]["kl"] != 0.0
