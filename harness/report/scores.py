"""Per-problem scores from ``samples.jsonl`` records, averaged over seeds and paired: what :mod:`harness.stats` tests.

A problem's score is c_i / n for avg@n, the unbiased per-problem pass@k_i (Chen et al. 2021, eq. 1) for pass@k, or
the expected bootstrap pass 1 - (1 - c_i/n)^k for FRPO's bootstrap_pass@k (arXiv 2601.10201 v2, Table 1; its summary
value is a Monte Carlo estimate of that expectation, checked with :func:`bootstrap_noise_bound`); seeds are averaged
per problem before pairing (the problem, not the sample, is the unit: Miller 2024, arXiv 2411.00640).

    python -c "from harness.report.scores import per_problem_scores as s; \
print(s([{'problem_id': 'a', 'correct': True}, {'problem_id': 'a', 'correct': False}], 'avg', 2))"
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from common.errors import HarnessError
from harness.metrics import expected_bootstrap_pass, pass_at_k

BOOT_PREFIX = "bootstrap_pass@"
BOOT_KEY = "bootstrap_pass@n"   # the summary.json entry (harness.metrics.bootstrap_summary)
BOOT_FIELDS = ("k", "mean", "std", "expected", "n_boot")


def _parse_metric(metric: str, n: int) -> tuple[str, int]:
    """``"avg"``/``"avg@n"`` -> ("avg", n); ``"pass@k"`` / ``"bootstrap_pass@k"`` (k an integer or the letter n)
    -> ("pass" / "bootstrap_pass", k)."""
    if metric in ("avg", "avg@n", f"avg@{n}"):
        return "avg", n
    for kind in ("pass", "bootstrap_pass"):
        if metric.startswith(kind + "@"):
            k_text = metric[len(kind) + 1:]
            k = n if k_text == "n" else int(k_text) if k_text.isdigit() else 0
            if 1 <= k <= n:
                return kind, k
    raise HarnessError(f"metric must be 'avg', 'avg@n', 'pass@k' or 'bootstrap_pass@k' with 1 <= k <= n={n} "
                       f"(got {metric!r})")


def _score(kind: str, n: int, c: int, k: int) -> float:
    return c / n if kind == "avg" else pass_at_k(n, c, k) if kind == "pass" else expected_bootstrap_pass(n, c, k)


def per_problem_scores(samples: Iterable[Mapping], metric: str, n: int) -> dict[str, float]:
    """Per-problem score from ``samples.jsonl`` records.

    Args:
        samples: records with at least "problem_id" and "correct" (bool); exactly n per problem.
        metric: "avg" (c_i / n, averaged to avg@n), "pass@k" (unbiased per-problem pass@k_i, k <= n; "pass@n" ok)
            or "bootstrap_pass@k" (expected bootstrap pass 1 - (1 - c_i/n)^k, k <= n).
        n: samples per problem.

    Returns:
        {problem_id: score in [0, 1]} in first-seen order.
    """
    if not isinstance(n, int) or n < 1:
        raise HarnessError(f"n must be an integer >= 1 (got {n!r})")
    kind, k = _parse_metric(metric, n)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # problem_id -> [samples, correct]
    for i, rec in enumerate(samples):
        try:
            pid, ok = str(rec["problem_id"]), rec["correct"]
        except (KeyError, TypeError):
            raise HarnessError(f"sample {i} lacks 'problem_id' or 'correct' (got {rec!r:.80})") from None
        if not isinstance(ok, bool):
            raise HarnessError(f"sample {i} ('{pid}'): 'correct' must be true/false (got {ok!r})")
        counts[pid][0] += 1
        counts[pid][1] += ok
    if not counts:
        raise HarnessError("no samples (need n samples per problem)")
    out: dict[str, float] = {}
    for pid, (total, c) in counts.items():
        if total != n:
            raise HarnessError(f"problem '{pid}' has {total} samples (expected n={n})")
        out[pid] = _score(kind, n, c, k)
    return out


def bootstrap_noise_bound(expected: Sequence[float], n_boot: int, delta: float = 1e-9) -> float:
    """How far a bootstrap pass@k mean of ``n_boot`` replicates may lie from its expectation, except with
    probability ``2 * delta``.

    The mean is an average of n_boot x P independent Bernoulli(p_j) outcomes (``expected`` = the p_j of the P
    problems). Bernstein's inequality for a sum of independent variables within 1 of their means, with variance
    V = n_boot * sum_j p_j (1 - p_j): P(|S - E S| >= t) <= 2 exp(-t^2 / (2 (V + t / 3))), solved for t at
    ``delta``, divided by n_boot x P. About 6.4 Monte Carlo standard errors when V is large, and a few whole
    outcomes when it is small (rare failures of nearly sure problems); 0 when every p_j is 0 or 1.
    """
    p = np.asarray(expected, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0 or n_boot < 1:
        raise HarnessError(f"bootstrap_noise_bound needs per-problem values and n_boot >= 1 (got {len(p)}, {n_boot})")
    variance, log_term = n_boot * float(np.sum(p * (1 - p))), math.log(1 / delta)
    if variance <= 0:
        return 0.0
    t = log_term / 3 + math.sqrt((log_term / 3) ** 2 + 2 * variance * log_term)
    return t / (n_boot * len(p))


def combine_seeds(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average each problem's score over training seeds before pairing.

    Args:
        per_seed: one {problem_id: score} dict per seed.

    Returns:
        {problem_id: mean score over seeds}, only for problems present in every seed (order of the first dict).
    """
    if not per_seed:
        raise HarnessError("combine_seeds needs at least one seed's scores (got none)")
    common = [pid for pid in per_seed[0] if all(pid in d for d in per_seed[1:])]
    if not common:
        raise HarnessError("the seeds share no problem (nothing to combine)")
    return {pid: float(np.mean([d[pid] for d in per_seed])) for pid in common}


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1) of a benchmark-level metric across seeds; std None for 1 seed."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise HarnessError(f"mean_std needs a non-empty list of numbers (got {list(values)!r})")
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None)


