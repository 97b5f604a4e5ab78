"""Command-line entry point: ``python -m harness {run,eval,grade,sweep,table,ls} ...``.

Each subcommand lives in ``harness/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``; this module only dispatches. A :class:`HarnessError` (user error) is printed
as one line ``error: ...`` and exits with code 2, with no traceback; argparse's own errors are
shortened to one line the same way. A run stopped by SIGTERM/SIGINT (:mod:`harness.stop`) prints one
``stopped: ...`` line and exits with 143 / 130.
"""

from __future__ import annotations

import argparse
import sys

from common.errors import HarnessError
from harness.commands import evaluate, grade, ls, run, sweep, table

COMMANDS = (run, evaluate, grade, sweep, table, ls)   # each adds its subparser, in this order


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message; we print one line
        raise HarnessError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="harness", description="RL fine-tuning of LLMs on math reasoning: "
                           "PRL, GRPO, RAFT/RAFT++, REINFORCE/RLOO; evaluation, sweeps and tables.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from harness.progress import setup_logging, verbosity

    setup_logging()
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        setup_logging(verbosity(args), lightning=args.command in ("run", "sweep"))
        if extra and not getattr(args, "accepts_overrides", False):
            raise HarnessError(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides_raw = extra
        return int(args.func(args) or 0)
    except HarnessError as err:
        from harness.stop import Interrupted

        print(f"{'stopped' if isinstance(err, Interrupted) else 'error'}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
