"""Tests for harness.eval.evaluate (with a scripted engine) and the ``eval`` command (tiny model, end to end).

    .venv/bin/python -m pytest tests/eval/test_evaluate.py -q
"""

from __future__ import annotations

import hashlib
import json

import pytest

from benchmarks import Problem
from benchmarks.grading import Grader
from common.errors import HarnessError
from harness.cli import main
from harness.engines import Generation, RolloutEngine
from harness.config import build_config
from harness.eval.evaluate import evaluate, load_problems
from harness.results import read_jsonl

SAMPLE_KEYS = {"problem_id", "sample_index", "prompt", "gold", "response", "extracted", "correct", "num_tokens",
               "finish_reason"}
SUMMARY_KEYS = {"schema_version", "bench", "model", "n", "num_problems", "num_samples", "avg@n", "pass@k",
                "maj@n", "bootstrap_pass@n", "problem_ids_sha256", "skipped_too_long", "truncated_too_long",
                "settings", "grader", "versions", "time_s"}


class ScriptedEngine(RolloutEngine):
    """Answers problem i's sample j with ``answers[(problem text, j)]`` boxed; records the calls."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def generate(self, prompts, params, seed=None):
        self.calls.append((len(prompts), params.n, seed))
        out = []
        for i, prompt in enumerate(prompts):
            for j in range(params.n):
                ans = self.answers(prompt.strip(), j)
                text = f"=...\n\\boxed{{{ans}}}" if ans is not None else "no idea"
                out.append(Generation(i, [1, 2], list(range(len(text))), text, "stop"))
        return out

    def sync_weights(self, model):
        pass

    sample_dtype = "float32"
    max_context = None


class PlainTok:
    chat_template = None


def eval_cfg(seed: int = 0, **evals):
    """A RunConfig as `harness eval` builds it, with these ``eval.*`` values."""
    overrides = [f"eval.{k}={v}" for k, v in evals.items()]
    return build_config({}, [*overrides, "model.name=fake", f"seed={seed}", "log.progress=false"], need_algo=False)


def arith_like(k: int) -> list[Problem]:
    return [Problem(f"p{i}", f"Compute {i}+0.", str(i), {}) for i in range(k)]


def test_evaluate_writes_schema_and_hand_computed_metrics(tmp_path):
    probs = arith_like(5)
    # problem i: sample 0 right iff i even; sample 1 right iff i < 2; sample 2 wrong ("99"), sample 3 no box
    def answers(prompt, j):
        i = int(prompt.split()[1].split("+")[0])
        return [i if i % 2 == 0 else 99, i if i < 2 else 98, 99, None][j]
    engine = ScriptedEngine(answers)
    with Grader() as g:
        out = evaluate(engine, PlainTok(), {"arith": probs}, tmp_path, eval_cfg(n=4, max_new_tokens=8, seed=3,
                                                                                batch_size=2), grader=g)
    s = out["arith"]
    assert json.loads((tmp_path / "arith" / "summary.json").read_text()) == s
    assert set(s) == SUMMARY_KEYS and s["schema_version"] == 1 and s["model"] == "fake"
    assert (s["n"], s["num_problems"], s["num_samples"]) == (4, 5, 20)
    # correct counts per problem: p0 2, p1 1, p2 1, p3 0, p4 1
    assert s["avg@n"] == pytest.approx((2 + 1 + 1 + 0 + 1) / 20, abs=1e-12)
    assert s["pass@k"]["4"] == pytest.approx(4 / 5, abs=1e-12)
    assert s["pass@k"]["2"] == pytest.approx((1 - 1 / 6 + 0.5 + 0.5 + 0 + 0.5) / 5, abs=1e-12)
    # maj: p0 "0" x2 -> right; p1 "99" x2 (first) -> wrong; p2 "2" vs "98"/"99" tie -> first "2" right;
    # p3 "99" x2 -> wrong; p4 tie "4","98","99" -> "4" right
    assert s["maj@n"] == pytest.approx(3 / 5, abs=1e-12)
    assert s["problem_ids_sha256"] == hashlib.sha256("\n".join(sorted(p.id for p in probs)).encode()).hexdigest()
    assert s["settings"]["engine"] == "ScriptedEngine" and s["settings"]["prompt"] == "plain"
    assert s["grader"]["integer_only"] is True and s["versions"]["math-verify"]
    rows = read_jsonl(tmp_path / "arith" / "samples.jsonl")
    assert len(rows) == 20 and all(set(r) == SAMPLE_KEYS for r in rows)
    assert [(r["problem_id"], r["sample_index"]) for r in rows[:5]] == [
        ("p0", 0), ("p0", 1), ("p0", 2), ("p0", 3), ("p1", 0)]
    assert rows[3]["extracted"] is None and rows[3]["correct"] is False
    # each row carries the prompt as sent and the gold answer: a verdict can be checked without other files
    assert [(r["prompt"], r["gold"]) for r in rows[3:5]] == [("Compute 0+0.\n", "0"), ("Compute 1+0.\n", "1")]
    assert engine.calls[0][:2] == (2, 4) and [c[0] for c in engine.calls] == [2, 2, 1]   # chunks of batch_size
    assert len({c[2] for c in engine.calls}) == 3                                      # distinct chunk seeds


def test_evaluate_resume_keeps_complete_problems(tmp_path):
    probs = arith_like(4)
    engine = ScriptedEngine(lambda prompt, j: prompt.split()[1].split("+")[0])
    cfg = eval_cfg(n=2, max_new_tokens=8, batch_size=1)
    evaluate(engine, PlainTok(), {"arith": probs}, tmp_path, cfg)
    path = tmp_path / "arith" / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5]) + lines[5][:10])      # p0, p1 complete; p2 half; torn line
    engine.calls.clear()
    s = evaluate(engine, PlainTok(), {"arith": probs}, tmp_path, cfg, resume=True)["arith"]
    assert [c[0] for c in engine.calls] == [1, 1]             # only p2 and p3 sampled again
    rows = read_jsonl(path)
    assert len(rows) == 8 and s["avg@n"] == 1.0 and s["num_samples"] == 8
    assert sorted((r["problem_id"], r["sample_index"]) for r in rows) == [
        (f"p{i}", j) for i in range(4) for j in range(2)]
    engine.calls.clear()
    evaluate(engine, PlainTok(), {"arith": probs}, tmp_path, cfg)   # no resume: starts over
    assert len(engine.calls) == 4 and len(read_jsonl(path)) == 8


def test_evaluate_rejects_bad_settings(tmp_path):
    with pytest.raises(HarnessError, match=r"eval.n must be >= 1 \(got 0\)"):
        eval_cfg(n=0)
    with pytest.raises(HarnessError, match=r"eval.batch_size must be >= 1 \(got 0\)"):
        eval_cfg(batch_size=0)
    with pytest.raises(HarnessError, match="unknown benchmark"):
        load_problems(eval_cfg(), ["nope"])
    engine = ScriptedEngine(lambda p, j: "1")
    engine.max_context = 8
    with pytest.raises(HarnessError, match=r"max_new_tokens \(8\) leaves no room"):
        evaluate(engine, PlainTok(), {"arith": arith_like(2)}, tmp_path, eval_cfg(max_new_tokens=8))
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- the eval command

@pytest.mark.parametrize("argv,match", [
    (["--bench", "math5000"], "unknown benchmark"),
    (["--n", "0"], "--n must be"),
    (["--limit", "-2"], "--limit must be"),
    (["--temperature", "-1"], "--temperature must be >= 0"),
    (["--n", "2", "--train.lr", "1"], "harness eval does not read train.lr"),
    (["--eval.bench_limit.gsm8k", "2"], "eval.bench_limit names gsm8k"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1] (got 1.5)"),
    (["--data-dir", "/nonexistent/data"], "does not exist"),
    (["--engine", "nope"], "unknown rollout engine"),
    (["--hf-sampler", "fast"], "invalid choice: 'fast'"),
    (["--name", "../escape"], "invalid run name"),
    (["--model", "/nonexistent/model"], "does not exist"),
])
def test_eval_bad_input_writes_nothing(tmp_path, capsys, argv, match):
    base = ["eval", "--model", "tiny", "--bench", "arith", "--results-dir", str(tmp_path / "results")]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_eval_existing_run_needs_overwrite(tmp_path, capsys):
    (tmp_path / "results" / "x").mkdir(parents=True)
    (tmp_path / "results" / "x" / "keep.txt").write_text("mine")
    assert main(["eval", "--model", "tiny", "--bench", "arith", "--name", "x",
                 "--results-dir", str(tmp_path / "results")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "results" / "x" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_eval_tiny_end_to_end(tmp_path, tiny_path, capsys):
    results = tmp_path / "results"
    code = main(["eval", "--model", "tiny", "--bench", "all,arith", "--limit", "4", "--n", "2",
                 "--results-dir", str(results), "--name", "e2e", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "math500" in out and "results:" in out
    run_dir = results / "e2e"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["benches"] == ["math500", "minerva_math", "olympiadbench", "arith"]
    for bench in info["benches"]:
        summary = json.loads((run_dir / "eval" / bench / "summary.json").read_text())
        assert set(summary) == SUMMARY_KEYS and summary["bench"] == bench
        assert (summary["n"], summary["num_problems"], summary["num_samples"]) == (2, 4, 8)
        assert set(summary["pass@k"]) == {"1", "2"} and 0 <= summary["avg@n"] <= summary["pass@k"]["2"] <= 1
        assert summary["settings"]["max_new_tokens"] == 48   # the tiny default
        rows = read_jsonl(run_dir / "eval" / bench / "samples.jsonl")
        assert len(rows) == 8 and all(set(r) == SAMPLE_KEYS for r in rows)
        assert all(1 <= r["num_tokens"] <= 48 and r["finish_reason"] in ("stop", "length") for r in rows)
        ids = sorted({r["problem_id"] for r in rows})
        assert hashlib.sha256("\n".join(ids).encode()).hexdigest() == summary["problem_ids_sha256"]
        assert summary["avg@n"] == pytest.approx(sum(r["correct"] for r in rows) / 8, abs=1e-12)
