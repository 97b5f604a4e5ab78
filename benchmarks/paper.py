"""The math test sets of the RL-for-reasoning literature, as :class:`BenchmarkSpec` declarations.

MATH500, Minerva Math and OlympiadBench are PRL's main benchmarks (``--bench all``); AIME24, AIME25 (FRPO,
arXiv 2601.10201 v2, Table 1), AMC23 and GSM8K are extras. Files, counts and gold-answer rules follow the
Qwen2.5-Math / simpleRL-reason ``parse_ground_truth`` rules (``evaluation/parser.py``), except that MATH500 reads
the ``answer`` field, which PRL also uses and which equals the last ``\\boxed{}`` of the solution up to formatting.

    python -c "from benchmarks.paper import last_boxed_of; print(last_boxed_of(r'so \\boxed{\\frac{1}{2}}'))"
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Callable

from benchmarks import loader
from benchmarks.answer_forms import last_boxed
from benchmarks.grading import GradingOptions
from benchmarks.spec import BenchmarkSpec, Problem, RowError, require

STR, INT, LIST = (str,), (int,), (list,)


def last_boxed_of(solution: str) -> str:
    """The last ``\\boxed{...}`` of a solution (nested braces kept); RowError if there is none."""
    content = last_boxed(solution)
    if content is None:
        raise RowError("field 'solution' has no \\boxed{...} answer")
    return content.strip()


def number_to_str(value) -> str:
    """AMC23 stores answers as floats: 27.0 -> "27", 0.5 -> "0.5"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _math500(row: dict) -> Problem:
    return Problem(id=row["unique_id"], problem=row["problem"], answer=row["answer"].strip(),
                   meta={"subject": row.get("subject"), "level": row.get("level")})


def _minerva(row: dict) -> Problem:
    return Problem(id=str(row["idx"]), problem=row["problem"],
                   answer=last_boxed_of(row["solution"]), meta={"type": row.get("type")})


def _olympiad(row: dict) -> Problem:
    finals = row["final_answer"]
    if not finals or not isinstance(finals[0], str):
        raise RowError("field 'final_answer' must be a non-empty list of strings")
    return Problem(id=str(row["id"]), problem=row["question"], answer=finals[0].strip().strip("$").strip(),
                   meta={k: row.get(k) for k in ("is_multiple_answer", "unit", "error",
                                                 "answer_type", "subfield")})


def _aime(row: dict) -> Problem:
    return Problem(id=str(row["id"]), problem=row["problem"], answer=number_to_str(row["answer"]),
                   meta={"url": row.get("url")})


def repair_form_feeds(text: str) -> str:
    """``"\\x0crac{m}{n}"`` -> ``"\\\\frac{m}{n}"``: a LaTeX ``\\f...`` command written unescaped into JSON reads
    back as a form feed (the ``\\f`` escape) and the command's rest (aime25 rows 18 and 27:
    ../shared/benchmarks/SOURCES.md). A form feed has no place in a problem statement, so every one becomes ``\\f``."""
    return text.replace("\x0c", "\\f")


def _aime25(row: dict) -> Problem:
    """No id field: a content hash here (the duplicate check), the position once loaded (:class:`PositionalSpec`)."""
    problem = repair_form_feeds(row["problem"])
    return Problem(id=hashlib.sha256(problem.encode()).hexdigest()[:12], problem=problem,
                   answer=number_to_str(row["answer"]), meta={})


def aime25_id(index: int) -> str:
    """Row 0-14: AIME 2025 I problems 1-15 (``2025-I-1``), rows 15-29: AIME 2025 II (``2025-II-1`` ...)."""
    return f"2025-{'I' if index < 15 else 'II'}-{index % 15 + 1}"


@dataclasses.dataclass(frozen=True)
class PositionalSpec(BenchmarkSpec):
    """A benchmark whose rows carry no id: problem ``i`` of the file (or hub split) gets the id ``id_of(i)``."""

    id_of: Callable[[int], str] = str

    def load(self, data_dir: str | None = None, limit: int | None = None) -> list[Problem]:
        problems = loader.load_problems(self, data_dir, limit)
        return [dataclasses.replace(p, id=self.id_of(i)) for i, p in enumerate(problems)]


