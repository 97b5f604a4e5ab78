"""Sweeps: the cartesian product of grid settings x seeds, each an ordinary run directory (issue 4, item 1).

    python -m harness sweep --algo prl --grid algo.eta=10,100,1000 --grid algo.entropy_coef=0,0.001 \\
        --seeds 0,1,2 --bench arith --steps 50 --name prl-eta
    python -m harness table results/prl-eta --baseline "prl eta=100 entropy_coef=0" --out results/prl-eta/report

Layout (documented in ``results/README.md``, "Sweeps")::

    results/<sweep>/sweep.json         manifest: config, base overrides, grid, seeds, every run with its status
    results/<sweep>/runs/<run>/        one ordinary run directory per (setting, seed), e.g. prl_eta=10_entropy_coef=0_s0
    results/<sweep>/logs/<run>.log     stdout/stderr of each attempt of that run

Every configuration is built and validated (``build_config``) before anything is written, so a bad grid leaves
nothing on disk. Rerunning the same command skips finished runs (``run.json`` status ``finished``) and resumes the
others from their last checkpoint (``REDO_UNFINISHED``); a different config, base overrides or grid under the same name is refused unless ``--overwrite``. The
seeds may change between invocations (e.g. to add seeds).

Each run executes in its own process (``python -m harness.sweep RUN_SPEC_JSON``, see :func:`worker_main`) because
(1) Lightning's multi-device launcher re-executes the current command for each rank, which must be a single run, not
the whole sweep; (2) vLLM and CUDA memory is only reliably released when the process exits; (3) a crash or OOM-kill
of one run must not end the sweep. ``--in-process`` runs them in the sweep's own process instead (faster start-up,
handy for debugging and small CPU sweeps).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Callable

from common.errors import HarnessError
from harness.results import atomic_write_json, validate_run_name

MANIFEST = "sweep.json"
SCHEMA_VERSION = 1
# How a run directory left unfinished by an earlier invocation is redone: "overwrite" (start it again) or "resume"
# (continue from its checkpoint/last, keeping a complete base evaluation; harness.train.run). The only line to change.
REDO_UNFINISHED = "resume"
# keys the sweep itself sets for every run; a grid or base override may not set them
RESERVED = {"name": "--name names the sweep; runs are named after their settings",
            "seed": "use --seeds", "results_dir": "use --results-dir"}
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9._=,+-]")


@dataclass
class PlannedRun:
    """One (setting, seed) of a sweep: its run name, table label, swept values and complete override list."""

    name: str
    label: str
    seed: int
    settings: dict                      # {dotted key: resolved value} of the swept keys (algo.name excluded)
    overrides: list[str]                # everything build_config needs besides the YAML data
    algo: str = ""


@dataclass
class SweepPlan:
    """A validated sweep: where it lives and the runs it consists of, in execution order (seeds outermost)."""

    name: str
    sweep_dir: Path
    yaml_data: dict
    base_overrides: list[str]
    grid: dict[str, list[str]]
    seeds: list[int]
    runs: list[PlannedRun] = field(default_factory=list)

    def identity(self) -> dict:
        """What must match for a rerun to continue an existing sweep (seeds may differ)."""
        return {"config": self.yaml_data, "base_overrides": self.base_overrides, "grid": self.grid}


# --------------------------------------------------------------------------------------------------------------------
# parsing and planning (pure: nothing is written)


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """``["algo.eta=10,100", "algo.kl_coef=0,0.001"]`` -> ``{"algo.eta": ["10", "100"], ...}`` (values as typed).

    Raises:
        HarnessError: a spec without ``=``, an empty key or value list, an empty or repeated value, a key given
            twice, or a key the sweep sets itself (name, seed, results_dir).
    """
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key or " " in key:
            raise HarnessError(f"--grid {spec!r} must look like section.key=V1,V2,... (e.g. algo.eta=10,100)")
        if key in RESERVED:
            raise HarnessError(f"--grid cannot sweep {key!r}: {RESERVED[key]}")
        if key in grid:
            raise HarnessError(f"--grid {key} is given twice; list all its values in one --grid {key}=V1,V2,...")
        values = [v.strip() for v in raw.split(",")] if raw.strip() else []
        if not values:
            raise HarnessError(f"--grid {key}= is empty: give at least one value ({key}=V1,V2,...)")
        if "" in values:
            raise HarnessError(f"--grid {spec!r} has an empty value (two commas in a row or a trailing comma)")
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise HarnessError(f"--grid {key} repeats the value {dup[0]!r}")
        grid[key] = values
    return grid


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; anything else (empty, not an integer, repeated) -> HarnessError."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise HarnessError(f"--seeds must be a comma list of integers, e.g. 0,1,2 (got {text!r})") from None
    if len(set(seeds)) != len(seeds):
        raise HarnessError(f"--seeds repeats a seed (got {text!r})")
    return seeds


def _key_of(override: str) -> str:
    return override.partition("=")[0].strip()


def _get(cfg, dotted: str):
    value = reduce(getattr, dotted.split("."), cfg)
    return list(value) if isinstance(value, tuple) else value


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Last component of each dotted key (``algo.eta`` -> ``eta``), or the full key where two would clash."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _safe_name(stem: str, suffix: str = "") -> str:
    """A valid run/sweep name from ``stem + suffix``: characters a name may not hold become ``-``; an over-long stem
    is cut and tagged with a hash of the full name (deterministic, so a rerun finds the same directory)."""
    full = stem + suffix
    name = re.sub(r"\.{2,}", ".", _BAD_NAME_CHARS.sub("-", full)).lstrip("._=,+-") or "run"
    if len(name) > 128:
        name = f"{name[:110 - len(suffix)]}-{hashlib.sha1(full.encode()).hexdigest()[:10]}{suffix}"
    return validate_run_name(name)


def run_name(algo: str, parts: list[str], seed: int) -> str:
    """``prl_eta=10_entropy_coef=0_s0`` from the algorithm, the ``key=value`` parts and the seed."""
    return _safe_name("_".join([algo, *parts]), f"_s{seed}")


def default_sweep_name(algos: list[str], grid: dict[str, list[str]]) -> str:
    """``sweep-prl-eta-entropy_coef`` (algorithms joined by ``+``, then the short swept keys)."""
    keys = [k for k in grid if k != "algo.name"]
    return _safe_name("-".join(["sweep", "+".join(dict.fromkeys(algos)), *_short_keys(keys).values()]))


def check_inputs(cfg, checked: set | None = None) -> None:
    """The cheap input checks ``harness.train.run`` makes before writing: benchmark names and data, rollout engine
    (each distinct combination once). Model and training-data problems still surface in the run itself."""
    from benchmarks import get_benchmark, resolve_benchmarks
    from harness.engines import check_engine

    key = (cfg.data.bench, cfg.data.data_dir, cfg.eval.limit, cfg.rollout.engine)
    if checked is not None and key in checked:
        return
    check_engine(cfg.rollout.engine)
    for b in resolve_benchmarks(cfg.data.bench):
        get_benchmark(b).load(cfg.data.data_dir, limit=cfg.eval.limit or None)
    if checked is not None:
        checked.add(key)


def plan_sweep(grid: dict[str, list[str]], seeds: list[int], base_overrides: list[str] = (),
               yaml_data: dict | None = None, name: str | None = None) -> SweepPlan:
    """Build and validate the config of every (setting, seed) of a sweep; writes nothing.

    Args:
        grid: ``{dotted key: [raw values]}`` from :func:`parse_grid`; may be empty (a seeds-only sweep).
        seeds: run seeds (the outer loop of the execution order).
        base_overrides: ``key=value`` overrides applied to every run (``results_dir=`` sets the results root).
        yaml_data: sections of a ``--config`` YAML file.
        name: sweep name (default :func:`default_sweep_name`).

    Returns:
        The plan; its runs carry everything :func:`harness.config.build_config` needs.

    Raises:
        HarnessError: an invalid grid key or value, a key both swept and set in the base overrides, a reserved key,
            two runs with the same name, or an invalid sweep name.
    """
    from harness.config import build_config

    yaml_data = dict(yaml_data or {})
    base = list(base_overrides)
    if not seeds:
        raise HarnessError("a sweep needs at least one seed (--seeds 0,1,2)")
    for o in base:
        if _key_of(o) in ("name", "seed"):
            raise HarnessError(f"a sweep sets {_key_of(o)!r} itself ({RESERVED[_key_of(o)]}); drop {o!r}")
        if _key_of(o) in grid:
            raise HarnessError(f"{_key_of(o)} is both set ({o!r}, e.g. by --algo) and swept (--grid); keep only one")
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    keys = [k for k in grid if k != "algo.name"]
    short = _short_keys(keys)

    def build(overrides: list[str], what: str):
        try:
            return build_config(yaml_data, overrides)
        except HarnessError as err:
            raise HarnessError(f"{what}: {err}" if grid else str(err)) from None

    checked: set = set()
    # first pass: validate every setting, learn its algorithm, the results root and the typed values
    first = []
    for combo in combos:
        setting = [f"{k}={v}" for k, v in combo.items()]
        first.append((combo, setting, build(base + setting + [f"seed={seeds[0]}"], "sweep setting "
                                            + (" ".join(setting) or "(none)"))))
    root = Path(first[0][2].results_dir)
    name = validate_run_name(name or default_sweep_name([c.algo.name for _, _, c in first], grid))
    sweep_dir = root / name
    defaults = ["log.progress=false"] if "progress" not in (yaml_data.get("log") or {}) else []
    if first[0][2].log.wandb_group is None:
        defaults.append(f"log.wandb_group={name}")
    plan = SweepPlan(name, sweep_dir, yaml_data, [o for o in base if _key_of(o) != "results_dir"], grid, seeds)
    for _, setting, cfg0 in first:
        try:
            check_inputs(cfg0, checked)
        except HarnessError as err:
            raise HarnessError(f"sweep setting {' '.join(setting)}: {err}" if grid else str(err)) from None
    seen: dict[str, str] = {}
    for seed in seeds:
        for combo, setting, cfg0 in first:
            algo = cfg0.algo.name
            parts = [f"{short[k]}={combo[k]}" for k in keys]
            rname = run_name(algo, parts, seed)
            label = " ".join([algo, *parts])
            if rname in seen:
                raise HarnessError(f"sweep settings {seen[rname]!r} and {label!r} (seed {seed}) give the same run "
                                   f"name {rname!r}")
            seen[rname] = label
            overrides = defaults + base + setting + [f"seed={seed}", f"name={rname}",
                                                     f"results_dir={sweep_dir / 'runs'}"]
            cfg = build(overrides, f"sweep run {rname}")
            plan.runs.append(PlannedRun(rname, label, seed, {k: _get(cfg, k) for k in keys}, overrides, algo))
    return plan


# --------------------------------------------------------------------------------------------------------------------
# execution


def run_status(run_dir: Path) -> str:
    """``finished`` / ``unfinished`` (a non-empty directory, any other status) / ``absent``."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return "absent"
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unfinished"
    return "finished" if isinstance(info, dict) and info.get("status") == "finished" else "unfinished"


