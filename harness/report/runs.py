"""Reading finished runs for tables and plots: ``run.json`` and every ``eval*/<bench>/`` of a run directory.

Everything is checked strictly (a bad file is a one-line HarnessError naming it): ``summary.json`` must hold the
metrics, ``samples.jsonl`` must list exactly the problem ids the summary's ``problem_ids_sha256`` names. The
layout is documented in ``results/README.md``.

    python -c "from harness.report.runs import load_runs; print(load_runs(['results/mini-repro'])[0][0].label)"
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from common.errors import HarnessError
from common.jsonl import read_jsonl_strict

BASE = "base"


@dataclass
class Eval:
    """One ``eval/<bench>/`` or ``eval_base/<bench>/`` directory: its summary and (problem_id, correct) records."""

    path: Path
    summary: dict
    samples: list[dict]
    samples_sha256: str = ""  # of the samples.jsonl bytes: two byte-identical evaluations have the same digest

    @property
    def n(self) -> int:
        return int(self.summary["n"])


@dataclass
class Run:
    """One run directory: ``run.json`` plus its loaded evaluations (``base`` empty without ``eval_base/``)."""

    path: Path
    info: dict
    evals: dict[str, Eval]
    base: dict[str, Eval]
    label: str = ""
    seed: object = None


# --------------------------------------------------------------------------------------------------------------------
# loading

def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: missing file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise HarnessError(f"{path}: expected a JSON object (got {type(obj).__name__})")
    return obj


def _read_samples(path: Path) -> list[dict]:
    """Strictly read ``samples.jsonl``, keeping only problem_id and correct (a bad line is an error, not dropped)."""
    if not path.is_file():
        raise HarnessError(f"{path}: missing file (needed for the significance tests)")
    out = []
    for i, rec in read_jsonl_strict(path):
        try:
            out.append({"problem_id": str(rec["problem_id"]), "correct": rec["correct"]})
        except KeyError as e:
            raise HarnessError(f"{path}:{i}: invalid sample record (KeyError: {e})") from None
    return out


def _load_eval(d: Path) -> Eval:
    summary = _read_json(d / "summary.json")
    for key in ("n", "avg@n", "pass@k", "problem_ids_sha256"):
        if key not in summary:
            raise HarnessError(f"{d / 'summary.json'}: missing key '{key}'")
    ev = Eval(d, summary, _read_samples(d / "samples.jsonl"),
              hashlib.sha256((d / "samples.jsonl").read_bytes()).hexdigest())
    ids = sorted({s["problem_id"] for s in ev.samples})
    if hashlib.sha256("\n".join(ids).encode()).hexdigest() != summary["problem_ids_sha256"]:
        raise HarnessError(f"{d}: problem ids of samples.jsonl do not match problem_ids_sha256 of summary.json")
    return ev


def sort_key(v: object) -> tuple:
    """Numbers first (numerically), then everything else as strings; for ordering swept setting values."""
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def _sweep_order(run_dir: Path) -> tuple:
    info = _read_json(run_dir / "run.json")
    settings = info.get("settings") if isinstance(info.get("settings"), dict) else {}
    return (str(info.get("algo")), tuple((k, sort_key(v)) for k, v in sorted(settings.items())),
            sort_key(info.get("seed")), run_dir.name)


def expand_dirs(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Run dirs (with ``run.json``) as given; sweep dirs expanded to their sub-dirs (or ``runs/`` sub-dirs) with one,
    ordered by (algo, settings, seed).

    Returns:
        (unique run dirs in order, warnings about skipped unfinished runs of sweeps).
    """
    runs: list[Path] = []
    warnings: list[str] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise HarnessError(f"{p}: not a directory (expected a run or sweep directory)")
        if (p / "run.json").is_file():
            found, explicit = [p], True
        else:
            subs = [c for base in (p, p / "runs") if base.is_dir() for c in sorted(base.iterdir())]
            found, explicit = sorted((c for c in subs if (c / "run.json").is_file()), key=_sweep_order), False
            if not found:
                raise HarnessError(f"{p}: no runs (no run.json in it, its sub-directories or runs/)")
        for run_dir in found:
            status = _read_json(run_dir / "run.json").get("status", "finished")
            if status != "finished":
                if explicit:
                    raise HarnessError(f"{run_dir}: run is not finished (status '{status}')")
                warnings.append(f"skipping unfinished run {run_dir} (status '{status}')")
            elif run_dir.resolve() not in {r.resolve() for r in runs}:
                runs.append(run_dir)
    if not runs:
        raise HarnessError(f"no finished runs in {', '.join(map(str, paths))}")
    return runs, warnings


def load_run(run_dir: Path) -> Run:
    """Load ``run.json`` and every ``eval/<bench>/`` (required) and ``eval_base/<bench>/`` (optional) of one run."""
    info = _read_json(run_dir / "run.json")
    benches = info.get("benches")
    if benches is None:
        benches = sorted(d.name for d in (run_dir / "eval").glob("*") if d.is_dir())
    if not isinstance(benches, list) or not benches:
        raise HarnessError(f"{run_dir / 'run.json'}: 'benches' must be a non-empty list (got {benches!r})")
    evals = {b: _load_eval(run_dir / "eval" / b) for b in benches}
    base = {b: _load_eval(run_dir / "eval_base" / b) for b in benches if (run_dir / "eval_base" / b).is_dir()}
    label = str(info.get("label") or info.get("algo") or run_dir.name)
    if label == BASE:
        raise HarnessError(f"{run_dir / 'run.json'}: label '{BASE}' is reserved for the base-model row")
    return Run(run_dir, info, evals, base, label, info.get("seed"))


def load_runs(paths: list[str | Path]) -> tuple[list[Run], list[str]]:
    """Expand and load runs; check that they share benchmarks, problem sets and n (else HarnessError)."""
    dirs, warnings = expand_dirs(paths)
    runs = [load_run(d) for d in dirs]
    seen: dict[tuple[str, str], Path] = {}
    for r in runs:
        key = (r.label, repr(r.seed))
        if key in seen:
            raise HarnessError(f"runs {seen[key]} and {r.path} have the same label '{r.label}' and seed {r.seed}")
        seen[key] = r.path
    return runs, warnings
