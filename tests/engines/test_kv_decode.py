"""The lean KV-cache sampler (harness/engines/kv_decode.py) against transformers.

Parity is checked three ways: greedy token ids equal ``model.generate`` on the warm-started tiny
model; on random Llama (GQA), Qwen2 (q/k/v biases) and Qwen3 (q/k norms) models, the log-probs the
sampler reports for its own samples equal a full forward pass of the same sequences (this exercises
left padding, positions, the KV cache and EOS padding); and its top-p filter equals transformers'
``TopPLogitsWarper``. Random weights are drawn at std 0.5 so that greedy decoding is far from ties.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config
from transformers.generation.logits_process import TopPLogitsWarper

from harness.engines import SamplingParams
from harness.engines.hf import HFEngine
from harness.engines.kv_decode import KVDecoder, sample_categorical, top_p_filter, unsupported_reason
from harness.train.logprobs import token_logp_entropy

EOS, PAD = 1, 0
SMALL = dict(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=8, max_position_embeddings=256, eos_token_id=EOS, pad_token_id=PAD,
             tie_word_embeddings=False)


def _random_model(cfg_cls, **extra):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg_cls(**SMALL, **extra), dtype=torch.float32).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
    return model


def _prompts(rng: torch.Generator, n: int) -> list[list[int]]:
    return [torch.randint(2, 40, (int(torch.randint(1, 9, (1,), generator=rng)),), generator=rng).tolist()
            for _ in range(n)]


def _padded(prompts, responses, P, T):
    """Left-padded prompt + right-padded response rows (the training loop's layout)."""
    ids = torch.full((len(prompts), P + T), PAD)
    attn = torch.zeros_like(ids)
    for r, (p, s) in enumerate(zip(prompts, responses)):
        ids[r, P - len(p):P] = torch.tensor(p)
        attn[r, P - len(p):P] = 1
        ids[r, P:P + len(s)] = torch.tensor(s)
        attn[r, P:P + len(s)] = 1
    return ids, attn


def _cut(row: list[int]) -> list[int]:
    return row[:row.index(EOS) + 1] if EOS in row else row


@pytest.mark.parametrize("cfg_cls,extra", [(LlamaConfig, {}), (Qwen2Config, {}), (Qwen3Config, {}),
                                           (LlamaConfig, {"attention_bias": True, "mlp_bias": True})],
                         ids=["llama-gqa", "qwen2-bias", "qwen3-qknorm", "llama-biases"])
@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0])
@pytest.mark.parametrize("small", [False, True], ids=["default-buffers", "grow3-compact2"])
def test_logprobs_match_a_full_forward(cfg_cls, extra, temperature, small):
    """``small``: the KV buffers grow 3 tokens at a time and finished rows are dropped every 2 steps."""
    model = _random_model(cfg_cls, **extra)
    assert unsupported_reason(model) is None
    prompts = _prompts(torch.Generator().manual_seed(1), 12)
    torch.manual_seed(3)
    dec = KVDecoder(model)
    if small:
        dec.grow_by, dec.compact_every = 3, 2
    toks, lps = dec.sample(prompts, max_new_tokens=16, eos_token_id=EOS, pad_token_id=PAD,
                           temperature=temperature, return_logprobs=True)
    responses = [_cut(r) for r in toks.tolist()]
    if temperature > 0:  # some rows stop on EOS, others run to the limit
        assert any(len(r) < 16 for r in responses) and any(len(r) == 16 for r in responses)
    P, T = max(map(len, prompts)), toks.shape[1]
    ids, attn = _padded(prompts, responses, P, T)
    with torch.no_grad():
        ref, _ = token_logp_entropy(model, ids, attn, T, with_entropy=False, temperature=temperature or 1.0)
    valid = attn[:, P:].bool()
    torch.testing.assert_close(lps[valid], ref[valid], atol=2e-4, rtol=1e-4)   # greedy: the raw logits' log-probs
    for r, resp in enumerate(responses):  # after EOS: padding only
        assert toks[r, len(resp):].eq(PAD).all()


