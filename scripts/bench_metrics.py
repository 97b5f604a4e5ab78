"""Time the evaluation metrics of one benchmark side by side: FRPO v2's bootstrap pass@k against the unbiased
pass@k table of ``harness.metrics.summarize`` (which now includes the bootstrap), on random verdicts.

    python scripts/bench_metrics.py                       # 500 problems x 16 samples, 1,000 bootstrap replicates
    python scripts/bench_metrics.py --problems 5000 --n 64

Prints a small table (median seconds of --repeats runs, and the ratio to the unbiased pass@k alone).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout, not an installed copy
from harness.metrics import bootstrap_pass_at_k, ks_for, pass_at_k, summarize  # noqa: E402


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", type=int, default=500)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    correct = np.random.default_rng(0).random((args.problems, args.n)) < 0.3
    counts = correct.sum(1).tolist()
    samples = {f"p{i}": [{"correct": bool(c), "extracted": None} for c in row] for i, row in enumerate(correct)}
    rows = [("unbiased pass@k, every k", _median_s(lambda: [sum(pass_at_k(args.n, c, k) for c in counts)
                                                           for k in ks_for(args.n)], args.repeats)),
            ("bootstrap pass@n, 1,000 replicates", _median_s(lambda: bootstrap_pass_at_k(correct, args.n),
                                                             args.repeats)),
            ("summarize (all metrics)", _median_s(lambda: summarize(samples, args.n), args.repeats))]
    base = rows[0][1]
    print(f"{args.problems} problems x {args.n} samples, median of {args.repeats} runs")
    print(f"{'metric':38s} {'seconds':>9s} {'x unbiased':>11s}")
    for name, sec in rows:
        print(f"{name:38s} {sec:9.4f} {sec / base:11.1f}")


if __name__ == "__main__":
    main()
