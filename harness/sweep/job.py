"""The callable submitit pickles for each run (``submitit-local`` and ``slurm`` launchers)."""

from __future__ import annotations

from submitit.helpers import Checkpointable

from harness.sweep.worker import run_job


class SweepJob(Checkpointable):
    """:func:`harness.sweep.worker.run_job` as a ``Checkpointable``: a SLURM job that is preempted or reaches its
    time limit is requeued by submitit (up to 3 time-outs) with the same spec, and the requeued job resumes the run
    from its ``checkpoint/last/`` (whether to resume is decided when a job starts)."""

    def __call__(self, spec: dict) -> int:
        return run_job(spec)
