"""``harness eval``: unique default names and ``--resume`` (issue 11.6).

    .venv/bin/python -m pytest tests/eval/test_eval_resume.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.commands.evaluate import default_name, model_label
from harness.results import read_jsonl


@pytest.mark.parametrize("path,label", [
    ("results/prl-s0/checkpoint/final", "prl-s0"),
    ("results/grpo-all-s1/checkpoint/final/", "grpo-all-s1"),
    ("Qwen/Qwen2.5-Math-1.5B", "Qwen2.5-Math-1.5B"),
    ("/scratch/out/run3/checkpoint-500", "run3-checkpoint-500"),
    ("tiny", "tiny"),
    ("/models/llama 3 (8B)/hf", "llama_3__8B_"),
])
def test_model_label_skips_generic_parts(path, label):
    assert model_label(path) == label


def test_default_names_differ_by_model_and_settings():
    a = default_name("results/a/checkpoint/final", {"model": "/abs/results/a/checkpoint/final", "n": 8})
    b = default_name("results/b/checkpoint/final", {"model": "/abs/results/b/checkpoint/final", "n": 8})
    c = default_name("results/a/checkpoint/final", {"model": "/abs/results/a/checkpoint/final", "n": 4})
    assert a.startswith("eval-a-") and b.startswith("eval-b-") and len({a, b, c}) == 3
    assert a == default_name("results/a/checkpoint/final", {"n": 8, "model": "/abs/results/a/checkpoint/final"})


ARGS = ["eval", "--model", "tiny", "--bench", "arith", "--limit", "12", "--n", "2", "--batch-size", "3",
        "--no-progress"]


@pytest.mark.slow
def test_eval_resume_continues_an_interrupted_evaluation(tmp_path, tiny_path, capsys, monkeypatch):
    from harness.engines.hf import HFEngine

    results = tmp_path / "results"
    assert main([*ARGS, "--results-dir", str(results)]) == 0
    runs = list(results.iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("eval-tiny-")
    ref_rows = read_jsonl(runs[0] / "eval" / "arith" / "samples.jsonl")
    ref_summary = json.loads((runs[0] / "eval" / "arith" / "summary.json").read_text())
    assert len(ref_rows) == 24
    capsys.readouterr()

    # the same command again: the same default name, and the hint names --resume
    assert main([*ARGS, "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert "already exists: pass --resume" in err and runs[0].name in err

    # an evaluation cut off after two chunks (6 problems x 2 samples, appended chunk by chunk) and a
    # torn line of the third
    path = runs[0] / "eval" / "arith" / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:12]) + lines[12][:20])
    (runs[0] / "eval" / "arith" / "summary.json").unlink()
    sampled = []
    original = HFEngine.generate

    def counting(self, prompts, params, seed=None):
        sampled.extend(prompts)
        return original(self, prompts, params, seed=seed)

    monkeypatch.setattr(HFEngine, "generate", counting)
    assert main([*ARGS, "--results-dir", str(results), "--resume"]) == 0
    assert len(sampled) == 12 - 6                                   # finished problems are not redone
    rows = read_jsonl(path)
    assert path.read_text().splitlines(keepends=True)[:12] == lines[:12]   # kept as they were
    key = lambda r: (r["problem_id"], r["sample_index"])                   # noqa: E731
    assert sorted(rows, key=key) == sorted(ref_rows, key=key)             # = the uninterrupted run
    summary = json.loads((runs[0] / "eval" / "arith" / "summary.json").read_text())
    assert {k: summary[k] for k in ("avg@n", "pass@k", "maj@n", "problem_ids_sha256")} == \
        {k: ref_summary[k] for k in ("avg@n", "pass@k", "maj@n", "problem_ids_sha256")}
    info = json.loads((runs[0] / "run.json").read_text())
    assert info["status"] == "finished" and len(info["resumes"]) == 1

    # resuming with other settings (under the same explicit name) is refused, and nothing changes
    capsys.readouterr()
    assert main([*ARGS[:-1], "--n", "3", "--no-progress", "--results-dir", str(results),
                 "--name", runs[0].name, "--resume"]) == 2
    assert "settings differ in n (2 -> 3)" in capsys.readouterr().err
    assert read_jsonl(path) == rows

    # --engine auto (the default) picking another engine than the interrupted evaluation's is refused too
    assert info["engine"] == "hf"
    (runs[0] / "run.json").write_text(json.dumps(dict(info, status="running", engine="vllm")))
    assert main([*ARGS, "--results-dir", str(results), "--resume"]) == 2
    assert ("sampled with the vllm engine and --engine auto now picks hf; pass --engine vllm"
            in capsys.readouterr().err)
    assert read_jsonl(path) == rows


def test_eval_resume_needs_an_existing_run(tmp_path, capsys):
    assert main([*ARGS, "--results-dir", str(tmp_path), "--name", "nope", "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err and not any(Path(tmp_path).iterdir())
