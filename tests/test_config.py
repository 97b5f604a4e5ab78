"""Config merging, overrides and validation; the CLI's one-line errors."""

import pytest

from common.errors import HarnessError
from harness.commands.run import parse_overrides
from harness.config import build_config, dump_yaml, load_yaml, to_dict

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs


def test_defaults_and_overrides():
    cfg = build_config({}, ["algo.name=prl", "algo.eta=10", "train.steps=3", "rollout.n=4"])
    assert cfg.algo.name == "prl" and cfg.algo.eta == 10.0 and cfg.train.steps == 3
    assert cfg.rollout.n == 4 and cfg.model.name == "tiny" and cfg.data.bench == "arith"
    assert cfg.run_name == "prl-arith-s0"


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("algo: {name: grpo, kl_coef: 0.001}\ntrain: {lr: 1.0e-5, steps: 7}\n")
    cfg = build_config(load_yaml(str(f)), ["train.steps=9"])
    assert cfg.algo.name == "grpo" and cfg.algo.kl_coef == 0.001
    assert cfg.train.lr == 1e-5 and cfg.train.steps == 9


def test_resolved_yaml_roundtrips(tmp_path):
    cfg = build_config({}, ["algo.name=rloo", "seed=3"])
    f = tmp_path / "r.yaml"
    f.write_text(dump_yaml(cfg))
    assert to_dict(build_config(load_yaml(str(f)), [])) == to_dict(cfg)


def test_parse_overrides():
    assert parse_overrides(["--algo.eta", "100", "--train.lr=1e-5", "rollout.n=2"]) == \
        ["algo.eta=100", "train.lr=1e-5", "rollout.n=2"]
    with pytest.raises(HarnessError):
        parse_overrides(["--algo.eta"])


@pytest.mark.parametrize("overrides,match", [
    (["algo.name=prl", "algo.eta=0"], "algo.eta must be > 0"),
    (["algo.name=prl", "algo.step_len=0"], "algo.step_len"),
    (["algo.name=grpo", "rollout.n=0"], "rollout.n must be >= 1"),
    (["algo.name=grpo", "algo.clip_eps_low=1"], r"algo.clip_eps_low must be in \[0, 1\) \(got 1.0\)"),
    (["algo.name=grpo", "rollout.temperature=0"], "rollout.temperature must be > 0"),
    (["algo.name=grpo", "rollout.dtype=bf16"],
     r"rollout.dtype must be auto \| policy \| float32 \| bfloat16 \| float16 \(got 'bf16'\)"),
    (["algo.name=grpo", "train.steps=0"], "train.steps must be >= 1"),
    (["algo.name=grpo", "train.nope=1"], "unknown config key 'train.nope'"),
    (["algo.name=grpo", "algo.eta=1"], "unknown config key 'algo.eta'"),
    (["algo.name=grpo", "train.steps=abc"], "train.steps"),
    (["algo.name=grpo", "eval.bench_limit.gsm8k=-1"], "eval.bench_limit.gsm8k must be >= 0"),
    (["algo.name=grpo", "eval.bench_limit.gsm8k=many"], "eval.bench_limit"),
    (["algo.name=nosuch"], "unknown algorithm 'nosuch'"),
    ([], "no algorithm given"),
])
def test_invalid_values(overrides, match):
    with pytest.raises(HarnessError, match=match):
        build_config({}, overrides)


def test_bad_yaml(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train: [unclosed\n")
    with pytest.raises(HarnessError, match="not valid YAML"):
        load_yaml(str(f))
    with pytest.raises(HarnessError, match="does not exist"):
        load_yaml(str(tmp_path / "missing.yaml"))


def test_config_is_frozen():
    """Issue 14 item 5: a built configuration cannot be changed afterwards (the algo section is the plugin's)."""
    import dataclasses

    cfg = build_config({}, ["algo.name=prl", "train.lr=0.001"])
    for obj, key in ((cfg, "seed"), (cfg.train, "lr"), (cfg.eval, "n"), (cfg.rollout, "n")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, key, 1)
    assert cfg.train.lr == 0.001 and cfg.train.betas == (0.9, 0.999)


def test_per_benchmark_eval_limit():
    """``eval.bench_limit.<bench>`` overrides ``eval.limit`` for one benchmark; 0 there means all of it; a key
    naming a benchmark the run does not evaluate is an error, not a silent full evaluation."""
    cfg = build_config({}, ["algo.name=grpo", "eval.limit=50", "eval.bench_limit.gsm8k=16",
                            "eval.bench_limit.math500=0"])
    assert cfg.eval.bench_limit == {"gsm8k": 16, "math500": 0}
    assert cfg.eval.limits(["arith_word", "gsm8k", "math500"]) == {"arith_word": 50, "gsm8k": 16, "math500": None}
    with pytest.raises(HarnessError, match=r"eval.bench_limit names gsm8k, math500, which this run does not "
                                           r"evaluate \(its benchmarks: arith\)"):
        cfg.eval.limits(["arith"])
