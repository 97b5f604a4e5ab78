"""Rollout engines: prompts in, sampled responses (with their sampling log-probs) out.

- :mod:`~harness.engines.base`: the interface every engine implements (:class:`RolloutEngine`), its records
  (:class:`SamplingParams`, :class:`Generation`) and the ``ENGINES`` registry;
- :mod:`~harness.engines.hf`: the transformers engine, with the ``kv`` sampler (:mod:`~harness.engines.kv_decode`)
  or ``model.generate``;
- :mod:`~harness.engines.vllm`: the vLLM engine (the vllm package is imported only when one is built);
- :mod:`~harness.engines.choose`: ``auto``, :func:`build_engine` and the training run's :class:`LazyEngine`.

May import ``common`` and ``harness.progress``; nothing above it (training, evaluation, commands). A new engine:
subclass :class:`RolloutEngine` in a module here, ``ENGINES.register(name, cls)``, import the module below.

    python -c "from harness.engines import engine_names; print(engine_names())"
"""

from harness.engines.base import (ENGINES, Generation, RolloutEngine, SamplingParams, param_dtype, seeded,
                                  token_batches)

from harness.engines import hf, vllm  # noqa: F401  (register "hf", then "vllm")  isort: skip
from harness.engines.choose import (AUTO_BF16_MIN_PARAMS, AUTO_VLLM_MIN_PARAMS, LazyEngine, build_engine, check_engine,
                                    choose_dtype, choose_engine, engine_names, native_bfloat16)

__all__ = ["AUTO_BF16_MIN_PARAMS", "AUTO_VLLM_MIN_PARAMS", "ENGINES", "Generation", "LazyEngine", "RolloutEngine",
           "SamplingParams", "build_engine", "check_engine", "choose_dtype", "choose_engine", "engine_names",
           "native_bfloat16", "param_dtype", "seeded", "token_batches"]
