"""The transformers rollout engine: batched ``model.generate`` on the policy itself.

The engine shares the policy module, so ``sync_weights`` is a no-op. Prompts are left-padded and
sampled in chunks of ``batch_size`` rows (prompt x n). On CUDA, ``static_cache=True`` switches
``generate`` to ``cache_implementation="static"``: launch-bound decoding gets several times faster,
and transformers compiles the decoding forward pass by itself when the cache is static.
"""

from __future__ import annotations

from typing import Sequence

import torch

from harness.rollout import ENGINES, Generation, SamplingParams, seeded


class HFEngine:
    def __init__(self, model, tokenizer, *, batch_size: int = 256, static_cache: bool = False,
                 **_ignored) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.static_cache = static_cache
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def sync_weights(self, model) -> None:
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int | None = None
                 ) -> list[Generation]:
        tok = self.tokenizer
        eos = tok.eos_token_id
        prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        rows = [(i, ids) for i, ids in enumerate(prompt_ids) for _ in range(params.n)]
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        out: list[Generation] = []
        base_seed = params.seed if seed is None else seed
        try:
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start:start + self.batch_size]
                width = max(len(ids) for _, ids in chunk)
                input_ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
                attn = torch.zeros((len(chunk), width), dtype=torch.long)
                for r, (_, ids) in enumerate(chunk):  # left padding
                    input_ids[r, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
                    attn[r, width - len(ids):] = 1
                kwargs = dict(max_new_tokens=params.max_new_tokens, eos_token_id=eos,
                              pad_token_id=tok.pad_token_id)
                if params.temperature > 0:
                    kwargs.update(do_sample=True, temperature=params.temperature,
                                  top_p=params.top_p, top_k=0)
                else:
                    kwargs.update(do_sample=False)
                if self.static_cache:
                    kwargs.update(cache_implementation="static")
                with seeded(base_seed * 1_000_003 + start):
                    seqs = self.model.generate(input_ids=input_ids.to(device),
                                               attention_mask=attn.to(device), **kwargs)
                for r, (pi, ids) in enumerate(chunk):
                    resp = seqs[r, width:].tolist()
                    reason = "length"
                    if eos in resp:
                        resp = resp[:resp.index(eos) + 1]
                        reason = "stop"
                    out.append(Generation(pi, ids, resp, tok.decode(resp, skip_special_tokens=True),
                                          reason))
        finally:
            self.model.train(was_training)
        return out


ENGINES.register("hf", HFEngine)
