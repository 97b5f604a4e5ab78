"""The ``auto`` rollout engine: vLLM for models of 10M+ parameters when it is installed and supports the
model, else the transformers engine (whose kv sampler is the fastest on small models). The ``auto`` rollout
dtype: bfloat16 for float32 policies of 10M+ parameters on hardware with native bfloat16.

    python -m pytest tests/engines/test_engines.py -q
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from common.errors import HarnessError
from harness.engines import (AUTO_BF16_MIN_PARAMS, AUTO_VLLM_MIN_PARAMS, build_engine, check_engine, choose_dtype,
                             choose_engine, engine_names)
from harness.engines import choose as engines
from harness.models import TinySpec, build_tiny_model, build_tiny_tokenizer

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def llama(hidden: int, heads: int):
    """A random Llama of ~26M parameters on the meta device (nothing allocated)."""
    config = LlamaConfig(vocab_size=8192, hidden_size=hidden, intermediate_size=2816, num_hidden_layers=2,
                         num_attention_heads=heads, num_key_value_heads=heads)
    with torch.device("meta"):
        return LlamaForCausalLM(config)


def test_named_engines_are_kept():
    model = build_tiny_model(build_tiny_tokenizer(), TinySpec())
    assert [choose_engine(name, model) for name in ("hf", "vllm")] == ["hf", "vllm"]


def test_auto_picks_hf_for_a_small_model():
    model = build_tiny_model(build_tiny_tokenizer(), TinySpec())  # 0.15M parameters
    assert choose_engine("auto", model) == "hf"


def test_auto_picks_vllm_for_a_large_model_when_installed():
    model = llama(1024, 16)                                          # head size 64
    assert sum(p.numel() for p in model.parameters()) >= AUTO_VLLM_MIN_PARAMS
    assert choose_engine("auto", model) == ("vllm" if HAS_VLLM else "hf")


def test_auto_falls_back_without_vllm(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else object())
    assert choose_engine("auto", llama(1024, 16)) == "hf"


@pytest.mark.skipif(not HAS_VLLM, reason="needs vllm")
def test_auto_falls_back_for_an_unsupported_head_size():
    assert choose_engine("auto", llama(1024, 64)) == "hf"            # head size 16: no vLLM CPU kernel


def test_check_engine_names():
    assert engine_names() == ("auto", "hf", "vllm")
    check_engine("auto")
    check_engine("hf")
    with pytest.raises(HarnessError, match=r"unknown rollout engine 'x'; available: auto, hf, vllm"):
        check_engine("x")


def test_auto_dtype_is_bfloat16_for_a_large_float32_policy_on_native_hardware(monkeypatch):
    small, large = build_tiny_model(build_tiny_tokenizer(), TinySpec()), llama(1024, 16)
    assert sum(p.numel() for p in large.parameters()) >= AUTO_BF16_MIN_PARAMS
    monkeypatch.setattr(engines, "native_bfloat16", lambda device: True)
    assert [choose_dtype("auto", m) for m in (large, small, llama(1024, 16).to(torch.bfloat16))] == ["bfloat16", None, None]
    assert [choose_dtype(name, large) for name in ("policy", "float32", "float16")] == [None, "float32", "float16"]
    monkeypatch.setattr(engines, "native_bfloat16", lambda device: False)
    assert choose_dtype("auto", llama(1024, 16)) is None


def test_build_engine_samples_in_the_resolved_dtype(monkeypatch):
    config = LlamaConfig(vocab_size=8192, hidden_size=1024, intermediate_size=2816, num_hidden_layers=2,
                         num_attention_heads=16, num_key_value_heads=16)
    model, tok = LlamaForCausalLM(config), build_tiny_tokenizer()                  # 26M parameters, float32
    monkeypatch.setattr(engines, "native_bfloat16", lambda device: True)
    engine = build_engine("hf", model, tok, dtype="auto")
    assert engine.sample_dtype == "bfloat16" and engine.decoder.layers[0]["qkv"].dtype == torch.bfloat16
    assert build_engine("hf", model, tok).sample_dtype == "float32"                # default: the policy's
    assert next(model.parameters()).dtype == torch.float32


def test_every_registered_engine_implements_the_interface():
    """Each engine in the registry subclasses RolloutEngine and leaves no abstract method open; ``harness ls`` and
    ``--engine`` take their names from the registry."""
    import inspect

    from harness.engines import ENGINES, LazyEngine, RolloutEngine

    assert ENGINES.names() == ("hf", "vllm")
    for name in ENGINES.names():
        cls = ENGINES.get(name)
        assert issubclass(cls, RolloutEngine) and not inspect.isabstract(cls), name
    assert issubclass(LazyEngine, RolloutEngine) and not inspect.isabstract(LazyEngine)
    assert sorted(RolloutEngine.__abstractmethods__) == ["generate", "max_context", "sample_dtype", "sync_weights"]


def test_engines_package_imports_only_downward():
    """harness/engines/ may import common/ and itself (and harness.progress for the log level), nothing that uses it."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "harness" / "engines").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mod = node.module
                assert not mod.startswith(("algorithms", "benchmarks")), (path.name, mod)
                if mod.startswith("harness"):
                    assert mod.startswith(("harness.engines", "harness.progress")), (path.name, mod)


def test_lazy_engine_forwards_the_interface(tiny):
    from harness.engines import LazyEngine, SamplingParams

    model, tok = tiny
    engine = LazyEngine("hf", tok, max_batch_tokens=1024).start(model)
    assert (engine.kind, engine.sample_dtype, engine.accepts_token_ids) == ("HFEngine", "float32", True)
    assert engine.max_context == model.config.max_position_embeddings
    with engine.batch_tokens(64):
        gens = engine.generate(["1+2=\n"], SamplingParams(n=2, max_new_tokens=4, logprobs=True))
    assert len(gens) == 2 and all(len(g.logprobs) == len(g.response_ids) for g in gens)
    engine.close()
    from harness.engines.hf import HFEngine

    hf = HFEngine(model, tok, max_batch_tokens=1024)
    with hf.batch_tokens(64):
        assert hf.max_batch_tokens == 64
    assert hf.max_batch_tokens == 1024