def _gsm8k(row: dict) -> Problem:
    solution = require(row, "answer")
    if "####" not in solution:
        raise RowError("field 'answer' has no '#### <number>' final answer")
    gold = solution.split("####")[-1].strip().replace(",", "")
    # the hub copy (openai/gsm8k) has no idx: fall back to a content hash of the question
    pid = str(row["idx"]) if "idx" in row else hashlib.sha256(row["question"].encode()).hexdigest()[:12]
    return Problem(id=pid, problem=row["question"], answer=gold, meta={})


MATH500 = BenchmarkSpec(
    name="math500", hub_id="HuggingFaceH4/MATH-500", hub_config=None, hub_split="test",
    fields={"problem": STR, "answer": STR, "unique_id": STR}, to_problem=_math500, n_expected=500,
    citation="Hendrycks et al. 2021 (MATH); 500-problem split of Lightman et al. 2023 (PRM800K)",
    notes="gold = `answer` field; id = unique_id")

MINERVA_MATH = BenchmarkSpec(
    name="minerva_math", hub_id="math-ai/minervamath", hub_config=None, hub_split="test",
    fields={"problem": STR, "solution": STR, "idx": INT}, to_problem=_minerva, n_expected=272,
    grading=GradingOptions(sci_notation=True, sig_figs=True, code_golds=True),
    citation="Lewkowycz et al. 2022, Solving Quantitative Reasoning Problems with Language Models (MIT OCW)",
    notes="gold = last \\boxed{} of `solution`; numeric golds (58 in e-notation) graded to their own "
          "significant figures; Python/NumPy golds translated to LaTeX")

OLYMPIADBENCH = BenchmarkSpec(
    name="olympiadbench", hub_id="Hothan/OlympiadBench", hub_config="OE_TO_maths_en_COMP",
    hub_split="train", fields={"id": INT, "question": STR, "final_answer": LIST},
    to_problem=_olympiad, n_expected=675,
    citation="He et al. 2024, OlympiadBench (arXiv 2402.14008), OE_TO_maths_en_COMP",
    notes="gold = final_answer[0] without '$'; multiple answers compare as unordered sets; "
          "the `unit` and `error` fields are kept in meta but not used by the grader")

AIME24 = BenchmarkSpec(
    name="aime24", hub_id="math-ai/aime24", hub_config=None, hub_split="test",
    fields={"id": INT, "problem": STR, "answer": (str, int, float)}, to_problem=_aime, n_expected=30,
    citation="AIME 2024 I and II (Art of Problem Solving wiki)", notes="gold = `answer`")

AIME25 = PositionalSpec(
    name="aime25", hub_id="math-ai/aime25", hub_config=None, hub_split="test",
    fields={"problem": STR, "answer": (str, int, float)}, to_problem=_aime25, n_expected=30, id_of=aime25_id,
    citation="AIME 2025 I and II (Art of Problem Solving wiki); file of Zhuofeng-Li/math-evaluation-harness",
    notes="gold = `answer`; no id field: ids from the row index, 2025-I-1..15 then 2025-II-1..15 (the hub copy "
          "is assumed in the same order); a form feed (JSON \\f escape of \\frac, rows 18 and 27) is read as \\f")

AMC23 = BenchmarkSpec(
    name="amc23", hub_id="math-ai/amc23", hub_config=None, hub_split="test",
    fields={"id": INT, "problem": STR, "answer": (int, float, str)}, to_problem=_aime, n_expected=40,
    citation="AMC 12 2023 (Art of Problem Solving wiki)", notes="gold = `answer` (float 27.0 -> '27')")

GSM8K = BenchmarkSpec(
    name="gsm8k", hub_id="openai/gsm8k", hub_config="main", hub_split="test",
    fields={"question": STR, "answer": STR}, to_problem=_gsm8k, n_expected=1319,
    grading=GradingOptions(last_number=True),
    citation="Cobbe et al. 2021, Training Verifiers to Solve Math Word Problems",
    notes="gold = text after '####', commas removed; id = idx (a hash of the question when absent); "
          "no stated answer: the last number of a finished response")

PAPER_BENCHMARKS = (MATH500, MINERVA_MATH, OLYMPIADBENCH, AIME24, AIME25, AMC23, GSM8K)
