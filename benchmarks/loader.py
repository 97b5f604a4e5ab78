"""Benchmark data resolution and validation.

Where the rows come from, in order:

1. the ``data_dir`` argument (``--data-dir``), else the ``HARNESS_DATA_DIR`` environment variable:
   a folder holding ``<name>/test.jsonl`` (CI and the tests point it at ``../shared/benchmarks``);
2. else ``../shared/benchmarks`` beside the project root, or beside the working directory, when
   that folder exists (:func:`default_data_dirs`);
3. else the Hugging Face Hub, ``datasets.load_dataset(spec.hub_id, spec.hub_config, split=...)``.
   Without a network (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set: only the local hub cache is
   read; otherwise a 3-second connection check of the hub endpoint) the hub is not retried: one
   line says how to provide the data;
4. else a :class:`HarnessError` saying how to provide the data.

A local file is first validated line by line here, so that every problem is reported as one line
with file and line number (non-UTF-8 bytes, invalid JSON, a non-object row, a missing or mistyped
field, an empty gold answer, a duplicate id, an empty file, a wrong row count), and then loaded
through ``datasets.load_dataset("json", ...)`` like any other dataset. Hub rows go through the
same checks, reported as ``hub:<id>:row <i>``.

    python -c "from benchmarks.loader import validate_jsonl; from benchmarks import get_benchmark as g; \
print(len(validate_jsonl(g('minerva_math'), '../shared/benchmarks/minerva_math/test.jsonl')))"
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from benchmarks.problem import Problem, RowError, typename
from common.errors import HarnessError
from common.jsonl import read_jsonl_strict

if TYPE_CHECKING:
    from benchmarks.spec import BenchmarkSpec

DATA_ENV = "HARNESS_DATA_DIR"


def default_data_dirs() -> list[Path]:
    """``../shared/benchmarks`` relative to the project root and to the working directory."""
    root = Path(__file__).resolve().parents[1]
    return [root.parent / "shared" / "benchmarks", Path.cwd().parent / "shared" / "benchmarks"]


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The data directory from the argument, ``$HARNESS_DATA_DIR`` or an existing default folder
    (:func:`default_data_dirs`); None means "use the hub"."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_ENV) or None
    if chosen is None:
        return next((d for d in default_data_dirs() if d.is_dir()), None)
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if data_dir not in (None, "") else DATA_ENV
        raise HarnessError(f"data directory {str(path)!r} (from {origin}) does not exist or is not "
                           "a directory; it must hold <benchmark>/test.jsonl files")
    return path


def data_source(spec: BenchmarkSpec, data_dir: str | None = None) -> str:
    root = resolve_data_dir(data_dir)
    return str(root / spec.local_file) if root is not None else f"hub:{spec.hub_id}"


def load_problems(spec: BenchmarkSpec, data_dir: str | None = None,
                  limit: int | None = None) -> list[Problem]:
    """Validated problems of ``spec`` (see the module docstring for the resolution order).

    Args:
        spec: the benchmark.
        data_dir: folder holding ``<name>/test.jsonl``; None falls back to ``$HARNESS_DATA_DIR``.
        limit: keep only the first ``limit`` problems (after validating the whole file).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise HarnessError(f"limit must be a positive integer (got {limit!r})")
    root = resolve_data_dir(data_dir)
    if root is not None:
        path = root / spec.local_file
        if not path.is_file():
            raise HarnessError(f"{path}: benchmark file for {spec.name!r} not found (the data "
                               f"directory must hold {spec.local_file})")
        problems = validate_jsonl(spec, path)
    else:
        rows = _load_dataset(spec, spec.hub_id, spec.hub_config, split=spec.hub_split)
        problems = check_rows(spec, ((i + 1, row) for i, row in enumerate(rows)), f"hub:{spec.hub_id}",
                              unit="row")
    return problems[:limit] if limit is not None else problems


