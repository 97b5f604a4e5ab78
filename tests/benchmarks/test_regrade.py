"""scripts/regrade.py: stored responses are graded again with the current grader; summary metrics follow."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_regrade_rewrites_verdicts_and_metrics(tmp_path):
    bench_dir = tmp_path / "eval" / "math500"
    bench_dir.mkdir(parents=True)
    rows = [  # stored verdicts are wrong on purpose: the regrade must fix both
        {"problem_id": "a", "sample_index": 0, "gold": "5", "response": "The answer is \\boxed{5}",
         "finish_reason": "stop", "correct": False, "extracted": None},
        {"problem_id": "a", "sample_index": 1, "gold": "5", "response": "within \\boxed{}, so 2 + 3 = 5",
         "finish_reason": "stop", "correct": True, "extracted": "5"},
    ]
    (bench_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (bench_dir / "summary.json").write_text(json.dumps({"bench": "math500", "n": 2, "avg@n": 0.5,
                                                        "settings": {"temperature": 1.0}}))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "regrade.py"), str(tmp_path / "eval")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 verdicts changed" in proc.stdout
    got = [json.loads(x) for x in (bench_dir / "samples.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in got] == [True, False] and got[0]["extracted"] == "5"
    summary = json.loads((bench_dir / "summary.json").read_text())
    assert summary["avg@n"] == 0.5 and summary["pass@k"] == {"1": 0.5, "2": 1.0}
    assert summary["settings"] == {"temperature": 1.0} and summary["regraded"]["changed"] == 2
    assert summary["grader"]["name"] == "math-verify"
