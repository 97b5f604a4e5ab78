"""Per-benchmark metrics from n samples per problem: unbiased pass@k, avg@n and maj@n.

* pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1), per problem
  with c of n samples correct: ``1 - C(n-c, k) / C(n, k)``, computed in the numerically stable
  product form of the reference code (openai/human-eval ``estimate_pass_at_k``):
  ``1 - prod_{j=n-c+1}^{n} (1 - k/j)``, and 1 when ``n - c < k``. Averaged over problems.
  Unlike PRL's ``eval.py`` "pass@8 = any sample correct", this is unbiased for every k <= n
  (for k = n the two coincide).
* avg@n = mean over problems of c/n (= the unbiased pass@1; PRL's "average@8").
* maj@n: the most frequent extracted answer per problem (ties: the one seen first) is scored by
  the first sample that produced it (PRL ``eval/calc.py``); a problem without any extracted answer
  scores 0.

Test vectors, from the reference code: ``tests/test_metrics.py``.

    python -c "from harness.metrics import pass_at_k; print(pass_at_k(16, 3, 4))"   # 0.607142857...
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` correct out of ``n`` samples.

    Args:
        n: samples drawn (>= 1).
        c: correct samples (0 <= c <= n).
        k: budget (1 <= k <= n).

    Returns:
        The probability that at least one of k samples drawn without replacement is correct.
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"pass_at_k: {name} must be an integer (got {value!r})")
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs n >= 1, 0 <= c <= n, 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / j for j in range(n - c + 1, n + 1))


def ks_for(n: int) -> list[int]:
    """The k reported for n samples: powers of two below n, and n itself (n=6 -> [1, 2, 4, 6])."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"ks_for: n must be a positive integer (got {n!r})")
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def majority_vote(extracted: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """maj@n of one problem: is the most frequent non-None extracted answer correct?"""
    if len(extracted) != len(correct):
        raise ValueError(f"majority_vote: {len(extracted)} answers but {len(correct)} verdicts")
    counts = Counter(a for a in extracted if a is not None)
    if not counts:
        return False
    top = max(counts.values())
    for answer, ok in zip(extracted, correct):  # first occurrence breaks ties
        if answer is not None and counts[answer] == top:
            return bool(ok)
    raise AssertionError("unreachable")


def summarize(samples_by_problem: Mapping[str, Sequence[Mapping]], n: int) -> dict:
    """Aggregate metrics of one benchmark.

    Args:
        samples_by_problem: problem id -> its n sample records, each with ``"correct"`` (bool)
            and ``"extracted"`` (str | None).
        n: samples per problem (every problem must have exactly n).

    Returns:
        ``{"num_problems", "num_samples", "avg@n", "pass@k": {"1": ..., ..., str(n): ...}, "maj@n"}``
        with metrics as fractions in [0, 1].
    """
    if not samples_by_problem:
        raise ValueError("summarize: no problems")
    for pid, samples in samples_by_problem.items():
        if len(samples) != n:
            raise ValueError(f"summarize: problem {pid!r} has {len(samples)} samples, expected {n}")
    ks = ks_for(n)
    counts = [sum(bool(s["correct"]) for s in samples) for samples in samples_by_problem.values()]
    num = len(counts)
    return {
        "num_problems": num,
        "num_samples": num * n,
        "avg@n": sum(c / n for c in counts) / num,
        "pass@k": {str(k): sum(pass_at_k(n, c, k) for c in counts) / num for k in ks},
        "maj@n": sum(majority_vote([s["extracted"] for s in samples], [s["correct"] for s in samples])
                     for samples in samples_by_problem.values()) / num,
    }