def _load_dataset(spec: BenchmarkSpec, *args, **kwargs) -> list[dict]:
    hint = (f"pass --data-dir or set {DATA_ENV} to a folder holding {spec.local_file} "
            "(e.g. ../shared/benchmarks)")
    if args[0] is None:
        raise HarnessError(f"benchmark {spec.name!r} has no hub dataset and no data directory "
                           f"was given: {hint}")
    if args[0] != "json" and not hub_reachable():
        raise HarnessError(f"cannot load benchmark {spec.name!r} from the hub ({args[0]!r}): no network "
                           f"({hub_endpoint()} unreachable; set HF_HUB_OFFLINE=1 to read a local hub "
                           f"cache); {hint}")
    import datasets
    from datasets.utils import logging as ds_logging

    bars_were_on = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()   # no "Generating train split" bars for small test files
    try:
        ds = datasets.load_dataset(*args, **kwargs)
    except Exception as err:  # no network, unknown dataset, cache problems, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise HarnessError(f"cannot load benchmark {spec.name!r} from {args[0]!r} "
                           f"({type(err).__name__}: {first[:200]}); {hint}") from None
    finally:
        if bars_were_on:
            ds_logging.enable_progress_bar()
    return [dict(row) for row in ds]


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when the hub endpoint does not answer an HTTP request within ``timeout`` s (the name
    lookup included); True when offline mode is set (``datasets`` then reads its local cache and
    never touches the network)."""
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
           for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return True

    ok = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(hub_endpoint(), method="HEAD"), timeout=timeout)
            ok.append(True)
        except urllib.error.HTTPError:   # the hub answered (any status): the network is there
            ok.append(True)
        except (OSError, ValueError):
            pass

    t = threading.Thread(target=probe, daemon=True)   # getaddrinfo ignores socket timeouts
    t.start()
    t.join(timeout)
    return bool(ok)


def validate_jsonl(spec: BenchmarkSpec, path: str | os.PathLike) -> list[Problem]:
    """Check a local JSONL file line by line; raises a one-line HarnessError naming file:line."""
    rows = read_jsonl_strict(path, blank_lines=False, objects=False,
                             empty=f" (expected {spec.n_expected or 'some'} rows of {spec.name})")
    return check_rows(spec, rows, str(path), unit="line")


def check_rows(spec: BenchmarkSpec, rows: Iterable[tuple[int, object]], where: str,
               unit: str = "line") -> list[Problem]:
    """Map (number, row) pairs to Problems, checking fields, gold answers, ids and the row count."""
    def at(num: int) -> str:
        return f"{where}:{num}" if unit == "line" else f"{where}: row {num}"

    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    for num, row in rows:
        if not isinstance(row, dict):
            raise HarnessError(f"{at(num)}: expected a JSON object, got {type(row).__name__}")
        for key, types in spec.fields.items():
            if key not in row:
                raise HarnessError(f"{at(num)}: missing field {key!r} (required for {spec.name}: "
                                   f"{', '.join(spec.fields)})")
            value = row[key]
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok:
                raise HarnessError(f"{at(num)}: field {key!r} must be {typename(types)} "
                                   f"(got {type(value).__name__})")
        try:
            prob = spec.to_problem(row)
        except RowError as err:
            raise HarnessError(f"{at(num)}: {err}") from None
        if not prob.answer.strip():
            raise HarnessError(f"{at(num)}: empty gold answer (id {prob.id!r})")
        if not prob.problem.strip():
            raise HarnessError(f"{at(num)}: empty problem text (id {prob.id!r})")
        if prob.id in first_seen:
            raise HarnessError(f"{at(num)}: duplicate id {prob.id!r} (first at {unit} "
                               f"{first_seen[prob.id]})")
        first_seen[prob.id] = num
        problems.append(prob)
    if not problems:
        raise HarnessError(f"{where}: no rows (expected {spec.n_expected or 'some'} rows of {spec.name})")
    if spec.n_expected is not None and len(problems) != spec.n_expected:
        raise HarnessError(f"{where}: expected {spec.n_expected} rows for {spec.name}, "
                           f"found {len(problems)}")
    return problems
