"""Execute a planned sweep through a launcher, keeping the manifest up to date (see ``harness/sweep/__init__.py``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from common.errors import HarnessError
from harness.sweep.launchers import make_executor, submit
from harness.sweep.manifest import (BUSY_EXIT, LOGS, STATUS_HINT, check_existing, hold_lock, live_states, lock_holder,
                                    lock_path, new_manifest, run_status, save_manifest, slurm_states)
from harness.sweep.worker import REDO_UNFINISHED, subprocess_runner


def run_spec(plan, run, redo: bool | None) -> dict:
    """The JSON-able job description of one run (``redo`` None: decided when the job starts)."""
    run_dir = (plan.sweep_dir / "runs" / run.name).resolve()
    return {"config": plan.yaml_data, "overrides": run.overrides, "label": run.label, "settings": run.settings,
            REDO_UNFINISHED: redo, "run_dir": str(run_dir), "cwd": os.getcwd(),
            "lock": str(lock_path(plan.sweep_dir, run.name).resolve())}


def last_line(log_dir: Path) -> str:
    """The last error line (else the last line) of the newest log in ``log_dir``."""
    logs = sorted(log_dir.glob("*.log"), key=lambda p: p.stat().st_mtime) if log_dir.is_dir() else []
    try:
        lines = [ln for ln in logs[-1].read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except (OSError, IndexError):
        return ""
    errors = [ln for ln in lines if ln.startswith(("error:", "Traceback")) or "Error" in ln.split(":")[0]]
    return (errors or lines or [""])[-1][:200]


class _Sweep:
    """One invocation: the plan, its manifest, and the echo of each run's outcome."""

    def __init__(self, plan, manifest: dict, echo: Callable[[str], None]):
        self.plan, self.manifest, self.echo = plan, manifest, echo
        self.total, self.failed = len(plan.runs), 0

    def save(self) -> None:
        save_manifest(self.plan.sweep_dir, self.manifest)

    def run_dir(self, run) -> Path:
        return self.plan.sweep_dir / "runs" / run.name

    def head(self, i: int, run) -> str:
        return f"[{i}/{self.total}] {run.name}"

    def started(self, entry: dict, launcher: str, job_id: str | None) -> None:
        now = time.time()
        entry.update(status="running" if launcher == "local" else "submitted", launcher=launcher, job_id=job_id,
                     attempt_started=now, exit_code=None, job_state=None)
        entry["attempts"].append({"launcher": launcher, "job_id": job_id, "started": now})
        self.save()

    def ended(self, i: int, run, entry: dict, rc: int | None, redo: bool | None, state: str | None = None) -> None:
        ok = rc == 0 and run_status(self.run_dir(run)) == "finished"
        busy = rc == BUSY_EXIT
        t = round(time.time() - entry["attempt_started"], 1)
        entry.update(status="finished" if ok else ("running" if busy else "failed"), exit_code=rc, time_s=t,
                     job_state=state)
        entry["attempts"][-1].update(ended=time.time(), exit_code=rc, state=state)
        self.save()
        what = "" if redo is None else (" (redone)" if redo else " (ran)")
        if ok:
            self.echo(f"{self.head(i, run)}: finished{what} in {t:.0f}s")
        elif busy:
            self.echo(f"{self.head(i, run)}: already running in another process, left to it")
        else:
            self.failed += 1
            log_dir = self.run_dir(run) / LOGS
            self.echo(f"{self.head(i, run)}: FAILED (exit {rc}{', ' + state if state else ''}) after {t:.0f}s: "
                      f"{last_line(log_dir)} (logs: {log_dir})")


def _run_local(sw: _Sweep, todo: list, runner: Callable[[dict, Path], int]) -> None:
    for i, r, entry in todo:
        redo = run_status(sw.run_dir(r)) != "absent"
        sw.started(entry, "local", None)
        try:
            rc = runner({**run_spec(sw.plan, r, redo), "log": None}, sw.run_dir(r) / LOGS / "local.log")
        except BaseException:
            entry.update(status="interrupted", exit_code=None)
            sw.save()
            raise
        sw.ended(i, r, entry, rc, redo)


_FAILED_STATES = ("FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
                  "DEADLINE", "INTERRUPTED")


def _job_outcome(job) -> tuple[int | None, str]:
    """(exit code returned by run_job, or None when the job died or raised; submitit's state)."""
    state = str(job.state).split()[0].upper()
    if state in _FAILED_STATES:  # no result will come: do not wait for the result pickle
        return None, state
    if job.__class__.__name__ == "LocalJob":
        job._results_timeout_s = 1  # submitit waits 15 s for a late result pickle (NFS); this disk is local
    try:
        rc = job.result()
    except Exception:  # noqa: BLE001 - killed, crashed or cancelled: the log says why
        return None, "no result: killed or crashed" if state in ("FINISHED", "COMPLETED") else state
    return (rc if isinstance(rc, int) else None), state


