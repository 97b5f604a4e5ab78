"""The sweep manifest ``results/<sweep>/sweep.json``, run states, and the locks that keep a setting from running twice.

A run's state is decided from the run directory first (``run.json`` ``finished``), then from whether something is
running it now: the run lock ``results/<sweep>/locks/<run>.lock`` (an ``flock`` held by the process training it,
released by the kernel when that process dies, holding its pid) or, for a job not started yet, the scheduler (SLURM's
``sacct`` through submitit; a submitit-local job's controller process). The manifest records what was asked for and
each attempt (launcher, job id, state, exit code); the run directories stay the source of truth.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from common.errors import HarnessError
from common.locks import BUSY_EXIT, Busy, hold_lock, lock_holder  # noqa: F401  (re-exported for the sweep)
from harness.results import atomic_write_json

STATUS_HINT = ", or check with `harness sweep --status`"

MANIFEST = "sweep.json"
SCHEMA_VERSION = 2
LOGS = "logs"                       # <run>/logs/: the job logs; not part of the run's own results


SLURM_ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "READY")


def run_status(run_dir: Path) -> str:
    """``finished`` / ``unfinished`` (anything besides ``logs/`` there, any other status) / ``absent``."""
    if not run_dir.is_dir() or not any(p.name != LOGS for p in run_dir.iterdir()):
        return "absent"
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unfinished"
    return "finished" if isinstance(info, dict) and info.get("status") == "finished" else "unfinished"


# --------------------------------------------------------------------------------------------------------------------
# locks


def lock_path(sweep_dir: Path, run: str) -> Path:
    return sweep_dir / "locks" / f"{run}.lock"


# --------------------------------------------------------------------------------------------------------------------
# live job state


def _local_controller_alive(job_id: str) -> bool:
    """A submitit-local job's id is its controller's pid: alive and still a submitit controller (pids are reused)."""
    try:
        cmd = Path(f"/proc/{int(job_id)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"submitit" in cmd


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """``{job id: sacct state}`` in one ``sacct`` call (submitit's watcher); UNKNOWN where sacct cannot tell."""
    if not job_ids:
        return {}
    from submitit.slurm.slurm import SlurmInfoWatcher

    watcher = SlurmInfoWatcher(delay_s=0)
    for j in job_ids:
        watcher.register_job(j)
    watcher.update()
    return {j: watcher.get_state(j, mode="cache").split()[0].upper() for j in job_ids}


def live_states(sweep_dir: Path, entries: list[dict]) -> dict[str, str]:
    """``{run name: state}`` for the runs something is running or about to run now: ``running (pid N)`` (the run
    lock is held), ``queued (job J)`` (a submitit-local controller that has not taken the lock yet) or the SLURM state
    (``PENDING``/``RUNNING``/...; ``UNKNOWN`` when sacct cannot tell, which counts as live)."""
    out: dict[str, str] = {}
    slurm = {}
    for e in entries:
        pid = lock_holder(lock_path(sweep_dir, e["name"]))
        job = e.get("job_id")
        if pid is not None:
            out[e["name"]] = f"running (pid {pid})"
        elif job and e.get("launcher") == "submitit-local" and e.get("status") in ("submitted", "running"):
            if _local_controller_alive(job):
                out[e["name"]] = f"queued (job {job})"
        elif job and e.get("launcher") == "slurm" and e.get("status") in ("submitted", "running"):
            slurm[e["name"]] = job
    states = slurm_states(sorted(set(slurm.values()))) if slurm else {}
    for name, job in slurm.items():
        if states.get(job, "UNKNOWN") in SLURM_ACTIVE + ("UNKNOWN",):
            out[name] = states.get(job, "UNKNOWN")
    return out


# --------------------------------------------------------------------------------------------------------------------
# the manifest


def read_manifest(sweep_dir: Path) -> dict:
    path = sweep_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{sweep_dir} is not a sweep (no {MANIFEST})") from None
    except ValueError as err:
        raise HarnessError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise HarnessError(f"{path}: not a sweep manifest (no 'runs' list)")
    return data


def _describe_change(key: str, old, new) -> str:
    """One-line description of how a manifest field differs, e.g. ``run overrides (-train.steps=1 +train.steps=2)``."""
    if key == "base_overrides" and isinstance(old, list):
        change = [f"-{o}" for o in old if o not in new] + [f"+{o}" for o in new if o not in old]
        return f"run flags/overrides ({' '.join(change) or 'order changed'})"
    if key == "grid" and isinstance(old, dict):
        fmt = lambda g: " ".join(f"{k}={','.join(map(str, v))}" for k, v in g.items()) or "(none)"  # noqa: E731
        return f"grid (was {fmt(old)}, now {fmt(new)})"
    return "--config file contents" if key == "config" else key


def check_existing(plan, overwrite: bool) -> dict:
    """The previous manifest of this sweep ({} for a new sweep); refuses a different sweep under the same name.

    With ``overwrite`` the sweep directory is deleted first (refused while one of its runs is running).

    Raises:
        HarnessError: the directory holds a different sweep or something that is not a sweep, and not ``overwrite``.
    """
    sweep_dir, mpath = plan.sweep_dir, plan.sweep_dir / MANIFEST
    if overwrite:
        if sweep_dir.exists():
            busy = [p.stem for p in (sweep_dir / "locks").glob("*.lock") if lock_holder(p)]
            if busy:
                what = "another `harness sweep` is driving it" if busy[0] == "_driver" else f"run {busy[0]} is running"
                raise HarnessError(f"cannot --overwrite {sweep_dir}: {what}")
            shutil.rmtree(sweep_dir)
        return {}
    if mpath.is_file():
        try:
            old = json.loads(mpath.read_text(encoding="utf-8"))
        except ValueError as err:
            raise HarnessError(f"{mpath}: invalid JSON ({err}); pass --overwrite to start the sweep again") from None
        mine = json.loads(json.dumps(plan.identity(), default=str))
        diff = [_describe_change(k, old.get(k), mine[k]) for k in mine if old.get(k) != mine[k]]
        if diff:
            raise HarnessError(f"sweep {sweep_dir} already exists with a different {'; '.join(diff)}: pass "
                               "--overwrite to replace it, or choose another --name")
        return old
    if sweep_dir.is_dir() and any(p.name != "locks" for p in sweep_dir.iterdir()):
        raise HarnessError(f"{sweep_dir} already exists and is not a sweep (no {MANIFEST}): pass --overwrite to "
                           "replace it, or choose another --name")
    return {}


def new_manifest(plan, old: dict, argv: list[str] | None) -> dict:
    """This invocation's manifest: identity, seeds, and one entry per planned run (job history kept from ``old``)."""
    now = time.time()
    before = {e.get("name"): e for e in old.get("runs", []) if isinstance(e, dict)}
    manifest = {"schema_version": SCHEMA_VERSION, "name": plan.name, "created": old.get("created", now),
                "updated": now, "command": argv, **plan.identity(), "seeds": plan.seeds, "runs": []}
    for r in plan.runs:
        prev = before.get(r.name, {})
        status = prev.get("status", "pending")
        if run_status(plan.sweep_dir / "runs" / r.name) == "finished":
            status = "finished"
        elif status == "finished":  # its directory was removed or changed since
            status = "pending"
        entry = {**prev, "name": r.name, "label": r.label, "algo": r.algo, "seed": r.seed, "settings": r.settings,
                 "path": f"runs/{r.name}", "log": f"runs/{r.name}/{LOGS}", "status": status}
        entry.setdefault("attempts", [])
        manifest["runs"].append(entry)
    return manifest


def save_manifest(sweep_dir: Path, manifest: dict) -> None:
    manifest["updated"] = time.time()
    atomic_write_json(sweep_dir / MANIFEST, manifest)
