"""Run configuration: typed dataclasses, YAML presets and ``key=value`` overrides.

Precedence (lowest first): the defaults below -> a YAML file (``--config FILE``) -> the CLI's named
flags (``--steps``, ``--seed`` ...) -> generic overrides ``--section.key VALUE`` /
``section.key=VALUE``. Merging and type checking use OmegaConf structured configs, so an unknown
key or a value of the wrong type is rejected with the key's full name; range checks live in each
dataclass's ``__post_init__``. The sections are frozen: a run's configuration does not change once built.
The ``algo`` section is the chosen plugin's own config dataclass
(``algorithms/<name>.py``) plus its ``name``.

Each field is documented once, beside its definition; ``python -m harness run --help-config``
prints them all with their defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from common.errors import HarnessError
from harness.results import validate_run_name


def _check(cond: bool, key: str, allowed: str, value: Any) -> None:
    if not cond:
        raise HarnessError(f"{key} must be {allowed} (got {value!r})")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"                  # 'tiny' (built-in), a local directory, or a hub id
    dtype: str = "auto"                 # auto | float32 | bfloat16 | float16
    trust_remote_code: bool = False     # only for models whose code you trust
    attn_implementation: str = "sdpa"   # sdpa | eager | flash_attention_2


@dataclass(frozen=True)
class DataConfig:
    bench: str = "arith"                # evaluation benchmarks: a name, a comma list, or 'all'
    data_dir: Optional[str] = None      # folder with <bench>/test.jsonl (else $HARNESS_DATA_DIR, else the hub)
    train_data: Optional[str] = None    # RL prompts: None/arith, arith_word, or a hub id / .jsonl / .parquet
    train_split: str = "train"          # split of a hub training set
    problem_field: str = "problem"      # field of the problem text in train_data
    answer_field: str = "answer"        # field of the gold answer in train_data
    arith_min_ops: int = 2              # arith training problems: fewest operations
    arith_max_ops: int = 2              # arith training problems: most operations
    word_max_steps: int = 2             # arith_word training problems: most steps (its test split keeps 1-2)


ROLLOUT_DTYPES = ("auto", "policy", "float32", "bfloat16", "float16")
ROLLOUT_CORRECTIONS = ("auto", "none", "tis", "mask")   # train.rollout_correction (algorithms/correction.py)


@dataclass(frozen=True)
class RolloutConfig:
    engine: str = "auto"                # auto (vllm if installed, for models of 10M+ parameters; else hf) | hf | vllm
    prompts_per_step: int = 16          # prompts per RL step (per process)
    n: int = 8                          # responses per prompt (group size)
    temperature: float = 1.0            # sampling temperature (> 0)
    top_p: float = 1.0                  # nucleus sampling
    dtype: str = "auto"                 # precision sampling computes in: auto | policy | float32 | bfloat16 | float16
    #                                   (policy: the policy's own)
    #                                   (auto: harness.engines.choose_dtype; training keeps its own precision)
    max_new_tokens: int = 48            # response length limit
    batch_size: int = 256               # hf: most rows per sampling batch
    max_batch_tokens: int = 16384       # hf: rows x (longest prompt + max_new_tokens) per batch; vllm on CPU: KV cache
    #                                   (16384: 0.7 GiB on SmolLM2-135M)
    hf_sampler: str = "kv"              # hf: kv (lean KV-cache loop, Llama/Qwen2/Qwen3/Mistral) | generate
    static_cache: bool = False          # hf on CUDA: model.generate with a static KV cache (implies generate)
    gpu_memory_utilization: float = 0.2 # vllm: share of GPU memory for weights + KV cache (CPU: the KV cache's cap)

    def __post_init__(self) -> None:
        _check(self.prompts_per_step >= 1, "rollout.prompts_per_step", ">= 1", self.prompts_per_step)
        _check(self.n >= 1, "rollout.n", ">= 1", self.n)
        _check(self.temperature > 0, "rollout.temperature", "> 0", self.temperature)
        _check(0 < self.top_p <= 1, "rollout.top_p", "in (0, 1]", self.top_p)
        _check(self.max_new_tokens >= 1, "rollout.max_new_tokens", ">= 1", self.max_new_tokens)
        _check(self.batch_size >= 1, "rollout.batch_size", ">= 1", self.batch_size)
        _check(self.max_batch_tokens >= 1, "rollout.max_batch_tokens", ">= 1", self.max_batch_tokens)
        _check(self.dtype in ROLLOUT_DTYPES, "rollout.dtype", " | ".join(ROLLOUT_DTYPES), self.dtype)
        _check(self.hf_sampler in ("kv", "generate"), "rollout.hf_sampler", "kv or generate", self.hf_sampler)
        _check(0 < self.gpu_memory_utilization < 1, "rollout.gpu_memory_utilization", "in (0, 1)",
               self.gpu_memory_utilization)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 100                    # RL steps (rollout + update)
    lr: float = 5e-4                    # AdamW learning rate, tuned for the tiny model (the paper: 1e-6 at 1.5B-7B)
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.999)
    warmup_steps: int = 0               # linear warm-up, then constant
    grad_clip: float = 1.0              # max gradient norm (0 disables)
    epochs: int = 1                     # passes over each rollout batch (PPO epochs)
    mini_batches: int = 1               # optimizer steps per epoch
    micro_batch_size: int = 64          # most rows per forward/backward (gradient accumulation)
    max_micro_batch_tokens: Optional[int] = None  # most rows x (longest prompt + response) per forward/backward
    #                                   (0: no limit; None: from the model's size, batching.auto_token_budget)
    gradient_checkpointing: bool = False  # recompute activations in the backward: less memory, one more forward
    logit_chunk_tokens: Optional[int] = None  # most response tokens with full-vocabulary logits at once
    #                                   (0: no chunks; None: from the vocabulary, batching.auto_logit_chunk)
    save_every: int = 10                # resumable checkpoint/last every N steps, and after the last (0: last only)
    keep_last: bool = False             # keep checkpoint/last (optimizer state) once the run finished
    max_bad_steps: int = 5              # stop after this many consecutive non-finite loss/gradient steps
    rollout_correction: str = "auto"    # none | tis | mask | auto (tis when sampling and training precisions differ)
    #                                   (tis: pg loss x min(p_train/p_rollout, C); mask: 0 outside [1/C, C];
    #                                   runs saved before it existed: none)
    rollout_correction_c: float = 2.0   # the threshold C (> 1) of rollout_correction and of mismatch_outside_frac

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "train.steps", ">= 1", self.steps)
        _check(self.lr > 0, "train.lr", "> 0", self.lr)
        _check(self.weight_decay >= 0, "train.weight_decay", ">= 0", self.weight_decay)
        _check(self.warmup_steps >= 0, "train.warmup_steps", ">= 0", self.warmup_steps)
        _check(self.grad_clip >= 0, "train.grad_clip", ">= 0", self.grad_clip)
        _check(self.epochs >= 1, "train.epochs", ">= 1", self.epochs)
        _check(self.mini_batches >= 1, "train.mini_batches", ">= 1", self.mini_batches)
        _check(self.micro_batch_size >= 1, "train.micro_batch_size", ">= 1", self.micro_batch_size)
        _check(self.max_micro_batch_tokens is None or self.max_micro_batch_tokens >= 0, "train.max_micro_batch_tokens",
               ">= 0 or null (from the model)", self.max_micro_batch_tokens)
        _check(self.logit_chunk_tokens is None or self.logit_chunk_tokens >= 0, "train.logit_chunk_tokens",
               ">= 0 or null (from the vocabulary)", self.logit_chunk_tokens)
        _check(self.save_every >= 0, "train.save_every", ">= 0", self.save_every)
        _check(self.max_bad_steps >= 1, "train.max_bad_steps", ">= 1", self.max_bad_steps)
        _check(self.rollout_correction in ROLLOUT_CORRECTIONS, "train.rollout_correction",
               " | ".join(ROLLOUT_CORRECTIONS), self.rollout_correction)
        _check(self.rollout_correction_c > 1, "train.rollout_correction_c", "> 1", self.rollout_correction_c)
        object.__setattr__(self, "betas", tuple(self.betas))  # frozen: set once, here


@dataclass(frozen=True)
class EvalConfig:
    n: int = 8                          # samples per problem (the paper: 8)
    temperature: float = 1.0            # the paper: 1.0
    top_p: float = 1.0
    max_new_tokens: int = 0             # 0: same as rollout.max_new_tokens
    limit: int = 0                      # evaluate the first N problems of each benchmark (0: all)
    bench_limit: Dict[str, int] = field(default_factory=dict)  # per bench, over `limit`: bench_limit.gsm8k=16
    batch_size: int = 64                # most prompts per generation chunk
    max_batch_tokens: int = 32768       # prompts x n x (longest prompt + max_new_tokens) per chunk (bounds memory)
    too_long: str = "skip"              # prompts over the context minus max_new_tokens: skip (counted) | truncate
    before: bool = True                 # evaluate the base model before training (table's base row)
    after: bool = True                  # evaluate the trained model
    cache_base: bool = True             # reuse a shared base evaluation of the same model, data and settings

    def limits(self, benches: list[str]) -> dict[str, int | None]:
        """How many problems of each evaluated benchmark to take (None: all); a ``bench_limit`` key that
        names no evaluated benchmark is an error (a typo would otherwise evaluate the whole set)."""
        stray = sorted(set(self.bench_limit) - set(benches))
        if stray:
            raise HarnessError(f"eval.bench_limit names {', '.join(stray)}, which this run does not evaluate "
                               f"(its benchmarks: {', '.join(benches)})")
        return {b: self.limit_of(b) for b in benches}

    def limit_of(self, bench: str) -> int | None:
        return self.bench_limit.get(bench, self.limit) or None

    def __post_init__(self) -> None:
        _check(self.n >= 1, "eval.n", ">= 1", self.n)
        _check(self.temperature >= 0, "eval.temperature", ">= 0 (0 = greedy)", self.temperature)
        _check(0 < self.top_p <= 1, "eval.top_p", "in (0, 1]", self.top_p)
        _check(self.max_new_tokens >= 0, "eval.max_new_tokens", ">= 0", self.max_new_tokens)
        _check(self.limit >= 0, "eval.limit", ">= 0", self.limit)
        for bench, n in self.bench_limit.items():
            _check(n >= 0, f"eval.bench_limit.{bench}", ">= 0", n)
        _check(self.batch_size >= 1, "eval.batch_size", ">= 1", self.batch_size)
        _check(self.max_batch_tokens >= 1, "eval.max_batch_tokens", ">= 1", self.max_batch_tokens)
        _check(self.too_long in ("skip", "truncate"), "eval.too_long", "skip or truncate", self.too_long)


@dataclass(frozen=True)
class TrainerConfig:
    accelerator: str = "auto"           # Lightning accelerator: auto | cpu | gpu
    devices: int = 1                    # processes per node
    num_nodes: int = 1
    strategy: str = "auto"              # auto | ddp | fsdp | any Lightning strategy name
    precision: str = "32-true"          # 32-true | bf16-mixed | bf16-true

    def __post_init__(self) -> None:
        _check(self.devices >= 1, "trainer.devices", ">= 1", self.devices)
        _check(self.num_nodes >= 1, "trainer.num_nodes", ">= 1", self.num_nodes)


@dataclass(frozen=True)
class LogConfig:
    wandb: bool = False                 # log to Weights & Biases (offline when no API key)
    wandb_project: Optional[str] = None # setting a project also enables wandb
    wandb_group: Optional[str] = None   # sweeps group their runs
    progress: bool = True               # progress bars
    kl_to_ref: bool = False             # log the KL to the reference even when no loss needs the reference
                                        # (costs a reference model and one forward pass per step)


@dataclass(frozen=True)
class RunConfig:
    name: Optional[str] = None          # run directory name (default: <algo>-<bench>-s<seed>)
    seed: int = 0
    results_dir: str = "results"
    algo: Any = None                    # the algorithm plugin's config, plus its 'name'
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        if self.name is not None:  # "" or "../x" must not fall back to / escape the default name
            validate_run_name(self.name)

    @property
    def run_name(self) -> str:
        return self.name or f"{self.algo.name}-{self.data.bench.replace(',', '+')}-s{self.seed}"


def _algo_section(name: str) -> type:
    from algorithms import get_algorithm  # lazy: algorithms imports torch; config is read by `harness --help`

    cls = get_algorithm(name).config_cls
    return dataclasses.make_dataclass(f"{cls.__name__}Section", [("name", str, field(default=name))],
                                      bases=(cls,))


def load_yaml(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"config file {path!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise HarnessError(f"config file {path!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HarnessError(f"config file {path!r} must hold a mapping of sections, not {type(data).__name__}")
    return data


def build_config(yaml_data: dict | None = None, overrides: list[str] = (), *, need_algo: bool = True) -> RunConfig:
    """Merge defaults, a YAML mapping and dotted ``key=value`` overrides into a validated RunConfig (without an
    ``algo`` section when none is given and not ``need_algo``: ``harness eval``)."""
    from omegaconf import OmegaConf, read_write
    from omegaconf.errors import OmegaConfBaseException

    yaml_data = dict(yaml_data or {})
    for item in overrides:
        if "=" not in item:
            raise HarnessError(f"override {item!r} must look like section.key=value")
    try:
        dot = OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise HarnessError(f"cannot parse overrides {list(overrides)}: {str(err).splitlines()[0]}") from None
    algo_yaml = yaml_data.get("algo") or {}
    if isinstance(algo_yaml, str):
        yaml_data["algo"] = algo_yaml = {"name": algo_yaml}
    name = OmegaConf.select(dot, "algo.name") or (algo_yaml.get("name") if isinstance(algo_yaml, dict) else None)
    if not name and need_algo:
        raise HarnessError("no algorithm given: pass --algo NAME (see `python -m harness ls`)")
    schema = OmegaConf.structured(RunConfig)
    if name:
        with read_write(schema):  # the sections are frozen; the algo section is chosen here
            schema.algo = OmegaConf.structured(_algo_section(str(name)))
    try:
        merged = OmegaConf.merge(schema, OmegaConf.create(yaml_data), dot)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        msg = str(err).splitlines()[0]
        if "not in" in msg or type(err).__name__ == "ConfigKeyError":
            raise HarnessError(f"unknown config key {key or msg!r}; `python -m harness run "
                               "--help-config` lists the valid keys") from None
        raise HarnessError(f"invalid value for config key {key!r}: {msg}") from None


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: RunConfig) -> str:
    d = to_dict(cfg)
    d["train"]["betas"] = list(d["train"]["betas"])
    return yaml.safe_dump(d, sort_keys=False)
