"""Models: loading any causal LM (:mod:`.load`) and the built-in ones, ``tiny`` (:mod:`.tiny`) and ``smollm2-135m``
(:mod:`.smollm2`), built once per machine into the model cache (:mod:`.cache`).

May import: :mod:`harness.engines` (the tiny warm start samples with the hf engine), :mod:`harness.progress`,
:mod:`benchmarks`, :mod:`common`.

    python -c "from harness.models import load_model; print(load_model('tiny')[0])"
"""

from harness.models.cache import cache_dir
from harness.models.load import BUILTIN_MODELS, builtin_model_path, load_model
from harness.models.tiny import (TINY, TinySpec, build_tiny_model, build_tiny_tokenizer, sampled_accuracy,
                                 tiny_model_path)

__all__ = ["BUILTIN_MODELS", "TINY", "TinySpec", "build_tiny_model", "build_tiny_tokenizer", "builtin_model_path",
           "cache_dir", "load_model", "sampled_accuracy", "tiny_model_path"]