def paired_arrays(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Align two {problem_id: score} dicts on the same problems (order of ``a``); their problem sets must be equal."""
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise HarnessError(f"problem sets differ ({len(only)} ids not in both, e.g. '{only[0]}')")
    ids = list(a)
    return np.array([a[i] for i in ids]), np.array([b[i] for i in ids])  # [N], [N]


def bootstrap_entry(summary: Mapping, n: int, metric: str, where: object) -> dict:
    """The ``bootstrap_pass@n`` entry of a summary (of the evaluation in ``where``) for the spec
    ``bootstrap_pass@n`` or ``bootstrap_pass@K``; only K = n is stored, and an old summary lacks the entry."""
    entry = summary.get(BOOT_KEY)
    if entry is None:
        raise HarnessError(f"{where}/summary.json: no '{BOOT_KEY}' (written before the harness computed it); "
                           f"add it with `python scripts/regrade.py {Path(str(where)).parent}`")
    if not isinstance(entry, Mapping) or not all(isinstance(entry.get(f), (int, float))
                                                 and not isinstance(entry.get(f), bool) for f in BOOT_FIELDS):
        raise HarnessError(f"{where}/summary.json: '{BOOT_KEY}' must hold the numbers {', '.join(BOOT_FIELDS)} "
                           f"(got {entry!r:.100})")
    k = n if metric == BOOT_PREFIX + "n" else int(metric[len(BOOT_PREFIX):])
    if k != entry["k"]:
        raise HarnessError(f"{where}/summary.json: no {BOOT_PREFIX}{k} (it stores {BOOT_PREFIX}{entry['k']}: "
                           "k = n only)")
    return dict(entry)


def bootstrap_tolerance(entry: Mapping, scores: Mapping[str, float], where: object) -> float:
    """How far the entry's ``mean`` may lie from the per-problem expectations' mean, after checking that its exact
    ``expected`` equals that mean (to 1e-6: a stale summary is caught): 1e-6 plus :func:`bootstrap_noise_bound`."""
    recomputed = sum(scores.values()) / len(scores)
    if abs(recomputed - entry["expected"]) > 1e-6:
        raise HarnessError(f"{where}: summary {BOOT_KEY} expected={entry['expected']:.6f} but samples.jsonl gives "
                           f"{recomputed:.6f}")
    return 1e-6 + bootstrap_noise_bound(list(scores.values()), int(entry["n_boot"]))
