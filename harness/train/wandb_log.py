"""Weights & Biases logging: training metrics, evaluation summaries and tables.

Enabled by ``--wandb`` (``log.wandb: true``) or by setting ``log.wandb_project``. Local files are always written
first (``train/metrics.jsonl``, ``eval*/<bench>/summary.json``, ``table.csv``); wandb is an optional mirror.

Mode: ``$WANDB_MODE`` when set (online | offline | disabled | shared); otherwise ``online`` when an API key is
available (``$WANDB_API_KEY`` or a ``~/.netrc`` / ``$NETRC`` login for the wandb host) and ``offline`` when not. An
offline run lives in ``<run_dir>/wandb/offline-run-*/`` and can be uploaded later with
``wandb sync results/<run>/wandb/offline-run-*``. Sweeps put their runs in one wandb group (the sweep name).

    WANDB_MODE=offline python -m harness run --algo prl --steps 2 --wandb --log.wandb_group try
"""

from __future__ import annotations

import csv
import json
import netrc
import os
import re
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from common.errors import HarnessError
from common.rank import is_rank_zero
from harness.config import to_dict
from harness.results import atomic_write_text

DEFAULT_PROJECT = "rl-harness"
MODES = ("online", "offline", "disabled", "shared", "dryrun", "run")


class NullRun:
    """Stands in for a wandb run on non-zero ranks: every call is a no-op."""

    def log(self, data: dict, step: int | None = None) -> None:
        pass

    def finish(self, *args, **kwargs) -> None:
        pass

    @property
    def summary(self) -> dict:
        return {}