@pytest.mark.parametrize("cfg_cls", [LlamaConfig, Qwen3Config], ids=["llama-gqa", "qwen3-qknorm"])
def test_bfloat16_sampling_of_a_float32_policy(cfg_cls):
    """``rollout.dtype=bfloat16``: the sampler computes in bfloat16 copies, the policy stays float32, and its
    log-probs stray from the float32 forward no further than transformers' own bfloat16 forward does."""
    model = _random_model(cfg_cls)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    prompts = _prompts(torch.Generator().manual_seed(1), 12)
    torch.manual_seed(3)
    dec = KVDecoder(model, torch.bfloat16)
    assert {t.dtype for L in dec.layers for t in L.values() if t is not None} == {torch.bfloat16}
    toks, lps = dec.sample(prompts, max_new_tokens=16, eos_token_id=EOS, pad_token_id=PAD, temperature=1.0,
                           return_logprobs=True)
    assert lps.dtype == torch.float32
    assert all(torch.equal(v, weights[k]) and v.dtype == torch.float32 for k, v in model.state_dict().items())
    responses = [_cut(r) for r in toks.tolist()]
    P, T = max(map(len, prompts)), toks.shape[1]
    ids, attn = _padded(prompts, responses, P, T)
    valid = attn[:, P:].bool()
    with torch.no_grad():
        ref = token_logp_entropy(model, ids, attn, T, with_entropy=False)[0][valid]
        hf_bf16 = token_logp_entropy(model.to(torch.bfloat16), ids, attn, T, with_entropy=False)[0][valid]
    ours = (lps[valid] - ref).abs().mean()
    assert 0 < ours <= 2 * (hf_bf16 - ref).abs().mean() + 1e-3, (ours, (hf_bf16 - ref).abs().mean())


def test_generate_sampler_runs_in_the_rollout_dtype(tiny):
    """The ``generate`` sampler with ``dtype``: the projections compute in bfloat16 (autocast), weights untouched."""
    model, tok = tiny
    seen = []
    hook = model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        params = SamplingParams(n=1, temperature=0.0, max_new_tokens=4)
        HFEngine(model, tok, sampler="generate", dtype="bfloat16").generate(["Compute 3*4.\n"], params)
        assert seen and set(seen) == {torch.bfloat16}
        seen.clear()
        HFEngine(model, tok, sampler="generate").generate(["Compute 3*4.\n"], params)
        assert seen and set(seen) == {torch.float32}
    finally:
        hook.remove()
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("cfg_cls", [LlamaConfig, Qwen2Config])
def test_greedy_equals_generate_on_random_models(cfg_cls):
    model = _random_model(cfg_cls)
    with torch.no_grad():  # make EOS likely, so that rows finish at different steps
        model.lm_head.weight[EOS] *= 1.5
    prompts = _prompts(torch.Generator().manual_seed(2), 24)
    P = max(map(len, prompts))
    ids, attn = _padded(prompts, [[]] * len(prompts), P, 0)
    ref = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=20, do_sample=False,
                         eos_token_id=EOS, pad_token_id=PAD)[:, P:]
    ref = [_cut(r) for r in ref.tolist()]
    assert len({len(r) for r in ref}) > 3  # rows stop at several different lengths
    dec = KVDecoder(model)
    for grow_by, compact_every in ((256, 8), (3, 2), (1, 1)):
        dec.grow_by, dec.compact_every = grow_by, compact_every
        got = dec.sample(prompts, max_new_tokens=20, eos_token_id=EOS, pad_token_id=PAD, temperature=0.0)
        assert [_cut(r) for r in got.tolist()] == ref, (grow_by, compact_every)


