"""``harness sweep``: the cartesian product of grid settings x seeds, each an ordinary run (see harness/sweep/).

    python -m harness sweep --algo prl --grid algo.eta=10,100,1000 --grid algo.entropy_coef=0,0.001 \\
        --seeds 0,1,2 --bench arith --steps 50 --name prl-eta
    python -m harness sweep --grid algo.name=prl,grpo --seeds 0,1 --bench arith --name cmp \\
        --launcher submitit-local --max-parallel 2
    python -m harness sweep --grid algo.name=prl,grpo --seeds 0,1,2 --bench all --name cmp \\
        --model Qwen/Qwen2.5-Math-1.5B \\
        --launcher slurm --slurm.partition gpu --slurm.gpus-per-node 1 --slurm.time 4:00:00 --slurm.extra qos=high
    python -m harness sweep --status cmp
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from common.errors import HarnessError
from harness.commands import table
from harness.commands.run import FLAGS, add_common_run_flags, config_help, parse_overrides

EPILOG = """Every other run flag and --section.key VALUE override applies to every run. Runs go to
results/<name>/runs/<algo>_<key>=<value>..._s<seed>/ (logs in each run's logs/), with the manifest
results/<name>/sweep.json. Rerun the same command to finish a sweep: finished runs are skipped, runs still running
(or queued on SLURM) are left alone, failed or missing ones run again (resumed from their checkpoint). When the
sweep ends the table is printed and written with the plots to results/<name>/report/ (python -m harness table)."""


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of settings x seeds (resumable; local, submitit or SLURM)",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_run_flags(p)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a swept config key and its values (repeat for more keys; algo.name may be swept too)")
    p.add_argument("--seeds", help="comma list of run seeds (default: --seed, else 0)")
    p.add_argument("--name", help="sweep name: results/<name>/ (default sweep-<algo>-<swept keys>)")
    p.add_argument("--overwrite", action="store_true", help="delete an existing sweep of this name and start again")
    p.add_argument("--launcher", choices=("local", "submitit-local", "slurm"), default="local",
                   help="local: one run after another (default); submitit-local: --max-parallel processes on "
                        "this machine; slurm: one SLURM job array")
    p.add_argument("--max-parallel", type=int, default=None, metavar="K",
                   help="runs at once (submitit-local, default 1; slurm: the array's %%K limit)")
    p.add_argument("--wait", action="store_true", help="slurm: wait for the jobs, then print the table")
    p.add_argument("--status", metavar="NAME", help="print the state of sweep NAME (or a sweep directory) and exit")
    p.add_argument("--in-process", action="store_true",
                   help="local launcher: run every run in this process instead of one process per run")
    p.add_argument("--no-report", action="store_true", help="do not print/write the table when the sweep ends")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and list the runs (slurm: print the sbatch script), write nothing")
    g = p.add_argument_group("SLURM (--launcher slurm)")
    g.add_argument("--slurm.partition", dest="slurm_partition", metavar="NAME", help="partition (sbatch --partition)")
    g.add_argument("--slurm.gpus-per-node", dest="slurm_gpus_per_node", type=int, metavar="N", help="GPUs per node")
    g.add_argument("--slurm.nodes", dest="slurm_nodes", type=int, metavar="N",
                   help="nodes per run (must match --num-nodes; default: --num-nodes, else 1)")
    g.add_argument("--slurm.time", dest="slurm_time", metavar="TIME",
                   help="time limit per run: minutes, H:MM:SS or D-H:MM:SS")
    g.add_argument("--slurm.account", dest="slurm_account", metavar="NAME", help="account to charge (sbatch --account)")
    g.add_argument("--slurm.extra", dest="slurm_extra", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. qos=high, mem=64G, cpus-per-task=8 (repeatable)")
    p.set_defaults(func=run, accepts_overrides=True)


def base_overrides(args: argparse.Namespace) -> list[str]:
    """The run flags and ``--section.key VALUE`` overrides shared by every run of the sweep."""
    out = [f"{key}={getattr(args, flag)}" for flag, key in FLAGS.items()
           if flag not in ("name", "seed") and getattr(args, flag, None) is not None]
    if args.wandb:
        out.append("log.wandb=true")
    if getattr(args, "quiet", False):   # --quiet: no progress bars in any run
        out.append("log.progress=false")
    return out + parse_overrides(args.overrides_raw)


def _slurm_options(args: argparse.Namespace):
    from harness.sweep.launchers import SlurmOptions, parse_extra, parse_slurm_time

    given = [f for f in ("partition", "gpus_per_node", "nodes", "time", "account", "extra")
             if getattr(args, f"slurm_{f}") not in (None, [])]
    if given and args.launcher != "slurm":
        raise HarnessError(f"--slurm.{given[0].replace('_', '-')} needs --launcher slurm")
    for f in ("gpus_per_node", "nodes"):
        if getattr(args, f"slurm_{f}") is not None and getattr(args, f"slurm_{f}") < (0 if f[0] == "g" else 1):
            raise HarnessError(f"--slurm.{f.replace('_', '-')} must be >= {0 if f[0] == 'g' else 1}")
    return SlurmOptions(partition=args.slurm_partition, gpus_per_node=args.slurm_gpus_per_node,
                        nodes=args.slurm_nodes, account=args.slurm_account,
                        time=parse_slurm_time(args.slurm_time) if args.slurm_time is not None else None,
                        extra=parse_extra(args.slurm_extra))


def _check_flags(args: argparse.Namespace) -> None:
    if args.seed is not None and args.seeds is not None:
        raise HarnessError("give either --seed or --seeds, not both")
    if args.max_parallel is not None and args.max_parallel < 1:
        raise HarnessError(f"--max-parallel must be >= 1 (got {args.max_parallel})")
    if args.max_parallel is not None and args.launcher == "local":
        raise HarnessError("--max-parallel needs --launcher submitit-local or slurm (local runs one at a time)")
    if args.in_process and args.launcher != "local":
        raise HarnessError("--in-process works with --launcher local only")
    if args.wait and args.launcher != "slurm":
        raise HarnessError("--wait is for --launcher slurm (the other launchers always wait)")


def _print_plan(plan, args: argparse.Namespace, slurm) -> None:
    """``--dry-run``: the runs the sweep would start (and the sbatch script of a SLURM sweep)."""
    print(f"sweep {plan.name}: {len(plan.runs)} runs -> {plan.sweep_dir}")
    for r in plan.runs:
        print(f"  {r.name}  label={r.label!r}  settings={r.settings}")
    if args.launcher == "slurm":
        from harness.sweep.launchers import sbatch_script

        print(f"sbatch script for all {len(plan.runs)} runs:\n"
              + sbatch_script(plan, slurm, len(plan.runs), args.max_parallel))


def run(args: argparse.Namespace) -> int:
    from harness.config import load_yaml
    from harness.sweep import inprocess_runner, parse_grid, parse_seeds, plan_sweep, run_sweep, subprocess_runner

    if args.help_config:
        print(config_help())
        return 0
    if args.status is not None:
        from harness.sweep.status import find_sweep, render_status

        print(render_status(find_sweep(args.status, args.results_dir)), end="")
        return 0
    _check_flags(args)
    slurm = _slurm_options(args)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [args.seed or 0]
    plan = plan_sweep(parse_grid(args.grid), seeds, base_overrides(args),
                      load_yaml(args.config) if args.config else {}, args.name)
    if args.launcher == "slurm":
        from harness.sweep.launchers import slurm_parameters

        slurm_parameters(plan, slurm, args.max_parallel)  # validates before anything is written
        if not args.dry_run and shutil.which("sbatch") is None:
            raise HarnessError("--launcher slurm: no sbatch on PATH (run this on a SLURM login node; --dry-run "
                               "prints the sbatch script here)")
    if args.dry_run:
        _print_plan(plan, args, slurm)
        return 0
    runner = inprocess_runner if args.in_process else subprocess_runner
    from_shell = bool(sys.argv) and sys.argv[0].endswith(("harness", "__main__.py"))  # not cli.main(argv) in tests
    command = ["python", "-m", "harness", *sys.argv[1:]] if from_shell else None
    failed = run_sweep(plan, overwrite=args.overwrite, runner=runner, argv=command, launcher=args.launcher,
                       max_parallel=args.max_parallel or 1, slurm=slurm, wait=args.wait)
    waiting = args.launcher == "slurm" and not args.wait
    from harness.sweep.manifest import read_manifest

    finished = any(e["status"] == "finished" for e in read_manifest(plan.sweep_dir)["runs"])
    if finished and not waiting and not args.no_report:
        write_report(plan.sweep_dir)
    return 1 if failed else 0


def write_report(sweep_dir: Path) -> None:
    """Print the sweep's table (``harness table``) and write it with the plots to ``<sweep>/report/``."""
    from harness.sweep.manifest import LOGS

    out = sweep_dir / "report"
    print(f"files: {sweep_dir / 'sweep.json'} (manifest), {sweep_dir / 'runs'}/<run>/ (one run directory each, "
          f"logs in <run>/{LOGS}/), {out}/ (table and plots):")
    parser = argparse.ArgumentParser(prog="harness")
    table.add_parser(parser.add_subparsers())
    try:
        table.run(parser.parse_args(["table", str(sweep_dir), "--out", str(out)]))
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        print(f"(no table: see the error above; python -m harness table {sweep_dir} once it is fixed)")
