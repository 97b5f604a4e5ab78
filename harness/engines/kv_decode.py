"""A lean KV-cache sampler for Llama-family decoders (Llama, Mistral, Qwen2, Qwen3).

It runs the same network as ``model.generate`` with the model's own weights and rotary module, one key/value buffer
per layer and a handful of tensor ops per layer, and samples the same distribution (temperature, then top-p as
transformers' ``TopPLogitsWarper``; left-padded prompts; EOS stopping): 1.5-2x ``generate``'s tokens/s on the tiny
preset. Fused projections are rebuilt by :meth:`KVDecoder.refresh` after each optimizer step; what it does not cover
is reported by :func:`unsupported_reason` (the engine then uses ``generate``). How and why: ``docs/engines.md``.

Try it::

    from harness.models import load_model
    from harness.engines.kv_decode import KVDecoder
    model, tok = load_model("tiny")
    dec = KVDecoder(model)
    ids = dec.sample([tok("12+7=")["input_ids"]], max_new_tokens=8, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id, temperature=0.0)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

SUPPORTED_TYPES = ("llama", "mistral", "qwen2", "qwen3")


def unsupported_reason(model) -> str | None:
    """Why :class:`KVDecoder` cannot run ``model`` exactly, or None when it can."""
    cfg = getattr(model, "config", None)
    mtype = getattr(cfg, "model_type", None)
    if mtype not in SUPPORTED_TYPES:
        return f"model type {mtype!r} (supported: {', '.join(SUPPORTED_TYPES)})"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(inner, "rotary_emb"):
        return "no model.layers / model.rotary_emb"
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if rope_type in ("dynamic", "longrope"):
        return f"rope type {rope_type!r} (position-dependent updates)"
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return "sliding-window attention layers"
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", mtype == "mistral"):
        return "sliding-window attention"
    if getattr(cfg, "hidden_act", "silu") not in ("silu", "swish"):
        return f"activation {cfg.hidden_act!r}"
    if getattr(cfg, "pretraining_tp", 1) != 1:
        return "pretraining_tp > 1"
    return None


def _rms_unit(x: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' RMSNorm before its weight: normalise in float32, cast back."""
    if x.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), eps=eps)
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' RMSNorm: normalise in float32, cast back, then scale."""
    return weight * _rms_unit(x, eps)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """transformers' ``TopPLogitsWarper``: drop the low tail whose total probability is <= 1 - top_p."""
    if top_p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, descending=False)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cum <= (1 - top_p)
    remove[..., -1:] = False
    return logits.scatter(-1, sorted_idx, sorted_logits.masked_fill(remove, float("-inf")))


def sample_categorical(probs: torch.Tensor) -> torch.Tensor:
    """One draw per row of ``probs`` [B, V] by inverting the CDF at a uniform point (from torch's RNG).

    The same distribution as ``torch.multinomial(probs, 1)`` and several times cheaper on CPU; a token
    of probability 0 is never drawn (its CDF step is empty).
    """
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    return (cdf < u).sum(-1).clamp_(max=probs.shape[-1] - 1)


