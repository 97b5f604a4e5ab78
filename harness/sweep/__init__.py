"""Sweeps: the cartesian product of grid settings x seeds, each an ordinary run directory (issues 4 and 16).

    python -m harness sweep --algo prl --grid algo.eta=10,100,1000 --grid algo.entropy_coef=0,0.001 \\
        --seeds 0,1,2 --bench arith --steps 50 --name prl-eta [--launcher local|submitit-local|slurm]
    python -m harness sweep --status prl-eta
    python -m harness table results/prl-eta --baseline "prl eta=100 entropy_coef=0" --out results/prl-eta/report

A sweep directory holds ``sweep.json`` (the manifest), ``runs/<run>/`` (one run directory per setting and seed,
with its job logs), ``locks/`` and ``report/``: ``results/README.md`` ("Sweeps") describes every file.

Modules: :mod:`.plan` (grid, seeds, names, validation; writes nothing), :mod:`.manifest` (sweep.json, run states,
locks), :mod:`.launchers` (local, submitit-local, slurm), :mod:`.worker` (one run in its process), :mod:`.driver`
(:func:`run_sweep`), :mod:`.status` (``--status``).

May import: :mod:`harness.train` (a run in-process), :mod:`harness.config`, :mod:`harness.results`, the engines
registry, :mod:`benchmarks`, :mod:`common`.

Each run executes in its own process because (1) Lightning's multi-device launcher re-executes the current command
for each rank, which must be a single run, not the whole sweep; (2) vLLM and CUDA memory is only reliably released
when the process exits; (3) a crash or OOM-kill of one run must not end the sweep. ``--in-process`` runs them in the
sweep's own process instead (``local`` launcher; faster start-up, handy for debugging and small CPU sweeps).
"""

from harness.sweep.driver import run_spec, run_sweep
from harness.sweep.manifest import MANIFEST, SCHEMA_VERSION, run_status
from harness.sweep.plan import (PlannedRun, SweepPlan, check_inputs, default_sweep_name, parse_grid, parse_seeds,
                                plan_sweep, run_name)
from harness.sweep.worker import REDO_UNFINISHED, execute_spec, inprocess_runner, subprocess_runner, worker_main

__all__ = ["MANIFEST", "SCHEMA_VERSION", "REDO_UNFINISHED", "PlannedRun", "SweepPlan", "check_inputs",
           "default_sweep_name", "execute_spec", "inprocess_runner", "parse_grid", "parse_seeds", "plan_sweep",
           "run_name", "run_spec", "run_status", "run_sweep", "subprocess_runner", "worker_main"]
