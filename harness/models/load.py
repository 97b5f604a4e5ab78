"""Loading a causal LM the way a researcher would: a built-in name, a local directory or a hub id.

``load_model(name_or_path)`` goes through ``AutoModelForCausalLM`` + ``AutoTokenizer`` (``trust_remote_code`` only
when asked); without a network a hub id is read from the local hub cache only. The built-in names
(``BUILTIN_MODELS``: ``tiny`` and ``smollm2-135m``) are built once per machine into the model cache and then loaded
through the same path.

    python -c "from harness.models import load_model; print(load_model('tiny')[0])"
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from benchmarks.loader import hub_endpoint, hub_reachable
from common.errors import HarnessError
from harness.models import smollm2
from harness.models.tiny import TINY, tiny_model_path
from harness.progress import hf_bars_off

# built-in model name -> function returning its cached directory (building it on first use)
BUILTIN_MODELS = {TINY: tiny_model_path, smollm2.NAME: smollm2.model_path}


def builtin_model_path(name: str) -> Path | None:
    """The cached directory of a built-in model (built on first use), or None for any other name."""
    build = BUILTIN_MODELS.get(name)
    return build() if build is not None else None


_DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model(name_or_path: str, *, dtype: str = "auto", device: str = "cpu",
               trust_remote_code: bool = False, attn_implementation: str | None = "sdpa"):
    """Load ``(model, tokenizer)`` from a built-in name (``BUILTIN_MODELS``), a local directory or a hub id.

    Raises:
        HarnessError: the path does not exist, has no tokenizer, or is not a causal LM.
    """

    if dtype not in _DTYPES:
        raise HarnessError(f"model.dtype must be one of {', '.join(_DTYPES)} (got {dtype!r})")
    builtin = builtin_model_path(name_or_path)
    path = str(builtin) if builtin is not None else name_or_path
    local = Path(path).expanduser()
    if builtin is None and (local.exists() or path.startswith((".", "/", "~")) or path.count("/") > 1):
        if not local.is_dir():
            raise HarnessError(f"model path {name_or_path!r} does not exist (use a built-in model: "
                               f"{', '.join(BUILTIN_MODELS)}; a local model directory or a hub id such as "
                               "Qwen/Qwen2.5-Math-1.5B)")
        if not (local / "config.json").exists():
            raise HarnessError(f"model path {name_or_path!r} has no config.json: not a transformers model")
        path = str(local)
    hub = {}
    if builtin is None and not local.is_dir():   # a hub id: without a network, the local cache only
        if not hub_reachable():
            hub = {"local_files_only": True}
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **hub)
    except (OSError, ValueError) as err:
        if hub:
            raise HarnessError(f"cannot load model {name_or_path!r}: no network ({hub_endpoint()} unreachable) "
                               "and not in the local hub cache; pass a local model directory") from None
        raise HarnessError(f"cannot load model {name_or_path!r}: {str(err).splitlines()[0]}") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **hub)
    except (OSError, ValueError, TypeError) as err:
        raise HarnessError(f"cannot load a tokenizer for model {name_or_path!r}: "
                           f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None

    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not trust_remote_code:
        raise HarnessError(f"model {name_or_path!r} ({config.model_type}) is not a causal language "
                           "model (AutoModelForCausalLM has no class for it)")
    quiet = hf_bars_off() if builtin is not None or local.is_dir() else contextlib.nullcontext()  # a download: bars
    try:
        with quiet:   # "Loading weights" only with --verbose
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=_DTYPES[dtype], trust_remote_code=trust_remote_code,
                attn_implementation=attn_implementation, **hub)
    except (OSError, ValueError) as err:
        raise HarnessError(f"cannot load the weights of model {name_or_path!r}: "
                           f"{str(err).splitlines()[0]}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer
