"""Micro-batches by token count (harness/train/batching.py): the plan's bounds, and exact gradient accumulation.

Accumulating the loss over token-budget micro-batches, each cut to its own padding and run through the
chunked log-probs, gives the gradient of one pass over the whole batch for every ``loss_agg`` mode (with the
KL loss and the entropy bonus on).
"""

from __future__ import annotations

import pytest
import torch
from test_logprobs import SMALL, assert_grads_close, random_model
from transformers import LlamaConfig

from algorithms.core import LOSS_AGG_MODES, Rollout
from algorithms.grpo import GRPOConfig
from algorithms.loss import compute_loss
from harness.train.batching import micro_inputs, pad_right, padded_tokens, plan_micro_batches
from harness.train.logprobs import token_logp_entropy


def batch(rows: int, seed: int = 0, P: int = 10, T: int = 12):
    """Left-padded prompts of 1..P tokens + right-padded responses of 0..T tokens: ``(ids, attn, T)``."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(rows, P + T, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for r in range(rows):
        p = int(torch.randint(1, P + 1, (1,), generator=g))
        t = T if r == 1 else int(torch.randint(0, T + 1, (1,), generator=g))
        ids[r, P - p:P + t] = torch.randint(1, SMALL["vocab_size"], (p + t,), generator=g)
        attn[r, P - p:P + t] = 1
    return ids, attn, T


def lengths(attn, T):
    return attn[:, :-T].sum(-1).tolist(), attn[:, -T:].sum(-1).tolist()


@pytest.mark.parametrize("max_rows, max_tokens", [(4, 0), (64, 60), (3, 45), (64, 10)])
def test_plan_covers_every_row_once_within_the_bounds(max_rows, max_tokens):
    ids, attn, T = batch(20)
    rows = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    plan = plan_micro_batches(attn, rows, T, max_rows=max_rows, max_tokens=max_tokens)
    assert sorted(torch.cat(plan).tolist()) == list(range(20))
    pos = {r: k for k, r in enumerate(rows.tolist())}
    p_len, r_len = lengths(attn, T)
    for m in plan:
        assert len(m) <= max_rows and [pos[i] for i in m.tolist()] == sorted(pos[i] for i in m.tolist())
        if max_tokens and len(m) > 1:
            assert padded_tokens(p_len, r_len, m) <= max_tokens
    if max_tokens == 0:  # no budget: the plain split by rows
        assert [m.tolist() for m in plan] == [m.tolist() for m in rows.split(max_rows)]


def test_plan_is_the_plain_split_when_it_fits_and_a_long_row_goes_alone():
    ids, attn, T = batch(8)
    rows = torch.arange(8)
    assert [m.tolist() for m in plan_micro_batches(attn, rows, T, max_rows=8, max_tokens=10_000)] == [rows.tolist()]
    plan = plan_micro_batches(attn, rows, T, max_rows=8, max_tokens=5)  # every row is over the budget
    assert [len(m) for m in plan] == [1] * 8


def test_micro_inputs_cut_to_the_rows_own_padding():
    ids, attn, T = batch(6)
    p_len, r_len = lengths(attn, T)
    micro = torch.tensor([0, 2, 3])
    m_ids, m_attn, m_T = micro_inputs(ids, attn, micro, T)
    assert m_T == max(r_len[i] for i in micro.tolist()) and m_attn.shape[1] == max(p_len[i] for i in
                                                                                    micro.tolist()) + m_T
    assert m_attn.sum() == attn[micro].sum() and torch.equal(m_ids[m_attn.bool()], ids[micro][attn[micro].bool()])
    assert pad_right(torch.ones(3, m_T), T).shape == (3, T)


def grads_of(model, ids, attn, T, rollout, adv, cfg, plan, chunk: int):
    model.zero_grad(set_to_none=True)
    mask = rollout.response_mask
    counts = dict(num_tokens=float(mask.sum()), num_seqs=float((mask.sum(-1) > 0).sum()))
    for micro in plan:
        m_ids, m_attn, m_T = micro_inputs(ids, attn, micro, T)
        logp, ent = token_logp_entropy(model, m_ids, m_attn, m_T, chunk_tokens=chunk)
        loss, _ = compute_loss(pad_right(logp, T), pad_right(ent, T), rollout.select(micro), adv[micro], cfg,
                               **counts)
        loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_token_budget_accumulation_equals_one_big_batch(mode):
    model = random_model(LlamaConfig, tied=False)
    ids, attn, T = batch(12, seed=2)
    mask = attn[:, -T:].float()                                                # [B, T]
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        old, _ = token_logp_entropy(model, ids, attn, T, with_entropy=False)
    rollout = Rollout(response_ids=ids[:, -T:], response_mask=mask, group_ids=torch.arange(12) // 4,
                      rewards=torch.rand(12, generator=g), old_logp=(old + 0.05 * torch.randn(old.shape, generator=g))
                      * mask, ref_logp=(old + 0.1 * torch.randn(old.shape, generator=g)) * mask)
    adv = torch.randn(12, T, generator=g) * mask
    cfg = GRPOConfig(loss_agg=mode, kl_coef=0.1, entropy_coef=0.01)
    rows = torch.arange(12)
    ref = grads_of(model, ids, attn, T, rollout, adv, cfg, [rows], chunk=0)
    plan = plan_micro_batches(attn, rows, T, max_rows=64, max_tokens=40)
    assert len(plan) > 2 and any(micro_inputs(ids, attn, m, T)[1].shape[1] < ids.shape[1] for m in plan)
    assert_grads_close(grads_of(model, ids, attn, T, rollout, adv, cfg, plan, chunk=7), ref)


def test_auto_token_budget_follows_the_model_size():
    """Unset ``train.max_micro_batch_tokens``: 512 tokens on SmolLM2-135M's shape, fewer on a larger model, no
    limit on the tiny model (its default batch stays one pass, so its runs are unchanged)."""
    from types import SimpleNamespace as C

    from harness.train.batching import auto_logit_chunk, auto_token_budget

    assert auto_token_budget(C(hidden_size=576, num_hidden_layers=30)) == 512
    assert auto_token_budget(C(hidden_size=1536, num_hidden_layers=28)) == 205
    assert auto_token_budget(C(hidden_size=64, num_hidden_layers=3)) == 0
    assert auto_token_budget(C()) == 0
    assert auto_logit_chunk(C(vocab_size=49152)) == 1024 and auto_logit_chunk(C(vocab_size=151936)) == 331
    assert auto_logit_chunk(C(vocab_size=100)) == 0 and auto_logit_chunk(C()) == 0
