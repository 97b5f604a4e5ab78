"""The ``auto`` rollout engine: vLLM for models of 10M+ parameters when it is installed and supports the
model, else the transformers engine (whose kv sampler is the fastest on small models).

    python -m pytest tests/test_engines.py -q
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from common.errors import HarnessError
from harness.engines import AUTO_VLLM_MIN_PARAMS, ENGINE_NAMES, check_engine, choose_engine
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
    assert ENGINE_NAMES == ("auto", "hf", "vllm")
    check_engine("auto")
    check_engine("hf")
    with pytest.raises(HarnessError, match=r"unknown rollout engine 'x'; available: auto, hf, vllm"):
        check_engine("x")
