"""Benchmark registry: MATH500, Minerva Math, OlympiadBench (PRL's ``--bench all``), AIME24, AIME25,
AMC23, GSM8K and the built-in synthetic ``arith`` (tiny model) and ``arith_word`` (real models), each a
:class:`BenchmarkSpec` registered by name.

    python -c "from benchmarks import resolve_benchmarks; print(resolve_benchmarks('all'))"
"""

from __future__ import annotations

from benchmarks.arith_spec import ARITH, ARITH_WORD
from benchmarks.paper import PAPER_BENCHMARKS
from benchmarks.registry import BENCHMARKS
from benchmarks.spec import BenchmarkSpec, Problem, paper_prompt
from common.errors import HarnessError

__all__ = ["BENCHMARKS", "BenchmarkSpec", "Problem", "get_benchmark", "paper_prompt",
           "resolve_benchmarks", "ALL"]

for _spec in (*PAPER_BENCHMARKS, ARITH, ARITH_WORD):
    BENCHMARKS.register(_spec.name, _spec)

ALL = ("math500", "minerva_math", "olympiadbench")  # what --bench all means (PRL's three sets)


def get_benchmark(name: str) -> BenchmarkSpec:
    return BENCHMARKS.get(name)


def resolve_benchmarks(spec: str) -> tuple[str, ...]:
    """``"all"`` -> PRL's three sets; ``"a,b"`` -> validated names, duplicates dropped, order kept."""
    if not isinstance(spec, str) or not spec.strip():
        raise HarnessError(f"--bench must be 'all' or a comma list of: {', '.join(BENCHMARKS.names())} "
                           f"(got {spec!r})")
    names: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise HarnessError(f"--bench has an empty name in {spec!r}; use 'all' or a comma list "
                               f"of: {', '.join(BENCHMARKS.names())}")
        for name in ALL if part == "all" else (part,):
            BENCHMARKS.get(name)  # unknown -> HarnessError listing the names
            if name not in names:
                names.append(name)
    return tuple(names)
