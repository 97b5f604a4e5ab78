"""`arith`: a seeded, leakage-free synthetic arithmetic task (in the spirit of RandomCalculation, arXiv 2507.10532).

A problem is a flat expression over small integers, e.g. ``Compute 3+5*2-4.``. The reference solution
rewrites the expression one operation per line, respecting operator precedence, and ends in
``\\boxed{answer}``::

    3+5*2-4
    =3+10-4
    =13-4
    =9
    \\boxed{9}

Leakage: every expression is assigned to the test or the train side by a hash of its text
(``sha256(expr) % test_modulus == 0`` is test). The fixed test split samples only test-side
expressions and the training stream rejects them, so no test problem is ever trained on, whatever
the seeds.

Difficulty knobs (:class:`ArithConfig`): number of operations, operand range, operator set.

    python -c "from benchmarks.arith import *; print(solve('3+5*2-4'))"
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Iterator

from benchmarks.problem import plain_prompt  # noqa: F401 (the tiny model's prompt; re-exported)
from common.errors import HarnessError

_OPS = "+-*"
_INT_RE = re.compile(r"-?\d{1,30}")


@dataclass(frozen=True)
class ArithConfig:
    min_ops: int = 2            # fewest binary operations in a problem
    max_ops: int = 2            # most binary operations in a problem
    max_operand: int = 9        # operands are drawn from 0..max_operand
    ops: str = "+-*"            # operator set, a subset of "+-*"
    test_size: int = 200        # problems in the fixed test split
    test_seed: int = 1234       # seed of the test split (fixed: the split is part of the benchmark)
    test_modulus: int = 8       # 1 in test_modulus expressions belongs to the test side

    def __post_init__(self) -> None:
        if not 1 <= self.min_ops <= self.max_ops:
            raise HarnessError(f"arith.min_ops/max_ops must satisfy 1 <= min_ops <= max_ops "
                               f"(got {self.min_ops}, {self.max_ops})")
        if self.max_operand < 1:
            raise HarnessError(f"arith.max_operand must be >= 1 (got {self.max_operand})")
        if not self.ops or set(self.ops) - set(_OPS):
            raise HarnessError(f"arith.ops must be a non-empty subset of '{_OPS}' (got {self.ops!r})")
        if self.test_modulus < 2:
            raise HarnessError(f"arith.test_modulus must be >= 2 (got {self.test_modulus})")


@dataclass(frozen=True)
class ArithProblem:
    expr: str                   # "3+5*2-4"
    solution: str               # one rewrite per line, ending in \boxed{answer}
    answer: str                 # "9"

    @property
    def problem(self) -> str:
        return f"Compute {self.expr}."


def _tokens(expr: str) -> list[str]:
    out: list[str] = []
    for ch in expr:
        if ch.isdigit() and out and out[-1].lstrip("-").isdigit():
            out[-1] += ch
        elif ch == "-" and (not out or out[-1] in _OPS):  # unary minus of a negative intermediate
            out.append(ch)
        elif out and out[-1] == "-" and (len(out) == 1 or out[-2] in _OPS):
            out[-1] += ch
        else:
            out.append(ch)
    return out


def solve(expr: str) -> tuple[list[str], int]:
    """Reduce ``expr`` one operation at a time (all ``*`` left to right, then ``+``/``-``).

    Returns:
        The list of intermediate expressions after each operation, and the value.
    """
    toks = _tokens(expr)
    lines: list[str] = []
    while len(toks) > 1:
        ops = [i for i in range(1, len(toks), 2)]
        i = next((j for j in ops if toks[j] == "*"), ops[0])
        a, op, b = int(toks[i - 1]), toks[i], int(toks[i + 1])
        val = a * b if op == "*" else a + b if op == "+" else a - b
        toks[i - 1:i + 2] = [str(val)]
        lines.append("".join(toks))
    return lines, int(toks[0])


def make_problem(expr: str) -> ArithProblem:
    lines, value = solve(expr)
    body = "\n".join([expr] + ["=" + line for line in lines])
    return ArithProblem(expr=expr, solution=f"{body}\n\\boxed{{{value}}}", answer=str(value))


def is_test_side(expr: str, modulus: int) -> bool:
    return int(hashlib.sha256(expr.encode()).hexdigest(), 16) % modulus == 0


def _random_expr(rng: random.Random, cfg: ArithConfig) -> str:
    k = rng.randint(cfg.min_ops, cfg.max_ops)
    parts = [str(rng.randint(0, cfg.max_operand))]
    for _ in range(k):
        parts += [rng.choice(cfg.ops), str(rng.randint(0, cfg.max_operand))]
    return "".join(parts)


def fixed_test_split(cfg: ArithConfig = ArithConfig()) -> list[ArithProblem]:
    """The fixed test split: ``cfg.test_size`` distinct test-side problems."""
    rng = random.Random(cfg.test_seed)
    seen: dict[str, ArithProblem] = {}
    for _ in range(1000 * cfg.test_size):
        expr = _random_expr(rng, cfg)
        if expr not in seen and is_test_side(expr, cfg.test_modulus):
            seen[expr] = make_problem(expr)
            if len(seen) == cfg.test_size:
                return list(seen.values())
    raise HarnessError(f"arith: only {len(seen)} distinct test problems exist for these settings; "
                       f"lower arith.test_size (got {cfg.test_size}) or widen the operand range")


def train_stream(seed: int, cfg: ArithConfig = ArithConfig()) -> Iterator[ArithProblem]:
    """An endless, seeded stream of training problems, none of them on the test side."""
    rng = random.Random(seed)
    while True:
        expr = _random_expr(rng, cfg)
        if not is_test_side(expr, cfg.test_modulus):
            yield make_problem(expr)



def boxed_integer(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text`` if it is an integer, else None (arith fast path)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    end = text.find("}", start)
    inner = text[start + 7:end].strip() if end >= 0 else ""
    return str(int(inner)) if _INT_RE.fullmatch(inner) else None
