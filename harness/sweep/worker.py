"""One run of a sweep, in whichever process a launcher gives it.

A run spec is a JSON-able dict: ``config`` (YAML sections), ``overrides`` (everything else ``build_config`` needs),
``label`` and ``settings`` (for ``run.json``), the redo flag (``resume``/``overwrite``, or None to decide when the job
starts), and for jobs ``run_dir``, ``lock``, ``log`` (a file to send stdout/stderr to) and ``cwd``.

- ``local``: ``python -m harness.sweep SPEC_JSON`` (:func:`worker_main`), output appended to ``<run>/logs/local.log``;
- ``submitit-local`` / ``slurm``: submitit pickles :func:`run_job` with the spec and runs it in the job's process;
  output goes to ``<run>/logs/<launcher>-<job id>.log`` (per rank ``...-rank<R>.log`` for multi-task jobs).

Before training, the job takes the run lock (``results/<sweep>/locks/<run>.lock``): a second job of the same setting
exits at once with code 3, so one setting never trains twice at once, whatever started it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common.errors import HarnessError
from harness.config import build_config
from harness.sweep.manifest import LOGS, STATUS_HINT, hold_lock, run_status
from harness.train.flow import run as train_run

# How a run directory left unfinished by an earlier invocation is redone: "overwrite" (start it again) or "resume"
# (continue from its checkpoint/last, keeping a complete base evaluation; harness.train.flow.run).
# The only line to change.
REDO_UNFINISHED = "resume"
def execute_spec(spec: dict) -> None:
    """Build the run's config and train it."""

    cfg = build_config(spec["config"], spec["overrides"])
    train_run(cfg, overwrite=bool(spec.get("overwrite")), resume=bool(spec.get("resume")),
              label=spec["label"], settings=spec["settings"])


def _redo(spec: dict) -> dict:
    """Set the redo flags from the run directory as it is now (a job may start long after it was submitted).

    The job's own ``logs/`` folder is not part of the run (``run_status`` and ``prepare_run_dir`` ignore it), so
    ``overwrite`` keeps the logs of earlier attempts."""
    run_dir = Path(spec["run_dir"])
    unfinished = run_status(run_dir) != "absent"
    if unfinished and REDO_UNFINISHED == "overwrite":
        for p in run_dir.iterdir():
            if p.name != LOGS:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        unfinished = False
    return {**spec, "overwrite": False, "resume": unfinished}


def _rank() -> int:
    """This task's global rank in a multi-task submitit job (0 otherwise); exported as RANK for harness.train.flow."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        os.environ.setdefault("RANK", os.environ["SLURM_PROCID"])
        return int(os.environ["SLURM_PROCID"])
    return 0


@contextlib.contextmanager
def _redirect(path: str | None):
    """Send this process's stdout/stderr (file descriptors 1 and 2, so child output too) to ``path``."""
    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} attempt (pid {os.getpid()}) ====\n")
        log.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _job_log(spec: dict, rank: int) -> str | None:
    """``<run>/logs/<launcher>-<job id>[-rank<R>].log`` inside a submitit job (None outside one)."""
    if not spec.get("run_dir") or not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    import submitit

    launcher = {"local": "submitit-local"}.get(os.environ["SUBMITIT_EXECUTOR"], os.environ["SUBMITIT_EXECUTOR"])
    name = f"{launcher}-{submitit.JobEnvironment().job_id}" + (f"-rank{rank}" if rank else "")
    return str(Path(spec["run_dir"]) / LOGS / f"{name}.log")


def run_job(spec: dict) -> int:
    """Train one run of a sweep as a launcher's job; returns the exit code (0 finished, 2 user error, 3 busy).

    Other exceptions (bugs) propagate, so submitit records the job as failed with the traceback in its log."""

    if spec.get("cwd"):
        os.chdir(spec["cwd"])
    rank = _rank()
    log = spec["log"] if "log" in spec else _job_log(spec, rank)  # local: the runner already logs
    with _redirect(log):
        level = os.environ.get("HARNESS_LOG", "WARNING")
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        for name in ("lightning.pytorch", "lightning.fabric"):  # as harness.cli: no hardware/tip banners
            logging.getLogger(name).setLevel(level)
        try:
            lock = hold_lock(Path(spec["lock"]), f"run {Path(spec['run_dir']).name}", STATUS_HINT) if (
                spec.get("lock") and rank == 0) else contextlib.nullcontext()
            with lock:
                execute_spec(_redo(spec) if spec.get("run_dir") else spec)
        except HarnessError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            return err.exit_code
    return 0


def subprocess_runner(spec: dict, log_path: Path) -> int:
    """The ``local`` launcher: ``python -m harness.sweep SPEC`` with stdout/stderr appended to ``log_path``."""
    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} attempt ====\n")
        log.flush()
        return subprocess.run([sys.executable, "-m", "harness.sweep", json.dumps(spec)], stdout=log,
                              stderr=subprocess.STDOUT, env=env).returncode


def inprocess_runner(spec: dict, log_path: Path) -> int:
    """``--in-process``: run the spec in this process (output not redirected); a user error is a failed run."""
    return run_job({**spec, "log": None, "cwd": None})


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m harness.sweep RUN_SPEC_JSON``: train one run of a sweep (the sweep starts this itself)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.sweep RUN_SPEC_JSON (started by `python -m harness sweep`)", file=sys.stderr)
        return 2
    return run_job(json.loads(argv[0]))
