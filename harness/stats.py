"""Paired significance tests for comparing two models on the same problems.

Pure functions over per-problem score arrays (problems are the unit of resampling: each problem is treated as a draw
from a super-population of problems, Miller 2024 "Adding Error Bars to Evals", arXiv 2411.00640). The formulas are
the standard paired tests that Miller 2024 and "Resolution Diagnostics for Paired LLM Evaluation" (arXiv
2605.30315) recommend:

- :func:`paired_bootstrap`: percentile CI of the mean (or median) per-problem difference, ``scipy.stats.bootstrap``
  with ``paired=True``; two-sided p-value from the same bootstrap distribution.
- :func:`permutation_test`: paired sign-flip test of |mean difference|, ``scipy.stats.permutation_test``
  with ``permutation_type="samples"``; exact enumeration of all 2^N sign vectors when 2^N <= n_resamples.
- :func:`mcnemar`: exact McNemar test on 0/1 outcomes, ``scipy.stats.binomtest``.
- :func:`holm`: Holm-Bonferroni step-down adjustment across the comparisons of one table.
- The paired arrays come from :mod:`harness.report.scores` (``per_problem_scores``, ``combine_seeds``,
  ``mean_std``): turn ``samples.jsonl`` records into them; several training seeds are averaged per problem before
  pairing (Hochlehnert et al. 2025).

How signs and ties are decided exactly, and which noise the tests cover: ``docs/stats.md``.

Example::

    python -c "from harness.stats import paired_bootstrap as b; print(b([1, 1, 0, 1, 1], [0, 1, 0, 0, 1]))"
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
from scipy import stats as sps

from common.errors import HarnessError


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap of ``statistic(a - b)``: point estimate, CI bounds, two-sided p-value, number of problems."""

    difference: float
    low: float
    high: float
    pvalue: float
    n: int


@dataclass(frozen=True)
class PermutationResult:
    """Paired sign-flip test: observed mean difference, p-value, whether all 2^N sign vectors were enumerated."""

    difference: float
    pvalue: float
    exact: bool


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test: ``b`` = #(A right, B wrong), ``c`` = #(A wrong, B right), two-sided p-value."""

    b: int
    c: int
    pvalue: float



