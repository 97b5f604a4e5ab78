"""The engine interface: :class:`RolloutEngine`, the records it returns and takes, and the engine registry.

An engine takes a list of prompts and returns ``n`` :class:`Generation` records per prompt (prompt-major order:
prompt 0's n samples, then prompt 1's ...), each with its tokens' sampling log-probs when asked. After each optimizer
step the training loop calls ``engine.sync_weights(model)`` so the next rollout samples from the updated policy.
Engines register themselves in ``ENGINES`` (the vLLM one lazily: importing vllm is slow and optional) and are built
by :func:`harness.engines.build_engine`.

Batches are formed by a token budget (:func:`token_batches`): rows sorted by prompt length, each batch
holding as many rows as fit ``rows x (longest prompt + max_new_tokens) <= max_batch_tokens``, so the
key/value memory of one generation call is bounded by the setting whatever the prompt lengths.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from common.errors import HarnessError
from common.registry import Registry


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings shared by every engine."""

    n: int = 1                      # responses per prompt
    temperature: float = 1.0        # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0                   # base seed; the engine derives per-call seeds from it
    logprobs: bool = False          # return each sampled token's log-prob under the distribution it was drawn from

    def __post_init__(self) -> None:
        if self.n < 1:
            raise HarnessError(f"n must be >= 1 (got {self.n})")
        if self.temperature < 0:
            raise HarnessError(f"temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise HarnessError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.max_new_tokens < 1:
            raise HarnessError(f"max_new_tokens must be >= 1 (got {self.max_new_tokens})")


@dataclass
class Generation:
    """One sampled response."""

    prompt_index: int               # index into the prompts passed to generate()
    prompt_ids: list[int]
    response_ids: list[int]         # includes the EOS token when the response stopped on it
    text: str                       # decoded response without special tokens
    finish_reason: str              # "stop" (EOS) or "length"
    logprobs: list[float] | None = None  # per response token: log-prob under the sampling distribution (logits /
    #                                   temperature, top-p renormalised) in the engine's precision; with params.logprobs


class RolloutEngine(abc.ABC):
    """What every engine implements (a new engine: subclass this, register it in ``ENGINES``).

    Sampling: :meth:`generate`; weights: :meth:`sync_weights`; capacity: :attr:`max_context` and
    :meth:`batch_tokens`; what it computes in: :attr:`sample_dtype`; :meth:`close` frees it.
    """

    accepts_token_ids: bool = False   # whether generate() takes token-id lists as prompts too

    @abc.abstractmethod
    def generate(self, prompts: Sequence[str | list[int]], params: SamplingParams, seed: int | None = None
                 ) -> list[Generation]:
        """Sample ``params.n`` responses for each prompt; returns len(prompts) * n records (with
        ``Generation.logprobs`` when ``params.logprobs``)."""

    @abc.abstractmethod
    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load the policy's current weights (engines holding a copy of them), or point at ``model``."""

    @property
    @abc.abstractmethod
    def sample_dtype(self) -> str:
        """The precision sampling computes in (``float32``, ``bfloat16``, ...)."""

    @property
    @abc.abstractmethod
    def max_context(self) -> int | None:
        """Longest prompt + response in tokens the engine takes (None: unknown)."""

    @property
    def kind(self) -> str:
        """The engine's class name, as recorded in evaluation summaries and the base-evaluation cache key."""
        return type(self).__name__

    @contextlib.contextmanager
    def batch_tokens(self, max_batch_tokens: int) -> Iterator[None]:
        """Within the block, one generation batch holds at most ``max_batch_tokens`` tokens (rows x (longest
        prompt + max_new_tokens)); engines whose memory is fixed when built (vLLM's KV cache) ignore it."""
        yield

    def close(self) -> None:
        """Free the engine's memory (its own weight copy, caches, processes); a no-op by default."""


ENGINES: Registry = Registry("rollout engine")


def param_dtype(model: torch.nn.Module) -> str:
    """The name of ``model``'s parameter dtype (``float32``, ``bfloat16``, ...): what engines sample in by default."""
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def token_batches(lengths: Sequence[int], max_new_tokens: int, max_batch_tokens: int,
                  max_rows: int | None = None, weight: int = 1) -> list[list[int]]:
    """Group item indices into batches bounded by a token budget.

    Items are taken in order of increasing length (stable: ties keep their order); an item stands for
    ``weight`` rows of ``length + max_new_tokens`` tokens (a prompt and its n samples), and a batch grows
    while ``rows x (its longest prompt + max_new_tokens) <= max_batch_tokens`` and it has at most
    ``max_rows`` items. An item over the budget on its own forms a batch by itself (the engine then
    splits its rows further). Returns the batches, each a list of indices into ``lengths``.
    """
    if max_batch_tokens < 1:
        raise HarnessError(f"max_batch_tokens must be >= 1 (got {max_batch_tokens})")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = lengths[i] + max_new_tokens           # the longest so far: lengths ascend
        if cur and ((len(cur) + 1) * weight * width > max_batch_tokens
                    or (max_rows is not None and len(cur) >= max_rows)):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block under a fixed torch seed without disturbing the caller's RNG state."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
