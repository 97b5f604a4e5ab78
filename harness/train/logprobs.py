"""Per-token log-probs and entropies of responses, without full-vocabulary logits for a whole micro-batch.

A plain ``model(...)`` call materialises ``[B, T, V]`` logits, and the entropy a softmax of the same size: at
V = 49,152 (SmolLM2) and 64 rows x 256 tokens that is 3.2 GB per float32 copy, kept alive until backward. Here
(``chunk_tokens > 0``) the model's backbone gives the hidden states, and the LM head, the model's logit
transform (Gemma's ``final_logit_softcapping``, Cohere's ``logit_scale``, Granite's ``logits_scaling``),
log-softmax and entropy run on at most ``chunk_tokens`` response tokens at a time, padding positions
skipped. With gradients, each chunk runs under ``torch.utils.checkpoint``: backward recomputes one chunk's
logits at a time (one more head matmul) instead of keeping every chunk's alive. The operations are those
of the unchunked computation, so values and gradients agree to float rounding (``tests/train/test_logprobs.py``).
A model whose backbone + head does not reproduce its own logits (checked once per model on a few tokens)
falls back to the full forward, as do ``chunk_tokens == 0`` and a micro-batch of at most ``chunk_tokens``
response positions (so small batches give bit for bit the numbers of the plain forward).

    python -c "from harness.train.logprobs import split_lm; from transformers import LlamaConfig as C, \
LlamaForCausalLM as M; print(split_lm(M(C(hidden_size=16, intermediate_size=32, num_hidden_layers=1, \
num_attention_heads=2, num_key_value_heads=1, vocab_size=50)))[1])"
"""

from __future__ import annotations

import logging
import weakref

import torch
from torch.utils.checkpoint import checkpoint

log = logging.getLogger(__name__)
_SPLIT_OK: "weakref.WeakKeyDictionary[torch.nn.Module, bool]" = weakref.WeakKeyDictionary()


def token_logp_entropy(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, resp_len: int, *,
                       with_entropy: bool = True, chunk_tokens: int = 0, entropy_grad: bool = True,
                       temperature: float = 1.0):
    """Log-probs (and entropies) of the last ``resp_len`` tokens of left-padded prompt+response rows, under the
    tempered distribution ``softmax(logits / temperature)`` the sampler drew them from.

    Args:
        input_ids: [B, P + T] left-padded prompts followed by right-padded responses.
        attention_mask: [B, P + T].
        chunk_tokens: most response tokens whose logits exist at once (0, or ``B * T`` at most: the model's
            own full forward, ``[B, T, V]`` logits, exactly as without chunking).
        entropy_grad: whether the entropy needs a gradient (an entropy bonus); if not it is computed detached.
        temperature: the sampling temperature (> 0); the logits are divided by it, as TRL's ``selective_log_softmax``
            on ``logits / temperature`` and verl's ``logits.div_(temperature)`` (``dp_actor.py``) do. Top-p is not
            applied: like the peers, training scores the tempered, un-truncated distribution.
    Returns:
        logp [B, T] (float32), entropy [B, T] or None. Padding positions (``attention_mask`` 0) hold
        arbitrary values (0 when chunked).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (got {temperature})")
    chunked = 0 < chunk_tokens < input_ids.shape[0] * resp_len
    parts = split_lm(model) if chunked else None
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)                 # [B, P+T]
    if parts is None or not _split_matches(model, parts):
        return _full_forward(model, input_ids, attention_mask, position_ids, resp_len, with_entropy, temperature)
    backbone, head, transform = parts
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      use_cache=False).last_hidden_state                        # [B, P+T, H]
    valid = attention_mask[:, -resp_len:].bool()                               # [B, T]
    h = hidden[:, -resp_len - 1:-1][valid]                                     # [N, H]
    targets = input_ids[:, -resp_len:][valid]                                  # [N]

    def run(h_c, t_c):
        return _chunk(head, transform, h_c, t_c, with_entropy, entropy_grad, temperature)

    spans = [(i, min(i + chunk_tokens, h.shape[0])) for i in range(0, h.shape[0], chunk_tokens)]
    recompute = torch.is_grad_enabled() and h.requires_grad and len(spans) > 1
    outs = [checkpoint(run, h[a:b], targets[a:b], use_reentrant=False, preserve_rng_state=False)
            if recompute else run(h[a:b], targets[a:b]) for a, b in spans]
    zeros = torch.zeros(valid.shape, dtype=torch.float32, device=h.device)
    if not outs:
        return zeros, (zeros.clone() if with_entropy else None)
    logp = zeros.masked_scatter(valid, torch.cat([o[0] for o in outs]))
    entropy = zeros.masked_scatter(valid, torch.cat([o[1] for o in outs])) if with_entropy else None
    return logp, entropy


def _chunk(head, transform, h, targets, with_entropy: bool, entropy_grad: bool, temperature: float):
    """``(logp [n], entropy [n] or None)`` of ``n`` hidden states ``h [n, H]`` and their next tokens."""
    return _from_logits(transform(head(h)).float(), targets, with_entropy, entropy_grad,         # logits [n, V]
                        temperature)


def _full_forward(model, input_ids, attention_mask, position_ids, resp_len: int, with_entropy: bool,
                  temperature: float):
    """The unchunked computation: the model's own ``[B, T, V]`` logits."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                logits_to_keep=resp_len + 1, use_cache=False)
    return _from_logits(out.logits[:, :-1].float(), input_ids[:, -resp_len:], with_entropy,   # [B, T, V], [B, T]
                        temperature=temperature)


