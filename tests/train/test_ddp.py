"""Multi-process training on CPU: 2-process DDP (gloo) through Lightning."""

import json
import os

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_two_process_ddp(tmp_path, tiny_path):
    trace = tmp_path / "trace"
    os.environ["TRACE_DIR"] = str(trace)
    try:
        proc = run_cli(["run", "--algo", "grpo", "--steps", "3", "--name", "ddp", "--devices", "2",
                        "--strategy", "ddp", "--trainer.accelerator", "cpu",
                        "--results-dir", str(tmp_path / "results"), "--rollout.prompts_per_step", "4",
                        "--rollout.n", "4", "--rollout.max_new_tokens", "24", "--eval.limit", "10",
                        "--eval.n", "3", "--eval.batch_size", "4", "--log.progress", "false"],
                       module="tests.train.ddp_trace")
    finally:
        del os.environ["TRACE_DIR"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [[json.loads(x) for x in (trace / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert [t["step"] for t in ranks[0]] == [t["step"] for t in ranks[1]] == [1, 2, 3]
    for a, b in zip(*ranks):
        assert not set(a["prompts"]) & set(b["prompts"]), "ranks must see different prompts"
        assert a["param_sum"] == pytest.approx(b["param_sum"], abs=1e-9), "parameters diverged"
    assert ranks[0][0]["param_sum"] != ranks[0][-1]["param_sum"]
    run_dir = tmp_path / "results" / "ddp"
    for stage in ("eval_base", "eval"):
        rows = [json.loads(x) for x in (run_dir / stage / "arith" / "samples.jsonl").read_text().splitlines()]
        keys = [(r["problem_id"], r["sample_index"]) for r in rows]
        assert len(keys) == len(set(keys)) == 10 * 3
        assert {k[1] for k in keys} == {0, 1, 2} and len({k[0] for k in keys}) == 10
        assert not list((run_dir / stage / "arith").glob("samples.rank*"))
        summary = json.loads((run_dir / stage / "arith" / "summary.json").read_text())
        assert summary["num_samples"] == 30
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
