"""Benchmark declarations: a frozen :class:`BenchmarkSpec` per test set, plus the paper's prompt.

A spec is data (lm-eval / lighteval style): where the rows come from (a local ``<name>/test.jsonl``
under the data directory, else a Hugging Face Hub dataset), which fields a row must have, how a
row maps to a :class:`Problem` (id, problem text, gold answer string), how many rows to expect,
the grading options, and a citation. Loading and validation live in :mod:`benchmarks.loader`.

Prompt (PRL, arXiv 2601.10201, §3.2, and its ``eval/gen.py``): system
"Please reason step by step, and put your final answer within \\boxed{}." and user
``problem + " Let's think step by step and output the final answer within \\boxed{}."`` through the
tokenizer's chat template; tokenizers without a chat template get the plain user text + newline.

    python -c "from benchmarks import get_benchmark as g; print(g('math500').load('../shared/benchmarks', limit=1))"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from benchmarks import loader
from benchmarks.grading import GradingOptions
from benchmarks.problem import Problem, RowError, plain_prompt, require, typename  # noqa: F401 (re-exported)

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
USER_SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."


def paper_prompt(problem: str, tokenizer) -> str:
    """The PRL evaluation prompt, chat-templated when the tokenizer has a chat template."""
    user = problem + USER_SUFFIX
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return plain_prompt(user)


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: data location, row -> :class:`Problem` mapping, expected size, grading.

    Attributes:
        name: registry name (``math500``).
        hub_id, hub_config, hub_split: where ``datasets.load_dataset`` finds it online.
        fields: required row fields and their JSON types (checked line by line).
        to_problem: maps a validated row (a dict) to a Problem; raises RowError on bad content.
        n_expected: number of rows the file must have (None: any).
        grading: options passed to :class:`benchmarks.grading.Grader`.
        citation, notes: provenance shown by ``harness ls`` and in docs.
    """

    name: str
    hub_id: str | None
    hub_config: str | None
    hub_split: str
    fields: Mapping[str, tuple[type, ...]]
    to_problem: Callable[[dict], Problem]
    n_expected: int | None
    grading: GradingOptions = field(default_factory=GradingOptions)
    citation: str = ""
    notes: str = ""

    @property
    def local_file(self) -> str:
        """Path of the data file relative to the data directory."""
        return f"{self.name}/test.jsonl"

    def load(self, data_dir: str | None = None, limit: int | None = None) -> list[Problem]:
        """Validated problems, from ``data_dir`` / ``$HARNESS_DATA_DIR`` / the hub, first ``limit`` kept."""
        return loader.load_problems(self, data_dir, limit)

    def prompt(self, problem: Problem, tokenizer) -> str:
        return paper_prompt(problem.problem, tokenizer)

    def source(self, data_dir: str | None = None) -> str:
        """Where :meth:`load` reads from (recorded in summaries)."""
        return loader.data_source(self, data_dir)
