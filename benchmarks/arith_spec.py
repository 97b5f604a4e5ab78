"""The built-in synthetic benchmarks (no data files): ``arith`` (the fixed test split of :mod:`benchmarks.arith`)
and ``arith_word`` (that of :mod:`benchmarks.arith_word`, at the end of this file).

It is the tiny model's task and the default training reward, so it is graded by the integer fast
path of :mod:`benchmarks.grading` (last ``\\boxed{}`` == the integer gold, no Math-Verify, no IPC).
The prompt is ``problem + "\\n"`` for tokenizers without a chat template (the built-in tiny model is
character-level, so the long paper prompt would only cost context) and the paper's chat prompt
otherwise.

    python -c "from benchmarks import get_benchmark as g; print(g('arith').load(limit=2))"
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.arith import ArithConfig, ArithProblem, fixed_test_split
from benchmarks.arith_word import WordConfig, WordProblem
from benchmarks.arith_word import fixed_test_split as fixed_test_split_word
from benchmarks.grading import GradingOptions
from benchmarks.spec import BenchmarkSpec, Problem, paper_prompt, plain_prompt
from common.errors import HarnessError


def arith_to_problem(index: int, item: ArithProblem) -> Problem:
    return Problem(id=f"arith-{index:04d}", problem=item.problem, answer=item.answer,
                   meta={"expr": item.expr, "solution": item.solution})


@dataclass(frozen=True)
class ArithSpec(BenchmarkSpec):
    config: ArithConfig = ArithConfig()

    def load(self, data_dir: str | None = None, limit: int | None = None) -> list[Problem]:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise HarnessError(f"limit must be a positive integer (got {limit!r})")
        problems = [arith_to_problem(i, p) for i, p in enumerate(fixed_test_split(self.config))]
        return problems[:limit] if limit is not None else problems

    def prompt(self, problem: Problem, tokenizer) -> str:
        if getattr(tokenizer, "chat_template", None):
            return paper_prompt(problem.problem, tokenizer)
        return plain_prompt(problem.problem)

    def source(self, data_dir: str | None = None) -> str:
        return "builtin:benchmarks.arith.fixed_test_split"


ARITH = ArithSpec(
    name="arith", hub_id=None, hub_config=None, hub_split="test", fields={},
    to_problem=lambda row: arith_to_problem(0, ArithProblem(**row)),
    n_expected=ArithConfig().test_size, grading=GradingOptions(integer_only=True),
    citation="synthetic, in the spirit of RandomCalculation (arXiv 2507.10532)",
    notes="fixed, leakage-free test split; ids arith-0000...; integer fast-path grading")


@dataclass(frozen=True)
class ArithWordSpec(BenchmarkSpec):
    """``arith_word`` (:mod:`benchmarks.arith_word`): the story problems for real instruct models, built in.

    Graded by Math-Verify like the paper benchmarks (not the integer fast path): a real model's final answer may be
    boxed or stated in words, and the same grader is the training reward. The prompt is the paper's.
    """

    config: WordConfig = WordConfig()

    def load(self, data_dir: str | None = None, limit: int | None = None) -> list[Problem]:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise HarnessError(f"limit must be a positive integer (got {limit!r})")
        problems = [word_to_problem(i, p) for i, p in enumerate(fixed_test_split_word(self.config))]
        return problems[:limit] if limit is not None else problems

    def prompt(self, problem: Problem, tokenizer) -> str:
        return paper_prompt(problem.problem, tokenizer)

    def source(self, data_dir: str | None = None) -> str:
        return "builtin:benchmarks.arith_word.fixed_test_split"


def word_to_problem(index: int, item: WordProblem) -> Problem:
    return Problem(id=f"arith_word-{index:04d}", problem=item.problem, answer=item.answer, meta={"key": item.key})


ARITH_WORD = ArithWordSpec(
    name="arith_word", hub_id=None, hub_config=None, hub_split="test", fields={},
    to_problem=lambda row: word_to_problem(0, WordProblem(**row)),
    n_expected=WordConfig().test_size, grading=GradingOptions(),   # stated or boxed answers only (no last number)
    citation="synthetic one- and two-step word problems (GSM8K-like, RandomCalculation-style generation)",
    notes="fixed, leakage-free test split; ids arith_word-0000...; for real instruct models; Math-Verify grading")
