"""Per-benchmark metrics from n samples per problem: unbiased pass@k, avg@n, maj@n and FRPO's bootstrap pass@k.

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
* bootstrap pass@k (FRPO, arXiv 2601.10201 v2, §6 / App. G.2: "we perform a bootstrap by sampling with
  replacement 1,000 times and report the mean"; the procedure as reconstructed in the FRPO notes §4.7 / T9):
  per replicate, each problem draws k of its n samples with replacement and passes if any drawn sample is
  correct; the replicate's value is the mean over problems; reported: mean and std over 1,000 replicates. Its
  expectation, mean_i 1 - (1 - c_i/n)^k, is lower than the unbiased pass@k (12.95% vs 16.67% for AIME24
  counts {4,3,1,1,1} + 25 zeros, n = k = 16). See ``docs/metrics.md``.

Test vectors, from the reference code: ``tests/test_metrics.py``; the FRPO notes' T9 numbers:
``tests/report/test_bootstrap_pass.py``.

    python -c "from harness.metrics import pass_at_k; print(pass_at_k(16, 3, 4))"   # 0.607142857...
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping, Sequence

import numpy as np

BOOT_N, BOOT_SEED = 1000, 0          # the summaries' bootstrap: FRPO's 1,000 replicates, a fixed seed
_BOOT_CHUNK = 1 << 22                # drawn indices per chunk of replicates (bounds memory; the result is the same)


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


def expected_bootstrap_pass(n: int, c: int, k: int) -> float:
    """Expected bootstrap pass@k of one problem with ``c`` of ``n`` samples correct: ``1 - (1 - c/n)^k``.

    The chance that k draws with replacement from the n samples hit a correct one (FRPO notes §4.7 and T9:
    c = 1 of 16 at k = 16 gives 0.643926). Its mean over problems is the expectation of
    :func:`bootstrap_pass_at_k`, and it is the per-problem score the significance tests use for that metric.
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected_bootstrap_pass: {name} must be an integer (got {value!r})")
    if n < 1 or not 0 <= c <= n or k < 1:
        raise ValueError(f"expected_bootstrap_pass needs n >= 1, 0 <= c <= n, k >= 1 (got n={n}, c={c}, k={k})")
    return 1.0 - (1.0 - c / n) ** k


def _correct_matrix(correct) -> np.ndarray:
    """``correct`` as a [problems, n] bool array; a ragged, empty or non-boolean input is a ValueError."""
    rows = [np.asarray(r) for r in correct] if not isinstance(correct, np.ndarray) else list(correct)
    if not rows or len({r.shape for r in rows}) != 1 or rows[0].ndim != 1 or rows[0].size == 0:
        shapes = sorted({str(r.shape) for r in rows})
        raise ValueError(f"bootstrap_pass_at_k: correct must be problems x n (n >= 1, the same for every "
                         f"problem) samples (got {len(rows)} problems with shapes {', '.join(shapes) or 'none'})")
    mat = np.stack(rows)
    if mat.dtype != np.bool_:
        raise ValueError(f"bootstrap_pass_at_k: correct must hold booleans (got dtype {mat.dtype})")
    return mat


def bootstrap_pass_at_k(correct, k: int, n_boot: int = BOOT_N, seed: int = BOOT_SEED) -> tuple[float, float]:
    """FRPO's bootstrap pass@k (arXiv 2601.10201 v2, Table 1; FRPO notes §4.7): mean and std over replicates.

    Per replicate, every problem draws k of its n samples with replacement (``numpy.random.default_rng(seed)``)
    and passes if any drawn sample is correct; the replicate's value is the mean over problems. Each problem's
    samples are relabelled correct-first before the draws (a draw is uniform over the n samples, so no
    probability changes): the result depends only on the per-problem counts, in problem order.

    Args:
        correct: per-problem sequences of per-sample booleans, or a [problems, n] bool array (the same n for all).
        k: samples drawn per problem and replicate (>= 1; the paper uses k = n = 16).
        n_boot: replicates (>= 1; the paper uses 1,000).
        seed: seed of the generator.

    Returns:
        (mean, std) of the n_boot replicate values, fractions in [0, 1]; std is the population std (ddof = 0)
        over the replicates, which estimates the sampling std of one replicate, like the paper's parenthesis.
    """
    for name, value, low in (("k", k, 1), ("n_boot", n_boot, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"bootstrap_pass_at_k: {name} must be an integer >= {low} (got {value!r})")
    mat = _correct_matrix(correct)                                     # [P, n]
    counts = mat.sum(axis=1)                                           # [P]
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)                                          # [n_boot]
    step = max(1, _BOOT_CHUNK // (mat.shape[0] * k))
    for start in range(0, n_boot, step):                               # the draws do not depend on the chunking
        draws = rng.integers(0, mat.shape[1], size=(min(step, n_boot - start), mat.shape[0], k), dtype=np.int32)
        values[start:start + len(draws)] = (draws.min(axis=2) < counts).mean(axis=1)   # [b, P, k] -> [b]
    return float(values.mean()), float(values.std())


def bootstrap_summary(correct, k: int, n_boot: int = BOOT_N, seed: int = BOOT_SEED) -> dict:
    """The ``summary.json`` entry ``bootstrap_pass@n``: ``{"k", "mean", "std", "expected", "n_boot", "seed"}``.

    ``expected`` is the exact expectation mean_j(1 - (1 - c_j/n)^k) (:func:`expected_bootstrap_pass`), which the
    table checks against ``samples.jsonl``; ``mean`` and ``std`` are :func:`bootstrap_pass_at_k`'s.
    """
    mat = _correct_matrix(correct)
    n = mat.shape[1]
    mean, std = bootstrap_pass_at_k(mat, k, n_boot, seed)
    expected = sum(expected_bootstrap_pass(n, int(c), k) for c in mat.sum(axis=1)) / len(mat)
    return {"k": k, "mean": mean, "std": std, "expected": expected, "n_boot": n_boot, "seed": seed}


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
        ``{"num_problems", "num_samples", "avg@n", "pass@k": {"1": ..., ..., str(n): ...}, "maj@n",
        "bootstrap_pass@n": {...}}`` with metrics as fractions in [0, 1]; ``bootstrap_pass@n`` is
        :func:`bootstrap_summary` at k = n over the problems in sorted-id order (so a regrade of the same
        verdicts, in any file order, reproduces it).
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
        "bootstrap_pass@n": bootstrap_summary([[bool(s["correct"]) for s in samples_by_problem[pid]]
                                               for pid in sorted(samples_by_problem, key=str)], n),
    }
