"""The engines' sampling log-probs against the training forward (tempered), on fresh weights.

After a few optimizer steps and ``sync_weights`` each engine's log-prob of its own samples must equal the
training forward's ``log_softmax(logits / T)`` to float32 tolerance; a stale weight copy (the kv sampler's fused
weights before the sync) must fail the same check. vLLM's version of the check is in ``test_vllm_engine.py``.
"""

from __future__ import annotations

import pytest
import torch

from harness.engines import SamplingParams
from harness.engines.hf import HFEngine
from harness.train.batching import collate, sampling_logp
from harness.train.logprobs import token_logp_entropy

PROMPTS = ["1+2=\n", "7*8-3=\n", "12/4+5=\n", "9-2*3=\n"]
TOL = 1e-4  # float32


def engine_vs_training(engine, model, tok, params: SamplingParams) -> tuple[float, int]:
    """(max |engine log-prob - training log-prob| over the sampled tokens, number of tokens)."""
    gens = engine.generate(PROMPTS, params, seed=5)
    assert all(g.logprobs is not None and len(g.logprobs) == len(g.response_ids) for g in gens)
    ids, attn, mask, T = collate(gens, tok.pad_token_id, "cpu")
    with torch.no_grad():
        train, _ = token_logp_entropy(model, ids, attn, T, with_entropy=False, temperature=params.temperature)
    valid = mask.bool()
    return float((sampling_logp(gens, T, "cpu") - train)[valid].abs().max()), int(valid.sum())


def train_a_few_steps(model, tok, steps: int = 3) -> None:
    """AdamW steps on the LM loss of some text: the weights move far enough for a stale copy to show."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = tok(["1+2=3\n", "7*8-3=53\n"], add_special_tokens=False, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    model.train()
    for _ in range(steps):
        model(**batch, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()


@pytest.fixture
def fresh_tiny():
    from harness.models import load_model

    return load_model("tiny")  # a copy of its own: this module trains it


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_kv_sampler_logprobs_follow_the_weights(fresh_tiny, temperature):
    model, tok = fresh_tiny
    engine = HFEngine(model, tok, sampler="kv")
    assert engine.decoder is not None
    params = SamplingParams(n=4, temperature=temperature, max_new_tokens=24, logprobs=True)
    diff, n = engine_vs_training(engine, model, tok, params)
    assert n > 40 and diff < TOL
    train_a_few_steps(model, tok)
    stale, _ = engine_vs_training(engine, model, tok, params)
    assert stale > 1e-2  # the fused copies still hold the old weights: caught
    engine.sync_weights(model)
    diff, _ = engine_vs_training(engine, model, tok, params)
    assert diff < TOL


def test_generate_sampler_logprobs_follow_the_weights(fresh_tiny):
    model, tok = fresh_tiny
    engine = HFEngine(model, tok, sampler="generate")
    params = SamplingParams(n=4, temperature=0.7, max_new_tokens=24, logprobs=True)
    train_a_few_steps(model, tok)
    engine.sync_weights(model)
    diff, n = engine_vs_training(engine, model, tok, params)
    assert n > 40 and diff < TOL


def test_samplers_return_logprobs_only_when_asked(tiny):
    model, tok = tiny
    for sampler in ("kv", "generate"):
        gens = HFEngine(model, tok, sampler=sampler).generate(PROMPTS[:2], SamplingParams(n=2, max_new_tokens=8))
        assert all(g.logprobs is None for g in gens)


def test_top_p_logprobs_are_of_the_nucleus(tiny):
    """With top-p < 1 the engine reports the renormalised nucleus probability, which is >= the tempered,
    un-truncated one the update scores (the gap the mismatch metrics then show)."""
    model, tok = tiny
    params = SamplingParams(n=8, temperature=1.0, top_p=0.5, max_new_tokens=16, logprobs=True)
    gens = HFEngine(model, tok).generate(PROMPTS, params, seed=1)
    ids, attn, mask, T = collate(gens, tok.pad_token_id, "cpu")
    with torch.no_grad():
        train, _ = token_logp_entropy(model, ids, attn, T, with_entropy=False)
    gap = (sampling_logp(gens, T, "cpu") - train)[mask.bool()]
    assert gap.min() > -TOL and gap.max() > 1e-3
