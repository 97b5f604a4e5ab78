"""Answer grading: math-verify in a persistent worker pool, with an external per-sample timeout.

One grader serves both the training reward and the evaluation score (nanochat: ``reward =
float(evaluate)``), so the two can never drift apart. Equivalence is decided by Hugging Face
Math-Verify (``math_verify.parse`` / ``math_verify.verify``, github.com/huggingface/Math-Verify):

* gold first: ``parse("\\boxed{" + gold + "}", [LatexExtractionConfig()])`` (wrapping bare golds
  in ``\\boxed{}`` avoids Math-Verify issue #70), cached per worker;
* prediction: ``parse(response, [LatexExtractionConfig(boxed_match_priority=0),
  ExprExtractionConfig()])`` -- the last ``\\boxed{}`` wins over any other candidate;
* ``verify(gold, pred)`` with Math-Verify's exact/6-decimal numeric rules (no x100 / /100
  percentage rescaling, no relative tolerance: ``0.1`` vs ``10`` and ``\\frac{1}{3}`` vs
  ``0.3333`` are incorrect), comma lists compared as unordered sets (OlympiadBench multiple answers).

Departures from the reference graders (Minerva significant figures, code golds, equivalent forms, stated
answers, no answer no credit, quantities, the last box wins, the integer fast path, bounded work), each with the
false negative it fixes and what it could wrongly accept, and the rules rejected: ``docs/grading.md``.

``extracted`` is ``str()`` of the first parsed prediction (the SymPy form when the answer parsed,
so ``0.5`` and ``\\frac{1}{2}`` both read ``1/2`` and vote together in maj@n), capped at 1,000
characters; ``None`` when nothing was extracted.

    python -c "from benchmarks.grading import Grader; print(Grader().grade([r'so \\boxed{0.5}'], [r'\\frac{1}{2}'], 'math500'))"
"""

from __future__ import annotations

import functools
import logging
import re
import resource
from dataclasses import asdict, dataclass
from decimal import Decimal
from importlib.metadata import version
from typing import Sequence

from benchmarks import answer_forms as forms
from benchmarks.answer_forms import keep_last_boxed_run, last_boxed  # noqa: F401 (last_boxed re-exported)
from benchmarks.pool import TimeoutPool
from benchmarks.registry import BENCHMARKS
from common.errors import HarnessError

TAIL_CHARS = 4000            # only the end of a response is parsed (the final answer lives there)
EXTRACTED_MAX_CHARS = 1000   # cap on the recorded extracted answer
WORKER_MEMORY_BYTES = 3 << 30

_SCI_GOLD = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*[eE]\s*([+-]?\d+)\s*$")
_SCI_TEXT = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class GradingOptions:
    """Per-benchmark grading switches (declared on each :class:`BenchmarkSpec`)."""

    sci_notation: bool = False   # e-notation golds and answers read as numbers (minerva_math)
    integer_only: bool = False   # exact integer fast path on the last \boxed{} (arith)
    sig_figs: bool = False       # numeric golds compared to their own significant figures (minerva_math)
    code_golds: bool = False     # Python/NumPy golds (np.pi/2, -1./3) translated to LaTeX (minerva_math)
    last_number: bool = False    # no stated answer: the last number of a finished response (gsm8k)


@dataclass(frozen=True)
class GradeResult:
    correct: bool
    extracted: str | None


# --------------------------------------------------------------------------- pure helpers

def grade_integer(response: str, gold: str) -> GradeResult:
    """The integer fast path: last ``\\boxed{}`` content, spaces removed, equals the integer gold."""
    content = last_boxed(response[-TAIL_CHARS:])
    if content is None:
        return GradeResult(False, None)
    compact = content.replace(" ", "").replace("{,}", "").replace(",", "")
    ok = bool(_INT.fullmatch(compact)) and int(compact) == int(gold)
    return GradeResult(ok, content.strip()[:EXTRACTED_MAX_CHARS])


