"""What a benchmark row becomes: a :class:`Problem`, the errors a row can raise, and the plain prompt.

This module sits below both :mod:`benchmarks.spec` (declarations) and :mod:`benchmarks.loader` (reading and
validating files), so that neither imports the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Problem:
    id: str          # unique within the benchmark
    problem: str     # the question text shown to the model
    answer: str      # gold answer string as the registry extracts it (graded with benchmarks.grading)
    meta: dict       # benchmark-specific extras (subject, level, is_multiple_answer, unit, ...)


class RowError(ValueError):
    """A row that cannot be mapped to a Problem; the loader adds file and line."""


def plain_prompt(text: str) -> str:
    """The prompt for tokenizers without a chat template: the text and a newline (the tiny model's format)."""
    return text + "\n"


def typename(types: tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list",
             dict: "object", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def require(row: Mapping[str, Any], key: str) -> Any:
    if key not in row:
        raise RowError(f"missing field {key!r}")
    return row[key]
