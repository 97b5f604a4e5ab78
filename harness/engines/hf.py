"""The transformers rollout engine: batched sampling with the policy's own weights.

Rows (prompt x n) are sorted by prompt length and sampled in batches formed by a token budget
(:func:`harness.engines.base.token_batches`: ``rows x (longest prompt + max_new_tokens) <= max_batch_tokens``,
at most ``batch_size`` rows), so one call's memory is bounded by ``max_batch_tokens`` whatever the prompt
lengths; prompts are left-padded within a batch. Prompts are strings or already tokenized id lists
(evaluation passes left-truncated ids for ``eval.too_long=truncate``). Two samplers (``sampler``):

* ``kv`` (default): :class:`harness.engines.kv_decode.KVDecoder`, a lean KV-cache loop over the model's
  weights for Llama-family models (Llama, Mistral, Qwen2, Qwen3); it reads fused copies of the
  projection weights, which ``sync_weights`` rebuilds after every optimizer step. Other
  architectures fall back to ``generate`` (said once in the log).
* ``generate``: transformers' ``model.generate``. On CUDA, ``static_cache=True`` switches it to
  ``cache_implementation="static"`` (transformers then compiles the decoding step itself).

Both sample from the same distribution (temperature, top-p, no top-k, stop at EOS) and, with
``SamplingParams.logprobs``, return each sampled token's log-prob under it. ``dtype``
(``rollout.dtype``) makes sampling compute in another precision than the policy's parameters: the kv
sampler reads copies of the weights in that dtype, ``generate`` runs under ``torch.autocast``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Sequence

import torch

from common.errors import HarnessError
from harness.engines.base import (ENGINES, Generation, RolloutEngine, SamplingParams, param_dtype, seeded,
                                  token_batches)
from harness.engines.kv_decode import KVDecoder, unsupported_reason

log = logging.getLogger(__name__)
SAMPLERS = ("kv", "generate")
DEFAULT_MAX_BATCH_TOKENS = 32768


class HFEngine(RolloutEngine):
    """The transformers engine (module docstring): the policy's own weights, the ``kv`` or ``generate`` sampler."""

    accepts_token_ids = True   # generate() takes token-id lists as prompts too

    def __init__(self, model, tokenizer, *, batch_size: int = 256, static_cache: bool = False,
                 sampler: str = "kv", max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
                 dtype: str | None = None, **_ignored) -> None:
        if sampler not in SAMPLERS:
            raise HarnessError(f"unknown hf sampler {sampler!r}; allowed: {', '.join(SAMPLERS)}")
        self.dtype = getattr(torch, dtype) if dtype else None   # None: the policy's own precision
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.static_cache = static_cache
        self.sampler = sampler
        self.decoder = None
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.sync_weights(model)

    def sync_weights(self, model) -> None:
        """Point at ``model`` and rebuild the KV sampler's fused weights from its parameters."""
        self.model = model
        if self.sampler != "kv" or self.static_cache:
            return
        if self.decoder is not None and self.decoder.model is model:
            self.decoder.refresh()
            return
        reason = unsupported_reason(model)
        if reason is None:
            self.decoder = KVDecoder(model, self.dtype)
        else:
            self.decoder = None
            log.warning("hf engine: the kv sampler does not cover %s; using model.generate", reason)

    @property
    def sample_dtype(self) -> str:
        """The precision sampling computes in (``rollout.dtype``, or the policy's)."""
        return str(self.dtype).removeprefix("torch.") if self.dtype else param_dtype(self.model)

    @property
    def max_context(self) -> int | None:
        """Longest prompt + response the model takes (``max_position_embeddings``), if it says."""
        return getattr(getattr(self.model, "config", None), "max_position_embeddings", None)

    @contextlib.contextmanager
    def batch_tokens(self, max_batch_tokens: int) -> Iterator[None]:
        """Batches of at most ``max_batch_tokens`` tokens within the block (evaluation's own budget)."""
        before, self.max_batch_tokens = self.max_batch_tokens, max_batch_tokens
        try:
            yield
        finally:
            self.max_batch_tokens = before

    @torch.no_grad()
    def generate(self, prompts: Sequence[str | list[int]], params: SamplingParams, seed: int | None = None
                 ) -> list[Generation]:
        tok = self.tokenizer
        eos = tok.eos_token_id
        prompt_ids = [list(p) if not isinstance(p, str) else tok(p, add_special_tokens=False)["input_ids"]
                      for p in prompts]
        rows = [(i, ids) for i, ids in enumerate(prompt_ids) for _ in range(params.n)]
        batches = token_batches([len(ids) for _, ids in rows], params.max_new_tokens, self.max_batch_tokens,
                                max_rows=self.batch_size)
        was_training = self.model.training
        self.model.eval()
        by_row: dict[int, Generation] = {}
        base_seed = params.seed if seed is None else seed
        start = 0
        try:
            for batch in batches:
                chunk = [rows[r] for r in batch]
                with seeded(base_seed * 1_000_003 + start):
                    if self.decoder is not None:
                        out = self.decoder.sample(
                            [ids for _, ids in chunk], max_new_tokens=params.max_new_tokens,
                            eos_token_id=eos, pad_token_id=tok.pad_token_id,
                            temperature=params.temperature, top_p=params.top_p, return_logprobs=params.logprobs)
                        seqs, lps = out if params.logprobs else (out, None)
                    else:
                        seqs, lps = self._generate(chunk, params)
                resps, reasons = [], []
                for resp in seqs.tolist():
                    reason = "length"
                    if eos in resp:
                        resp = resp[:resp.index(eos) + 1]
                        reason = "stop"
                    resps.append(resp)
                    reasons.append(reason)
                texts = tok.batch_decode(resps, skip_special_tokens=True)
                lp_rows = lps.tolist() if params.logprobs else [None] * len(resps)
                for r, (pi, ids), resp, text, reason, lp in zip(batch, chunk, resps, texts, reasons, lp_rows):
                    by_row[r] = Generation(pi, ids, resp, text, reason, None if lp is None else lp[:len(resp)])
                start += len(batch)
        finally:
            self.model.train(was_training)
        return [by_row[r] for r in range(len(rows))]   # prompt-major, as the rows came

    def _generate(self, chunk, params: SamplingParams) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``model.generate`` on left-padded rows; returns the new tokens [rows, T] and, with ``params.logprobs``,
        their log-probs [rows, T] under the processed scores each was sampled from (temperature and top-p applied)."""
        tok = self.tokenizer
        width = max(len(ids) for _, ids in chunk)
        input_ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, (_, ids) in enumerate(chunk):  # left padding
            input_ids[r, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attn[r, width - len(ids):] = 1
        kwargs = dict(max_new_tokens=params.max_new_tokens, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, return_dict_in_generate=True, output_scores=params.logprobs)
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False)
        if self.static_cache:
            kwargs.update(cache_implementation="static")
        param = next(self.model.parameters())
        cast = self.dtype is not None and self.dtype != param.dtype
        with torch.autocast(param.device.type, dtype=self.dtype, enabled=cast):
            out = self.model.generate(input_ids=input_ids.to(param.device), attention_mask=attn.to(param.device),
                                      **kwargs)
        new = out.sequences[:, width:]                                                       # [rows, T]
        if not params.logprobs:
            return new, None
        lps = [s.float().gather(-1, new[:, t, None]).squeeze(-1) - s.float().logsumexp(-1)   # per step: no [rows, T, V]
               for t, s in enumerate(out.scores)]                                            # copy of the scores
        return new, torch.stack(lps, dim=1).cpu()


ENGINES.register("hf", HFEngine)
