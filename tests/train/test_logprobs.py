"""Chunked log-probs and entropies (harness/train/logprobs.py) equal the unchunked full-logits computation.

Values at response positions and the parameter gradients of a loss using both are compared on the
warm-started tiny model and on random small Llama / Qwen2 models with tied and untied embeddings, and on a
Gemma2 model (logit soft-capping); a model whose backbone + head does not give its logits falls back.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma2Config, LlamaConfig, Qwen2Config

from harness.train.logprobs import split_lm, token_logp_entropy

SMALL = dict(vocab_size=60, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=8, max_position_embeddings=128, pad_token_id=0)


def random_model(cfg_cls, tied: bool, **extra):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg_cls(**SMALL, tie_word_embeddings=tied, **extra),
                                             dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return model


def padded_batch(vocab: int, rows: int = 6, seed: int = 0):
    """Left-padded prompts + right-padded responses of random lengths: ``(ids, attn, T)``."""
    g = torch.Generator().manual_seed(seed)
    P, T = 7, 9
    ids = torch.zeros(rows, P + T, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for r in range(rows):
        p, t = int(torch.randint(1, P + 1, (1,), generator=g)), int(torch.randint(0, T + 1, (1,), generator=g))
        t = T if r == 0 else t  # the longest response defines T
        ids[r, P - p:P + t] = torch.randint(1, vocab, (p + t,), generator=g)
        attn[r, P - p:P + t] = 1
    return ids, attn, T


def loss_and_grads(model, ids, attn, T, chunk: int):
    model.zero_grad(set_to_none=True)
    logp, ent = token_logp_entropy(model, ids, attn, T, chunk_tokens=chunk)
    valid = attn[:, -T:].bool()
    w = torch.linspace(-1, 1, valid.numel()).view(valid.shape)
    ((logp * w)[valid].sum() + (ent * w.flip(0))[valid].sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logp.detach()[valid], ent.detach()[valid], grads


def assert_grads_close(got: dict, ref: dict) -> None:
    """Equal to float rounding: within 1e-5 of each gradient's largest entry (summation order differs)."""
    for name, g in ref.items():
        torch.testing.assert_close(got[name], g, rtol=1e-4, atol=1e-5 * float(g.abs().max()), msg=name)


MODELS = [(LlamaConfig, True, {}), (LlamaConfig, False, {}), (Qwen2Config, True, {}), (Qwen2Config, False, {}),
          (Gemma2Config, True, {"final_logit_softcapping": 2.0, "attn_logit_softcapping": None})]


@pytest.mark.parametrize("cfg_cls, tied, extra", MODELS,
                         ids=["llama-tied", "llama-untied", "qwen2-tied", "qwen2-untied", "gemma2-softcap"])
@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_chunked_equals_full_logits(cfg_cls, tied, extra, chunk):
    model = random_model(cfg_cls, tied, **extra)
    assert split_lm(model) is not None
    ids, attn, T = padded_batch(SMALL["vocab_size"])
    ref = loss_and_grads(model, ids, attn, T, chunk=0)
    got = loss_and_grads(model, ids, attn, T, chunk=chunk)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-5)
    assert got[2].keys() == ref[2].keys() and len(ref[2]) == len(list(model.parameters()))
    assert_grads_close(got[2], ref[2])


def test_tiny_model_chunked_equals_full(tiny):
    model, tok = tiny
    ids, attn, T = padded_batch(len(tok), rows=4, seed=1)
    ref = loss_and_grads(model, ids, attn, T, chunk=0)
    got = loss_and_grads(model, ids, attn, T, chunk=4)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-5)
    assert_grads_close(got[2], ref[2])


def test_no_grad_pass_and_detached_entropy():
    model = random_model(LlamaConfig, False)
    ids, attn, T = padded_batch(SMALL["vocab_size"])
    with torch.no_grad():
        ref, _ = token_logp_entropy(model, ids, attn, T, with_entropy=False)
        got, none = token_logp_entropy(model, ids, attn, T, with_entropy=False, chunk_tokens=3)
    valid = attn[:, -T:].bool()
    assert none is None and got[~valid].eq(0).all()
    torch.testing.assert_close(got[valid], ref[valid], rtol=1e-5, atol=1e-5)
    logp, ent = token_logp_entropy(model, ids, attn, T, chunk_tokens=3, entropy_grad=False)
    assert logp.requires_grad and not ent.requires_grad


def test_a_head_that_does_not_reproduce_the_logits_falls_back():
    model = random_model(LlamaConfig, True)
    model.config.final_logit_softcapping = 0.5  # Llama ignores it; the split path would apply it
    ids, attn, T = padded_batch(SMALL["vocab_size"])
    with torch.no_grad():
        ref, _ = token_logp_entropy(model, ids, attn, T, chunk_tokens=0)
        got, _ = token_logp_entropy(model, ids, attn, T, chunk_tokens=4)
    torch.testing.assert_close(got, ref)  # the full forward ran: padding positions equal too


@pytest.mark.parametrize("temperature", [0.5, 0.7, 1.0])
@pytest.mark.parametrize("chunk", [0, 5], ids=["full", "chunked"])
def test_tempered_logprobs_and_entropy(temperature, chunk):
    """``log_softmax(logits / T)`` at the chosen tokens and the entropy of ``softmax(logits / T)``, computed here from
    the model's own logits, for the full and the chunked path (the distribution the sampler drew from)."""
    model = random_model(LlamaConfig, False)
    ids, attn, T = padded_batch(SMALL["vocab_size"])
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids).logits[:, -T - 1:-1] / temperature
        want_logp = logits.log_softmax(-1).gather(-1, ids[:, -T:, None]).squeeze(-1)             # [B, T]
        want_ent = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
        logp, ent = token_logp_entropy(model, ids, attn, T, chunk_tokens=chunk, temperature=temperature)
    valid = attn[:, -T:].bool()
    torch.testing.assert_close(logp[valid], want_logp[valid], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent[valid], want_ent[valid], rtol=1e-5, atol=1e-5)
    if temperature != 1.0:  # the untempered log-probs are far off: the test can tell them apart
        untempered, _ = token_logp_entropy(model, ids, attn, T, chunk_tokens=chunk)
        assert (untempered - logp)[valid].abs().max() > 0.05
