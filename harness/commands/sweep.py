"""``harness sweep``: the cartesian product of grid settings x seeds, each an ordinary run (see harness/sweep.py).

    python -m harness sweep --algo prl --grid algo.eta=10,100,1000 --grid algo.entropy_coef=0,0.001 \\
        --seeds 0,1,2 --bench arith --steps 50 --name prl-eta
    python -m harness sweep --grid algo.name=prl,grpo --seeds 0,1 --bench all --name prl-vs-grpo
"""

from __future__ import annotations

import argparse
import sys

from harness.commands.run import FLAGS, add_common_run_flags, parse_overrides
from harness.errors import HarnessError

EPILOG = """Every other run flag and --section.key VALUE override applies to every run. Runs go to
results/<name>/runs/<algo>_<key>=<value>..._s<seed>/, with the manifest results/<name>/sweep.json and one log per
run in results/<name>/logs/. Rerun the same command to finish an interrupted sweep: finished runs are skipped,
unfinished ones redone. Build the table with: python -m harness table results/<name> --out results/<name>/report"""


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of settings x seeds (resumable)", description=__doc__,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_run_flags(p)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a swept config key and its values (repeat for more keys; algo.name may be swept too)")
    p.add_argument("--seeds", help="comma list of run seeds (default: --seed, else 0)")
    p.add_argument("--name", help="sweep name: results/<name>/ (default sweep-<algo>-<swept keys>)")
    p.add_argument("--overwrite", action="store_true", help="delete an existing sweep of this name and start again")
    p.add_argument("--in-process", action="store_true",
                   help="run every run in this process instead of one process per run (single device only)")
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs, write nothing")
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


def run(args: argparse.Namespace) -> int:
    from harness.config import config_help, load_yaml
    from harness.sweep import inprocess_runner, parse_grid, parse_seeds, plan_sweep, run_sweep, subprocess_runner

    if args.help_config:
        print(config_help())
        return 0
    if args.seed is not None and args.seeds is not None:
        raise HarnessError("give either --seed or --seeds, not both")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [args.seed or 0]
    plan = plan_sweep(parse_grid(args.grid), seeds, base_overrides(args),
                      load_yaml(args.config) if args.config else {}, args.name)
    if args.dry_run:
        print(f"sweep {plan.name}: {len(plan.runs)} runs -> {plan.sweep_dir}")
        for r in plan.runs:
            print(f"  {r.name}  label={r.label!r}  settings={r.settings}")
        return 0
    runner = inprocess_runner if args.in_process else subprocess_runner
    from_shell = bool(sys.argv) and sys.argv[0].endswith(("harness", "__main__.py"))  # not cli.main(argv) in tests
    command = ["python", "-m", "harness", *sys.argv[1:]] if from_shell else None
    failed = run_sweep(plan, overwrite=args.overwrite, runner=runner, argv=command)
    return 1 if failed else 0