def sci_to_latex(text: str) -> str:
    """Rewrite e-notation numbers (``4.5e33``, ``1e-5``) as ``4.5 \\times 10^{33}``; symbols untouched."""
    return _SCI_TEXT.sub(r"\1 \\times 10^{\2}", text)


# --------------------------------------------------------------------------- worker side

def worker_init() -> None:
    """Runs once in each worker: memory cap, quiet logs, warm imports."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = WORKER_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(hard, WORKER_MEMORY_BYTES)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):  # pragma: no cover - platform without RLIMIT_AS
        pass
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)
    import math_verify  # noqa: F401


@functools.lru_cache(maxsize=8192)
def _parse_gold(gold: str, opts: GradingOptions):
    """(parsed gold for ``verify``, the gold as a Decimal when it is one plain number, else None)."""
    from math_verify import LatexExtractionConfig, parse
    cfg = [LatexExtractionConfig()]
    text = sci_to_latex(gold.strip()) if opts.sci_notation and _SCI_GOLD.match(gold) else gold
    parsed = parse(f"\\boxed{{{text}}}", cfg, parsing_timeout=None)
    code = forms.code_to_latex(gold) if opts.code_golds else None
    if code is not None:   # the NumPy form first; the literal parse kept so the gold still matches itself
        parsed = parse(f"\\boxed{{{code}}}", cfg, parsing_timeout=None) + parsed
    number = forms.plain_quantity(gold, units=False)
    return parsed, (Decimal(number) if number is not None else None)


@functools.lru_cache(maxsize=1)
def _pred_config():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig
    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


def _as_number(pred):
    """A SymPy number (the rhs of ``x = v`` when it is an equation), else None."""
    import sympy
    if isinstance(pred, sympy.Eq):
        pred = pred.rhs
    if isinstance(pred, sympy.Expr) and pred.is_number:
        return pred
    return None


def _to_decimal(number) -> Decimal | None:
    """A finite real SymPy number as a Decimal (30 digits), else None."""
    import sympy
    value = sympy.N(number, 30)
    if isinstance(value, sympy.Integer):
        return Decimal(int(value))
    return Decimal(str(value)) if isinstance(value, sympy.Float) and value.is_finite else None


def grade_one(response: str, gold: str, opts: GradingOptions = GradingOptions(),
              finish_reason: str | None = None) -> tuple[bool, str | None]:
    """Grade one response (runs inside a worker; no timeout of its own). Rules: the module docstring."""
    from math_verify import parse, verify
    text = keep_last_boxed_run(response[-TAIL_CHARS:])
    where, answer = forms.locate_answer(text, opts.last_number, finish_reason)
    if where is None:
        return False, None
    gold_parsed, gold_number = _parse_gold(gold, opts)
    sig = forms.sig_figs(gold.strip()) if opts.sig_figs and gold_number is not None else None
    if gold_number is not None and answer is not None:          # rule 6 and the numeric fast path
        number = forms.plain_quantity(answer)
        if number is not None:
            return forms.numbers_match(gold_number, Decimal(number), sig), number
    source = text if where == "boxed" else answer
    preds = parse(sci_to_latex(source) if opts.sci_notation else source, _pred_config(), parsing_timeout=None)
    if not preds:
        return False, None
    extracted = str(preds[0])[:EXTRACTED_MAX_CHARS]
    if sig is not None:
        for pred in preds:
            number = _as_number(pred) if not isinstance(pred, str) else None
            value = _to_decimal(number) if number is not None else None
            if value is not None:
                return forms.numbers_match(gold_number, value, sig), extracted
    return bool(verify(gold_parsed, preds, timeout_seconds=None, allow_set_relation_comp=True)), extracted


# --------------------------------------------------------------------------- the pool

class Grader:
    """Grades responses against gold answers; a context manager around a persistent worker pool.

    Not thread-safe: use one Grader per thread. Math-Verify runs in :class:`benchmarks.pool.TimeoutPool`
    workers (fresh interpreters, no fork), each sample under ``timeout`` seconds.

    Args:
        timeout: seconds one sample may take in a worker before it is killed (graded incorrect).
        workers: worker processes (default 2). The pool starts lazily, on the first sample that
            needs Math-Verify, so integer-only grading (``arith``) never starts a process.
    """

    def __init__(self, timeout: float = 5.0, workers: int | None = None) -> None:
        if not timeout > 0:
            raise HarnessError(f"grader timeout must be > 0 seconds (got {timeout})")
        if workers is not None and workers < 1:
            raise HarnessError(f"grader workers must be >= 1 (got {workers})")
        self.timeout = float(timeout)
        self.workers = workers or 2
        self.timeouts = 0            # samples killed at the timeout so far
        self.errors = 0              # samples whose worker raised or died
        self._pool: TimeoutPool | None = None

    def _ensure_pool(self) -> TimeoutPool:
        if self._pool is None:
            self._pool = TimeoutPool("benchmarks.grading:grade_one", workers=self.workers,
                                     timeout=self.timeout, init="benchmarks.grading:worker_init")
        return self._pool

    def describe(self, bench: str | None = None) -> dict:
        """Grader settings for ``summary.json``."""
        info = {"name": "math-verify", "version": version("math-verify"), "timeout_s": self.timeout,
                "gold": "parse('\\\\boxed{'+gold+'}', [LatexExtractionConfig()])",
                "pred": "parse(tail, [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()])",
                "tail_chars": TAIL_CHARS}
        if bench is not None:
            info.update(asdict(_options(bench)))
        return info

    def grade(self, responses: Sequence[str], golds: Sequence[str], benches: Sequence[str] | str,
              finish_reasons: Sequence[str | None] | None = None) -> list[GradeResult]:
        """Grade ``responses[i]`` against ``golds[i]`` with the options of ``benches[i]``.

        Args:
            responses: model outputs, any length (only the last ``TAIL_CHARS`` are parsed).
            golds: gold answer strings as the benchmark registry extracts them.
            benches: one benchmark name for all, or one per response.
            finish_reasons: the engine's ``"stop"``/``"length"`` per response (None: unknown, taken as
                finished); a ``"length"`` (truncated) response never gets the last-number fallback.

        Returns:
            One :class:`GradeResult` per response, in order.
        """
        if isinstance(benches, str):
            benches = [benches] * len(responses)
        finish_reasons = [None] * len(responses) if finish_reasons is None else finish_reasons
        if not len(responses) == len(golds) == len(benches) == len(finish_reasons):
            raise ValueError(f"grade: {len(responses)} responses, {len(golds)} golds, {len(benches)} benches, "
                             f"{len(finish_reasons)} finish reasons (lengths must match)")
        options = {b: _options(b) for b in set(benches)}
        results: list[GradeResult | None] = [None] * len(responses)
        todo: list[int] = []
        for i, (resp, gold, bench) in enumerate(zip(responses, golds, benches)):
            opts = options[bench]
            if not isinstance(resp, str) or not resp.strip():
                results[i] = GradeResult(False, None)
            elif opts.integer_only and _INT.fullmatch(gold.strip()):
                results[i] = grade_integer(resp, gold.strip())
            else:
                todo.append(i)
        if todo:
            args = [(responses[i][-TAIL_CHARS:], golds[i], options[benches[i]], finish_reasons[i]) for i in todo]
            for i, (status, value) in zip(todo, self._ensure_pool().map(args)):
                if status == "ok":
                    results[i] = GradeResult(bool(value[0]), value[1])
                else:  # "timeout", or "error": the worker raised (MemoryError, ...) or died
                    self.timeouts += status == "timeout"
                    self.errors += status != "timeout"
                    results[i] = GradeResult(False, None)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._pool = None

    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _options(bench: str) -> GradingOptions:
    return BENCHMARKS.get(bench).grading
