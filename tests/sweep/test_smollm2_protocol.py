"""The SmolLM2 reproduction, second edition (scripts/mini_repro_smollm2.sh, results/mini-repro-smollm2/protocol.yaml):
the script's sweeps plan exactly the 10 rows x 2 seeds with the right algorithm settings on the shared protocol, its
single GRPO run builds the committed run's config, and the report's table commands parse (nothing is run or written).

    .tox/py/bin/python -m pytest tests/sweep/test_smollm2_protocol.py -q
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.commands import run as run_cmd
from harness.commands import sweep as sweep_cmd
from harness.config import build_config, load_yaml
from harness.sweep import parse_grid, parse_seeds, plan_sweep

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "mini_repro_smollm2.sh"
REPORT = ROOT / "scripts" / "mini_repro_smollm2_report.sh"
PROTOCOL = ROOT / "results" / "mini-repro-smollm2" / "protocol.yaml"
DATA = Path(os.environ.get("HARNESS_DATA_DIR") or ROOT.parent / "shared" / "benchmarks")
needs_data = pytest.mark.skipif(not (DATA / "gsm8k" / "test.jsonl").is_file(), reason=f"no GSM8K under {DATA}")

NO_KL = {"kl_coef": 0.0}
# row label (harness table) -> the algorithm and the algo values it must end up with
ROWS = {
    "grpo": ("grpo", {**NO_KL, "kl_reward_coef": 0.0}),
    "prl": ("prl", {**NO_KL, "eta": 100.0, "step_len": 64, "mode": "orm"}),
    "frpo": ("frpo", {**NO_KL, "beta": 0.01, "kl_direction": "reverse", "kl_estimator": "k1", "k3_baseline": "none"}),
    "raftpp": ("raftpp", NO_KL),
    "rloo": ("rloo", {**NO_KL, "kl_reward_coef": 0.0}),
    "grpo kl_coef=0.001 kl_estimator=k3": ("grpo", {"kl_coef": 0.001, "kl_estimator": "k3", "kl_reward_coef": 0.0}),
    "grpo kl_reward_coef=0.01 kl_reward_estimator=k1": ("grpo", {**NO_KL, "kl_reward_coef": 0.01,
                                                                 "kl_reward_estimator": "k1"}),
    "frpo kl_direction=reverse kl_estimator=k3": ("frpo", {**NO_KL, "beta": 0.01, "kl_direction": "reverse",
                                                           "kl_estimator": "k3", "k3_baseline": "none"}),
    "frpo kl_direction=forward kl_estimator=k1": ("frpo", {**NO_KL, "beta": 0.01, "kl_direction": "forward",
                                                           "kl_estimator": "k1", "k3_baseline": "none"}),
    "frpo kl_direction=reverse kl_estimator=k3 k3_baseline=batch": (
        "frpo", {**NO_KL, "beta": 0.01, "kl_direction": "reverse", "kl_estimator": "k3", "k3_baseline": "batch"}),
}


def _commands(path: Path, results: Path) -> list[list[str]]:
    """argv of every ``python -m harness`` line of a script (continuations joined; ``COMMON``, ``$OUT``, ``$SMOL``, the
    optional ``--resume`` and the seed loop's last value expanded)."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    common = re.search(r"^COMMON=\((.*)\)$", SCRIPT.read_text(encoding="utf-8"), re.M).group(1)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("python -m harness "):
            continue
        line = (line.replace('"${COMMON[@]}"', common).replace('"${resume[@]}"', "").replace('"$OUT"', str(results))
                .replace('"$SMOL"', str(results)).replace('"${METRICS[@]}"', "--metric avg@n")
                .replace("--seeds $seeds", "--seeds 0,1"))
        out.append(shlex.split(line, comments=True)[3:])
    return out


def _parse(argv: list[str]):
    args, extra = build_parser().parse_known_args(argv)
    args.overrides_raw = extra
    assert not extra or getattr(args, "accepts_overrides", False), argv
    return args


def _check_shared(cfg) -> None:
    """The protocol every row shares (protocol.yaml)."""
    assert (cfg.model.name, cfg.data.bench, cfg.data.train_data, cfg.data.word_max_steps) == (
        "smollm2-135m", "arith_word,gsm8k", "arith_word", 1)
    r, t, e = cfg.rollout, cfg.train, cfg.eval
    assert (r.engine, r.dtype, r.prompts_per_step, r.n, r.temperature, r.max_new_tokens) == (
        "vllm", "policy", 4, 8, 0.6, 128)
    assert (t.steps, t.lr, t.epochs, t.mini_batches, t.max_micro_batch_tokens) == (8, 2e-5, 1, 1, 1024)
    assert (e.n, e.temperature, e.limit, dict(e.bench_limit), e.before, e.after) == (
        16, 0.6, 32, {"gsm8k": 16}, True, True)
    assert (cfg.algo.entropy_coef, cfg.algo.loss_agg) == (0.0, "token-mean")


@needs_data
def test_the_script_plans_10_rows_x_2_seeds(tmp_path, monkeypatch):
    import harness.sweep.plan as plan_mod

    if importlib.util.find_spec("vllm") is None:   # the engine check needs the package; the protocol does not
        monkeypatch.setattr(plan_mod, "check_engine", lambda name: None)
    planned: dict[str, list[tuple[int, object]]] = {}
    sweeps = [a for a in _commands(SCRIPT, tmp_path) if a[0] == "sweep" and "--status" not in a]
    assert len(sweeps) == 6
    for argv in sweeps:
        args = _parse(argv)
        plan = plan_sweep(parse_grid(args.grid), parse_seeds(args.seeds), sweep_cmd.base_overrides(args),
                          load_yaml(args.config), args.name)
        for r in plan.runs:
            planned.setdefault(r.label, []).append((r.seed, build_config(plan.yaml_data, r.overrides)))
    assert sorted(planned) == sorted(ROWS)
    for label, runs in planned.items():
        assert sorted(seed for seed, _ in runs) == [0, 1], label
        algo, values = ROWS[label]
        for seed, cfg in runs:
            _check_shared(cfg)
            assert cfg.seed == seed and cfg.algo.name == algo, label
            assert {k: getattr(cfg.algo, k) for k in values} == values, label
    assert not any(tmp_path.iterdir())


def test_the_single_grpo_run():
    runs = [a for a in _commands(SCRIPT, Path("/tmp/x")) if a[0] == "run"]
    assert len(runs) == 1
    cfg = run_cmd.config_from_args(_parse(runs[0]))
    assert (cfg.algo.name, cfg.model.name, cfg.data.train_data, cfg.data.word_max_steps, cfg.train.steps) == (
        "grpo", "smollm2-135m", "arith_word", 1, 14)
    r = cfg.rollout
    assert (r.prompts_per_step, r.n, r.temperature, r.max_new_tokens, r.dtype, r.engine) == (8, 8, 0.6, 128, "policy",
                                                                                              "vllm")
    assert (cfg.train.lr, cfg.eval.before, cfg.eval.after, cfg.name) == (2e-5, False, False, "rl-grpo-arith_word")


def test_protocol_file_and_report_tables_parse():
    cfg = build_config(load_yaml(str(PROTOCOL)), ["algo.name=grpo"])
    _check_shared(cfg)
    tables = [a for a in _commands(REPORT, Path("/tmp/x")) if a[0] == "table"]
    assert len(tables) == 4
    metrics = re.search(r"^METRICS=\(--metric (\S+)\)", REPORT.read_text(encoding="utf-8"), re.M).group(1)
    from harness.report.tables import parse_metrics

    parsed = parse_metrics(metrics.split(","))
    assert len(parsed) == 6
    baselines = [_parse(argv).baseline for argv in tables]
    assert baselines == ["grpo", "grpo", "frpo", "frpo kl_direction=reverse kl_estimator=k3"]
    assert set(baselines) <= set(ROWS)   # each names a row the script trains
