"""Sweep planning: parse ``--grid``/``--seeds``, name each (setting, seed) run and validate its config (writes nothing).

    python -m harness sweep --algo prl --grid algo.eta=10,100,1000 --grid algo.entropy_coef=0,0.001 \\
        --seeds 0,1,2 --bench arith --steps 50 --name prl-eta

Every configuration is built and validated (``build_config``) before anything is written, so a bad grid leaves
nothing on disk. See ``harness/sweep/__init__.py`` for the layout on disk and the launchers.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

from benchmarks import get_benchmark, resolve_benchmarks
from common.errors import HarnessError
from harness.config import build_config
from harness.engines import check_engine
from harness.results import validate_run_name

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
    """The cheap input checks ``harness.train.flow.run`` makes before writing: benchmark names and data, rollout engine
    (each distinct combination once). Model and training-data problems still surface in the run itself."""

    key = (cfg.data.bench, cfg.data.data_dir, cfg.eval.limit, tuple(sorted(cfg.eval.bench_limit.items())),
           cfg.rollout.engine)
    if checked is not None and key in checked:
        return
    check_engine(cfg.rollout.engine)
    for b, limit in cfg.eval.limits(resolve_benchmarks(cfg.data.bench)).items():
        get_benchmark(b).load(cfg.data.data_dir, limit=limit)
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
    yaml_data = dict(yaml_data or {})
    base = list(base_overrides)
    _check_base(base, grid, seeds)
    builder = _Builder(yaml_data, bool(grid))
    # first pass: validate every setting, learn its algorithm, the results root and the typed values
    first = []
    for combo in [dict(zip(grid, values)) for values in itertools.product(*grid.values())]:
        setting = [f"{k}={v}" for k, v in combo.items()]
        first.append((combo, setting, builder(base + setting + [f"seed={seeds[0]}"],
                                              "sweep setting " + (" ".join(setting) or "(none)"))))
    name = validate_run_name(name or default_sweep_name([c.algo.name for _, _, c in first], grid))
    sweep_dir = Path(first[0][2].results_dir) / name
    checked: set = set()
    for _, setting, cfg0 in first:
        try:
            check_inputs(cfg0, checked)
        except HarnessError as err:
            raise HarnessError(f"sweep setting {' '.join(setting)}: {err}" if grid else str(err)) from None
    plan = SweepPlan(name, sweep_dir, yaml_data, [o for o in base if _key_of(o) != "results_dir"], grid, seeds)
    defaults = ["log.progress=false"] if "progress" not in (yaml_data.get("log") or {}) else []
    if first[0][2].log.wandb_group is None:
        defaults.append(f"log.wandb_group={name}")
    plan.runs.extend(_planned_runs(first, seeds, [k for k in grid if k != "algo.name"], defaults + base, sweep_dir,
                                   builder))
    return plan


def _check_base(base: list[str], grid: dict, seeds: list[int]) -> None:
    if not seeds:
        raise HarnessError("a sweep needs at least one seed (--seeds 0,1,2)")
    for o in base:
        if _key_of(o) in ("name", "seed"):
            raise HarnessError(f"a sweep sets {_key_of(o)!r} itself ({RESERVED[_key_of(o)]}); drop {o!r}")
        if _key_of(o) in grid:
            raise HarnessError(f"{_key_of(o)} is both set ({o!r}, e.g. by --algo) and swept (--grid); keep only one")


class _Builder:
    """``build_config`` with the sweep's YAML; an error names the setting or run it came from."""

    def __init__(self, yaml_data: dict, has_grid: bool) -> None:
        self.yaml_data, self.has_grid = yaml_data, has_grid

    def __call__(self, overrides: list[str], what: str):
        try:
            return build_config(self.yaml_data, overrides)
        except HarnessError as err:
            raise HarnessError(f"{what}: {err}" if self.has_grid else str(err)) from None


def _planned_runs(first: list, seeds: list[int], keys: list[str], common: list[str], sweep_dir: Path,
                  build: _Builder) -> list[PlannedRun]:
    """One run per (seed, setting), seeds the outer loop; two runs may not share a name."""
    short = _short_keys(keys)
    seen: dict[str, str] = {}
    runs = []
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
            overrides = common + setting + [f"seed={seed}", f"name={rname}", f"results_dir={sweep_dir / 'runs'}"]
            cfg = build(overrides, f"sweep run {rname}")
            runs.append(PlannedRun(rname, label, seed, {k: _get(cfg, k) for k in keys}, overrides, algo))
    return runs
