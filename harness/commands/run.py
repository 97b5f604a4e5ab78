"""``harness run``: train one algorithm, evaluating the base model before and the policy after.

    python -m harness run --algo prl --bench arith --steps 50
    python -m harness run --algo grpo --bench all --algo.kl_coef 0.001 --train.lr 1e-6 \\
        --model Qwen/Qwen2.5-Math-1.5B --train-data ScaleML-RLHF/numina_math_15_all
"""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path

from common.errors import HarnessError
from harness.config import (DataConfig, EvalConfig, LogConfig, ModelConfig, RolloutConfig, RunConfig, TrainConfig,
                            TrainerConfig)
from harness.progress import add_verbosity_flags

# named flags -> config keys (everything else: --section.key VALUE or section.key=VALUE)
FLAGS = {
    "algo": "algo.name", "bench": "data.bench", "model": "model.name", "steps": "train.steps",
    "seed": "seed", "name": "name", "data_dir": "data.data_dir", "train_data": "data.train_data",
    "engine": "rollout.engine", "devices": "trainer.devices", "strategy": "trainer.strategy",
    "num_nodes": "trainer.num_nodes", "results_dir": "results_dir",
}


def add_common_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algo", help="algorithm (`harness ls` lists them)")
    p.add_argument("--bench", help="evaluation benchmarks: a name, a comma list, or 'all' (PRL's three; "
                   "`harness ls` lists them); default arith")
    p.add_argument("--model", help="a built-in model (tiny, the default; smollm2-135m), a local model directory, "
                                   "or a hub id")
    p.add_argument("--steps", type=int, help="RL steps (train.steps)")
    p.add_argument("--seed", type=int, help="run seed")
    p.add_argument("--data-dir", help="folder with <bench>/test.jsonl (or set HARNESS_DATA_DIR)")
    from harness.train.data import TRAIN_SOURCES

    builtin = ", ".join(n for n in TRAIN_SOURCES.names() if n != "file")
    p.add_argument("--train-data", help=f"RL prompts with gold answers: a training source ({builtin}; default "
                   "arith), a hub id or a .jsonl/.parquet file")
    p.add_argument("--engine", help="rollout engine: auto (default: vllm when installed, for models of 10M+ "
                   "parameters, else hf), hf or vllm")
    p.add_argument("--devices", type=int, help="processes per node (trainer.devices)")
    p.add_argument("--strategy", help="Lightning strategy: auto, ddp, fsdp")
    p.add_argument("--num-nodes", type=int, help="nodes (trainer.num_nodes)")
    p.add_argument("--results-dir", help="results root (default: results)")
    p.add_argument("--config", help="YAML file with config sections (applied before flags)")
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (offline without a key)")
    p.add_argument("--help-config", action="store_true", help="list every config key and exit")
    add_verbosity_flags(p)


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="train an algorithm and evaluate it", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Any config value: --section.key VALUE (e.g. --algo.eta 100 "
                              "--train.lr 1e-5 --rollout.n 8); see --help-config.")
    add_common_run_flags(p)
    p.add_argument("--name", help="run name: results/<name>/ (default <algo>-<bench>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.set_defaults(func=run, accepts_overrides=True)


def parse_overrides(tokens: list[str]) -> list[str]:
    """``--a.b 1``, ``--a.b=1`` and ``a.b=1`` -> ``["a.b=1"]``."""
    out, i = [], 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("--") and "." in tok.split("=")[0]:
            key = tok[2:]
            if "=" in key:
                out.append(key)
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                out.append(f"{key}={tokens[i + 1]}")
                i += 1
            else:
                raise HarnessError(f"config override {tok} needs a value")
        elif not tok.startswith("-") and "=" in tok:
            out.append(tok)
        else:
            raise HarnessError(f"unrecognized argument {tok!r} (config values look like --section.key VALUE)")
        i += 1
    return out


def config_from_args(args: argparse.Namespace):
    from harness.config import build_config, load_yaml

    yaml_data = load_yaml(args.config) if args.config else {}
    overrides = []
    for flag, key in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:  # an empty value stays "" (OmegaConf would read `key=` as null)
            overrides.append(f"{key}={value}" if value != "" else f"{key}=''")
    if args.wandb:
        overrides.append("log.wandb=true")
    if getattr(args, "quiet", False):
        overrides.append("log.progress=false")
    overrides += parse_overrides(args.overrides_raw)
    if getattr(args, "resume", False):  # the run's own config.yaml is the base: `run --resume --name X` suffices
        yaml_data = _merge(saved_config(yaml_data, overrides), yaml_data)
    return build_config(yaml_data, overrides)


def saved_config(yaml_data: dict, overrides: list[str]) -> dict:
    """``config.yaml`` of the run being resumed ({} when there is none yet)."""
    import yaml

    from harness.config import build_config
    from harness.results import validate_run_name

    given = dict(o.split("=", 1) for o in overrides)
    name = given.get("name") or yaml_data.get("name")
    if not name:  # the default name needs the algorithm, bench and seed
        name = build_config(yaml_data, overrides).run_name
    root = Path(given.get("results_dir") or yaml_data.get("results_dir") or "results")
    path = root / validate_run_name(str(name).strip("'\"")) / "config.yaml"
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run(args: argparse.Namespace) -> int:
    if args.help_config:
        print(config_help())
        return 0
    if args.resume and args.overwrite:
        raise HarnessError("--resume and --overwrite exclude each other")
    cfg = config_from_args(args)
    from common.rank import global_rank
    from harness.report.summary import print_report
    from harness.train.flow import run as train_run

    run_dir = train_run(cfg, overwrite=args.overwrite, resume=args.resume)
    if global_rank(devices_per_node=cfg.trainer.devices) == 0:  # what it found, once
        print_report(run_dir)
    return 0


def source_fields(cls) -> list[tuple[str, str, str]]:
    """``(name, default as written, # comment)`` of each field line in a dataclass's own source: the help texts."""
    out = []
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+): [^=]+= (.+?)\s*(?:#\s*(.*))?$", line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3) or ""))
    return out


def config_help() -> str:
    """Every config key with its default and comment, read from :mod:`harness.config`'s source."""
    lines = []
    for section, cls in [("", RunConfig), ("model", ModelConfig), ("data", DataConfig),
                         ("rollout", RolloutConfig), ("train", TrainConfig), ("eval", EvalConfig),
                         ("trainer", TrainerConfig), ("log", LogConfig)]:
        for name, default, comment in source_fields(cls):
            default = "{}" if default == "field(default_factory=dict)" else default
            if not default.startswith("field("):
                key = f"{section}.{name}" if section else name
                lines.append(f"  {key:32s} {default:12s} {comment}")
    lines.append("  algo.<field>                     see `python -m harness ls --algo NAME`")
    return "\n".join(lines)
