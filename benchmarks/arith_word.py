"""``arith_word``: short, seeded arithmetic word problems for real instruct models, leakage-free like ``arith``.

The tiny model's ``arith`` task (``Compute 3+5*2-4.``) is far from what a pretrained instruct model is tuned on;
this task renders the same kind of computation as a one- or two-step story about a person and countable things,
in the spirit of GSM8K's easiest items and of RandomCalculation (arXiv 2507.10532)::

    Mia has 7 apples. She buys 5 more. Then she gives away 3. How many apples does Mia have now?

Steps apply left to right (no operator precedence: the story fixes the order), operands are small, and every
intermediate value stays in 0..``max_value``, so the answer is a non-negative integer. A 135M instruct model
solves some of these (SmolLM2-135M-Instruct: the base pass@1 is reported in ``results/``), which is what an RL
training task needs: a reward that is neither always 0 nor always 1.

Leakage: a problem is keyed by its canonical form (``7+5-3|apples|Mia``); ``sha256(key) % test_modulus == 0`` is the
test side. The fixed test split draws only test-side problems and :func:`train_problems` rejects them, so no test
problem is trained on whatever the seeds. The stories are synthetic, so they overlap no evaluation set.

    python -c "from benchmarks.arith_word import *; print(fixed_test_split()[0])"
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from common.errors import HarnessError

NAMES = ("Mia", "Leo", "Ava", "Noah", "Emma", "Liam", "Zoe", "Omar", "Lena", "Ravi", "Sara", "Tom")
THINGS = ("apples", "marbles", "stickers", "pencils", "cookies", "books", "coins", "shells", "cards", "stamps")
_SHE = {"Mia", "Ava", "Emma", "Zoe", "Lena", "Sara"}
# (operator, first-step phrasing, later-step phrasing); {n} is the operand, {p} the pronoun
_STEPS = {
    "+": ("{p} buys {n} more.", "Then {p2} gets {n} more."),
    "-": ("{p} gives away {n}.", "Then {p2} gives away {n}."),
    "*": ("{p} then has {n} times as many as before.", "Then {p2} has {n} times as many as before."),
}


@dataclass(frozen=True)
class WordConfig:
    min_steps: int = 1          # fewest operations after the starting amount
    max_steps: int = 2          # most operations
    max_operand: int = 12       # operands are drawn from 1..max_operand (multipliers from 2..4)
    max_value: int = 60         # every intermediate amount stays in 0..max_value
    ops: str = "+-*"            # operator set, a subset of "+-*"
    test_size: int = 200        # problems in the fixed test split
    test_seed: int = 4321       # seed of the test split (fixed: the split is part of the benchmark)
    test_modulus: int = 8       # 1 in test_modulus problems belongs to the test side

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise HarnessError(f"arith_word min_steps/max_steps must satisfy 1 <= min <= max "
                               f"(got {self.min_steps}, {self.max_steps})")
        if self.max_operand < 2 or self.max_value < self.max_operand:
            raise HarnessError(f"arith_word needs 2 <= max_operand <= max_value "
                               f"(got {self.max_operand}, {self.max_value})")
        if not self.ops or set(self.ops) - set(_STEPS):
            raise HarnessError(f"arith_word ops must be a non-empty subset of '+-*' (got {self.ops!r})")


@dataclass(frozen=True)
class WordProblem:
    key: str                    # canonical form: "7+5-3|apples|Mia"
    problem: str                # the story and its question
    answer: str                 # "9"


def _draw(rng: random.Random, cfg: WordConfig) -> tuple[int, list[tuple[str, int]]]:
    """A starting amount and a list of (op, operand) whose running value stays in 0..max_value."""
    while True:
        value = start = rng.randint(1, cfg.max_operand)
        steps: list[tuple[str, int]] = []
        for _ in range(rng.randint(cfg.min_steps, cfg.max_steps)):
            op = rng.choice(cfg.ops)
            n = rng.randint(2, 4) if op == "*" else rng.randint(1, cfg.max_operand)
            value = value + n if op == "+" else value - n if op == "-" else value * n
            steps.append((op, n))
        if 0 <= value <= cfg.max_value and all(0 <= v <= cfg.max_value for v in _running(start, steps)):
            return start, steps


def _running(start: int, steps: list[tuple[str, int]]) -> list[int]:
    out, value = [], start
    for op, n in steps:
        value = value + n if op == "+" else value - n if op == "-" else value * n
        out.append(value)
    return out


def render(start: int, steps: list[tuple[str, int]], name: str, thing: str) -> WordProblem:
    """The story of ``start`` followed by ``steps``, told about ``name`` and ``thing``."""
    pronoun = "She" if name in _SHE else "He"
    parts = [f"{name} has {start} {thing}."]
    for i, (op, n) in enumerate(steps):
        template = _STEPS[op][0 if i == 0 else 1]
        parts.append(template.format(n=n, p=pronoun, p2=pronoun.lower()))
    parts.append(f"How many {thing} does {name} have now?")
    key = f"{start}{''.join(f'{op}{n}' for op, n in steps)}|{thing}|{name}"
    return WordProblem(key=key, problem=" ".join(parts), answer=str(_running(start, steps)[-1]))


def _random_problem(rng: random.Random, cfg: WordConfig) -> WordProblem:
    start, steps = _draw(rng, cfg)
    return render(start, steps, rng.choice(NAMES), rng.choice(THINGS))


def is_test_side(key: str, modulus: int) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % modulus == 0


def fixed_test_split(cfg: WordConfig = WordConfig()) -> list[WordProblem]:
    """The fixed test split: ``cfg.test_size`` distinct test-side problems."""
    rng = random.Random(cfg.test_seed)
    seen: dict[str, WordProblem] = {}
    for _ in range(1000 * cfg.test_size):
        p = _random_problem(rng, cfg)
        if p.key not in seen and is_test_side(p.key, cfg.test_modulus):
            seen[p.key] = p
            if len(seen) == cfg.test_size:
                return list(seen.values())
    raise HarnessError(f"arith_word: only {len(seen)} distinct test problems exist for these settings "
                       f"(test_size {cfg.test_size})")


def train_problems(seed: str, count: int, cfg: WordConfig = WordConfig()) -> list[WordProblem]:
    """``count`` training problems drawn with ``random.Random(seed)``, none of them on the test side."""
    rng = random.Random(seed)
    out: list[WordProblem] = []
    while len(out) < count:
        p = _random_problem(rng, cfg)
        if not is_test_side(p.key, cfg.test_modulus):
            out.append(p)
    return out
