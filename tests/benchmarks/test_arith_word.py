"""The arith_word task: stories that mean their answer, a fixed leakage-free test split, the training source."""

import re
from types import SimpleNamespace

import pytest

from benchmarks import get_benchmark
from benchmarks.arith_word import WordConfig, fixed_test_split, is_test_side, render, train_problems
from common.errors import HarnessError
from harness.train.data import ArithWordSource, build_source

_SENTENCE = {"buys (\\d+) more": "+", "gets (\\d+) more": "+", "gives away (\\d+)": "-",
             "has (\\d+) times as many as before": "*"}


def _value_from_text(text: str) -> int:
    """Re-read a story as a person would: the starting amount, then each sentence's operation, in order."""
    value = int(re.match(r"\w+ has (\d+) ", text).group(1))
    for sentence in re.split(r"(?<=\.) ", text)[1:-1]:
        (op, n), = [(op, int(m.group(1))) for pat, op in _SENTENCE.items() if (m := re.search(pat, sentence))]
        value = value + n if op == "+" else value - n if op == "-" else value * n
    return value


def test_render_reads_as_its_answer():
    p = render(7, [("+", 5), ("-", 3)], "Mia", "apples")
    assert p.problem == ("Mia has 7 apples. She buys 5 more. Then she gives away 3. "
                         "How many apples does Mia have now?")
    assert p.answer == "9" and p.key == "7+5-3|apples|Mia"
    assert render(4, [("*", 3)], "Leo", "coins").problem == \
        "Leo has 4 coins. He then has 3 times as many as before. How many coins does Leo have now?"


def test_every_test_and_train_answer_follows_from_its_text():
    cfg = WordConfig()
    for p in [*fixed_test_split(), *train_problems("t", 300)]:
        assert str(_value_from_text(p.problem)) == p.answer, p.problem
        assert 0 <= int(p.answer) <= cfg.max_value
        assert 1 <= len(re.findall(r"\.", p.problem)) - 1 <= cfg.max_steps


def test_test_split_fixed_distinct_and_leakage_free():
    a, b = fixed_test_split(), fixed_test_split()
    assert [p.key for p in a] == [p.key for p in b] and len({p.key for p in a}) == 200
    assert all(is_test_side(p.key, 8) for p in a)
    train = [*train_problems("s0", 2000), *train_problems("s1", 2000)]
    assert not {p.key for p in train} & {p.key for p in a}
    assert not any(is_test_side(p.key, 8) for p in train)
    ops = {op for p in a for op in "+-*" if op in p.key.split("|")[0]}
    assert ops == {"+", "-", "*"}                                     # every operation occurs


def test_benchmark_loads_the_split_with_the_paper_prompt():
    spec = get_benchmark("arith_word")
    probs = spec.load()
    assert len(probs) == 200 and probs[0].id == "arith_word-0000" and spec.load(limit=3) == probs[:3]
    assert [p.problem for p in probs] == [p.problem for p in fixed_test_split()]
    assert not spec.grading.integer_only                              # real-model answers go through Math-Verify
    with pytest.raises(HarnessError, match="limit"):
        spec.load(limit=0)


def test_source_is_seeded_rank_sliced_and_selected_by_name():
    one = ArithWordSource(3, 4)
    assert [p.problem for p in one.batch(5)] == [p.problem for p in ArithWordSource(3, 4).batch(5)]
    assert [p.problem for p in one.batch(5)] != [p.problem for p in one.batch(6)]
    two = ArithWordSource(3, 2)
    assert two.batch(5, 0, 2) + two.batch(5, 1, 2) == one.batch(5)[:2] + one.batch(5)[2:]
    assert all(p.bench == "arith_word" for p in one.batch(0))
    cfg = SimpleNamespace(train_data="arith_word", arith_min_ops=2, arith_max_ops=2, word_max_steps=2)
    assert isinstance(build_source(cfg, 0, 2), ArithWordSource)


@pytest.mark.parametrize("kwargs,match", [({"min_steps": 0}, "min_steps"), ({"ops": "/"}, "ops"),
                                          ({"max_operand": 1}, "max_operand")])
def test_bad_config(kwargs, match):
    with pytest.raises(HarnessError, match=match):
        WordConfig(**kwargs)


def test_training_steps_setting_limits_the_problems_and_stays_off_the_test_side():
    """``data.word_max_steps=1``: one-step training stories only (an easier task for a weak model), still none
    of them on the test side; 0 steps is a one-line error."""
    from benchmarks.arith_word import fixed_test_split
    from harness.train.data import ArithWordSource

    src = ArithWordSource(seed=0, per_rank=64, max_steps=1)
    problems = [p for s in range(4) for p in src.batch(s)]
    assert problems and all("Then " not in p.problem for p in problems)
    assert {p.problem for p in problems}.isdisjoint({p.problem for p in fixed_test_split()})
    assert any("Then " in p.problem for p in ArithWordSource(seed=0, per_rank=64).batch(0))
    with pytest.raises(HarnessError, match="min_steps"):
        ArithWordSource(seed=0, per_rank=2, max_steps=0)
