"""The built-in ``tiny`` model: a ~0.15M-parameter Llama with a character-level tokenizer, warm-started on ``arith``.

It is warm-started by supervised fine-tuning on solved ``arith`` problems until its sampled accuracy (temperature 1.0)
on a held-out, train-side validation set reaches ``target_acc`` (the reference policy of every run), saved with
``save_pretrained`` into the model cache under a content hash of everything that determines it, and then loaded back
through :func:`harness.models.load.load_model` like a real model.

    python -c "from harness.models.tiny import tiny_model_path; print(tiny_model_path())"
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import string
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from benchmarks.arith import ArithConfig, boxed_integer, plain_prompt, train_stream
from common.atomic import atomic_folder
from harness.engines import SamplingParams
from harness.engines.hf import HFEngine
from harness.models.cache import cache_dir
from harness.progress import hf_bars_off

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



def build_tiny_tokenizer():
    """A character-level tokenizer over printable ASCII and newline (``tokenizers`` WordLevel)."""

    chars = ["\n"] + [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>"] + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=4096)


def build_tiny_model(tokenizer, spec: TinySpec):

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

