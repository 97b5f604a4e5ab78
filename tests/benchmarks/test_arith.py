"""The synthetic arith task: solver, solution format, leakage-freedom, determinism."""

import itertools

import pytest

from benchmarks.arith import (ArithConfig, boxed_integer, fixed_test_split, is_test_side, make_problem, solve,
                              train_stream)
from common.errors import HarnessError
from harness.train.data import ArithSource


@pytest.mark.parametrize("expr,value", [("3+5*2-4", 9), ("2-7*3+1", -18), ("9*9*9", 729),
                                        ("0-9-9", -18), ("5", 5), ("8-2*3*0+1", 9)])
def test_solve_matches_python(expr, value):
    lines, got = solve(expr)
    assert got == value
    assert (lines[-1] if lines else expr) == str(value)


def test_solution_one_step_per_line():
    p = make_problem("3+5*2-4")
    assert p.problem == "Compute 3+5*2-4."
    assert p.solution == "3+5*2-4\n=3+10-4\n=13-4\n=9\n\\boxed{9}"
    assert p.answer == "9"


def test_test_split_fixed_and_leakage_free():
    a, b = fixed_test_split(), fixed_test_split()
    assert [p.expr for p in a] == [p.expr for p in b]
    assert len(a) == 200 and len({p.expr for p in a}) == 200
    assert all(is_test_side(p.expr, 8) for p in a)
    train = {p.expr for p in itertools.islice(train_stream(0), 5000)}
    src = ArithSource(seed=3, per_rank=64)
    train |= {p.problem[8:-1] for s in range(50) for p in src.batch(s)}
    assert not train & {p.expr for p in a}


def test_source_is_random_access_and_sharded():
    src = ArithSource(seed=1, per_rank=4)
    assert src.batch(7) == src.batch(7)
    assert src.batch(7) != src.batch(8)
    r0, r1 = src.batch(3, rank=0, world=2), src.batch(3, rank=1, world=2)
    assert len(r0) == len(r1) == 4 and not {p.id for p in r0} & {p.id for p in r1}


@pytest.mark.parametrize("text,want", [("=9\n\\boxed{9}", "9"), ("\\boxed{-18}", "-18"),
                                       ("\\boxed{2}\\boxed{3}", "3"), ("\\boxed{---0}", None),
                                       ("\\boxed{9", None), ("no box", None), ("\\boxed{ 07 }", "7")])
def test_boxed_integer(text, want):
    assert boxed_integer(text) == want


def test_bad_knobs():
    with pytest.raises(HarnessError, match="max_operand"):
        ArithConfig(max_operand=0)
    with pytest.raises(HarnessError, match="ops"):
        ArithConfig(ops="/")
