"""Every ``python -m harness ...`` command line of README.md and docs/*.md parses with the real CLI.

A command line is a line that starts with ``python -m harness`` (after an optional ``$ ``), joined with the lines a
trailing backslash continues, without its trailing ``# comment``. Each must get through
``harness.cli.build_parser().parse_known_args``; for ``run``, ``sweep`` and ``eval`` the ``--section.key VALUE``
overrides left over must also be valid config keys with valid values (the same mapping of flags to keys the
commands use). Nothing is run, loaded or written.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from common.errors import HarnessError

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PREFIX = ("python", "-m", "harness")
# commands that cannot be parsed as written, each with the reason (keep this short: write concrete examples instead)
SKIP: dict[str, str] = {}
PLACEHOLDER = re.compile(r"<[A-Za-z_][\w.-]*>|\.\.\.")


def doc_commands() -> list[tuple[str, str]]:
    """``(page:line, command)`` for every command line of the pages."""
    found = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            text = lines[i].strip()
            text = text[2:].lstrip() if text.startswith("$ ") else text
            start = i
            if text.split()[:3] == list(PREFIX):
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text[:-1].rstrip() + " " + lines[i].strip()
                found.append((f"{page.relative_to(ROOT)}:{start + 1}", text))
            i += 1
    return found


COMMANDS = doc_commands()


def test_commands_found():
    where = {w.split(":")[0] for w, _ in COMMANDS}
    assert "README.md" in where and len(COMMANDS) >= 10, COMMANDS


def _argv(command: str) -> list[str]:
    tokens = shlex.split(command, comments=True)   # drops a trailing "# comment"
    assert tuple(tokens[:3]) == PREFIX
    return tokens[3:]


def _parse(where: str, command: str):
    from harness.cli import build_parser

    argv = _argv(command)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args, extra = build_parser().parse_known_args(argv)
    except SystemExit as err:   # --help exits 0 after printing; anything else is a parse failure
        if err.code == 0 and ("-h" in argv or "--help" in argv):
            return None, []
        pytest.fail(f"{where}: argparse exited with {err.code} on: {command}")
    except HarnessError as err:
        pytest.fail(f"{where}: does not parse: {command}\n  {err}")
    return args, extra


def _check_config(where: str, command: str, args: argparse.Namespace, extra: list[str]) -> None:
    """The config the command would build, through the commands' own flag -> key maps (torch is imported for the
    algorithm sections; transformers and lightning are not, which keeps this test at a few seconds)."""
    from benchmarks import resolve_benchmarks
    from harness.commands import evaluate, run, sweep
    from harness.config import build_config as build

    def build_config(*a, **kw):   # a config, and its benchmarks' names
        cfg = build(*a, **kw)
        resolve_benchmarks(cfg.data.bench)
        return cfg

    args.overrides_raw = extra
    try:
        if args.command == "run":
            ns = argparse.Namespace(**{**vars(args), "config": None, "resume": False, "algo": args.algo or "prl"})
            resolve_benchmarks(run.config_from_args(ns).data.bench)   # `run`'s own flag -> key map
        elif args.command == "eval":  # as harness.commands.evaluate.eval_config, without loading harness.models
            generic = run.parse_overrides(extra)
            stray = [o for o in generic if not o.split("=", 1)[0].startswith(evaluate.SECTIONS)]
            assert not stray, f"{where}: `eval` does not read {stray}: {command}"
            named = [f"{key}={getattr(args, flag)}" for flag, key in evaluate.FLAGS.items()
                     if getattr(args, flag, None) is not None]
            build_config({}, named + generic, need_algo=False)
        elif args.command == "sweep" and args.status is None:
            base = sweep.base_overrides(args)
            grid = {}
            for spec in args.grid:   # KEY=V1,V2,... (harness.sweep.parse_grid checks the syntax at run time)
                key, sep, values = spec.partition("=")
                assert sep and values, f"{where}: --grid {spec!r} is not KEY=V1,V2,...: {command}"
                grid[key.removeprefix("--")] = values.split(",")
            first = {k: f"{k}={v[0]}" for k, v in grid.items()}
            algo = [] if "algo.name" in grid or args.algo else ["algo.name=prl"]
            for key, values in grid.items():   # every value of each swept key, the other keys at their first value
                others = [o for k, o in first.items() if k != key]
                for value in values:
                    build_config({}, base + algo + others + [f"{key}={value}"])
            if not grid:
                build_config({}, base + algo)
            if args.seeds is not None:
                assert all(p.strip().isdigit() for p in args.seeds.split(",")), f"{where}: bad --seeds: {command}"
    except HarnessError as err:
        pytest.fail(f"{where}: invalid config in: {command}\n  {err}")


@pytest.mark.parametrize("where,command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_doc_command_parses(where, command):
    if command in SKIP:
        pytest.skip(SKIP[command])
    placeholder = PLACEHOLDER.search(" ".join(_argv(command)))
    assert placeholder is None, (f"{where}: placeholder {placeholder.group()!r} in: {command} (write a concrete "
                                 "example, or list the command in SKIP with the reason)")
    args, extra = _parse(where, command)
    if args is None:   # --help
        return
    if extra and not getattr(args, "accepts_overrides", False):
        pytest.fail(f"{where}: `{args.command}` takes no config overrides, got {extra}: {command}")
    if args.command in ("run", "eval", "sweep"):
        _check_config(where, command, args, extra)
