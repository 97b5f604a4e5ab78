"""Where the runs of a sweep execute: ``local`` (one after another, each a subprocess of the sweep), ``submitit-local``
(submitit's ``LocalExecutor``: separate processes on this machine, ``--max-parallel K`` at a time) and ``slurm``
(submitit's ``SlurmExecutor``: one job array for every run still to do, ``%K`` at a time).

The SLURM resources come from ``--slurm.*`` flags (:class:`SlurmOptions`); a run with ``--devices N`` /
``--num-nodes M`` becomes a job of M nodes x N tasks, one rank per task (Lightning reads the SLURM environment, as
with ``srun python -m harness run ...``). submitit's own files (pickled specs, sbatch scripts, result pickles) live
in ``results/<sweep>/submitit/``; the runs' output goes to their own ``logs/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import HarnessError
from harness.config import build_config
from harness.sweep.job import SweepJob

LAUNCHERS = ("local", "submitit-local", "slurm")
REPO = str(Path(__file__).resolve().parents[2])
# sbatch options submitit sets itself; --slurm.extra may not replace them
_RESERVED_EXTRA = {"array", "output", "error", "open-mode", "signal", "wckey"}
_EXTRA_KEY = re.compile(r"^[a-z][a-z0-9-]*$")
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


@dataclass
class SlurmOptions:
    """The ``--slurm.*`` flags. ``time`` is in minutes; ``extra`` holds further sbatch options (``key: value``)."""

    partition: str | None = None
    gpus_per_node: int | None = None
    nodes: int | None = None
    time: int | None = None
    account: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def parse_slurm_time(text: str) -> int:
    """sbatch's time formats -> minutes: ``MIN``, ``MIN:SS``, ``H:MM:SS``, ``D-H``, ``D-H:MM``, ``D-H:MM:SS``."""
    m = _TIME.match(str(text).strip())
    if not m or int(m.group(2)) < 0:
        raise HarnessError(f"--slurm.time {text!r} is not a time: use minutes (120), H:MM:SS (2:00:00) or "
                           "D-H:MM:SS (1-12:00:00)")
    d, a, b, c = (int(g) if g else None for g in m.groups())
    if d is None:  # MIN, MIN:SS or H:MM:SS
        minutes = a if b is None else (a + (b > 0) if c is None else a * 60 + b + (c > 0))
    else:  # D-H, D-H:MM, D-H:MM:SS
        minutes = d * 1440 + a * 60 + (b or 0) + bool(c)
    if minutes < 1:
        raise HarnessError(f"--slurm.time {text!r} must be at least one minute")
    return minutes


def parse_extra(specs: list[str]) -> dict[str, str]:
    """``["qos=high", "mem=64G"]`` -> ``{"qos": "high", "mem": "64G"}`` (written as ``#SBATCH --qos=high``)."""
    out: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        key = key.strip().removeprefix("--").replace("_", "-")
        if not sep or not _EXTRA_KEY.match(key) or not value.strip():
            raise HarnessError(f"--slurm.extra {spec!r} must look like key=value with an sbatch option name, "
                               "e.g. qos=high or cpus-per-task=8")
        if key in _RESERVED_EXTRA:
            raise HarnessError(f"--slurm.extra cannot set {key!r}: the sweep sets it itself")
        out[key] = value.strip()
    return out


def _run_resources(plan) -> tuple[int, int]:
    """(devices, nodes) shared by every run: one job array means one set of resources."""

    seen = {}
    for r in plan.runs:
        cfg = build_config(plan.yaml_data, r.overrides)
        seen.setdefault((int(cfg.trainer.devices), int(cfg.trainer.num_nodes)), r.name)
    if len(seen) > 1:
        raise HarnessError("--launcher slurm submits one job array, so every run needs the same trainer.devices and "
                           f"trainer.num_nodes; these differ: {', '.join(f'{v} {k}' for k, v in seen.items())}")
    return next(iter(seen))


def slurm_parameters(plan, opts: SlurmOptions, max_parallel: int | None) -> dict:
    """submitit ``update_parameters`` for the job array of ``plan`` (validated; nothing is submitted)."""
    devices, num_nodes = _run_resources(plan)
    if opts.nodes is not None and opts.nodes != num_nodes:
        raise HarnessError(f"--slurm.nodes {opts.nodes} differs from the runs' trainer.num_nodes {num_nodes}: "
                           f"pass --num-nodes {opts.nodes} too (one rank per task, --devices tasks per node)")
    params = {"job_name": plan.name, "nodes": num_nodes, "ntasks_per_node": devices,
              "setup": [f"export PYTHONPATH={REPO}${{PYTHONPATH:+:$PYTHONPATH}}"],
              "additional_parameters": dict(opts.extra), "stderr_to_stdout": True}
    for key in ("partition", "gpus_per_node", "time", "account"):
        if getattr(opts, key) is not None:
            params[key] = getattr(opts, key)
    if max_parallel:
        params["array_parallelism"] = max_parallel
    return params


def sbatch_script(plan, opts: SlurmOptions, n_jobs: int, max_parallel: int | None) -> str:
    """The sbatch script submitit would submit for ``n_jobs`` runs (for ``--dry-run``; uses submitit's renderer)."""
    from submitit.slurm.slurm import _make_sbatch_string

    folder = plan.sweep_dir / "submitit"
    command = f"{sys.executable} -u -m submitit.core._submit {folder}"
    return _make_sbatch_string(command=command, folder=folder, map_count=n_jobs if n_jobs > 1 else None,
                               **slurm_parameters(plan, opts, max_parallel))


@contextlib.contextmanager
def _importable():
    """Child processes started now can import this harness (LocalExecutor copies os.environ when it starts one)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, old) if p)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def make_executor(launcher: str, plan, *, slurm: SlurmOptions | None = None, max_parallel: int | None = None):
    """A configured submitit executor for ``launcher`` (``submitit-local`` or ``slurm``)."""
    import submitit

    folder = plan.sweep_dir / "submitit"
    if launcher == "submitit-local":
        ex = submitit.LocalExecutor(folder=folder)
        # submitit-local's default time limit is 2 minutes; a run here has none (a year)
        ex.update_parameters(timeout_min=525_600, stderr_to_stdout=True)
        return ex
    try:
        ex = submitit.SlurmExecutor(folder=folder)
    except RuntimeError as err:  # no srun on PATH
        raise HarnessError(f"--launcher slurm: {err} (use --dry-run to see the sbatch script here)") from None
    ex.update_parameters(**slurm_parameters(plan, slurm or SlurmOptions(), max_parallel))
    return ex


def submit(executor, specs: list[dict]) -> list:
    """Submit one job per spec (on SLURM: one job array); returns submitit jobs in the same order."""

    with _importable():
        return executor.map_array(SweepJob(), specs)