def test_tiny_greedy_equals_generate_and_follows_weight_updates(tiny, tiny_path):
    """The engine's kv sampler == transformers generate, before and after an optimizer step + sync."""
    tok = tiny[1]
    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)  # a copy we may change
    prompts = [f"Compute {a}*{b}-{c}.\n" for a, b, c in [(3, 4, 5), (9, 9, 1), (0, 7, 2), (6, 1, 8)]]
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=32)
    kv, gen = HFEngine(model, tok, sampler="kv"), HFEngine(model, tok, sampler="generate")
    assert kv.decoder is not None and gen.decoder is None
    before = [g.response_ids for g in kv.generate(prompts, greedy)]
    assert before == [g.response_ids for g in gen.generate(prompts, greedy)]
    assert all(g[-1] == tok.eos_token_id for g in before)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    torch.manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    stale = [g.response_ids for g in kv.generate(prompts, greedy)]
    kv.sync_weights(model)
    after = [g.response_ids for g in kv.generate(prompts, greedy)]
    assert after == [g.response_ids for g in gen.generate(prompts, greedy)]
    assert after != before and stale != after


def test_sampled_rewards_match_generate_in_distribution(tiny):
    """Same model, same settings: the kv sampler's and generate's mean response lengths agree."""
    model, tok = tiny
    prompts = [f"Compute {a}+{b}*{c}.\n" for a, b, c in [(3, 4, 5), (9, 2, 1), (0, 7, 2), (6, 1, 8)]]
    params = SamplingParams(n=64, temperature=1.0, top_p=0.9, max_new_tokens=32)
    lens = {s: [len(g.response_ids) for g in HFEngine(model, tok, sampler=s).generate(prompts, params, seed=1)]
            for s in ("kv", "generate")}
    mean = {s: sum(v) / len(v) for s, v in lens.items()}
    assert abs(mean["kv"] - mean["generate"]) < 1.5, mean


def test_top_p_filter_matches_transformers():
    torch.manual_seed(0)
    logits = torch.randn(64, 50) * 3
    for top_p in (0.1, 0.5, 0.9, 0.99):
        ref = TopPLogitsWarper(top_p)(None, logits.clone())
        got = top_p_filter(logits, top_p)
        assert torch.equal(torch.isinf(got), torch.isinf(ref))
        torch.testing.assert_close(got[~torch.isinf(got)], ref[~torch.isinf(ref)])
    assert top_p_filter(logits, 1.0) is logits


def test_sample_categorical_draws_the_distribution():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2, 0.0]]).repeat(40_000, 1)
    torch.manual_seed(0)
    draws = sample_categorical(probs)
    freq = torch.bincount(draws, minlength=5).float() / len(draws)
    assert freq[1] == 0 and freq[4] == 0
    torch.testing.assert_close(freq, probs[0], atol=0.01, rtol=0)


def test_unsupported_architecture_falls_back_to_generate(caplog):
    from transformers import GPT2Config

    cfg = GPT2Config(vocab_size=40, n_embd=16, n_layer=1, n_head=2, eos_token_id=EOS, pad_token_id=PAD)
    model = AutoModelForCausalLM.from_config(cfg)
    assert "gpt2" in unsupported_reason(model)
    with pytest.raises(ValueError, match="does not support"):
        KVDecoder(model)
    sliding = _random_model(Qwen2Config, use_sliding_window=True, sliding_window=4, max_window_layers=0)
    assert "sliding" in unsupported_reason(sliding)

    class Tok:
        eos_token_id, pad_token_id = EOS, PAD

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [2 + (ord(c) % 30) for c in text]}

        def batch_decode(self, rows, skip_special_tokens=True):
            return [" ".join(map(str, r)) for r in rows]

    eng = HFEngine(model, Tok(), sampler="kv")
    assert eng.decoder is None and "using model.generate" in caplog.text
    out = eng.generate(["ab", "cde"], SamplingParams(n=2, temperature=1.0, max_new_tokens=5), seed=0)
    assert len(out) == 4 and all(1 <= len(g.response_ids) <= 5 for g in out)
