"""The FRPO v2 protocol (results/frpo-v2/protocol.yaml and REPRODUCE.md): every row builds a valid config, the four
sweep commands of REPRODUCE.md plan the 8 rows with the right settings (``--dry-run --launcher slurm``, nothing
written, no sbatch needed), and every ``python -m harness`` command there parses with valid config keys.

    .tox/py/bin/python -m pytest tests/sweep/test_frpo_protocol.py -q
"""

from __future__ import annotations

import importlib.util
import os
import shlex
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from harness.commands import run as run_cmd
from harness.commands import sweep as sweep_cmd
from harness.config import build_config, load_yaml
from harness.sweep import parse_grid, parse_seeds, plan_sweep

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "results" / "frpo-v2" / "protocol.yaml"
REPRODUCE = ROOT / "results" / "frpo-v2" / "REPRODUCE.md"
DATA = Path(os.environ.get("HARNESS_DATA_DIR") or ROOT.parent / "shared" / "benchmarks")
BENCHES = ("math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench")
needs_data = pytest.mark.skipif(not all((DATA / b / "test.jsonl").is_file() for b in BENCHES),
                                reason=f"benchmark data not found under {DATA}")

# row label (harness table) -> its overrides and the algo values it must end up with
ROWS = {
    "grpo kl_coef=0": (["algo.name=grpo", "algo.kl_coef=0"], {"kl_coef": 0.0, "kl_reward_coef": 0.0}),
    "grpo kl_coef=0.001": (["algo.name=grpo", "algo.kl_coef=0.001", "algo.kl_estimator=k3"],
                           {"kl_coef": 0.001, "kl_estimator": "k3", "kl_reward_coef": 0.0}),
    "grpo kl_reward_coef=0.001": (["algo.name=grpo", "algo.kl_reward_coef=0.001", "algo.kl_reward_estimator=k1"],
                                  {"kl_coef": 0.0, "kl_reward_coef": 0.001, "kl_reward_estimator": "k1"}),
    **{f"frpo kl_direction={d} kl_estimator={k}": (
        ["algo.name=frpo", f"algo.kl_direction={d}", f"algo.kl_estimator={k}"],
        {"beta": 0.01, "kl_direction": d, "kl_estimator": k, "k3_baseline": "none", "kl_coef": 0.0})
       for d in ("reverse", "forward") for k in ("k1", "k3")},
    "frpo kl_direction=reverse kl_estimator=k3 k3_baseline=batch": (
        ["algo.name=frpo", "algo.kl_estimator=k3", "algo.k3_baseline=batch"],
        {"beta": 0.01, "kl_direction": "reverse", "kl_estimator": "k3", "k3_baseline": "batch", "kl_coef": 0.0}),
}
SHARED_ALGO = {"loss_agg": "token-mean", "clip_eps_low": 0.2, "clip_eps_high": 0.2, "dual_clip": 3.0,
               "entropy_coef": 0.0, "eps": 1e-6}


def _check_shared(cfg) -> None:
    """The settings every row shares (Tables 6/7 of the paper, and verl defaults where it is silent)."""
    assert cfg.model.name == "Qwen/Qwen3-1.7B-Base"
    assert cfg.data.train_data == "YouJiacheng/DAPO-Math-17k-dedup"
    assert (cfg.data.problem_field, cfg.data.answer_field) == ("prompt", "reward_model.ground_truth")
    assert set(cfg.data.bench.split(",")) == set(BENCHES)
    r, t, e = cfg.rollout, cfg.train, cfg.eval
    assert (r.prompts_per_step, r.n, r.temperature, r.max_new_tokens, r.engine) == (256, 5, 1.0, 8192, "vllm")
    assert (t.mini_batches, t.epochs, t.lr, t.steps, t.grad_clip, t.warmup_steps) == (4, 1, 1e-6, 200, 1.0, 0)
    assert (e.n, e.max_new_tokens) == (16, 8192)
    assert (cfg.trainer.precision, cfg.trainer.devices, cfg.trainer.num_nodes) == ("bf16-mixed", 1, 1)
    assert {k: getattr(cfg.algo, k) for k in SHARED_ALGO} == SHARED_ALGO


@pytest.mark.parametrize("label", list(ROWS))
def test_every_row_builds_a_valid_config(label):
    overrides, algo = ROWS[label]
    cfg = build_config(load_yaml(str(PROTOCOL)), overrides)
    _check_shared(cfg)
    assert {k: getattr(cfg.algo, k) for k in algo} == algo


