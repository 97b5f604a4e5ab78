"""Answer grading: math-verify in a persistent worker pool, with an external per-sample timeout.

One grader serves both the training reward and the evaluation score (nanochat: ``reward =
float(evaluate)``), so the two can never drift apart. Equivalence is decided by Hugging Face
Math-Verify (``math_verify.parse`` / ``math_verify.verify``; see ``shared/notes/GRADING.md``):

* gold first: ``parse("\\boxed{" + gold + "}", [LatexExtractionConfig()])`` (wrapping bare golds
  in ``\\boxed{}`` avoids Math-Verify issue #70), cached per worker;
* prediction: ``parse(response, [LatexExtractionConfig(boxed_match_priority=0),
  ExprExtractionConfig()])`` -- the last ``\\boxed{}`` wins over any other candidate;
* ``verify(gold, pred)`` with Math-Verify's exact/6-decimal numeric rules (no x100 / /100
  percentage rescaling, no relative tolerance: ``0.1`` vs ``10`` and ``\\frac{1}{3}`` vs
  ``0.3333`` are incorrect), comma lists compared as unordered sets (OlympiadBench multiple answers).

Departures from the reference graders, each fixing a documented false negative/positive:

1. **Scientific notation** (``GradingOptions.sci_notation``, on for ``minerva_math``): 58 of 272
   Minerva golds are written ``4.5e33`` / ``1e-5``, which Math-Verify reads as expressions in Euler's
   ``e``. A gold that is *entirely* one e-notation number is split into mantissa m and exponent k;
   e-notation numbers in the response are rewritten to ``m \\times 10^{k}`` before parsing; a numeric
   prediction p is then correct iff ``verify(m, p / 10^k)``, i.e. Math-Verify's 6-decimal rule is
   applied to the *mantissa*. Without the rescaling, 6-decimal rounding (and ``evalf(chop=True)``)
   would accept ``9 \\times 10^{-27}`` for ``1.3 \\times 10^{-27}``. Symbolic golds (``c e^{-2x}``) are
   untouched: only a whole-string numeric match counts as e-notation.
2. **Integer fast path** (``GradingOptions.integer_only``, on for ``arith``, the training reward):
   the content of the last ``\\boxed{...}`` is compared exactly to an integer gold in this process,
   without Math-Verify or IPC. No box, or a box that is not an integer literal, is incorrect.
3. **The last box wins**: earlier ``\\boxed{}`` that are not part of the final run of boxes
   (``$\\boxed{2}$ and $\\boxed{3}$``) are un-boxed before parsing (:func:`keep_last_boxed_run`),
   so "\\boxed{2} ... wait, \\boxed{3}" is graded as 3 (Math-Verify alone reads {2, 3}).
4. **Bounded work**: only the last ``TAIL_CHARS`` characters of a response are parsed; every sample
   runs in a :class:`benchmarks.pool.TimeoutPool` worker that is killed and replaced after ``timeout``
   seconds (Math-Verify's own ``signal.alarm`` timeouts are disabled: they fail off the main thread,
   issues #50/#55, and cannot interrupt C code); workers run under a 3 GiB address-space limit, so
   ``\\boxed{10^{10^{10^{10}}}}`` ends in a timeout or ``MemoryError``, never in an exhausted machine.
   A timed-out or crashed sample is incorrect with ``extracted=None``.

``extracted`` is ``str()`` of the first parsed prediction (the SymPy form when the answer parsed,
so ``0.5`` and ``\\frac{1}{2}`` both read ``1/2`` and vote together in maj@n), capped at 1,000
characters; ``None`` when nothing was extracted.

    python -c "from benchmarks.grading import Grader; print(Grader().grade([r'so \\boxed{0.5}'], [r'\\frac{1}{2}'], 'math500'))"
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import asdict, dataclass
from typing import Sequence

from benchmarks.pool import TimeoutPool
from benchmarks.registry import BENCHMARKS
from common.errors import HarnessError

TAIL_CHARS = 4000            # only the end of a response is parsed (the final answer lives there)
EXTRACTED_MAX_CHARS = 1000   # cap on the recorded extracted answer
WORKER_MEMORY_BYTES = 3 << 30

_SCI_GOLD = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*[eE]\s*([+-]?\d+)\s*$")
_SCI_TEXT = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
_INT = re.compile(r"[+-]?\d+")
_CONNECTOR = re.compile(r"\s*\$?\s*(?:,|,?\s*and|,?\s*or)?\s*\$?\s*")


@dataclass(frozen=True)
class GradingOptions:
    """Per-benchmark grading switches (declared on each :class:`BenchmarkSpec`)."""

    sci_notation: bool = False   # e-notation golds compared on the mantissa (minerva_math)
    integer_only: bool = False   # exact integer fast path on the last \boxed{} (arith)


@dataclass(frozen=True)
class GradeResult:
    correct: bool
    extracted: str | None


# --------------------------------------------------------------------------- pure helpers

def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces; None if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0 or text[start:brace].strip() not in ("\\boxed", "\\fbox"):
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1:i]
    return None


def boxed_spans(text: str) -> list[tuple[int, int, int, int]]:
    """(start, content_start, content_end, end) of every top-level ``\\boxed{...}``, in order."""
    spans = []
    pos = 0
    while (start := text.find("\\boxed", pos)) >= 0:
        brace = start + len("\\boxed")
        while brace < len(text) and text[brace] == " ":
            brace += 1
        if brace >= len(text) or text[brace] != "{":
            pos = start + 1
            continue
        depth, end = 0, -1
        for i in range(brace, len(text)):
            depth += (text[i] == "{") - (text[i] == "}")
            if depth == 0:
                end = i + 1
                break
        if end < 0:
            break
        spans.append((start, brace + 1, end - 1, end))
        pos = end
    return spans


def keep_last_boxed_run(text: str) -> str:
    """Un-box every ``\\boxed{X}`` (-> ``X``) except the final run of boxes joined by ``,``/and/or.

    Math-Verify merges ``\\boxed{2}, but wait ... \\boxed{3}`` into the set {2, 3}; the answer a
    model finally commits to is its last box (Qwen's rule), while ``$\\boxed{2}$ and $\\boxed{3}$``
    stays a two-element answer.
    """
    spans = boxed_spans(text)
    if len(spans) < 2:
        return text
    k = len(spans) - 1
    while k > 0 and _CONNECTOR.fullmatch(text[spans[k - 1][3]:spans[k][0]]):
        k -= 1
    out, pos = [], 0
    for start, c0, c1, end in spans[:k]:
        out += [text[pos:start], text[c0:c1]]
        pos = end
    return "".join(out) + text[pos:]


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
    import resource
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
def _parse_gold(gold: str, sci: bool):
    """Parsed gold (a list for ``verify``), plus (mantissa, exponent) when it is e-notation."""
    from math_verify import LatexExtractionConfig, parse
    m = _SCI_GOLD.match(gold) if sci else None
    if m:
        mantissa = parse(f"\\boxed{{{m.group(1)}}}", [LatexExtractionConfig()], parsing_timeout=None)
        return parse(f"\\boxed{{{sci_to_latex(gold.strip())}}}", [LatexExtractionConfig()],
                     parsing_timeout=None), (mantissa, int(m.group(2)))
    return parse(f"\\boxed{{{gold}}}", [LatexExtractionConfig()], parsing_timeout=None), None


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


def grade_one(response: str, gold: str, sci: bool = False) -> tuple[bool, str | None]:
    """Grade one response with Math-Verify (runs inside a worker; no timeout of its own)."""
    import sympy
    from math_verify import parse, verify
    text = keep_last_boxed_run(response[-TAIL_CHARS:])
    if sci:
        text = sci_to_latex(text)
    gold_parsed, sci_parts = _parse_gold(gold, sci)
    preds = parse(text, _pred_config(), parsing_timeout=None)
    if not preds:
        return False, None
    extracted = str(preds[0])[:EXTRACTED_MAX_CHARS]
    if sci_parts is None:
        return bool(verify(gold_parsed, preds, timeout_seconds=None)), extracted
    mantissa, exponent = sci_parts
    scale = sympy.Integer(10) ** (-exponent)
    for pred in preds:
        number = _as_number(pred) if isinstance(pred, sympy.Basic) else None
        if number is not None:
            if verify(mantissa, number * scale, timeout_seconds=None):
                return True, extracted
        elif verify(gold_parsed, pred, timeout_seconds=None):
            return True, extracted
    return False, extracted


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
        from importlib.metadata import version
        info = {"name": "math-verify", "version": version("math-verify"), "timeout_s": self.timeout,
                "gold": "parse('\\\\boxed{'+gold+'}', [LatexExtractionConfig()])",
                "pred": "parse(tail, [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()])",
                "tail_chars": TAIL_CHARS}
        if bench is not None:
            info.update(asdict(_options(bench)))
        return info

    def grade(self, responses: Sequence[str], golds: Sequence[str],
              benches: Sequence[str] | str) -> list[GradeResult]:
        """Grade ``responses[i]`` against ``golds[i]`` with the options of ``benches[i]``.

        Args:
            responses: model outputs, any length (only the last ``TAIL_CHARS`` are parsed).
            golds: gold answer strings as the benchmark registry extracts them.
            benches: one benchmark name for all, or one per response.

        Returns:
            One :class:`GradeResult` per response, in order.
        """
        if isinstance(benches, str):
            benches = [benches] * len(responses)
        if not len(responses) == len(golds) == len(benches):
            raise ValueError(f"grade: {len(responses)} responses, {len(golds)} golds, "
                             f"{len(benches)} benches (lengths must match)")
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
            args = [(responses[i][-TAIL_CHARS:], golds[i], options[benches[i]].sci_notation)
                    for i in todo]
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