def _from_logits(logits, targets, with_entropy: bool, entropy_grad: bool = True, temperature: float = 1.0):
    """``(logp [...], entropy [...] or None)`` of ``targets [...]`` under float32 ``logits [..., V] / temperature``."""
    if temperature != 1.0:
        logits = logits / temperature
    logz = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz
    if not with_entropy:
        return logp, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        probs = torch.softmax(logits, dim=-1)
        entropy = logz - (probs * logits).sum(-1)
    return logp, entropy


def split_lm(model):
    """``(backbone, head, transform)`` of a causal LM: hidden states, the LM head, and the model's logit
    transform after the head; None when the model has no separate head or backbone."""
    get_head, get_backbone = getattr(model, "get_output_embeddings", None), getattr(model, "get_decoder", None)
    head = get_head() if callable(get_head) else None
    backbone = get_backbone() if callable(get_backbone) else None
    if head is None or backbone is None or backbone is model:
        return None
    cfg = getattr(model, "config", None)
    scale = getattr(cfg, "logit_scale", None)            # Cohere: logits * logit_scale
    div = getattr(cfg, "logits_scaling", None)           # Granite: logits / logits_scaling
    cap = getattr(cfg, "final_logit_softcapping", None)  # Gemma 2/3: cap * tanh(logits / cap)

    def transform(logits: torch.Tensor) -> torch.Tensor:
        if isinstance(scale, (int, float)) and not isinstance(scale, bool):
            logits = logits * scale
        if isinstance(div, (int, float)) and not isinstance(div, bool) and div:
            logits = logits / div
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return backbone, head, transform


@torch.no_grad()
def _split_matches(model, parts) -> bool:
    """Whether backbone + head + transform give the model's own logits (checked once per model)."""
    if model in _SPLIT_OK:
        return _SPLIT_OK[model]
    backbone, head, transform = parts
    device = next(model.parameters()).device
    vocab = getattr(getattr(model, "config", None), "vocab_size", None) or 2
    ids = torch.arange(1, 9, device=device).remainder(vocab).unsqueeze(0)     # [1, 8]
    ref = model(input_ids=ids, use_cache=False).logits.float()
    mine = transform(head(backbone(input_ids=ids, use_cache=False).last_hidden_state)).float()
    ok = ref.shape == mine.shape and torch.allclose(ref, mine, rtol=1e-3, atol=1e-3)
    if not ok:
        log.warning("%s: backbone + LM head do not reproduce the model's logits; computing full logits",
                    type(model).__name__)
    _SPLIT_OK[model] = ok
    return ok
