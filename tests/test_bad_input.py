"""The bad-input matrix (issue 6): every user mistake is one ``error:`` line, exit 2, nothing written.

Each case is a ``python -m harness run ...`` command line plus the files it needs (a bad config,
data file, training file or model directory, built in a temp folder). Every case runs in-process
through :func:`harness.cli.main` (stderr captured); a representative subset also runs as a real
subprocess, two at a time, to prove the end-to-end behaviour: exit code 2, stderr exactly one line
starting with ``error:`` that names the bad value, no traceback, and nothing new under the
results root (or anywhere else in the working folder).

    .venv/bin/python -m pytest tests/test_bad_input.py -q
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from conftest import SHARED, run_cli

from harness.cli import main

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs

MATH500 = SHARED / "math500" / "test.jsonl"
needs_data = pytest.mark.skipif(not MATH500.is_file(), reason=f"benchmark data not found: {MATH500}")

# Any case that wrongly passes validation must not start a long run: these come first, so a case's
# own flags and overrides (later on the command line) win.
GUARD = ["--steps", "1", "--rollout.prompts_per_step", "1", "--rollout.n", "1",
         "--rollout.max_new_tokens", "2", "--eval.before", "false", "--eval.after", "false",
         "--log.progress", "false"]


@dataclass
class Case:
    id: str
    args: list[str]                     # after ``run``; "{tmp}" is replaced by the case's folder
    expect: str                         # must appear in the error line ("{tmp}" replaced too)
    setup: Callable[[Path], None] | None = None
    algo: str | None = "grpo"           # None: the case sets (or omits) --algo itself
    subprocess: bool = False            # also run it end to end in a subprocess
    marks: list = field(default_factory=list)


# --------------------------------------------------------------------------- file builders

def _write(rel: str, data: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return setup


def _math500(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    """A copy of the real MATH500 file (500 valid lines) with ``edit`` applied to its lines."""
    def setup(tmp: Path) -> None:
        lines = MATH500.read_text(encoding="utf-8").splitlines()
        path = tmp / "data" / "math500" / "test.jsonl"
        path.parent.mkdir(parents=True)
        out = edit(lines)
        path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in out))
    return setup


def _row(line: str, **changes) -> str:
    row = json.loads(line)
    for k, v in changes.items():
        if v is None:
            row.pop(k)
        else:
            row[k] = v
    return json.dumps(row)


def _rename_field(lines):
    row = json.loads(lines[2])
    row["solution_answer"] = row.pop("answer")
    return lines[:2] + [json.dumps(row)] + lines[3:]


def _model(*files: str, config: str | None = None) -> Callable[[Path], None]:
    """A model directory holding ``files`` copied from the tiny model (and optionally another config)."""
    def setup(tmp: Path) -> None:
        from harness.models import tiny_model_path
        src, dst = tiny_model_path(), tmp / "model"
        dst.mkdir()
        for f in files:
            shutil.copy(src / f, dst / f)
        if config is not None:
            (dst / "config.json").write_text(config)
    return setup


VIT = json.dumps({"model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "intermediate_size": 32})
TOK = ("tokenizer.json", "tokenizer_config.json")
DATA = ["--bench", "math500", "--data-dir", "{tmp}/data"]
TRAIN = ["--train-data", "{tmp}/train.jsonl"]
GOOD_TRAIN = '{"problem": "1+1?", "answer": "2"}\n'

CASES = [
    # ---- CLI flags
    Case("unknown-flag", ["--bogus"], "'--bogus'", subprocess=True),
    Case("unknown-flag-with-value", ["--stepz", "3"], "'--stepz'"),
    Case("steps-0", ["--steps", "0"], "train.steps must be >= 1 (got 0)"),
    Case("steps-x", ["--steps", "x"], "invalid int value: 'x'", subprocess=True),
    Case("seed-x", ["--seed", "x"], "invalid int value: 'x'"),
    Case("algo-nope", ["--algo", "nope"], "unknown algorithm 'nope'", algo=None),
    Case("no-algo", [], "no algorithm given", algo=None),
    Case("bench-nope", ["--bench", "nope"], "unknown benchmark 'nope'"),
    Case("engine-nope", ["--engine", "nope"], "unknown rollout engine 'nope'"),
    Case("resume-and-overwrite", ["--resume", "--overwrite"], "--resume and --overwrite"),
    Case("resume-missing-run", ["--resume", "--name", "ghost"], "cannot resume"),
    Case("override-without-value", ["--train.lr"], "--train.lr needs a value"),
    Case("devices-0", ["--devices", "0"], "trainer.devices must be >= 1 (got 0)"),
    Case("strategy-nope", ["--strategy", "nope"], "invalid strategy name: `strategy='nope'`", subprocess=True),
    Case("fsdp-on-cpu", ["--strategy", "fsdp", "--devices", "2", "--trainer.accelerator", "cpu"],
         "strategy=fsdp, precision=32-true): The strategy `fsdp` requires a GPU accelerator"),
    Case("precision-nope", ["--trainer.precision", "99"], "Precision '99' is invalid"),
    Case("hf-sampler-nope", ["--rollout.hf_sampler", "fast"], "rollout.hf_sampler must be kv or generate"),
    Case("results-dir-is-a-file", ["--results-dir", "{tmp}/afile"], "{tmp}/afile",
         setup=_write("afile", "not a folder\n")),
    # ---- config files
    Case("config-missing", ["--config", "{tmp}/nope.yaml"], "nope.yaml' does not exist", subprocess=True),
    Case("config-invalid-yaml", ["--config", "{tmp}/c.yaml"], "c.yaml' is not valid YAML",
         setup=_write("c.yaml", "train: [1, 2\n  steps: : :\n")),
    Case("config-a-list", ["--config", "{tmp}/c.yaml"], "must hold a mapping of sections, not list",
         setup=_write("c.yaml", "- train\n- steps\n")),
    Case("config-unknown-key", ["--config", "{tmp}/c.yaml"], "unknown config key 'train.nope'",
         setup=_write("c.yaml", "train:\n  nope: 1\n")),
    Case("config-unknown-section", ["--config", "{tmp}/c.yaml"], "unknown config key 'trian'",
         setup=_write("c.yaml", "trian:\n  steps: 1\n")),
    Case("config-wrong-type", ["--config", "{tmp}/c.yaml"], "'train.steps'",
         setup=_write("c.yaml", "train:\n  steps: many\n")),
    Case("config-not-utf8", ["--config", "{tmp}/c.yaml"], "c.yaml' is not valid YAML",
         setup=_write("c.yaml", b"train:\n  steps: \xff\xfe\n")),
    # ---- config values
    Case("algo.eta=0", ["--algo.eta", "0"], "algo.eta must be > 0 (got 0.0)", algo="prl", subprocess=True),
    Case("algo.step_len=0", ["--algo.step_len", "0"], "algo.step_len must be >= 1 (got 0)", algo="prl"),
    Case("rollout.n=0", ["--rollout.n", "0"], "rollout.n must be >= 1 (got 0)"),
    Case("algo.clip_eps_low=1.5", ["--algo", "raftpp", "--algo.clip_eps_low", "1.5"],
         "algo.clip_eps_low must be in [0, 1) (got 1.5)", algo=None, subprocess=True),
    Case("algo.clip_eps_low=-0.1", ["--algo.clip_eps_low", "-0.1"], "algo.clip_eps_low must be in [0, 1)"),
    Case("train.rollout_correction_c=1", ["--train.rollout_correction_c", "1.0"],
         "train.rollout_correction_c must be > 1 (got 1.0)"),
    Case("train.rollout_correction=is", ["--train.rollout_correction", "is"],
         "train.rollout_correction must be auto | none | tis | mask (got 'is')"),
    Case("rollout.temperature=0", ["--rollout.temperature", "0"], "rollout.temperature must be > 0"),
    Case("train.steps=0", ["train.steps=0"], "train.steps must be >= 1 (got 0)"),
    Case("train.lr=-1", ["--train.lr", "-1"], "train.lr must be > 0"),
    Case("eval.n=0", ["--eval.n", "0"], "eval.n must be >= 1 (got 0)"),
    Case("rollout.top_p=1.5", ["--rollout.top_p", "1.5"], "rollout.top_p must be in (0, 1]"),
    Case("rollout.n=abc", ["--rollout.n", "abc"], "'rollout.n'"),
    Case("kl_estimator", ["--algo.kl_estimator", "k9"], "'k9'"),
    Case("unknown-key", ["--train.nope", "1"], "unknown config key 'train.nope'"),
    Case("key-of-other-algo", ["--algo.eta", "10"], "unknown config key 'algo.eta'"),
    Case("model.dtype", ["--model.dtype", "float8"], "model.dtype must be one of"),
    # ---- benchmark data files (--data-dir)
    Case("data-dir-missing", ["--bench", "math500", "--data-dir", "{tmp}/nodata"], "{tmp}/nodata"),
    Case("data-file-missing", DATA, "math500/test.jsonl: benchmark file", setup=_write("data/other.txt", "")),
    Case("data-empty", DATA, "math500/test.jsonl: empty file", setup=_write("data/math500/test.jsonl", ""),
         subprocess=True),
    Case("data-invalid-json", DATA, "test.jsonl:7: invalid JSON",
         setup=_math500(lambda ls: ls[:6] + ['{"problem": "x", '] + ls[7:])),
    Case("data-wrong-field", DATA, "test.jsonl:3: missing field 'answer'", setup=_math500(_rename_field)),
    Case("data-wrong-type", DATA, "test.jsonl:4: field 'answer' must be string",
         setup=_math500(lambda ls: ls[:3] + [_row(ls[3], answer=5)] + ls[4:])),
    Case("data-not-utf8", DATA, "test.jsonl:2: not valid UTF-8",
         setup=_math500(lambda ls: ls[:1] + [ls[1].encode()[:20] + b"\xff\xfe" + ls[1].encode()[20:]] + ls[2:])),
    Case("data-duplicate-id", DATA, "test.jsonl:9: duplicate id",
         setup=_math500(lambda ls: ls[:8] + [_row(ls[8], unique_id=json.loads(ls[0])["unique_id"])] + ls[9:])),
    Case("data-empty-gold", DATA, "test.jsonl:5: empty gold answer",
         setup=_math500(lambda ls: ls[:4] + [_row(ls[4], answer="  ")] + ls[5:])),
    Case("data-wrong-row-count", DATA, "expected 500 rows for math500, found 499", setup=_math500(lambda ls: ls[:-1])),
    Case("data-not-an-object", DATA, "test.jsonl:2: expected a JSON object, got list",
         setup=_math500(lambda ls: ls[:1] + ["[1, 2]"] + ls[2:])),
    Case("data-blank-line", DATA, "test.jsonl:11: empty line",
         setup=_math500(lambda ls: ls[:10] + [""] + ls[10:])),
    # ---- training data files (--train-data)
    Case("train-missing", ["--train-data", "{tmp}/nope.jsonl"], "nope.jsonl' does not exist"),
    Case("train-empty", TRAIN, "train.jsonl: empty file", setup=_write("train.jsonl", "")),
    Case("train-invalid-json", TRAIN, "train.jsonl:2: invalid JSON",
         setup=_write("train.jsonl", GOOD_TRAIN + '{"problem": \n' + GOOD_TRAIN)),
    Case("train-wrong-field", TRAIN, "no field 'answer'",
         setup=_write("train.jsonl", '{"problem": "1+1?", "solution": "2"}\n' * 3)),
    Case("train-not-utf8", TRAIN, "train.jsonl: not UTF-8",
         setup=_write("train.jsonl", GOOD_TRAIN.encode() + b'{"problem": "\xff", "answer": "1"}\n'),
         subprocess=True),
    Case("train-empty-answer", TRAIN, "row 2 has an empty problem or answer",
         setup=_write("train.jsonl", GOOD_TRAIN + '{"problem": "2+2?", "answer": ""}\n')),
    Case("train-empty-problem", TRAIN, "row 3 has an empty problem or answer",
         setup=_write("train.jsonl", GOOD_TRAIN * 2 + '{"problem": " ", "answer": "1"}\n')),
    Case("train-not-an-object", TRAIN, "train.jsonl:1: expected a JSON object",
         setup=_write("train.jsonl", '"just a string"\n')),
    Case("train-wrong-suffix", ["--train-data", "{tmp}/train.txt"], "expected a .jsonl, .json or .parquet file",
         setup=_write("train.txt", GOOD_TRAIN)),
    # ---- model paths
    Case("model-missing", ["--model", "{tmp}/nomodel"], "nomodel' does not exist"),
    Case("model-no-config", ["--model", "{tmp}/model"], "has no config.json", setup=_model(*TOK)),
    Case("model-no-tokenizer", ["--model", "{tmp}/model"], "cannot load a tokenizer for model",
         setup=_model("config.json", "model.safetensors")),
    Case("model-wrong-architecture", ["--model", "{tmp}/model"], "(vit) is not a causal language model",
         setup=_model(*TOK, "model.safetensors", config=VIT)),
    Case("model-no-weights", ["--model", "{tmp}/model"], "cannot load the weights of model",
         setup=_model("config.json", *TOK), subprocess=True),
    # ---- run names
    Case("name-dotdot-slash", ["--name", "../x"], "invalid run name '../x'", subprocess=True),
    Case("name-absolute", ["--name", "{tmp}/abs"], "invalid run name '{tmp}/abs'"),
    Case("name-slash", ["--name", "a/b"], "invalid run name 'a/b'"),
    Case("name-dotdot", ["--name", ".."], "invalid run name '..'"),
    Case("name-empty", ["--name", ""], "invalid run name ''", subprocess=True),
    Case("name-hidden", ["--name", ".hidden"], "invalid run name '.hidden'"),
    Case("name-space", ["--name", "a b"], "invalid run name 'a b'"),
    Case("name-override-slash", ["name=../../etc"], "invalid run name '../../etc'"),
]
DATA_CASES = {c.id for c in CASES if c.setup is not None and "_math500" in c.setup.__qualname__}
for _c in CASES:
    if _c.id in DATA_CASES:
        _c.marks.append(needs_data)


def _argv(case: Case, tmp: Path) -> list[str]:
    algo = ["--algo", case.algo] if case.algo else []
    return ["run", *algo, *GUARD, *[a.replace("{tmp}", str(tmp)) for a in case.args]]


def _prepare(case: Case, tmp: Path) -> set[str]:
    if case.setup is not None:
        case.setup(tmp)
    return _tree(tmp)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _check(case: Case, tmp: Path, before: set[str], rc: int, err: str) -> None:
    lines = err.splitlines()
    assert rc == 2, (rc, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert case.expect.replace("{tmp}", str(tmp)) in lines[0], lines[0]
    assert _tree(tmp) == before, sorted(_tree(tmp) - before)   # nothing written: no results/, no run dir
    assert not (tmp.parent / "x").exists() and not (tmp / "abs").exists()


def test_enough_cases():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 25
    assert sum(c.subprocess for c in CASES) >= 8


@pytest.fixture(scope="module", autouse=True)
def _tiny():
    from harness.models import tiny_model_path
    tiny_model_path()   # build once (cached) before any case times anything


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_in_process(case, tmp_path, monkeypatch, capsys):
    before = _prepare(case, tmp_path)
    monkeypatch.chdir(tmp_path)    # the default results root is ./results
    rc = main(_argv(case, tmp_path))
    out = capsys.readouterr()
    _check(case, tmp_path, before, rc, out.err)
    assert out.out == ""


@pytest.mark.slow
def test_bad_input_subprocess(tmp_path):
    """The subset marked ``subprocess`` through ``python -m harness``, two processes at a time."""
    cases = [c for c in CASES if c.subprocess and not (c.id in DATA_CASES and not MATH500.is_file())]
    dirs = []
    for c in cases:
        d = tmp_path / c.id
        d.mkdir()
        dirs.append((d, _prepare(c, d)))
    env_cache = os.environ.get("HARNESS_CACHE_DIR")

    def one(i):
        case, (d, _) = cases[i], dirs[i]
        return run_cli(_argv(case, d), cwd=d, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, range(len(cases))))
    for case, (d, before), proc in zip(cases, dirs, results):
        _check(case, d, before, proc.returncode, proc.stderr)
        assert proc.stdout == "", (case.id, proc.stdout)
    assert env_cache == os.environ.get("HARNESS_CACHE_DIR")