def _commands() -> list[str]:
    """Every ``python -m harness`` command line of REPRODUCE.md's code blocks (backslash continuations joined)."""
    found, lines, i = [], REPRODUCE.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        text = lines[i].strip()
        if text.startswith("python -m harness "):
            while text.endswith("\\"):
                i += 1
                text = text[:-1].rstrip() + " " + lines[i].strip()
            found.append(text)
        i += 1
    return found


def _argv(command: str, results_dir: Path | None = None) -> list[str]:
    argv = shlex.split(command, comments=True)[3:]
    if results_dir is not None and "--results-dir" in argv:
        argv[argv.index("--results-dir") + 1] = str(results_dir)
    return argv


def _sweeps(results_dir: Path | None = None) -> list[list[str]]:
    """The four submit commands (a sweep without --status or --dry-run)."""
    out = [_argv(c, results_dir) for c in _commands()]
    return [a for a in out if a[0] == "sweep" and "--status" not in a and "--dry-run" not in a]


def test_reproduce_lists_the_commands():
    commands = _commands()
    kinds = [shlex.split(c)[3] for c in commands]
    assert kinds.count("sweep") == 6 and kinds.count("table") == 2 and kinds.count("run") == 1
    assert len(_sweeps()) == 4
    dry = [c for c in commands if "--dry-run" in c]
    assert len(dry) == 1 and dry[0].replace(" --dry-run", "") in commands   # the same command, checked first


@pytest.mark.parametrize("command", _commands())
def test_every_command_parses_with_valid_config_keys(command):
    args, extra = build_parser().parse_known_args(_argv(command))
    args.overrides_raw = extra
    assert not extra or getattr(args, "accepts_overrides", False), command
    if args.command == "run":
        cfg = run_cmd.config_from_args(args)
        assert (cfg.model.name, cfg.algo.name, cfg.data.train_data) == (
            "Qwen/Qwen3-1.7B-Base", "frpo", "YouJiacheng/DAPO-Math-17k-dedup")
    elif args.command == "sweep" and args.status is None:
        base = sweep_cmd.base_overrides(args)
        sweep_cmd._slurm_options(args)   # the --slurm.* values
        for key, values in parse_grid(args.grid).items():
            for value in values:
                build_config(load_yaml(args.config), base + [f"{key}={value}"])
        assert parse_seeds(args.seeds) == [0]
    elif args.command == "table":
        from harness.report.tables import parse_metrics

        parse_metrics([m for spec in args.metric for m in spec.split(",")])


@needs_data
def test_the_sweeps_plan_the_8_rows(tmp_path, monkeypatch):
    """What ``harness sweep`` plans for each command (its own functions), each run's complete config checked."""
    import harness.sweep.plan as plan_mod

    if importlib.util.find_spec("vllm") is None:   # the engine check needs the package; the protocol does not
        monkeypatch.setattr(plan_mod, "check_engine", lambda name: None)
    planned = {}
    for argv in _sweeps(tmp_path):
        args, extra = build_parser().parse_known_args(argv)
        args.overrides_raw = extra
        plan = plan_sweep(parse_grid(args.grid), parse_seeds(args.seeds), sweep_cmd.base_overrides(args),
                          load_yaml(args.config), args.name)
        assert plan.sweep_dir == tmp_path / args.name
        for r in plan.runs:
            assert r.label not in planned
            planned[r.label] = build_config(plan.yaml_data, r.overrides)
    assert sorted(planned) == sorted(ROWS)
    for label, cfg in planned.items():
        _check_shared(cfg)
        assert {k: getattr(cfg.algo, k) for k in ROWS[label][1]} == ROWS[label][1], label
    assert not any(tmp_path.iterdir())


@needs_data
def test_slurm_dry_run_of_each_sweep(tmp_path, monkeypatch, capsys):
    import harness.sweep.plan as plan_mod

    if importlib.util.find_spec("vllm") is None:
        monkeypatch.setattr(plan_mod, "check_engine", lambda name: None)
    monkeypatch.setenv("PATH", "/nonexistent")   # no sbatch: --dry-run must not need it
    names = []
    for argv in _sweeps(tmp_path):
        assert main([*argv, "--dry-run"]) == 0
        out = capsys.readouterr().out
        runs = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
        array = f"#SBATCH --array=0-{len(runs) - 1}%{len(runs)}" in out
        assert array if len(runs) > 1 else "--array" not in out   # one run: a plain job
        assert "#SBATCH --time=2880" in out and "#SBATCH --gpus-per-node=1" in out and "#SBATCH --partition=gpu" in out
        names += runs
    assert len(names) == len(set(names)) == 8 and all(n.endswith("_s0") for n in names)
    assert not any(tmp_path.iterdir())
