"""Result files: atomic writes, JSONL logs, and run-directory resolution.

Every file a run writes goes through :mod:`common.atomic` (a temp file + ``os.replace``) so that a crash never leaves a
half-written config, summary or table behind; JSONL logs are appended line by line and a torn last
line (from a crash mid-write) is dropped when read back. The layout of a run directory is
documented in ``results/README.md``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

from common.atomic import atomic_write_text  # noqa: F401  (re-exported: the run files' writer)
from common.errors import HarnessError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=,+-]{0,127}$")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append records, one JSON object per line, and flush them to disk.

    Lone surrogates (text decoded with ``errors="surrogateescape"``) cannot be encoded as UTF-8; they
    are written as JSON ``\\udcXX`` escapes, so the file stays valid UTF-8 and reads back unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """Read a JSONL log written by :func:`append_jsonl`.

    A last line without a trailing newline is a torn write from a crash: it is dropped (and, with
    ``repair=True``, cut from the file so later appends start on a clean line).
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if repair and end < len(raw):
        with open(path, "r+b") as f:
            f.truncate(end)
    return [json.loads(line) for line in raw[:end].decode("utf-8").split("\n") if line.strip()]


def validate_run_name(name: str) -> str:
    """A run name is one path component: letters, digits and ``._=,+-``; no ``/``, ``..`` or absolute paths."""
    if not _NAME_RE.match(name) or name in (".", "..") or ".." in name:
        raise HarnessError(
            f"invalid run name {name!r}: use 1-128 letters, digits or '._=,+-', starting with a "
            "letter or digit (no '/', '..' or absolute paths)")
    return name


def prepare_run_dir(results_dir: str | os.PathLike, name: str, *, overwrite: bool = False,
                    resume: bool = False, create: bool = True) -> Path:
    """Resolve ``results_dir/name`` and check it against ``overwrite`` / ``resume``.

    With ``create=False`` nothing is touched on disk (used to validate before any work starts);
    call again with ``create=True`` once all input has been validated.
    """
    run_dir = Path(results_dir) / validate_run_name(name)
    root = Path(results_dir)
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise HarnessError(f"results directory {str(root)!r} is not a folder ({existing} is a file)")
    if run_dir.exists() and not run_dir.is_dir():
        raise HarnessError(f"run directory {run_dir} exists and is not a folder")
    if run_dir.exists() and any(p.name != "logs" for p in run_dir.iterdir()):  # a sweep job's logs/ come first
        if not (overwrite or resume):
            raise HarnessError(f"run directory {run_dir} already exists: pass --resume to continue "
                               "it or --overwrite to replace it")
    elif resume:
        raise HarnessError(f"cannot resume: run directory {run_dir} does not exist")
    if create:
        if overwrite and run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def read_run_info(run_dir: Path) -> dict:
    """A run directory's ``run.json`` ({} when it has none or it is unreadable)."""
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def run_info(name: str, *, algo: str | None, label: str, seed: int, benches, settings: dict, old: dict,
             resume: dict | None = None, **extra) -> dict:
    """``run.json`` of a starting run (``status: running``), for ``harness run`` and ``harness eval`` alike.

    ``old`` is the run.json of the run being resumed ({} otherwise): its start time and earlier resumes are kept;
    ``resume`` (e.g. ``{"from_step": 40}``) adds one entry to ``resumes``. ``extra`` keys follow the common ones.
    """
    info = {"name": name, "algo": algo, "label": label, "seed": seed, "status": "running", "benches": list(benches),
            "settings": dict(settings), **extra, "started": old.get("started", time.time())}
    if resume is not None:
        info["resumes"] = old.get("resumes", []) + [{"time": time.time(), **resume}]
    return info


def refuse_changed(run_dir: Path, what: str, saved: dict, now: dict, *, show: int = 5) -> None:
    """Refuse to resume ``run_dir`` when a key both ``saved`` and ``now`` hold has changed (a key newer than the
    run keeps its default); the one-line error says ``what`` ("its config differs") and the first ``show`` changes."""
    diff = [f"{k} ({saved[k]!r} -> {now[k]!r})" for k in sorted(set(saved) & set(now)) if saved[k] != now[k]]
    if diff:
        raise HarnessError(f"cannot resume {run_dir}: {what} in {', '.join(diff[:show])}"
                           f"{' ...' if len(diff) > show else ''}; resume with the same settings or use --overwrite")