def run_spec(plan: SweepPlan, run: PlannedRun, redo: bool) -> dict:
    """The JSON-able job description a worker turns into ``harness.train.run(...)``."""
    return {"config": plan.yaml_data, "overrides": run.overrides, "label": run.label, "settings": run.settings,
            REDO_UNFINISHED: redo}


def execute_spec(spec: dict) -> None:
    """Build the run's config and train it (called in the worker process, or in-process)."""
    from harness.config import build_config
    from harness.train import run as train_run

    cfg = build_config(spec["config"], spec["overrides"])
    train_run(cfg, overwrite=bool(spec.get("overwrite")), resume=bool(spec.get("resume")),
              label=spec["label"], settings=spec["settings"])


def subprocess_runner(spec: dict, log_path: Path) -> int:
    """Run one spec as ``python -m harness.sweep SPEC`` with stdout/stderr appended to ``log_path``."""
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} attempt ====\n")
        log.flush()
        return subprocess.run([sys.executable, "-m", "harness.sweep", json.dumps(spec)], stdout=log,
                              stderr=subprocess.STDOUT, env=env).returncode


def inprocess_runner(spec: dict, log_path: Path) -> int:
    """Run one spec in this process; a HarnessError counts as a failed run (exit code 2), other errors propagate."""
    try:
        execute_spec(spec)
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith(("error:", "Traceback")) or "Error" in ln.split(":")[0]]
    return (errors or lines or [""])[-1][:200]