def _paired(a: Sequence[float], b: Sequence[float], min_n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Validate two per-problem score arrays and return them as float64 arrays of shape [N]."""
    try:
        x = np.asarray(a, dtype=np.float64)
        y = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise HarnessError(f"paired scores must be numbers ({e})") from None
    if x.ndim != 1 or y.ndim != 1:
        raise HarnessError(f"paired scores must be 1-D arrays (got shapes {x.shape} and {y.shape})")
    if len(x) != len(y):
        raise HarnessError(f"paired scores must have equal lengths (got {len(x)} and {len(y)})")
    if len(x) < min_n:
        raise HarnessError(f"paired scores have {len(x)} problems (need at least {min_n})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise HarnessError("paired scores must be finite (got NaN or inf)")
    return x, y


def _check_resamples(n_resamples: int) -> None:
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise HarnessError(f"n_resamples must be an integer >= 1 (got {n_resamples!r})")


# --------------------------------------------------------------------------------------------------------------------
# exact signs: integer numerators on the scores' own lattice, else a float tolerance

_MAX_DENOMINATOR = 10**6  # largest denominator tried per value (c/n, seed means, pass@k_i with C(n, k) <= 1e6)
_EXACT_INT = 2**53  # |sums of numerators| stay below this, so they are exact in int64 and in float64
_STATISTICS = {"mean": np.mean, "median": np.median}


def _lattice(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Integer numerators and common denominator of two score arrays, if the scores lie on a lattice.

    Each distinct value v is matched to ``Fraction(v).limit_denominator(10**6)`` = p/q and accepted only if
    ``|v - p/q| <= 8 ulp(M)``, M = max |score| (c/n is the correctly rounded p/q; unbiased pass@k_i, ``1 - prod``,
    is a few ulps of 1 off it; scores of a tiny scale are not mistaken for 0).
    ``D = lcm(q)``; the lattice is refused unless ``2 N max|p D / q| < 2**53``, so that every sum of N differences
    of numerators is an exact integer (also as a float64).

    Returns:
        ``(kx [N] int64, ky [N] int64, D)`` with ``x ~= kx / D`` and ``y ~= ky / D``, or None (no such lattice).
    """
    values, inverse = np.unique(np.concatenate([x, y]), return_inverse=True)  # [U], [2N]
    tol = 8 * math.ulp(float(np.abs(values).max()))
    fracs = []
    for v in values.tolist():
        f = Fraction(v).limit_denominator(_MAX_DENOMINATOR)
        if abs(float(f) - v) > tol:
            return None
        fracs.append(f)
    denominator = math.lcm(*(f.denominator for f in fracs))
    numerators = [f.numerator * (denominator // f.denominator) for f in fracs]  # exact Python ints
    if 2 * len(x) * max(abs(k) for k in numerators) >= _EXACT_INT:
        return None
    k = np.array(numerators, dtype=np.int64)[inverse]  # [2N]
    return k[: len(x)], k[len(x):], denominator


def _float_tolerance(x: np.ndarray, y: np.ndarray) -> float:
    """Bound on the float rounding error of a mean (or median) of N differences ``x_i - y_i``, any order and signs.

    Each ``fl(x_i - y_i)`` is off by at most ``u |x_i - y_i| <= 2uM`` (u = eps/2, M = max |score|) and summing N of
    them adds at most ``(N - 1) u sum|d|``, so the computed mean is within ``(N + 1) eps M`` of the exact one; a
    resampled statistic within ``(N + 2) eps M`` of 0 is a tie (its exact sign cannot be told from the floats).
    """
    return (len(x) + 2) * float(np.finfo(np.float64).eps) * float(max(np.abs(x).max(), np.abs(y).max()))


def _exact_or_float(x: np.ndarray, y: np.ndarray, statistic: str):
    """Data to resample, ``statistic(d)`` on it (vectorised, ``[..., N] -> [...]``) and the tie tolerance.

    On a lattice: ``(kx, ky)`` int64 numerators, ``sum(kx - ky) / (N D)`` or ``median(kx - ky) / D`` (the sum is an
    exact integer, so its sign is exact and one rounding gives the nearest float), tolerance 0. Otherwise the float
    scores, ``mean``/``median`` of ``x - y`` and :func:`_float_tolerance`.
    """
    lattice = _lattice(x, y)
    if lattice is None:
        fn = _STATISTICS[statistic]
        return (x, y), (lambda xs, ys, axis=-1: fn(xs - ys, axis=axis)), _float_tolerance(x, y)
    kx, ky, denominator = lattice
    if statistic == "mean":
        scale = len(x) * denominator
        return (kx, ky), (lambda xs, ys, axis=-1: np.sum(xs - ys, axis=axis) / scale), 0.0
    return (kx, ky), (lambda xs, ys, axis=-1: np.median(xs - ys, axis=axis) / denominator), 0.0


def _point(value: float, tol: float) -> float:
    """The point estimate as a float: 0.0 (never -0.0) when it is a tie within ``tol``."""
    return 0.0 if abs(value) <= tol else float(value)



def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, statistic: str = "mean", n_resamples: int = 10_000,
                     confidence: float = 0.95, seed: int = 0) -> BootstrapResult:
    """Paired bootstrap over problems of ``statistic(a - b)`` (the percentile bootstrap).

    Both arrays are resampled on the same problem indices (``scipy.stats.bootstrap(paired=True)``). The CI is the
    **percentile** interval ``[q_{(1-confidence)/2}, q_{(1+confidence)/2}]`` of the bootstrap distribution
    ``Delta_1..Delta_B`` (percentile rather than BCa: BCa is undefined for degenerate data such as two identical
    runs, and the percentile interval matches the p-value below). Two-sided p-value::

        p = min(1, 2 * min(#{Delta_b <= 0}, #{Delta_b >= 0}) / B)

    i.e. roughly the smallest alpha at which the (1 - alpha) percentile CI excludes 0. It can be 0 (meaning p < 1/B).
    Signs are exact: on the scores' lattice (integer numerators over a common denominator) a resampled difference
    that is 0 in exact arithmetic is exactly 0 and counts in both tails; off a lattice, |Delta_b| within the float
    rounding bound counts as 0 (``docs/stats.md``). So ``paired_bootstrap([1/3, 2/3], [0, 1])`` has difference 0.0
    and p = 1.

    Args:
        a: per-problem scores of model A, shape [N] (e.g. c_i/n, or per-problem pass@k_i).
        b: per-problem scores of model B on the same problems in the same order, shape [N].
        statistic: "mean" (default) or "median" of the per-problem differences.
        n_resamples: bootstrap resamples B.
        confidence: CI level in (0, 1).
        seed: seed of the ``numpy.random.Generator`` (same seed -> same result).

    Returns:
        BootstrapResult(difference=statistic(a - b), low, high, pvalue, n=N).
    """
    x, y = _paired(a, b, min_n=2)  # scipy's bootstrap needs two observations
    _check_resamples(n_resamples)
    if statistic not in _STATISTICS:
        raise HarnessError(f"statistic must be one of {sorted(_STATISTICS)} (got {statistic!r})")
    if not 0.0 < confidence < 1.0:
        raise HarnessError(f"confidence must be in (0, 1) (got {confidence})")
    data, stat, tol = _exact_or_float(x, y, statistic)

    res = sps.bootstrap(
        data, stat, paired=True, vectorized=True, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )
    dist = res.bootstrap_distribution  # [B]
    tail = min(int(np.count_nonzero(dist <= tol)), int(np.count_nonzero(dist >= -tol)))
    pvalue = min(1.0, 2.0 * tail / n_resamples)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return BootstrapResult(_point(stat(*data), tol), low, high, pvalue, len(x))


def permutation_test(
    a: Sequence[float], b: Sequence[float], *, n_resamples: int = 10_000, seed: int = 0
) -> PermutationResult:
    """Paired sign-flip permutation test of H0: A and B are exchangeable within each problem.

    Statistic ``T = |mean(a - b)|``; scipy swaps a_i and b_i within each pair (= flips the sign of d_i) and returns
    the null distribution of T over all 2^N sign vectors when ``2^N <= n_resamples``, else over B random ones;
    ``p = #{T_perm >= T_obs} / 2^N`` or ``p = (1 + #{T_b >= T_obs}) / (1 + B)``. ``T_perm >= T_obs`` is decided
    exactly on the scores' lattice (integer |sum| of numerators) and with twice the float rounding bound otherwise
    (module docstring), instead of scipy's relative 100 eps.

    Args:
        a: per-problem scores of model A, shape [N].
        b: per-problem scores of model B, shape [N].
        n_resamples: random sign vectors B when 2^N > B.
        seed: seed of the ``numpy.random.Generator``.

    Returns:
        PermutationResult(difference=mean(a - b), pvalue, exact).
    """
    x, y = _paired(a, b, min_n=2)  # scipy's permutation_test needs two observations
    _check_resamples(n_resamples)
    data, mean_diff, tol = _exact_or_float(x, y, "mean")

    def stat(xs: np.ndarray, ys: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.abs(mean_diff(xs, ys, axis=axis))  # [...] from [..., N]

    res = sps.permutation_test(
        data, stat, permutation_type="samples", vectorized=True, n_resamples=n_resamples,
        alternative="greater", rng=np.random.default_rng(seed),
    )
    exact = len(x) < 64 and 2 ** len(x) <= n_resamples  # scipy's own rule (n_resamples >= 2!^N)
    null = res.null_distribution  # [2^N] or [B]
    hits = int(np.count_nonzero(null >= stat(*data) - 2 * tol))
    pvalue = hits / len(null) if exact else (1 + hits) / (1 + len(null))
    return PermutationResult(_point(mean_diff(*data), tol), float(pvalue), exact)


def _binary(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    bad = ~np.isin(arr, (0.0, 1.0))
    if bad.any():
        raise HarnessError(f"mcnemar needs 0/1 outcomes; {name}[{int(np.argmax(bad))}] = {arr[bad][0]:g}")
    return arr.astype(bool)


def mcnemar(a: Sequence[float], b: Sequence[float]) -> McNemarResult:
    """Exact McNemar test on paired 0/1 outcomes (a conditional binomial test on the discordant pairs).

    ``b = #{A correct, B wrong}``, ``c = #{A wrong, B correct}``; concordant pairs are ignored and
    ``p = min(1, 2 * BinomCDF(min(b, c); b + c, 1/2))`` (``scipy.stats.binomtest``, two-sided); p = 1 when b + c = 0.

    Args:
        a: 0/1 (or bool) outcome per problem for model A, shape [N].
        b: 0/1 outcome per problem for model B, shape [N].

    Returns:
        McNemarResult(b, c, pvalue).
    """
    _paired(a, b)
    x, y = _binary(a, "a"), _binary(b, "b")
    n_b, n_c = int(np.sum(x & ~y)), int(np.sum(~x & y))
    if n_b + n_c == 0:
        return McNemarResult(0, 0, 1.0)
    return McNemarResult(n_b, n_c, float(sps.binomtest(min(n_b, n_c), n_b + n_c, 0.5).pvalue))


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """Holm-Bonferroni step-down adjustment.

    With p sorted ascending, p_(1) <= ... <= p_(m): ``adj_(j) = max_{i <= j} min(1, (m - i + 1) * p_(i))``
    (monotone), and hypothesis j is rejected iff ``adj_(j) <= alpha`` (equivalent to rejecting while
    ``p_(j) <= alpha / (m - j + 1)``). Controls the family-wise error rate under any dependence.

    Args:
        pvalues: m raw p-values in [0, 1] (any order; an empty list gives two empty lists).
        alpha: family-wise error rate.

    Returns:
        (adjusted p-values, reject flags), both in the input order.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or not ((p >= 0) & (p <= 1)).all():
        raise HarnessError(f"p-values must be a list of numbers in [0, 1] (got {list(pvalues)!r})")
    if not 0.0 < alpha < 1.0:
        raise HarnessError(f"alpha must be in (0, 1) (got {alpha})")
    m = len(p)
    order = np.argsort(p, kind="stable")  # [m]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])  # [m]
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted], [bool(v <= alpha) for v in adjusted]
