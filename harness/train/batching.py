"""Tensors of a step's generations, and micro-batches chosen by token count.

A step's rows are left-padded prompts followed by right-padded responses, ``[B, P + T]`` (:func:`collate`).
The forward/backward passes run over micro-batches (:func:`plan_micro_batches`) of at most
``train.micro_batch_size`` rows whose padded tokens, rows x (longest prompt + longest response) of the
micro-batch's own rows, stay within ``train.max_micro_batch_tokens``; each micro-batch is cut to those
columns (:func:`micro_inputs`), so memory per pass is bounded by the token budget whatever the prompt and
response lengths. Gradient accumulation over any grouping is exact because the loss of every micro-batch is
normalised by the whole mini-batch's token / sequence counts (``algorithms.loss.aggregate_loss``).

    python -c "import torch; from harness.train.batching import plan_micro_batches as p; \
print(p(torch.tensor([[0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 0]]), torch.arange(3), 2, \
max_rows=8, max_tokens=8))"
"""

from __future__ import annotations

import torch


def collate(gens, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``(ids [B, P+T], attention mask [B, P+T], response mask [B, T] float, T)`` of generations."""
    P = max(len(g.prompt_ids) for g in gens)
    T = max(max(len(g.response_ids) for g in gens), 1)
    ids = torch.full((len(gens), P + T), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for r, g in enumerate(gens):
        p, s = g.prompt_ids, g.response_ids
        ids[r, P - len(p):P] = torch.tensor(p)
        attn[r, P - len(p):P] = 1
        if s:
            ids[r, P:P + len(s)] = torch.tensor(s)
            attn[r, P:P + len(s)] = 1
    return ids.to(device), attn.to(device), attn[:, P:].float().to(device), T


def sampling_logp(gens, T: int, device) -> torch.Tensor | None:
    """``[B, T]`` float32 of the engine's per-token sampling log-probs (``Generation.logprobs``), 0 on padding;
    None when any generation has none."""
    if any(g.logprobs is None for g in gens):
        return None
    out = torch.zeros((len(gens), T), dtype=torch.float32)
    for r, g in enumerate(gens):
        if g.logprobs:
            out[r, :len(g.logprobs)] = torch.tensor(g.logprobs, dtype=torch.float32)
    return out.to(device)


ACTIVATION_BUDGET = 512 * 576 * 30  # tokens x hidden size x layers: 512 tokens on SmolLM2-135M. An 8 x 8 x 128
#   GRPO step with the vllm engine peaked at 5.5 GB with it, 6.8 GB at 1024 tokens and 9.5 GB at 2048, at 1.03x,
#   1.0x and 1.0x the step time (scripts/bench_step.py, 2-core CPU; results/speed-smollm2)
NO_LIMIT_PAST = 32768  # a budget above this many tokens is no limit (the built-in tiny model's runs stay one pass)


def auto_token_budget(config) -> int:
    """``train.max_micro_batch_tokens`` when unset: activation memory per token grows with hidden size x layers,
    so the budget is :data:`ACTIVATION_BUDGET` / (hidden size x layers); 0 (no limit) when that exceeds
    :data:`NO_LIMIT_PAST` tokens (the built-in ``tiny`` model: its default batch stays in one pass, as before the
    budget existed).

    A rule of thumb sized for a 24 GB CPU machine: set the budget for your accelerator's memory.
    """
    per_token = getattr(config, "hidden_size", 0) * getattr(config, "num_hidden_layers", 0)
    if not per_token:  # a config without these fields: no limit
        return 0
    budget = ACTIVATION_BUDGET // per_token
    return 0 if budget > NO_LIMIT_PAST else max(budget, 1)


LOGIT_BUDGET = 1024 * 49152  # logits elements at once (200 MB in float32): 1024 tokens at SmolLM2's vocabulary


def auto_logit_chunk(config) -> int:
    """``train.logit_chunk_tokens`` when unset: :data:`LOGIT_BUDGET` / vocabulary size tokens, 0 (one full forward,
    no chunks) past 64k tokens (small vocabularies such as ``tiny``'s, whose runs stay bit-identical)."""
    vocab = getattr(config, "vocab_size", 0)
    return 0 if not vocab or LOGIT_BUDGET // vocab > 65536 else LOGIT_BUDGET // vocab


def plan_micro_batches(attn: torch.Tensor, rows: torch.Tensor, T: int, *, max_rows: int,
                       max_tokens: int) -> list[torch.Tensor]:
    """Split ``rows`` into micro-batches of at most ``max_rows`` rows and ``max_tokens`` padded tokens.

    Args:
        attn: [B, P + T] attention mask of the whole step. rows: [R] the (mini-batch's) rows to split.
        max_tokens: budget of rows x (longest prompt + longest response) per micro-batch; 0: no budget.
    Returns:
        index tensors, each in ``rows``' order. When consecutive ``max_rows`` slices of ``rows`` fit the
        budget they are the answer (the plain split); otherwise rows are packed longest first, greedily,
        and a row longer than the budget alone makes its own micro-batch.
    """
    plain = list(rows.split(max_rows))
    if max_tokens <= 0:
        return plain
    p_len, r_len = _lengths(attn, T)
    if all(padded_tokens(p_len, r_len, m) <= max_tokens for m in plain):
        return plain
    order = sorted(rows.tolist(), key=lambda i: (-(p_len[i] + r_len[i]), i))
    groups: list[list[int]] = []
    cur: list[int] = []
    p_max = r_max = 0
    for i in order:
        p, r = max(p_max, p_len[i]), max(r_max, r_len[i])
        if cur and (len(cur) >= max_rows or (len(cur) + 1) * (p + r) > max_tokens):
            groups.append(cur)
            cur, p, r = [], p_len[i], r_len[i]
        cur.append(i)
        p_max, r_max = p, r
    groups.append(cur)
    pos = {i: k for k, i in enumerate(rows.tolist())}
    return [torch.tensor(sorted(g, key=pos.__getitem__), dtype=rows.dtype, device=rows.device) for g in groups]


def padded_tokens(p_len: list[int], r_len: list[int], micro: torch.Tensor) -> int:
    """rows x (longest prompt + longest response) of the rows ``micro``."""
    idx = micro.tolist()
    return len(idx) * (max(p_len[i] for i in idx) + max(r_len[i] for i in idx)) if idx else 0


def micro_inputs(ids: torch.Tensor, attn: torch.Tensor, micro: torch.Tensor, T: int):
    """``(ids, attn, T')`` of rows ``micro`` cut to their own padding: ``[m, p' + T']``, p' and T' their
    longest prompt and response (T' >= 1). The log-probs ``[m, T']`` go back to ``[m, T]`` with
    :func:`pad_right`."""
    P = ids.shape[1] - T
    a = attn[micro]                                                            # [m, P+T]
    p_max = int(a[:, :P].sum(-1).max())
    t_max = max(int(a[:, P:].sum(-1).max()), 1)
    cols = slice(P - p_max, P + t_max)
    return ids[micro][:, cols], a[:, cols], t_max


def pad_right(x: torch.Tensor | None, T: int) -> torch.Tensor | None:
    """``[m, T']`` -> ``[m, T]`` with zeros on the right (None stays None)."""
    if x is None or x.shape[1] == T:
        return x
    return torch.nn.functional.pad(x, (0, T - x.shape[1]))


def _lengths(attn: torch.Tensor, T: int) -> tuple[list[int], list[int]]:
    P = attn.shape[1] - T
    return attn[:, :P].sum(-1).tolist(), attn[:, P:].sum(-1).tolist()
