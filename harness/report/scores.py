"""Per-problem scores from ``samples.jsonl`` records, averaged over seeds and paired: what :mod:`harness.stats` tests.

A problem's score is c_i / n for avg@n, or the unbiased per-problem pass@k_i (Chen et al. 2021, eq. 1) for pass@k;
seeds are averaged per problem before pairing (the problem, not the sample, is the unit: Miller 2024, arXiv 2411.00640).

    python -c "from harness.report.scores import per_problem_scores as s; \
print(s([{'problem_id': 'a', 'correct': True}, {'problem_id': 'a', 'correct': False}], 'avg', 2))"
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

from common.errors import HarnessError
from harness.metrics import pass_at_k


def _parse_metric(metric: str, n: int) -> int | None:
    """``"avg"``/``"avg@n"`` -> None; ``"pass@k"`` (k an integer, or the letter n) -> k."""
    if metric in ("avg", "avg@n", f"avg@{n}"):
        return None
    if metric.startswith("pass@"):
        k_text = metric[len("pass@"):]
        k = n if k_text == "n" else int(k_text) if k_text.isdigit() else 0
        if 1 <= k <= n:
            return k
    raise HarnessError(f"metric must be 'avg', 'avg@n' or 'pass@k' with 1 <= k <= n={n} (got {metric!r})")


def per_problem_scores(samples: Iterable[Mapping], metric: str, n: int) -> dict[str, float]:
    """Per-problem score from ``samples.jsonl`` records.

    Args:
        samples: records with at least "problem_id" and "correct" (bool); exactly n per problem.
        metric: "avg" (c_i / n, averaged to avg@n) or "pass@k" (unbiased per-problem pass@k_i, k <= n; "pass@n" ok).
        n: samples per problem.

    Returns:
        {problem_id: score in [0, 1]} in first-seen order.
    """
    if not isinstance(n, int) or n < 1:
        raise HarnessError(f"n must be an integer >= 1 (got {n!r})")
    k = _parse_metric(metric, n)
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
        out[pid] = c / n if k is None else pass_at_k(n, c, k)
    return out


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