def _describe_change(key: str, old, new) -> str:
    """One-line description of how a manifest field differs, e.g. ``run overrides (-train.steps=1 +train.steps=2)``."""
    if key == "base_overrides" and isinstance(old, list):
        change = [f"-{o}" for o in old if o not in new] + [f"+{o}" for o in new if o not in old]
        return f"run flags/overrides ({' '.join(change) or 'order changed'})"
    if key == "grid" and isinstance(old, dict):
        fmt = lambda g: " ".join(f"{k}={','.join(map(str, v))}" for k, v in g.items()) or "(none)"  # noqa: E731
        return f"grid (was {fmt(old)}, now {fmt(new)})"
    return "--config file contents" if key == "config" else key


def run_sweep(plan: SweepPlan, *, overwrite: bool = False, runner: Callable[[dict, Path], int] = subprocess_runner,
              echo: Callable[[str], None] = print, argv: list[str] | None = None) -> int:
    """Execute a planned sweep, skipping finished runs; returns the number of runs that failed.

    Raises:
        HarnessError: the sweep directory holds a different sweep (or something else) and ``overwrite`` is False.
    """
    sweep_dir, mpath = plan.sweep_dir, plan.sweep_dir / MANIFEST
    if mpath.is_file() and not overwrite:
        try:
            old = json.loads(mpath.read_text(encoding="utf-8"))
        except ValueError as err:
            raise HarnessError(f"{mpath}: invalid JSON ({err}); pass --overwrite to start the sweep again") from None
        mine = json.loads(json.dumps(plan.identity(), default=str))
        diff = [_describe_change(k, old.get(k), mine[k]) for k in mine if old.get(k) != mine[k]]
        if diff:
            raise HarnessError(f"sweep {sweep_dir} already exists with a different {'; '.join(diff)}: pass "
                               "--overwrite to replace it, or choose another --name")
    elif sweep_dir.is_dir() and any(sweep_dir.iterdir()) and not overwrite:
        raise HarnessError(f"{sweep_dir} already exists and is not a sweep (no {MANIFEST}): pass --overwrite to "
                           "replace it, or choose another --name")
    if overwrite and sweep_dir.exists():
        shutil.rmtree(sweep_dir)

    now = time.time()
    manifest = {"schema_version": SCHEMA_VERSION, "name": plan.name, "created": now, "updated": now,
                "command": argv, **plan.identity(), "seeds": plan.seeds, "runs": []}
    if mpath.is_file():
        manifest["created"] = json.loads(mpath.read_text(encoding="utf-8")).get("created", now)
    for r in plan.runs:
        status = "finished" if run_status(sweep_dir / "runs" / r.name) == "finished" else "pending"
        manifest["runs"].append({"name": r.name, "label": r.label, "algo": r.algo, "seed": r.seed,
                                 "settings": r.settings, "path": f"runs/{r.name}", "log": f"logs/{r.name}.log",
                                 "status": status})

    def save() -> None:
        manifest["updated"] = time.time()
        atomic_write_json(mpath, manifest)

    save()
    total, todo = len(plan.runs), sum(e["status"] != "finished" for e in manifest["runs"])
    echo(f"sweep {plan.name}: {total} runs, {total - todo} already finished, {todo} to run -> {sweep_dir}")
    failed = 0
    for i, (r, entry) in enumerate(zip(plan.runs, manifest["runs"]), 1):
        head = f"[{i}/{total}] {r.name}"
        if entry["status"] == "finished":
            echo(f"{head}: already finished, skipped")
            continue
        run_dir = sweep_dir / "runs" / r.name
        redo = run_status(run_dir) != "absent"
        entry.update(status="running", attempt_started=time.time())
        save()
        t0 = time.time()
        try:
            rc = runner(run_spec(plan, r, redo), sweep_dir / entry["log"])
        except BaseException:
            entry.update(status="interrupted", exit_code=None)
            save()
            raise
        ok = rc == 0 and run_status(run_dir) == "finished"
        entry.update(status="finished" if ok else "failed", exit_code=rc, time_s=round(time.time() - t0, 1))
        save()
        what = "redone" if redo else "ran"
        if ok:
            echo(f"{head}: finished ({what}) in {entry['time_s']:.0f}s")
        else:
            failed += 1
            echo(f"{head}: FAILED (exit {rc}) after {entry['time_s']:.0f}s: {_last_line(sweep_dir / entry['log'])} "
                 f"(log: {sweep_dir / entry['log']})")
    echo(f"sweep {plan.name}: {total - failed}/{total} finished" + (f", {failed} failed (rerun the same command "
         "to retry them)" if failed else "") + f"; table: python -m harness table {sweep_dir}")
    return failed


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m harness.sweep RUN_SPEC_JSON``: train one run of a sweep (the sweep starts this itself)."""
    import logging

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.sweep RUN_SPEC_JSON (started by `python -m harness sweep`)", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get("HARNESS_LOG", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        execute_spec(json.loads(argv[0]))
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