def has_api_key(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``$WANDB_API_KEY`` is set or the netrc file (``$NETRC`` or ``~/.netrc``) has a login for the host
    of ``$WANDB_BASE_URL`` (default api.wandb.ai)."""
    env = os.environ if environ is None else environ
    if env.get("WANDB_API_KEY"):
        return True
    host = urlparse(env.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        auth = netrc.netrc(env.get("NETRC") or None).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(auth and auth[2])


def wandb_mode(environ: Mapping[str, str] | None = None) -> str:
    """``$WANDB_MODE`` if set, ``disabled`` if ``$WANDB_DISABLED`` is true, else online with a key, offline without."""
    env = os.environ if environ is None else environ
    mode = (env.get("WANDB_MODE") or "").strip().lower()
    if mode:
        if mode not in MODES:
            raise HarnessError(f"WANDB_MODE must be one of {', '.join(MODES[:4])} (got {env['WANDB_MODE']!r})")
        return mode
    if str(env.get("WANDB_DISABLED", "")).strip().lower() in ("1", "true", "yes"):
        return "disabled"
    return "online" if has_api_key(env) else "offline"


def init_wandb_run(name: str, *, dir: str | os.PathLike, project: str | None = None, group: str | None = None,
                   config: dict | None = None, job_type: str = "train", tags: list[str] | tuple = ()):
    """Start a wandb run writing under ``dir/wandb/``; returns the run (``.log(dict, step=)``, ``.summary``,
    ``.finish()``).

    The run id is kept in ``dir/wandb/run_id`` so that continuing a run in the same directory continues the same
    wandb run (``resume="allow"``).
    """
    if os.environ.get("WANDB_MODE") == "":
        del os.environ["WANDB_MODE"]  # wandb itself rejects an empty WANDB_MODE
    mode = wandb_mode()
    try:
        import wandb
    except ImportError:
        raise HarnessError("wandb logging (--wandb / log.wandb_project) needs the wandb package: "
                           "pip install wandb") from None
    root = Path(dir)
    id_file = root / "wandb" / "run_id"
    (root / "wandb").mkdir(parents=True, exist_ok=True)
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    run = wandb.init(project=project or DEFAULT_PROJECT, name=name, group=group, config=config or {},
                     dir=str(root), mode=mode, job_type=job_type, tags=list(tags), id=run_id,
                     resume="allow" if run_id else None, reinit="finish_previous",
                     settings=wandb.Settings(console="off"))
    if mode != "disabled" and getattr(run, "id", None):
        atomic_write_text(id_file, f"{run.id}\n")
    return run


def init_wandb(cfg, run_dir: str | os.PathLike):
    """The wandb run of a training run: project ``log.wandb_project`` (default rl-harness), name = run name,
    group ``log.wandb_group``, config = the resolved config; a :class:`NullRun` on non-zero ranks."""

    if not is_rank_zero():
        return NullRun()
    return init_wandb_run(cfg.run_name, dir=run_dir, project=cfg.log.wandb_project, group=cfg.log.wandb_group,
                          config=to_dict(cfg), job_type="train", tags=[cfg.algo.name])


def summary_metrics(summary: dict, prefix: str = "eval") -> dict[str, float]:
    """``summary.json`` -> ``{"<prefix>/<bench>/avg@n": .., ".../pass@<k>": .., ".../maj@n": .., ...}``."""
    head = f"{prefix}/{summary.get('bench', 'bench')}"
    out = {f"{head}/{k}": summary[k] for k in ("avg@n", "maj@n", "n", "num_problems") if k in summary}
    out.update({f"{head}/pass@{k}": v for k, v in (summary.get("pass@k") or {}).items()})
    return out


def log_eval_summary(run, summary: dict, prefix: str = "eval") -> dict[str, float]:
    """Put one evaluation summary's metrics into the run's summary (the values shown in the runs table)."""
    metrics = summary_metrics(summary, prefix)
    run.summary.update(metrics)
    return metrics


def log_run_evals(run, run_dir: str | os.PathLike) -> dict[str, float]:
    """Log every ``eval_base/<bench>/summary.json`` and ``eval/<bench>/summary.json`` of a run directory: scalars
    into the run summary, and one ``eval/pass_at_k`` table (split, bench, k, pass@k) for plotting in the UI."""
    import wandb

    metrics: dict[str, float] = {}
    rows = []
    for split in ("eval_base", "eval"):
        for path in sorted(Path(run_dir, split).glob("*/summary.json")):
            summary = json.loads(path.read_text(encoding="utf-8"))
            metrics.update(log_eval_summary(run, summary, split))
            rows += [[split, summary.get("bench"), int(k), float(v)] for k, v in (summary.get("pass@k") or {}).items()]
    if rows and not isinstance(run, NullRun):
        run.log({"eval/pass_at_k": wandb.Table(columns=["split", "bench", "k", "pass@k"], data=rows)})
    return metrics


def _cell(value: str) -> Any:
    try:
        return float(value) if value.strip() else None
    except ValueError:
        return value


def _artifact(run, name: str, files: list[Path]):
    import wandb

    artifact = wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]", "-", name), type="table")
    for f in files:
        artifact.add_file(str(f))
    run.log_artifact(artifact)


def log_table(run, path: str | os.PathLike, key: str | None = None, artifact: bool = True) -> None:
    """Log a table file: a CSV as a ``wandb.Table`` (numbers as floats) and a PNG as an image, under ``key``
    (default ``table/<stem>``); with ``artifact``, also store the file as is in a ``table`` artifact (e.g. a
    table.md or table.tex, which have no live view)."""
    import wandb

    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no such table file")
    key = key or f"table/{path.stem}"
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if rows:
            run.log({key: wandb.Table(columns=rows[0], data=[[_cell(c) for c in r] for r in rows[1:]])})
    elif path.suffix == ".png":
        run.log({key: wandb.Image(str(path))})
    if artifact:
        _artifact(run, f"{getattr(run, 'name', None) or 'run'}-{path.name}", [path])


def log_table_dir(out_dir: str | os.PathLike, *, name: str | None = None, project: str | None = None,
                  group: str | None = None) -> None:
    """Log the files ``python -m harness table --out DIR`` wrote (table.csv as a wandb.Table, *.png as images, and
    all of them plus table.md / table.tex as one ``table`` artifact) as a wandb run of job type ``table`` (offline
    without an API key, under ``DIR/wandb/``)."""
    out = Path(out_dir)
    files = sorted(p for p in out.iterdir() if p.suffix in (".csv", ".png", ".md", ".tex")) if out.is_dir() else []
    if not files:
        raise HarnessError(f"{out}: no table files (table.csv, *.png, table.md, table.tex) to log")
    run = init_wandb_run(name or f"table-{out.resolve().name}", dir=out, project=project, group=group,
                         job_type="table")
    for p in files:
        if p.suffix in (".csv", ".png"):
            log_table(run, p, artifact=False)
    _artifact(run, f"{run.name or 'table'}-files", files)
    run.finish()