class KVDecoder:
    """Samples continuations of token-id prompts with ``model``'s weights (see the module docstring)."""

    grow_by = 256        # KV buffer growth (tokens) when a live row outgrows it
    compact_every = 8    # every this many steps, drop finished rows once they are >= 1/4 of the live ones

    def __init__(self, model, dtype: torch.dtype | None = None) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"KVDecoder does not support this model: {reason}")
        self.model = model
        self.dtype = dtype or model.lm_head.weight.dtype
        cfg = model.config
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.eps = cfg.rms_norm_eps
        self.layers: list[dict] = []
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Rebuild the fused weights from the model's current parameters.

        Per layer: q/k/v stacked into one matrix and gate/up into another, each with the RMSNorm
        weight in front of it folded into its columns, and the attention scale 1/sqrt(head_dim) folded
        into the query rows (or into the q-norm weight where the model has one). All in the model's
        precision, then cast to ``self.dtype`` (a no-op, no copy, when they agree).
        """
        cast = self._cast
        inner, head = self.model.model, self.model.lm_head
        self.embed, self.norm = cast(inner.embed_tokens.weight), cast(inner.norm.weight)
        tied = head.weight is inner.embed_tokens.weight
        self.head, self.head_b = self.embed if tied else cast(head.weight), cast(head.bias)
        scale = self.head_dim ** -0.5
        nq = self.n_heads * self.head_dim
        layers = []
        for layer in self.model.model.layers:
            at, mlp = layer.self_attn, layer.mlp
            ln1, ln2 = layer.input_layernorm.weight, layer.post_attention_layernorm.weight
            q_norm = getattr(getattr(at, "q_norm", None), "weight", None)
            qkv = torch.cat([at.q_proj.weight, at.k_proj.weight, at.v_proj.weight]) * ln1
            qkv_b = None
            if at.q_proj.bias is not None:
                qkv_b = torch.cat([at.q_proj.bias, at.k_proj.bias, at.v_proj.bias])
            if q_norm is None:
                qkv[:nq] *= scale
                if qkv_b is not None:
                    qkv_b[:nq] *= scale
            else:
                q_norm = q_norm * scale
            layers.append({k: cast(v) for k, v in {
                "qkv": qkv, "qkv_b": qkv_b, "q_norm": q_norm,
                "k_norm": getattr(getattr(at, "k_norm", None), "weight", None),
                "o": at.o_proj.weight, "o_b": at.o_proj.bias,
                "gate_up": torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]) * ln2,
                "gate_up_b": (torch.cat([mlp.gate_proj.bias, mlp.up_proj.bias])
                              if mlp.gate_proj.bias is not None else None),
                "down": mlp.down_proj.weight, "down_b": mlp.down_proj.bias,
            }.items()})
        self.layers = layers

    def _cast(self, w: torch.Tensor | None) -> torch.Tensor | None:
        return None if w is None else w.detach().to(self.dtype)

    def _block(self, x, L, cos, sin, k_cache, v_cache, start: int, mask) -> torch.Tensor:
        """One decoder layer on ``x`` [B, S, H] whose tokens sit at cache slots start..start+S-1.

        ``cos`` [B, 1, S, hd] and ``sin`` (its first half negated: see ``sample``) rotate q and k.
        """
        B, S, _ = x.shape
        nh, nkv, hd = self.n_heads, self.n_kv, self.head_dim
        qkv = F.linear(_rms_unit(x, self.eps), L["qkv"], L["qkv_b"]).view(B, S, nh + 2 * nkv, hd)
        if L["q_norm"] is None:  # rotate q and k together
            qk = qkv[:, :, :nh + nkv].transpose(1, 2)
            qk = qk * cos + qk.roll(hd // 2, dims=-1) * sin
            q, k = qk[:, :nh], qk[:, nh:]
        else:
            q = _rms(qkv[:, :, :nh], L["q_norm"], self.eps).transpose(1, 2)
            k = _rms(qkv[:, :, nh:nh + nkv], L["k_norm"], self.eps).transpose(1, 2)
            q = q * cos + q.roll(hd // 2, dims=-1) * sin
            k = k * cos + k.roll(hd // 2, dims=-1) * sin
        end = start + S
        k_cache[:, :, start:end] = k
        v_cache[:, :, start:end] = qkv[:, :, nh + nkv:].transpose(1, 2)
        if S == 1:  # decoding: batched matmuls beat the CPU flash kernel by far at one query per row
            scores = torch.matmul(q.reshape(B, nkv, nh // nkv, hd), k_cache[:, :, :end].transpose(2, 3))
            scores = scores.masked_fill_(mask, float("-inf")).softmax(-1)                 # [B, nkv, g, end]
            att = torch.matmul(scores, v_cache[:, :, :end]).reshape(B, 1, nh * hd)
        else:
            att = F.scaled_dot_product_attention(q, k_cache[:, :, :end], v_cache[:, :, :end], attn_mask=mask,
                                                 enable_gqa=nkv != nh, scale=1.0)
            att = att.transpose(1, 2).reshape(B, S, nh * hd)
        x = x + F.linear(att, L["o"], L["o_b"])
        gate, up = F.linear(_rms_unit(x, self.eps), L["gate_up"], L["gate_up_b"]).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, L["down"], L["down_b"])

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(_rms(x, self.norm, self.eps), self.head, self.head_b).float()

    @torch.no_grad()
    def sample(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, eos_token_id: int,
               pad_token_id: int, temperature: float = 1.0, top_p: float = 1.0,
               return_logprobs: bool = False):
        """Sample one continuation per prompt.

        Args:
            prompts: token ids per row (non-empty).
            temperature: 0 means greedy.
        Returns:
            ``tokens`` [B, T] long (T <= max_new_tokens; pad after a row's EOS) and, with
            ``return_logprobs``, ``logprobs`` [B, T] float32: each sampled token's log-prob under the
            distribution it was drawn from (``logits / temperature``, top-p applied and renormalised; the raw
            logits' log-softmax when greedy), 0 after a row's EOS.

        Kept as one function (78 lines of code): it is the decoding loop, and the buffers it grows and the rows it
        drops are shared by every line of it; split up, each decode step would pass them through several calls.
        """
        model = self.model
        device, dtype = self.head.device, self.dtype
        B, P = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((B, P), pad_token_id, dtype=torch.long)
        lens = torch.tensor([len(p) for p in prompts], dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, P - len(p):] = torch.as_tensor(p, dtype=torch.long)
        ids, lens = ids.to(device), lens.to(device)
        prompt_valid = torch.arange(P, device=device) >= (P - lens)[:, None]        # [B, P]
        # cos/sin by position; a row's prompt starts at position 0, its t-th new token sits at len + t
        cos_tab, sin_tab = model.model.rotary_emb(torch.empty(0, dtype=dtype, device=device),
                                                  torch.arange(P + max_new_tokens, device=device)[None])
        half = self.head_dim // 2
        cos_tab = cos_tab[0]
        sin_tab = torch.cat([-sin_tab[0, :, :half], sin_tab[0, :, half:]], dim=-1)  # rotate_half's sign
        pos = (prompt_valid.long().cumsum(-1) - 1).clamp(min=0)                    # [B, P]
        # KV buffers grow in chunks as tokens come (memory follows the longest live row, not the limit)
        cap = P + min(max_new_tokens, self.grow_by)
        caches = [self._alloc(B, cap, dtype, device) for _ in self.layers]
        hidden = torch.zeros((B, 1, 1, cap), dtype=torch.bool, device=device)     # keys a query must not see
        hidden[:, 0, 0, :P] = ~prompt_valid
        # prefill: causal over the prompt, padding keys hidden (a padding query sees itself: no empty rows)
        eye = torch.eye(P, dtype=torch.bool, device=device)
        mask = (torch.ones(P, P, dtype=torch.bool, device=device).tril() & prompt_valid[:, None, :]) | eye
        x = F.embedding(ids, self.embed)
        cos, sin = cos_tab[pos].unsqueeze(1), sin_tab[pos].unsqueeze(1)            # [B, 1, P, hd]
        for L, (kc, vc) in zip(self.layers, caches):
            x = self._block(x, L, cos, sin, kc, vc, 0, mask.unsqueeze(1))
        logits = self._logits(x[:, -1])
        out = torch.full((B, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
        lps = torch.zeros((B, max_new_tokens), dtype=torch.float32, device=device) if return_logprobs else None
        rows = None               # original row of each live row once finished rows were dropped
        live = B
        done = torch.zeros(B, dtype=torch.bool, device=device)
        steps = max_new_tokens
        for t in range(max_new_tokens):
            if temperature > 0:
                logits = top_p_filter(logits / temperature, top_p)          # what is sampled from (and scored)
                tok = sample_categorical(logits.softmax(-1))
            else:
                tok = logits.argmax(-1)
            if lps is not None:  # one gather and a logsumexp per step: no [B, V] log-softmax copy
                lp = logits.gather(-1, tok[:, None]).squeeze(1) - logits.logsumexp(-1)
            tok = tok.masked_fill(done, pad_token_id)
            where = slice(None) if rows is None else rows
            out[where, t] = tok
            if lps is not None:
                lps[where, t] = lp.masked_fill(done, 0.0)
            done = done | (tok == eos_token_id)
            if t == max_new_tokens - 1 or bool(done.all()):
                steps = t + 1
                break
            if t % self.compact_every == self.compact_every - 1:
                n_done = int(done.sum())
                if n_done * 4 >= live:  # drop finished rows: later steps only compute live ones
                    keep = (~done).nonzero().squeeze(1)
                    rows = keep if rows is None else rows[keep]
                    caches = [(kc[keep], vc[keep]) for kc, vc in caches]
                    hidden, lens, tok, done = hidden[keep], lens[keep], tok[keep], done[keep]
                    live -= n_done
            s = P + t
            if s >= caches[0][0].shape[2]:
                grow = min(self.grow_by, P + max_new_tokens - s)
                caches = [(torch.cat([kc, ek], dim=2), torch.cat([vc, ev], dim=2))
                          for (kc, vc), (ek, ev) in zip(caches, (self._alloc(live, grow, dtype, device)
                                                                 for _ in caches))]
                hidden = torch.cat([hidden, hidden.new_zeros((live, 1, 1, grow))], dim=-1)
            p_t = lens + t                                                           # [live] positions
            cos, sin = cos_tab[p_t][:, None, None], sin_tab[p_t][:, None, None]      # [live, 1, 1, hd]
            x = F.embedding(tok[:, None], self.embed)
            for L, (kc, vc) in zip(self.layers, caches):
                x = self._block(x, L, cos, sin, kc, vc, s, hidden[..., :s + 1])
            logits = self._logits(x[:, -1])
        out = out[:, :steps]
        return (out, lps[:, :steps]) if return_logprobs else out

    def _alloc(self, rows: int, length: int, dtype, device):
        shape = (rows, self.n_kv, length, self.head_dim)
        return torch.empty(shape, dtype=dtype, device=device), torch.empty(shape, dtype=dtype, device=device)
