"""Tests for harness.metrics: pass@k against exact fractions and METRICS.md's vectors, maj@n, summaries (the
bootstrap pass@k itself: tests/report/test_bootstrap_pass.py).

    .venv/bin/python -m pytest tests/test_metrics.py -q
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from math import comb

import pytest

from harness.metrics import ks_for, majority_vote, pass_at_k, summarize

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs


def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 16, 33])
def test_pass_at_k_matches_exact_combinatorics(n):
    for c, k in itertools.product(range(n + 1), range(1, n + 1)):
        assert pass_at_k(n, c, k) == pytest.approx(float(exact_pass_at_k(n, c, k)), abs=1e-12), (n, c, k)


@pytest.mark.parametrize("n,c,k,expected", [
    (16, 3, 1, 0.1875), (16, 3, 4, 0.6071428571), (16, 3, 8, 0.9), (16, 3, 16, 1.0),
    (16, 0, 4, 0.0), (16, 13, 4, 1.0), (8, 1, 8, 1.0), (256, 5, 64, 0.7658075306),
])
def test_pass_at_k_metrics_md_vectors(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-10)


def test_pass_at_k_edges():
    assert pass_at_k(8, 0, 3) == 0.0                 # c = 0
    assert pass_at_k(8, 8, 1) == 1.0                 # c = n
    assert pass_at_k(8, 6, 3) == 1.0                 # n - c < k
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8, abs=1e-15)   # pass@1 = c/n
    assert pass_at_k(256, 1, 1) == pytest.approx(1 / 256, abs=1e-15)


@pytest.mark.parametrize("args", [(0, 0, 1), (4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5), (4.0, 2, 1), (4, True, 1)])
def test_pass_at_k_rejects_invalid(args):
    with pytest.raises(ValueError):
        pass_at_k(*args)


def test_ks_for():
    assert ks_for(1) == [1]
    assert ks_for(2) == [1, 2]
    assert ks_for(6) == [1, 2, 4, 6]
    assert ks_for(8) == [1, 2, 4, 8]
    assert ks_for(9) == [1, 2, 4, 8, 9]
    with pytest.raises(ValueError):
        ks_for(0)


def test_majority_vote():
    assert majority_vote(["1", "2", "2", None], [False, True, True, False]) is True
    assert majority_vote(["1", "2", "1", "2"], [True, False, True, False]) is True   # tie: first seen
    assert majority_vote(["2", "1", "1", "2"], [False, True, True, False]) is False
    assert majority_vote([None, None], [True, False]) is False                        # all None
    assert majority_vote([None, "5", None], [False, True, False]) is True
    with pytest.raises(ValueError):
        majority_vote(["1"], [True, False])


def _samples(correct, extracted=None):
    extracted = extracted or [str(int(c)) for c in correct]
    return [{"correct": c, "extracted": e} for c, e in zip(correct, extracted)]


def test_summarize_hand_computed():
    # n = 4; problem a: 1 correct, b: 0 correct, c: 4 correct
    data = {"a": _samples([True, False, False, False], ["7", "3", "3", None]),
            "b": _samples([False] * 4, [None] * 4),
            "c": _samples([True] * 4)}
    s = summarize(data, 4)
    assert s["num_problems"] == 3 and s["num_samples"] == 12
    assert s["avg@n"] == pytest.approx((1 / 4 + 0 + 1) / 3, abs=1e-12)
    assert set(s["pass@k"]) == {"1", "2", "4"}
    assert s["pass@k"]["1"] == pytest.approx(s["avg@n"], abs=1e-12)
    assert s["pass@k"]["2"] == pytest.approx((float(exact_pass_at_k(4, 1, 2)) + 0 + 1) / 3, abs=1e-12)
    assert s["pass@k"]["4"] == pytest.approx(2 / 3, abs=1e-12)
    assert s["maj@n"] == pytest.approx(1 / 3, abs=1e-12)   # a: "3" wins (wrong); b: no answer; c: right
    boot = s["bootstrap_pass@n"]   # FRPO's bootstrap pass@n: expectation mean_i 1 - (1 - c_i/n)^n
    assert (boot["k"], boot["n_boot"], boot["seed"]) == (4, 1000, 0)
    assert boot["expected"] == pytest.approx((1 - 0.75 ** 4 + 0 + 1) / 3, abs=1e-12)
    assert boot["expected"] < s["pass@k"]["4"]   # below the unbiased pass@n (= any of the n correct)
    assert abs(boot["mean"] - boot["expected"]) < 0.02 and 0 < boot["std"] < 0.2


def test_summarize_rejects_wrong_counts():
    with pytest.raises(ValueError, match="expected 4"):
        summarize({"a": _samples([True] * 3)}, 4)
    with pytest.raises(ValueError):
        summarize({}, 4)
