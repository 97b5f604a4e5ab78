"""Grading throughput and worst cases (issue 3): realistic responses, pathological ones, gold self-checks.

1. Throughput: each MATH500 problem gets ``--n`` responses of a few sentences of reasoning ending in a
   boxed answer; even samples box the gold, odd ones box another problem's gold (a wrong answer of a
   realistic kind). Reported as samples/s for a warm pool (target >= 300/s on 2 cores), plus the
   one-off pool start-up time and the ``arith`` integer fast path.
2. Worst case: each pathological response (1 MB, 10,000 nested braces, a power tower, a thousand
   boxes, ...) graded alone; the slowest must stay near the timeout.
3. Gold self-check: all 2,836 golds of the six paper benchmarks, written as ``The final answer is
   $\\boxed{<gold>}$``, must grade correct.
4. ``--cases``: accuracy, false positives and false negatives per class of the labelled cases in
   ``tests/benchmarks/test_grading_classes.py`` (only this section runs).

    python scripts/bench_grading.py --data-dir ../shared/benchmarks
    python scripts/bench_grading.py --cases
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import get_benchmark  # noqa: E402
from benchmarks.grading import Grader  # noqa: E402

PAPER = ("math500", "minerva_math", "olympiadbench", "aime24", "amc23", "gsm8k")
REASONING = ("We start by restating the problem. Let $x$ denote the unknown quantity; the conditions "
             "give $2x + 3 = 7$, hence $x = 2$, and substituting back we simplify step by step: "
             "$\\frac{a+b}{2} \\ge \\sqrt{ab}$ with equality iff $a = b$. Checking the edge cases "
             "confirms the value.\n\nTherefore, the final answer is $\\boxed{%s}$.")
from benchmarks.pathological import PATHOLOGICAL  # noqa: E402


def throughput(grader: Grader, data_dir: str, n: int) -> None:
    problems = get_benchmark("math500").load(data_dir)
    responses, golds = [], []
    for i, p in enumerate(problems):
        for j in range(n):
            answer = p.answer if j % 2 == 0 else problems[(i + 1 + j) % len(problems)].answer
            responses.append(REASONING % answer)
            golds.append(p.answer)
    start = time.perf_counter()
    grader.grade(responses[:1], golds[:1], "math500")       # starts the pool
    print(f"pool start-up: {time.perf_counter() - start:.2f} s ({grader.workers} workers)")
    start = time.perf_counter()
    res = grader.grade(responses, golds, "math500")
    secs = time.perf_counter() - start
    acc = sum(r.correct for r in res) / len(res)
    print(f"throughput: {len(res)} MATH500 samples in {secs:.2f} s = {len(res) / secs:.0f} samples/s "
          f"(accuracy {acc:.3f}, expected ~0.5; timeouts {grader.timeouts})")
    arith = get_benchmark("arith").load()
    texts = [p.meta["solution"] for p in arith] * 500
    start = time.perf_counter()
    grader.grade(texts, [p.answer for p in arith] * 500, "arith")
    secs = time.perf_counter() - start
    print(f"arith fast path: {len(texts)} samples in {secs:.2f} s = {len(texts) / secs:,.0f} samples/s")


def worst_case(grader: Grader) -> None:
    worst = 0.0
    for name, text in PATHOLOGICAL.items():
        start = time.perf_counter()
        res = grader.grade([text], ["10"], "math500")[0]
        secs = time.perf_counter() - start
        worst = max(worst, secs)
        print(f"  {name:28s} {secs:6.2f} s  correct={res.correct} extracted={res.extracted!r}")
    print(f"worst case: {worst:.2f} s (timeout {grader.timeout:.1f} s; includes restarting a killed worker)")


def self_check(grader: Grader, data_dir: str) -> None:
    rows = [(b, p) for b in PAPER for p in get_benchmark(b).load(data_dir)]
    start = time.perf_counter()
    res = grader.grade([f"The final answer is $\\boxed{{{p.answer}}}$" for _, p in rows],
                       [p.answer for _, p in rows], [b for b, _ in rows])
    secs = time.perf_counter() - start
    bad = [(b, p.id, p.answer) for (b, p), r in zip(rows, res) if not r.correct]
    print(f"gold self-check: {len(rows) - len(bad)}/{len(rows)} correct in {secs:.1f} s")
    for b, pid, answer in bad[:20]:
        print(f"  FAIL {b} {pid}: {answer!r}")


def labelled_cases(grader: Grader) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_grading_classes import CLASSES
    for name, rows in CLASSES.items():
        res = grader.grade([r[2] for r in rows], [r[1] for r in rows], [r[0] for r in rows], [r[4] for r in rows])
        ok = sum(x.correct is r[3] for x, r in zip(res, rows))
        fp = sum(x.correct and not r[3] for x, r in zip(res, rows))
        print(f"{name:22s} {ok:3d}/{len(rows):3d} = {ok / len(rows):.3f}  "
              f"(false positives {fp}, false negatives {len(rows) - ok - fp})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", "../shared/benchmarks"))
    ap.add_argument("--n", type=int, default=8, help="responses per MATH500 problem (default 8)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--cases", action="store_true", help="only the per-class accuracy on the labelled cases")
    args = ap.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    with Grader(timeout=args.timeout, workers=args.workers) as grader:
        if args.cases:
            return labelled_cases(grader)
        throughput(grader, args.data_dir, args.n)
        worst_case(grader)
        self_check(grader, args.data_dir)


if __name__ == "__main__":
    main()
