"""Regrade finished evaluations with the current grader, without sampling again.

For each ``EVAL_DIR/<bench>/samples.jsonl`` (an ``eval``/``eval_base`` folder of a run, or an ``eval``
folder of ``harness eval``), every row's ``correct`` and ``extracted`` are recomputed from its stored
``response``, ``gold`` and ``finish_reason`` by :class:`benchmarks.grading.Grader`, and ``summary.json``'s metrics
and ``grader`` entry are rewritten (its sampling settings and times are kept; ``regraded`` records when and how
many verdicts changed). Both files are replaced atomically. Use it when the grader changed after an
evaluation; the samples themselves (the expensive part) stay as they are.

    python scripts/regrade.py results/smollm2-135m/base/greedy results/smollm2-135m/base/t1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.grading import Grader  # noqa: E402
from common.jsonl import read_jsonl_strict  # noqa: E402
from harness.metrics import summarize  # noqa: E402
from harness.results import atomic_write_json, atomic_write_text  # noqa: E402


def regrade_bench(bench_dir: Path, grader: Grader) -> tuple[int, int, dict]:
    """Regrade one benchmark folder; returns (rows, verdicts changed, the new summary)."""
    rows = [row for _, row in read_jsonl_strict(bench_dir / "samples.jsonl")]
    summary = json.loads((bench_dir / "summary.json").read_text(encoding="utf-8"))
    bench = summary["bench"]
    results = grader.grade([r["response"] for r in rows], [r["gold"] for r in rows], bench,
                           [r.get("finish_reason") for r in rows])
    changed = sum(r["correct"] != g.correct for r, g in zip(rows, results))
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for r, g in zip(rows, results):
        r.update(correct=g.correct, extracted=g.extracted)
        by_problem[r["problem_id"]].append(r)
    summary.update(summarize(by_problem, summary["n"]), grader=grader.describe(bench),
                   regraded={"time": time.time(), "changed": changed})
    atomic_write_text(bench_dir / "samples.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_json(bench_dir / "summary.json", summary)
    return len(rows), changed, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_dirs", nargs="+", type=Path, help="folders holding <bench>/samples.jsonl")
    args = ap.parse_args()
    with Grader() as grader:
        for eval_dir in args.eval_dirs:
            for bench_dir in sorted(p.parent for p in eval_dir.glob("*/samples.jsonl")):
                n, changed, s = regrade_bench(bench_dir, grader)
                print(f"{bench_dir}: {n} samples, {changed} verdicts changed; avg@{s['n']} {s['avg@n']:.4f}, "
                      f"pass@{s['n']} {s['pass@k'][str(s['n'])]:.4f}")


if __name__ == "__main__":
    main()
