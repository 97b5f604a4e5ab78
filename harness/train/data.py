"""Training tasks for RL: sources of problems, each tagged with a registered benchmark, and their reward.

A source is indexed by (step, rank): ``batch(step, rank, world)`` returns the problems of one RL step
for one process, deterministically from the run seed. Random access (rather than a running iterator)
is what lets a resumed run pick up at exactly the same data position, and gives every DDP rank its own
shard of the step's global batch.

Every :class:`TrainProblem` names the benchmark (``bench``) whose prompt and grader it uses: the same
:class:`benchmarks.BenchmarkSpec` prompt and :class:`benchmarks.grading.Grader` options evaluation uses.
The sources are registry entries (``TRAIN_SOURCES``): ``arith`` (the built-in stream, graded as
``arith``), ``arith_word`` (its story-problem form for real instruct models) and ``file`` (a local file or hub
dataset of math problems, graded as ``math500``; ``data.problem_field`` / ``data.answer_field`` may be dotted paths
into nested objects, a chat list yields its user turn, and DAPO-Math-17k's instruction wrapper is removed:
:func:`problem_text`). Adding a training set is one class (``from_config`` and
``batch``) here or in a new module, registered under its name; ``--train-data NAME`` then selects it.

    python -c "from harness.train.data import ArithSource; print(ArithSource(0, 2).batch(0))"
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from benchmarks import get_benchmark
from benchmarks.arith import ArithConfig, _random_expr, is_test_side, make_problem
from benchmarks.arith_word import WordConfig, train_problems
from benchmarks.problem import Problem
from common.errors import HarnessError
from common.jsonl import read_jsonl_strict
from common.registry import Registry

TRAIN_SOURCES: Registry = Registry("training source")


@dataclass(frozen=True)
class TrainProblem:
    id: str
    problem: str
    answer: str
    bench: str                      # registered benchmark whose prompt and grader apply ("arith", "math500")


def prompt_of(problem: TrainProblem, tokenizer) -> str:
    """The prompt of a training problem: its benchmark's prompt, as in evaluation."""
    return get_benchmark(problem.bench).prompt(Problem(problem.id, problem.problem, problem.answer, {}), tokenizer)


class Reward:
    """Outcome reward 1/0: each problem graded by its benchmark's grading options (the evaluation grader)."""

    def __init__(self, grader) -> None:
        self.grader = grader

    def __call__(self, texts, problems, finish_reasons=None) -> list[float]:
        """``finish_reasons`` (optional, ``"stop"``/``"length"`` per text): a truncated text gets no
        last-number fallback (:mod:`benchmarks.grading` rule 5)."""
        results = self.grader.grade(list(texts), [p.answer for p in problems], [p.bench for p in problems],
                                    finish_reasons)
        return [1.0 if r.correct else 0.0 for r in results]


@TRAIN_SOURCES.register("arith")
class ArithSource:
    def __init__(self, seed: int, per_rank: int, min_ops: int = 2, max_ops: int = 2) -> None:

        self.seed, self.per_rank = seed, per_rank
        self.cfg = ArithConfig(min_ops=min_ops, max_ops=max_ops)

    @classmethod
    def from_config(cls, data_cfg, seed: int, per_rank: int) -> "ArithSource":
        return cls(seed, per_rank, data_cfg.arith_min_ops, data_cfg.arith_max_ops)

    def batch(self, step: int, rank: int = 0, world: int = 1) -> list[TrainProblem]:

        rng = random.Random(f"arith-train-{self.seed}-{step}")
        out: list[TrainProblem] = []
        while len(out) < self.per_rank * world:
            expr = _random_expr(rng, self.cfg)
            if not is_test_side(expr, self.cfg.test_modulus):
                p = make_problem(expr)
                out.append(TrainProblem(f"arith-train-{step}-{len(out)}", p.problem, p.answer, "arith"))
        return out[rank * self.per_rank:(rank + 1) * self.per_rank]