def _run_submitit(sw: _Sweep, todo: list, launcher: str, *, max_parallel: int, slurm, wait: bool,
                  poll_s: float) -> bool:
    """Submit (and with ``wait`` follow) the runs of ``todo``; returns whether they are all done."""

    ex = make_executor(launcher, sw.plan, slurm=slurm, max_parallel=max_parallel)
    queue, live = list(todo), {}
    if launcher == "slurm" and queue:  # one job array for everything left to do
        jobs = submit(ex, [run_spec(sw.plan, r, None) for _, r, _ in queue])
        for (i, r, entry), job in zip(queue, jobs):
            sw.started(entry, launcher, str(job.job_id))
            live[r.name] = (i, r, entry, job)
        queue = []
        script = sorted((sw.plan.sweep_dir / "submitit").glob("*_submission.sh"), key=lambda p: p.stat().st_mtime)
        sw.echo(f"submitted {len(jobs)} run(s) to SLURM: job {str(jobs[0].job_id).split('_')[0]}"
                + (f" (array of {len(jobs)})" if len(jobs) > 1 else "") + (f"; sbatch script {script[-1]}"
                                                                           if script else ""))
        if not wait:
            return False
    try:
        while queue or live:
            while queue and len(live) < max_parallel:
                i, r, entry = queue.pop(0)
                job = submit(ex, [run_spec(sw.plan, r, None)])[0]
                sw.started(entry, launcher, str(job.job_id))
                live[r.name] = (i, r, entry, job)
            time.sleep(poll_s)
            for name, (i, r, entry, job) in list(live.items()):
                if entry["status"] == "submitted" and lock_holder(lock_path(sw.plan.sweep_dir, r.name)):
                    entry["status"] = "running"
                    sw.save()
                if job.done():
                    rc, state = _job_outcome(job)
                    sw.ended(i, r, entry, rc, None, state if rc is None else None)
                    del live[name]
    except BaseException:
        for name, (i, r, entry, job) in live.items():
            if launcher == "submitit-local":
                job.cancel(check=False)
            entry.update(status="interrupted" if launcher == "submitit-local" else entry["status"])
        sw.save()
        if launcher == "slurm" and live:
            sw.echo(f"stopped waiting; {len(live)} SLURM job(s) keep running (harness sweep --status {sw.plan.name})")
        raise
    return True


def run_sweep(plan, *, overwrite: bool = False, runner: Callable[[dict, Path], int] = subprocess_runner,
              echo: Callable[[str], None] = print, argv: list[str] | None = None, launcher: str = "local",
              max_parallel: int = 1, slurm=None, wait: bool = True, poll_s: float = 1.0) -> int:
    """Execute a planned sweep; finished runs are skipped, runs something else is running are left to it, all others
    (failed, interrupted, missing) run again. Returns the number of runs that failed.

    ``runner`` is used by the ``local`` launcher only. The ``sweep`` command then writes the report
    (:func:`harness.commands.sweep.write_report`).

    Raises:
        HarnessError: the sweep directory holds a different sweep (or something else) and not ``overwrite``; another
            ``harness sweep`` is driving this sweep now.
    """
    sweep_dir = plan.sweep_dir
    old = check_existing(plan, overwrite)
    with hold_lock(sweep_dir / "locks" / "_driver.lock", f"sweep {plan.name}", STATUS_HINT):
        manifest = new_manifest(plan, old, argv)
        sw = _Sweep(plan, manifest, echo)
        sw.save()
        entries = manifest["runs"]
        live = live_states(sweep_dir, [e for e in entries if e["status"] != "finished"])
        stale = [e for e in entries if e["status"] in ("submitted", "running") and e["name"] not in live]
        ended = slurm_states([e["job_id"] for e in stale if e.get("launcher") == "slurm" and e.get("job_id")])
        for e in stale:  # its job has ended (or its driver was killed) without the run finishing
            state = ended.get(e.get("job_id"), "UNKNOWN")
            e.update(status="failed", job_state=state if state != "UNKNOWN" else e.get("job_state"))
        sw.save()
        done = sum(e["status"] == "finished" for e in entries)
        echo(f"sweep {plan.name}: {sw.total} runs, {done} already finished, {len(live)} running elsewhere, "
             f"{sw.total - done - len(live)} to run ({launcher}) -> {sweep_dir}")
        todo = []
        for i, (r, e) in enumerate(zip(plan.runs, entries), 1):
            if e["status"] == "finished":
                echo(f"{sw.head(i, r)}: already finished, skipped")
            elif r.name in live:
                echo(f"{sw.head(i, r)}: already {live[r.name]}, left to it")
            else:
                todo.append((i, r, e))
        complete = True
        if launcher == "local":
            _run_local(sw, todo, runner)
        elif launcher in ("submitit-local", "slurm"):
            complete = _run_submitit(sw, todo, launcher, max_parallel=max(1, max_parallel), slurm=slurm, wait=wait,
                                     poll_s=poll_s)
        else:
            raise HarnessError(f"unknown launcher {launcher!r}")
    if not complete:
        echo(f"follow it with: python -m harness sweep --status {sweep_dir}; rerun the same command to resubmit "
             "failed runs")
        return 0
    n_ok = sum(e["status"] == "finished" for e in entries)
    echo(f"sweep {plan.name}: {n_ok}/{sw.total} finished" + (f", {sw.failed} failed (rerun the same command "
         "to retry them)" if sw.failed else "") + (f", {len(live)} still running elsewhere" if live else "")
         + f"; table: python -m harness table {sweep_dir}")
    return sw.failed

