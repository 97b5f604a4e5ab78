"""Grader tests per class of false negative / false positive (the rules of ``benchmarks/grading.py``).

Each class has positive cases and near-misses that must stay wrong. ``CLASSES`` is also read by
``scripts/bench_grading.py --cases`` to report per-class accuracy of any grader version.

    .venv/bin/python -m pytest tests/benchmarks/test_grading_classes.py -q
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from benchmarks.answer_forms import code_to_latex, final_answer_span, last_number, plain_quantity, round_sig, sig_figs
from benchmarks.grading import Grader


def boxed(x: str) -> str:
    return f"Some reasoning first. So the final answer is $\\boxed{{{x}}}$."


# class -> [(bench, gold, response, expected, finish_reason)]
CLASSES: dict[str, list[tuple[str, str, str, bool, str | None]]] = {
    "1 minerva precision": [
        ("minerva_math", "4.5e33", boxed("4.46 \\times 10^{33}"), True, None),
        ("minerva_math", "4.5e33", boxed("4.5 \\times 10^{33} \\text{ erg/s}"), True, None),
        ("minerva_math", "4.5e33", boxed("L \\approx 4.5 \\times 10^{33}\\,\\mathrm{erg\\,s^{-1}}"), True, None),
        ("minerva_math", "4e33", boxed("3.8 \\times 10^{33}"), True, None),
        ("minerva_math", "0.3", boxed("0.31"), True, None),
        ("minerva_math", "0.3", boxed("0.3 \\text{ s}"), True, None),
        ("minerva_math", "1.39", boxed("1.392"), True, None),
        ("minerva_math", "6.5", boxed("6.5~\\mathrm{cm}"), True, None),
        ("minerva_math", "1e-5", boxed("1.02 \\times 10^{-5}"), True, None),
        ("minerva_math", "41.8", boxed("41.77"), True, None),
        ("minerva_math", "300", boxed("300.2 \\mathrm{K}"), True, None),
        ("minerva_math", "2.7778e-6", boxed("2.77778 \\times 10^{-6}"), True, None),
        ("minerva_math", "0.5613", boxed("\\frac{0.5613}{1}"), True, None),
        ("minerva_math", "4.5e33", boxed("4.6 \\times 10^{33}"), False, None),
        ("minerva_math", "4.5e33", boxed("4.5 \\times 10^{32}"), False, None),
        ("minerva_math", "4e33", boxed("4.6 \\times 10^{33}"), False, None),
        ("minerva_math", "1.39", boxed("1.4"), False, None),
        ("minerva_math", "0.3", boxed("0.36"), False, None),
        ("minerva_math", "6.5", boxed("6.6 \\text{ cm}"), False, None),
        ("minerva_math", "7.4e-12", boxed("7.4 \\times 10^{-11}"), False, None),
        ("minerva_math", "2.7778e-6", boxed("2.78 \\times 10^{-6}"), False, None),
        ("minerva_math", "300", boxed("301"), False, None),
        ("minerva_math", "-0.875", boxed("0.875"), False, None),
        # elsewhere numbers keep the exact rule
        ("math500", "1.25", boxed("1.3"), False, None),
        ("math500", "3.14", boxed("3.142"), False, None),
        ("olympiadbench", "0.3", boxed("0.31"), False, None),
        ("amc23", "4.5", boxed("4.50"), True, None),
    ],
    "2 code golds": [
        ("minerva_math", "np.arcsin(10/13)", boxed("\\arcsin\\left(\\frac{10}{13}\\right)"), True, None),
        ("minerva_math", "np.arcsin(10/13)", boxed("\\arcsin(10/13)"), True, None),
        ("minerva_math", "-1./3", boxed("-\\frac{1}{3}"), True, None),
        ("minerva_math", "-3./2", boxed("-1.5"), True, None),
        ("minerva_math", "np.pi/2", boxed("\\frac{\\pi}{2}"), True, None),
        ("minerva_math", "2**(1/3)", boxed("\\sqrt[3]{2}"), True, None),
        ("minerva_math", "np.sqrt(2)/2", boxed("\\frac{\\sqrt{2}}{2}"), True, None),
        ("minerva_math", "np.arcsin(10/13)", boxed("\\arcsin\\left(\\frac{10}{12}\\right)"), False, None),
        ("minerva_math", "np.arcsin(10/13)", boxed("\\arccos(10/13)"), False, None),
        ("minerva_math", "-1./3", boxed("\\frac{1}{3}"), False, None),
        ("minerva_math", "-1./3", boxed("-0.33"), False, None),
        ("minerva_math", "np.pi/2", boxed("\\pi"), False, None),
        ("minerva_math", "2**(1/3)", boxed("\\sqrt{2}"), False, None),
    ],
    "3 equivalent forms": [
        ("math500", "[-2,7]", boxed("-2 \\le x \\le 7"), True, None),
        ("math500", "[-2,7]", boxed("x \\in [-2, 7]"), True, None),
        ("math500", "-2 \\le x \\le 7", boxed("[-2,7]"), True, None),
        ("math500", "(-2,7]", boxed("-2 < x \\le 7"), True, None),
        ("math500", "(-\\infty, 3)", boxed("x < 3"), True, None),
        ("math500", "1 \\pm \\sqrt{2}", boxed("1+\\sqrt{2}, 1-\\sqrt{2}"), True, None),
        ("math500", "1+\\sqrt{2}, 1-\\sqrt{2}", boxed("1 \\pm \\sqrt{2}"), True, None),
        ("math500", "\\pm 2", boxed("2, -2"), True, None),
        ("olympiadbench", "-2, 1, 3", boxed("3, -2, 1"), True, None),
        ("olympiadbench", "(1,8,19), (2,7,13)", boxed("(2,7,13), (1,8,19)"), True, None),
        ("math500", "(-2,7)", boxed("-2 \\le x \\le 7"), False, None),
        ("math500", "[-2,7]", boxed("-2 < x < 7"), False, None),
        ("math500", "[-2,7]", boxed("-2 \\le x \\le 8"), False, None),
        ("math500", "(-\\infty, 3]", boxed("x < 3"), False, None),
        ("math500", "1 \\pm \\sqrt{2}", boxed("1+\\sqrt{2}"), False, None),
        ("math500", "\\pm 2", boxed("2"), False, None),
        ("olympiadbench", "-2, 1, 3", boxed("3, 2, 1"), False, None),
        ("olympiadbench", "(1,8,19), (2,7,13)", boxed("(2,7,13), (1,19,8)"), False, None),
    ],
    "4 stated answers": [
        ("math500", "5", "Solving, the answer is $x = 5$. To double-check, plugging in gives $2(5)+1 = 11$.",
         True, None),
        ("math500", "12", "So the answer is 12 and then we also note that 36 = 3*12.", True, None),
        ("math500", "\\frac{3}{4}", "**Final Answer**\n\n$\\frac{3}{4}$\n\nNote that 0.75 = 3/4 too, and 7 is wrong.",
         True, None),
        ("math500", "5", "The final answer is 5. Let me verify: $5 \\cdot 3 = 15$, so the answer is consistent.",
         True, None),
        ("minerva_math", "4.5e33", "Final Answer: The final answer is 4.5e33. I hope it is correct.", True, None),
        ("olympiadbench", "\\frac{1}{2}", "The final answer is: $$\\frac{1}{2}$$ Checking: 1/4 + 1/4 = 1/2.",
         True, None),
        ("gsm8k", "42", "the answer is 42 because 6*7 = 42, not 41", True, None),
        ("math500", "5", "Answer: 5\n\nCheck: 2+3=5; also 7 works? No.", True, None),
        ("math500", "11", "Solving, the answer is $x = 5$. To double-check, plugging in gives $2(5)+1 = 11$.",
         False, None),
        ("math500", "36", "So the answer is 12 and then we also note that 36 = 3*12.", False, None),
        ("math500", "15", "The final answer is 5. Let me verify: $5 \\cdot 3 = 15$, so the answer is consistent.",
         False, None),
        ("math500", "6", "The answer is 5. Hmm, 6 would be wrong.", False, None),
        ("gsm8k", "41", "the answer is 42 because 6*7 = 42, not 41", False, None),
    ],
    "5 no answer": [
        ("olympiadbench", "2", "To complete the reasoning within \\boxed{}, we take 1 + 1 = 2 steps and more text.",
         False, "length"),                                   # an empty box states nothing (rule 7)
        ("math500", "5", "I put my answer within \\boxed{}. The answer is 5.", True, "stop"),
        ("math500", "14", "Then we compute 3+4 = 7, and then 7*2 = 14", False, "length"),
        ("math500", "5", "The possible values are 3 and 5", False, "stop"),
        ("math500", "5", "So x could be 3 or 5. Let me check which one", False, "length"),
        ("olympiadbench", "12", "We have 2*6 = 12, and", False, None),
        ("minerva_math", "4.5e33", "L = 4.5 \\times 10^{33}, and the", False, "length"),
        ("gsm8k", "18", "She makes 9 * 2 = 18", False, "length"),
        ("gsm8k", "18", "She makes 9 * 2 = 18 dollars, minus 1 is 17.", False, "stop"),
        ("arith_word", "12", "Mia has 7 apples, then 12", False, "length"),
        ("gsm8k", "18", "She makes 9 * 2 = 18 dollars.", True, "stop"),
        ("gsm8k", "18", "She makes 9 * 2 = 18 dollars.", True, None),
        ("gsm8k", "18", "The answer is 18. Then", True, "length"),
        ("arith_word", "12", "Mia has 12 apples now.", False, "stop"),   # a reward pays for no stray number
        ("arith_word", "12", "Mia has 7 + 5 = 12 apples. The answer is 12.", True, "stop"),
        ("math500", "7", boxed("7") + " Let me double-check this by", True, "length"),
    ],
    "6 quantities": [
        ("gsm8k", "1450000", "The answer is 1.45 million.", True, None),
        ("gsm8k", "1450000", boxed("1.45 \\text{ million}"), True, None),
        ("gsm8k", "2000", "The answer is 2 thousand.", True, None),
        ("gsm8k", "2000", boxed("2 thousand"), True, None),
        ("gsm8k", "1450000", boxed("\\$1,450,000"), True, None),
        ("math500", "1450000", "The answer is $1,450,000.", True, None),
        ("gsm8k", "18.5", boxed("\\$18.50"), True, None),
        ("gsm8k", "1450000", boxed("1{,}450{,}000"), True, None),
        ("gsm8k", "25", boxed("€25"), True, None),
        ("gsm8k", "1200", "The answer is 1,200 dollars.", True, None),
        ("gsm8k", "1450000", "The answer is 1.45 billion.", False, None),
        ("gsm8k", "1450000", "The answer is 1.4 million.", False, None),
        ("gsm8k", "2000", "The answer is 2 million.", False, None),
        ("gsm8k", "1450000", boxed("\\$1,450,001"), False, None),
        ("olympiadbench", "1,3", boxed("1,300"), False, None),
        ("gsm8k", "145", "The answer is 1.45 million.", False, None),
    ],
}

ROWS = [(cls, *case) for cls, cases in CLASSES.items() for case in cases]


@pytest.fixture(scope="module")
def graded():
    with Grader(timeout=5.0) as g:
        return g.grade([r[3] for r in ROWS], [r[2] for r in ROWS], [r[1] for r in ROWS], [r[5] for r in ROWS])


def test_every_class_has_positives_and_near_misses():
    for cls, cases in CLASSES.items():
        verdicts = [c[3] for c in cases]
        assert verdicts.count(True) >= 3 and verdicts.count(False) >= 3, cls


@pytest.mark.parametrize("cls", list(CLASSES))
def test_class(graded, cls):
    wrong = [(r[1:], res) for r, res in zip(ROWS, graded) if r[0] == cls and res.correct is not r[4]]
    assert wrong == []


def test_finish_reasons_length_must_match():
    with pytest.raises(ValueError, match="lengths must match"):
        Grader().grade(["x"], ["1"], "gsm8k", finish_reasons=["stop", "stop"])


# --------------------------------------------------------------------------- the pure helpers

def test_final_answer_span_stops_at_remarks():
    assert final_answer_span("The answer is 42 because 6*7 = 42") == "42"
    assert final_answer_span("Final Answer: 12 apples. (Check: 7+5 = 12.)") == "12 apples"
    assert final_answer_span("So the answer is $x = 2$ or $x = 3$.\n") == "$x = 2$ or $x = 3$"
    assert final_answer_span("the answer is 3.5. Done") == "3.5"
    assert final_answer_span("The answer is not 5, it is 6") is None
    assert final_answer_span("... so the answer is consistent.") is None
    assert final_answer_span("no statement, just 5") is None


def test_last_number():
    assert last_number("She pays $1,200 and gets 35.5 back") == "35.5"
    assert last_number("no digits") is None


def test_plain_quantity_accepts_quantities_and_rejects_expressions():
    assert plain_quantity("1.45 million") == "1450000"
    assert plain_quantity("\\$1,450,000") == "1450000"
    assert plain_quantity("x = 4.5 \\times 10^{33} \\text{ erg/s}") == "4.5E+33"
    assert plain_quantity("10^{-5}") == "0.00001"
    for expr in ("2\\pi", "2x", "3 \\sqrt{2}", "2e^{-3}", "2 and 3", "1,3", "\\frac{1}{2}", "4\\text{ or 5}", "2i"):
        assert plain_quantity(expr) is None, expr


def test_significant_figures():
    assert [sig_figs(s) for s in ("4.5e33", "0.030", "300", "4e33", "1.6")] == [2, 2, 3, 1, 2]
    assert round_sig(Decimal("4.46e33"), 2) == Decimal("4.5e33")
    assert round_sig(Decimal("9.6e-6"), 1) == Decimal("1e-5")


def test_code_to_latex_is_a_whitelist():
    assert code_to_latex("np.arcsin(10/13)") == "\\arcsin (10/13)"
    assert code_to_latex("-1./3") == "-1/3"
    assert code_to_latex("2**(1/3)") == "2^{(1/3)}"
    for code in ("__import__('os').system('ls')", "np.load('x')", "x**2", "\\frac{1}{2}", "1/3"):
        assert code_to_latex(code) is None, code


def test_finish_reason_reaches_the_grader_from_reward_and_grade_command(tmp_path, capsys):
    import json

    from harness.cli import main
    from harness.train.data import Reward, TrainProblem
    probs = [TrainProblem("p", "Mia has 9 and doubles it.", "18", "gsm8k")] * 3
    with Grader() as g:
        assert Reward(g)(["So she has 18 now."] * 3, probs, ["stop", "length", None]) == [1.0, 0.0, 1.0]
        assert Reward(g)(["So she has 18 now."], probs[:1]) == [1.0]          # the old call still works
    rows = [{"bench": "gsm8k", "answer": "18", "response": "She has 18", "finish_reason": "length"},
            {"bench": "gsm8k", "answer": "18", "response": "She has 18."}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["grade", "--input", str(src)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "accuracy: 0.5000 (1/2)"