@TRAIN_SOURCES.register("arith_word")
class ArithWordSource:
    """The story problems of :mod:`benchmarks.arith_word` (a real instruct model's task), graded as ``arith_word``.

    Like :class:`ArithSource`: step ``s`` draws its global batch from ``Random("arith_word-train-{seed}-{s}")``
    and rank ``r`` takes its slice; test-side problems are rejected, so none of the fixed test split is trained on.
    """

    def __init__(self, seed: int, per_rank: int, max_steps: int = 2) -> None:

        self.seed, self.per_rank = seed, per_rank
        self.cfg = WordConfig(max_steps=max_steps)  # validates

    @classmethod
    def from_config(cls, data_cfg, seed: int, per_rank: int) -> "ArithWordSource":
        return cls(seed, per_rank, data_cfg.word_max_steps)

    def batch(self, step: int, rank: int = 0, world: int = 1) -> list[TrainProblem]:

        drawn = train_problems(f"arith_word-train-{self.seed}-{step}", self.per_rank * world, self.cfg)
        out = [TrainProblem(f"arith_word-train-{step}-{i}", p.problem, p.answer, "arith_word")
               for i, p in enumerate(drawn)]
        return out[rank * self.per_rank:(rank + 1) * self.per_rank]


@TRAIN_SOURCES.register("file")
class FileSource:
    """Math problems with gold answers from a local JSONL/parquet file or a hub dataset, graded as ``bench``.

    Epochs are seeded permutations of the rows; global sample index ``i`` of the run maps to row
    ``perm[epoch][i % N]`` with ``epoch = i // N``.
    """

    def __init__(self, source: str, seed: int, per_rank: int, *, split: str = "train",
                 problem_field: str = "problem", answer_field: str = "answer", bench: str = "math500") -> None:
        get_benchmark(bench)  # an unknown name raises HarnessError
        self.seed, self.per_rank, self.bench = seed, per_rank, bench
        self.rows = _load_rows(source, split, problem_field, answer_field)
        self._perms: dict[int, list[int]] = {}

    @classmethod
    def from_config(cls, data_cfg, seed: int, per_rank: int) -> "FileSource":
        return cls(data_cfg.train_data, seed, per_rank, split=data_cfg.train_split,
                   problem_field=data_cfg.problem_field, answer_field=data_cfg.answer_field)

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            perm = list(range(len(self.rows)))
            random.Random(f"train-perm-{self.seed}-{epoch}").shuffle(perm)
            self._perms[epoch] = perm
        return self._perms[epoch]

    def batch(self, step: int, rank: int = 0, world: int = 1) -> list[TrainProblem]:
        n = len(self.rows)
        start = (step * world + rank) * self.per_rank
        out = []
        for i in range(start, start + self.per_rank):
            j = self._perm(i // n)[i % n]
            problem, answer = self.rows[j]
            out.append(TrainProblem(f"train-{j}", problem, answer, self.bench))
        return out


def _load_rows(source: str, split: str, problem_field: str, answer_field: str) -> list[tuple[str, str]]:
    ds = _load_dataset(source, split)
    problems = [problem_text(v) for v in _field_values(ds, source, problem_field)]
    rows = []
    for i, (p, a) in enumerate(zip(problems, _field_values(ds, source, answer_field))):
        if isinstance(a, list):
            a = a[0] if a else ""
        if not isinstance(p, str) or not p.strip() or a is None or not str(a).strip():
            raise HarnessError(f"train data {source!r}: row {i + 1} has an empty problem or answer")
        rows.append((p, str(a).strip()))
    if not rows:
        raise HarnessError(f"train data {source!r} is empty")
    return rows


def _load_dataset(source: str, split: str):
    """A local .jsonl/.json/.parquet file, else a hub dataset's ``split`` (``datasets.load_dataset``)."""
    import datasets
    from datasets.utils import logging as ds_logging

    path = Path(source)
    suffix = path.suffix.lower()
    bars_were_on = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()   # no "Generating train split" bars on stderr
    try:
        if path.exists():
            if suffix not in (".jsonl", ".json", ".parquet"):
                raise HarnessError(f"train data {source!r}: expected a .jsonl, .json or .parquet file")
            if suffix in (".jsonl", ".json"):
                _check_jsonl(path)
            kind = "parquet" if suffix == ".parquet" else "json"
            return datasets.load_dataset(kind, data_files=str(path), split="train")
        if source.startswith((".", "/", "~")) or suffix in (".jsonl", ".json", ".parquet"):
            raise HarnessError(f"train data file {source!r} does not exist")
        return datasets.load_dataset(source, split=split)
    except HarnessError:
        raise
    except Exception as err:  # datasets raises many types (network, format)
        raise HarnessError(f"cannot load train data {source!r}: {str(err).splitlines()[0][:200]}") from None
    finally:
        if bars_were_on:
            ds_logging.enable_progress_bar()


def _field_values(ds, source: str, field: str) -> list:
    """Every row's value of ``field``: a column, or a dotted path into nested objects (``reward_model.ground_truth``,
    verl's layout: ``{"reward_model": {"ground_truth": "34", ...}}``)."""
    if field in ds.column_names:
        return list(ds[field])
    top, *inner = field.split(".")
    if top not in ds.column_names:
        raise HarnessError(f"train data {source!r} has no field {top!r} (fields: {', '.join(ds.column_names)}); "
                           "set data.problem_field / data.answer_field (a dotted path reads inside an object)")
    values = list(ds[top])
    for depth, key in enumerate(inner):
        for i, v in enumerate(values):
            if not isinstance(v, dict) or key not in v:
                keys = ", ".join(map(str, v)) if isinstance(v, dict) else f"a {type(v).__name__}"
                raise HarnessError(f"train data {source!r}: row {i + 1} has no field "
                                   f"{'.'.join([top, *inner[:depth + 1]])!r} (found: {keys})")
        values = [v[key] for v in values]
    return values


# DAPO-Math-17k's instruction around each problem (BytedTsinghua-SIA/DAPO-Math-17k, every row's user turn)
DAPO_PREFIX = ("Solve the following math problem step by step. The last line of your response should be of the form "
               "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n")
DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'


def problem_text(value):
    """The problem of a training row: a chat list (``[{"role": "user", "content": ...}]``) gives its last user turn's
    content; a text wrapped in exactly DAPO-Math-17k's instruction (:data:`DAPO_PREFIX` ... :data:`DAPO_SUFFIX`) gives
    the problem inside (the training prompt is the benchmark's, which asks for a ``\\boxed{}`` answer as FRPO v2
    App. G.1's does). Anything else is returned unchanged (the caller rejects what is not a non-empty string)."""
    if isinstance(value, list):
        users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        value = users[-1] if users else None
    if isinstance(value, str) and value.startswith(DAPO_PREFIX) and value.endswith(DAPO_SUFFIX):
        return value[len(DAPO_PREFIX):len(value) - len(DAPO_SUFFIX)]
    return value


def _check_jsonl(path: Path) -> None:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise HarnessError(f"{path}: not UTF-8 ({err.reason} at byte {err.start})") from None
    if path.suffix == ".jsonl":
        read_jsonl_strict(path)
    elif not path.read_text(encoding="utf-8").strip():
        raise HarnessError(f"{path}: empty file")


def build_source(data_cfg, seed: int, per_rank: int):
    """The run's training source: ``arith`` without ``data.train_data``, a registered source by name
    (``arith``, ``arith_word``, ...), else ``file`` (``data.train_data`` is a local file or hub dataset)."""
    name = data_cfg.train_data or "arith"
    if name == "file" or name not in TRAIN_SOURCES:
        name = "file"
    return TRAIN_SOURCES.get(name).from_config(data_cfg, seed, per_rank)
