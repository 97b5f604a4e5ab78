"""Tests of harness/stats.py against hand computations (exact binomials, exhaustive sign enumeration, Holm by hand).

    .venv/bin/python -m pytest tests/test_stats.py -q
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as sps

from common.errors import HarnessError
from harness.metrics import pass_at_k
from harness.report.scores import combine_seeds, mean_std, paired_arrays, per_problem_scores
from harness.stats import holm, mcnemar, paired_bootstrap, permutation_test

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs

# ---------------------------------------------------------------------------------------------------------- McNemar


def _exact_mcnemar(b: int, c: int) -> float:
    """p = min(1, 2 * P[Bin(b + c, 1/2) <= min(b, c)]) with math.comb (METRICS.md 3(c))."""
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


@pytest.mark.parametrize("b,c,concordant", [(7, 2, 5), (2, 7, 0), (10, 0, 3), (5, 5, 4), (1, 0, 0), (13, 6, 20)])
def test_mcnemar_equals_exact_binomial(b, c, concordant):
    x = [1] * b + [0] * c + [1, 0] * concordant
    y = [0] * b + [1] * c + [1, 0] * concordant
    res = mcnemar(x, y)
    assert (res.b, res.c) == (b, c)
    assert res.pvalue == pytest.approx(_exact_mcnemar(b, c), abs=1e-12)


def test_mcnemar_values_by_hand():
    # b=7, c=2: 2 * (C(9,0)+C(9,1)+C(9,2)) / 2^9 = 2 * 46 / 512
    assert mcnemar([1] * 7 + [0] * 2, [0] * 7 + [1] * 2).pvalue == pytest.approx(92 / 512, abs=1e-15)
    assert mcnemar([1, 0, 1], [1, 0, 1]) == mcnemar([0, 0], [0, 0])  # no discordant pair: p = 1
    assert mcnemar([True, False], [False, False]).b == 1  # bools are 0/1


@pytest.mark.parametrize("a,b", [([1, 0.5], [0, 1]), ([1, 2], [0, 1]), ([1, 0], [0, -1])])
def test_mcnemar_rejects_non_binary(a, b):
    with pytest.raises(HarnessError, match="0/1"):
        mcnemar(a, b)


# ------------------------------------------------------------------------------------------------ permutation test


def _exhaustive_sign_flip(a, b) -> float:
    d = np.asarray(a, float) - np.asarray(b, float)
    t_obs = abs(d.mean())
    hits = sum(abs(np.mean(np.array(s) * d)) >= t_obs - 1e-12 for s in itertools.product((-1, 1), repeat=len(d)))
    return hits / 2 ** len(d)


@pytest.mark.parametrize("n,seed", [(8, 0), (9, 1), (10, 2), (10, 3)])
def test_permutation_matches_exhaustive_enumeration(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 5, n) / 4  # c_i / n scores, with ties
    b = np.clip(a - rng.integers(-1, 3, n) / 4, 0, 1)
    res = permutation_test(a, b)
    assert res.exact
    assert res.pvalue == pytest.approx(_exhaustive_sign_flip(a, b), abs=1e-12)
    assert res.difference == pytest.approx(np.mean(a - b), abs=1e-15)


def test_permutation_continuous_and_extremes():
    a = np.array([0.9, 0.8, 0.75, 0.6, 0.95, 0.7, 0.85, 0.65])
    assert permutation_test(a, a - 0.1).pvalue == pytest.approx(2 / 256, abs=1e-12)  # only the all-same signs
    assert permutation_test(a, a).pvalue == 1.0
    rng = np.random.default_rng(7)
    x, y = rng.random(8), rng.random(8)
    assert permutation_test(x, y).pvalue == pytest.approx(_exhaustive_sign_flip(x, y), abs=1e-12)


def test_permutation_monte_carlo_when_too_many_sign_vectors():
    rng = np.random.default_rng(5)
    a, b = rng.random(15), rng.random(15)
    res = permutation_test(a, b, n_resamples=9999, seed=3)
    assert not res.exact  # 2^15 > 9999
    exact = _exhaustive_sign_flip(a, b)
    assert abs(res.pvalue - exact) < 4 * math.sqrt(exact * (1 - exact) / 9999) + 1e-4
    assert res == permutation_test(a, b, n_resamples=9999, seed=3)  # seeded
    assert permutation_test(a[:13], b[:13], n_resamples=2**13).exact


# ------------------------------------------------------------------------------------------------ paired bootstrap


def test_bootstrap_pvalue_and_ci_follow_the_documented_formula():
    rng = np.random.default_rng(0)
    a = rng.random(30)
    b = a - 0.03 + 0.1 * rng.standard_normal(30)
    res = paired_bootstrap(a, b, n_resamples=3000, seed=11)
    ref = sps.bootstrap((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), paired=True, n_resamples=3000,
                        method="percentile", rng=np.random.default_rng(11))
    dist = ref.bootstrap_distribution
    p = min(1.0, 2 * min(np.sum(dist <= 0), np.sum(dist >= 0)) / 3000)
    assert res.pvalue == pytest.approx(p, abs=1e-15)
    assert (res.low, res.high) == pytest.approx((np.percentile(dist, 2.5), np.percentile(dist, 97.5)), abs=1e-12)
    assert res.difference == pytest.approx(np.mean(a - b), abs=1e-15) and res.n == 30


def test_bootstrap_se_matches_s_over_sqrt_n():
    rng = np.random.default_rng(1)
    d = rng.standard_normal(400)
    res = paired_bootstrap(d, np.zeros(400), n_resamples=4000)
    se = np.std(d, ddof=1) / math.sqrt(400)
    assert (res.high - res.low) / (2 * 1.959964) == pytest.approx(se, rel=0.08)


def test_bootstrap_extremes_and_seed():
    same = paired_bootstrap([0.5, 0.25, 1.0], [0.5, 0.25, 1.0])
    assert (same.difference, same.low, same.high, same.pvalue) == (0.0, 0.0, 0.0, 1.0)
    better = paired_bootstrap([1.0] * 10, [0.0] * 5 + [0.5] * 5, n_resamples=500)
    assert better.pvalue == 0.0 and better.low > 0
    a, b = np.linspace(0, 1, 20), np.linspace(0, 1, 20) ** 2
    assert paired_bootstrap(a, b, seed=4) == paired_bootstrap(a, b, seed=4) != paired_bootstrap(a, b, seed=5)
    assert paired_bootstrap(a, b, statistic="median").difference == pytest.approx(np.median(a - b))


def test_bootstrap_coverage_near_nominal():
    rng = np.random.default_rng(2024)
    delta, covered = 0.05, 0
    for i in range(200):
        b = rng.random(60)
        a = b + delta + 0.2 * rng.standard_normal(60)  # true mean difference: delta
        res = paired_bootstrap(a, b, n_resamples=2000, seed=i)
        covered += res.low <= delta <= res.high
    assert 0.90 <= covered / 200 <= 0.99


# ------------------------------------------------------------------- exact signs: against the exact distributions
# Scores are built as exact fractions on several lattices; the references below work on their integer numerators.


def _lattice_case(kind: str, n: int, seed: int):
    """Two models' per-problem scores on n problems, B close to A (many tied resamples).

    Returns (a, b, x, y): a, b as exact fractions; x, y as the harness computes them (correctly rounded c/n and seed
    means, unbiased pass@k_i via pass_at_k's product, which may be a few ulps off the fraction).
    """
    rng = np.random.default_rng(seed)
    if kind == "pass@2 of n=4":  # 1 - C(4 - c, 2) / C(4, 2) in {0, 1/2, 5/6, 1}
        ca, cb = rng.integers(0, 5, n), rng.integers(0, 5, n)
        a, b = ([1 - Fraction(math.comb(4 - int(c), 2), 6) for c in cs] for cs in (ca, cb))
        return a, b, [pass_at_k(4, int(c), 2) for c in ca], [pass_at_k(4, int(c), 2) for c in cb]
    per, seeds = {"binary": (1, 1), "avg@3": (3, 1), "avg@6": (6, 1), "avg@8 x 3 seeds": (8, 3)}[kind]
    m = per * seeds  # samples per problem over all seeds
    ca = rng.integers(0, m + 1, n)
    cb = np.clip(ca + rng.integers(-(m // 3) - 1, m // 3 + 2, n), 0, m)
    a, b = ([Fraction(int(c), m) for c in cs] for cs in (ca, cb))
    x, y = ([float(np.mean([float(Fraction(int(c) // seeds + (s < int(c) % seeds), per)) for s in range(seeds)]))
             for c in cs] for cs in (ca, cb))  # the mean over seeds of c_s / per, as combine_seeds computes it
    assert [Fraction(v).limit_denominator(1000) for v in x] == a
    return a, b, x, y


def _numerators(a: list[Fraction], b: list[Fraction]) -> np.ndarray:
    """Integer numerators of d_i = a_i - b_i over their common denominator, shape [N]."""
    d = [x - y for x, y in zip(a, b)]
    den = math.lcm(*(v.denominator for v in d))
    return np.array([int(v * den) for v in d], dtype=np.int64)


def _exact_bootstrap_tails(k: np.ndarray, statistic: str = "mean") -> tuple[float, float]:
    """(P[Delta <= 0], P[Delta >= 0]) over all N^N resamples, in integer arithmetic (median as twice the median)."""
    n = len(k)
    idx = np.indices((n,) * n).reshape(n, -1).T  # [N^N, N]: every resample of the problems
    resampled = np.sort(k[idx], axis=1)  # [N^N, N]
    values = resampled.sum(axis=1) if statistic == "mean" else resampled[:, n // 2] + resampled[:, (n - 1) // 2]
    return float(np.mean(values <= 0)), float(np.mean(values >= 0))


def _exact_sign_flip(k: np.ndarray) -> float:
    """#{|sum sigma k| >= |sum k|} / 2^N over all sign vectors, in integer arithmetic."""
    signs = np.array(list(itertools.product((-1, 1), repeat=len(k))), dtype=np.int64)  # [2^N, N]
    return float(np.mean(np.abs(signs @ k) >= abs(int(k.sum()))))


LATTICES = ["avg@3", "avg@6", "avg@8 x 3 seeds", "binary", "pass@2 of n=4"]


def test_bootstrap_minimal_tie_is_exact():
    res = paired_bootstrap([1 / 3, 2 / 3], [0.0, 1.0])
    assert res.difference == 0.0 and math.copysign(1.0, res.difference) == 1.0  # exactly +0.0
    assert res.pvalue == 1.0  # exact bootstrap: P[D <= 0] = P[D >= 0] = 3/4
    assert permutation_test([1 / 3, 2 / 3], [0.0, 1.0]) == permutation_test([1, 2], [0, 3])  # p = 1, difference 0
    seeds = combine_seeds([{"p1": 1 / 3, "p2": 0.0}, {"p1": 2 / 3, "p2": 1 / 3}, {"p1": 0.0, "p2": 2 / 3}])
    res = paired_bootstrap(list(seeds.values()), [1 / 3, 1 / 3])  # both means 1/3 (means over seeds)
    assert res.difference == 0.0 and res.pvalue == 1.0


@pytest.mark.parametrize("kind", LATTICES)
@pytest.mark.parametrize("n,seed", [(5, 0), (6, 1), (6, 2)])
def test_bootstrap_pvalue_matches_exact_enumeration(kind, n, seed):
    a, b, x, y = _lattice_case(kind, n, seed)
    lo, hi = _exact_bootstrap_tails(_numerators(a, b))
    exact_p = min(1.0, 2 * min(lo, hi))
    B = 10_000
    res = paired_bootstrap(x, y, n_resamples=B, seed=seed)
    q = min(lo, hi)
    assert abs(res.pvalue - exact_p) <= 4 * 2 * math.sqrt(q * (1 - q) / B) + 2 / B, (res.pvalue, exact_p)
    assert res.difference == float(sum(a) / n - sum(b) / n)  # the exact mean difference, correctly rounded


@pytest.mark.parametrize("kind", ["avg@3", "avg@8 x 3 seeds"])
def test_bootstrap_median_matches_exact_enumeration(kind):
    a, b, x, y = _lattice_case(kind, 6, 3)
    lo, hi = _exact_bootstrap_tails(_numerators(a, b), "median")
    exact_p, q, B = min(1.0, 2 * min(lo, hi)), min(lo, hi), 10_000
    res = paired_bootstrap(x, y, statistic="median", n_resamples=B)
    assert abs(res.pvalue - exact_p) <= 4 * 2 * math.sqrt(q * (1 - q) / B) + 2 / B, (res.pvalue, exact_p)


@pytest.mark.parametrize("scale", [1 / math.sqrt(2), 1e-20 * math.pi])
@pytest.mark.parametrize("kind", LATTICES)
def test_bootstrap_off_lattice_ties_are_still_ties(kind, scale):
    """Scores times an irrational: no lattice, so the float tolerance must find the same ties on the same resamples."""
    x, y = (np.array(v) for v in _lattice_case(kind, 30, 4)[2:])
    on, off = paired_bootstrap(x, y, seed=9), paired_bootstrap(x * scale, y * scale, seed=9)
    assert off.pvalue == on.pvalue
    assert (off.low, off.high) == pytest.approx((on.low * scale, on.high * scale), abs=1e-12 * scale)
    assert permutation_test(x * scale, y * scale, seed=9).pvalue == permutation_test(x, y, seed=9).pvalue


def test_continuous_scores_of_any_scale_are_not_rounded_to_a_lattice():
    rng = np.random.default_rng(8)
    x, y = rng.random(12), rng.random(12)
    for scale in (1.0, 1e-20, 1e12):
        res = paired_bootstrap(x * scale, y * scale, seed=2)
        assert res.pvalue == paired_bootstrap(x, y, seed=2).pvalue and res.difference != 0
        assert res.difference == pytest.approx(np.mean(x - y) * scale, rel=1e-12)


@pytest.mark.parametrize("kind", LATTICES)
@pytest.mark.parametrize("n,seed", [(8, 5), (11, 6)])
def test_permutation_matches_exact_integer_enumeration(kind, n, seed):
    a, b, x, y = _lattice_case(kind, n, seed)
    res = permutation_test(x, y)
    assert res.exact and res.pvalue == _exact_sign_flip(_numerators(a, b))
    assert res.difference == float(sum(a) / n - sum(b) / n)


# -------------------------------------------------------------------------------------------------------------- Holm


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    adj, rej = holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    assert rej == [True, False, False, True]
    adj, rej = holm([0.5, 0.014, 0.001, 0.013], alpha=0.05)
    assert adj == pytest.approx([0.5, 0.039, 0.004, 0.039], abs=1e-15)
    assert rej == [False, True, True, True]
    assert holm([0.9, 0.6]) == ([1.0, 1.0], [False, False])  # 2 * 0.6 capped at 1; 0.9 lifted to the running max
    assert holm([0.02, 0.015]) == (pytest.approx([0.03, 0.03], abs=1e-15), [True, True])  # monotone: 0.02 -> 0.03
    assert holm([0.3, 0.3]) == ([0.6, 0.6], [False, False])
    assert holm([]) == ([], [])


def test_holm_equals_step_down_rule():
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.random(rng.integers(1, 9)) ** 3
        m, order = len(p), np.argsort(p)
        rejected = set()
        for j, i in enumerate(order):  # reject while p_(j) <= alpha / (m - j)
            if p[i] > 0.05 / (m - j):
                break
            rejected.add(int(i))
        assert holm(p)[1] == [i in rejected for i in range(m)]


@pytest.mark.parametrize("bad", [[0.5, 1.2], [-0.1], [float("nan")]])
def test_holm_rejects_bad_pvalues(bad):
    with pytest.raises(HarnessError):
        holm(bad)


# ------------------------------------------------------------------------------------------------ input validation


@pytest.mark.parametrize("fn", [paired_bootstrap, permutation_test, mcnemar])
@pytest.mark.parametrize("a,b", [([1, 0, 1], [1, 0]), ([], []), ([1, float("nan")], [0, 1]), ([[1, 0]], [[0, 1]])])
def test_bad_inputs_raise(fn, a, b):
    with pytest.raises(HarnessError):
        fn(a, b)


def test_bad_options_raise():
    with pytest.raises(HarnessError, match="statistic"):
        paired_bootstrap([1, 0], [0, 1], statistic="max")
    with pytest.raises(HarnessError, match="confidence"):
        paired_bootstrap([1, 0], [0, 1], confidence=95)
    with pytest.raises(HarnessError, match="n_resamples"):
        permutation_test([1, 0], [0, 1], n_resamples=0)


# --------------------------------------------------------------------------------------- per-problem scores, seeds


@pytest.mark.parametrize("n,c,k,expected", [
    (16, 3, 1, 0.1875), (16, 3, 4, 0.6071428571), (16, 3, 8, 0.9), (16, 3, 16, 1.0), (16, 0, 4, 0.0),
    (16, 13, 4, 1.0), (8, 1, 8, 1.0), (256, 5, 64, 0.7658075306),
])
def test_pass_at_k_vectors(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-10)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def _samples(counts: dict[str, int], n: int) -> list[dict]:
    return [{"problem_id": pid, "sample_index": j, "correct": j < c} for pid, c in counts.items() for j in range(n)]


def test_per_problem_scores():
    s = _samples({"p1": 0, "p2": 1, "p3": 3, "p4": 4}, 4)
    assert per_problem_scores(s, "avg", 4) == {"p1": 0.0, "p2": 0.25, "p3": 0.75, "p4": 1.0}
    assert per_problem_scores(s, "avg@n", 4) == per_problem_scores(s, "avg@4", 4)
    # pass@2 with n=4: 1 - C(4-c, 2)/C(4, 2) = 1 - C(4-c,2)/6
    assert per_problem_scores(s, "pass@2", 4) == pytest.approx({"p1": 0.0, "p2": 0.5, "p3": 1.0, "p4": 1.0})
    assert per_problem_scores(s, "pass@n", 4) == {"p1": 0.0, "p2": 1.0, "p3": 1.0, "p4": 1.0}
    assert per_problem_scores(s, "pass@1", 4) == per_problem_scores(s, "avg", 4)


@pytest.mark.parametrize("samples,metric,n,match", [
    (_samples({"p1": 1}, 3), "avg", 4, "3 samples"),
    (_samples({"p1": 1}, 4), "pass@5", 4, "metric"),
    (_samples({"p1": 1}, 4), "max", 4, "metric"),
    ([], "avg", 4, "no samples"),
    ([{"problem_id": "p1"}], "avg", 1, "lacks"),
    ([{"problem_id": "p1", "correct": 1}], "avg", 1, "true/false"),
    (_samples({"p1": 1}, 4), "avg", 0, "n must be"),
])
def test_per_problem_scores_errors(samples, metric, n, match):
    with pytest.raises(HarnessError, match=match):
        per_problem_scores(samples, metric, n)


def test_combine_seeds_and_mean_std():
    s0 = {"p1": 0.25, "p2": 0.5, "p3": 1.0}
    s1 = {"p2": 1.0, "p1": 0.75}
    assert combine_seeds([s0, s1]) == {"p1": 0.5, "p2": 0.75}
    assert combine_seeds([s0]) == s0
    with pytest.raises(HarnessError):
        combine_seeds([])
    with pytest.raises(HarnessError):
        combine_seeds([{"a": 1.0}, {"b": 1.0}])
    mean, std = mean_std([0.40, 0.46, 0.49])
    assert mean == pytest.approx(0.45, abs=1e-15)
    assert std == pytest.approx(math.sqrt((0.05**2 + 0.01**2 + 0.04**2) / 2), abs=1e-15)
    assert mean_std([0.3]) == (0.3, None)
    x, y = paired_arrays({"p1": 1.0, "p2": 0.0}, {"p2": 0.5, "p1": 0.25})
    assert x.tolist() == [1.0, 0.0] and y.tolist() == [0.25, 0.5]
    with pytest.raises(HarnessError, match="problem sets differ"):
        paired_arrays({"p1": 1.0}, {"p2": 1.0})
