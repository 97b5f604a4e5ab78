"""Tests for the benchmark registry and data loading (row mapping, counts, bad input, resolution).

    .venv/bin/python -m pytest tests/benchmarks/test_benchmarks.py -q
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import BENCHMARKS, Problem, get_benchmark, resolve_benchmarks
from benchmarks.loader import DATA_ENV
from benchmarks.spec import SYSTEM_PROMPT, USER_SUFFIX
from common.errors import HarnessError

DATA = Path(os.environ.get(DATA_ENV) or Path(__file__).resolve().parents[3] / "shared" / "benchmarks")
needs_data = pytest.mark.skipif(not (DATA / "math500" / "test.jsonl").is_file(),
                                reason=f"benchmark data not found under {DATA}")
COUNTS = {"math500": 500, "minerva_math": 272, "olympiadbench": 675, "aime24": 30, "aime25": 30, "amc23": 40,
          "gsm8k": 1319}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    import benchmarks.loader as loader
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(loader, "default_data_dirs", lambda: [])   # no ../shared/benchmarks fallback
    monkeypatch.setattr(loader, "hub_reachable", lambda: True)     # the hub tests mock load_dataset


# --------------------------------------------------------------------------- registry

def test_registration_order_and_all():
    assert BENCHMARKS.names() == ("math500", "minerva_math", "olympiadbench", "aime24", "aime25", "amc23",
                                  "gsm8k", "arith", "arith_word")
    assert resolve_benchmarks("all") == ("math500", "minerva_math", "olympiadbench")
    assert resolve_benchmarks("gsm8k, math500,gsm8k") == ("gsm8k", "math500")
    assert resolve_benchmarks("arith,all") == ("arith", "math500", "minerva_math", "olympiadbench")


@pytest.mark.parametrize("spec", ["math5000", "", "math500,,gsm8k", "MATH500"])
def test_resolve_rejects_unknown(spec):
    with pytest.raises(HarnessError) as err:
        resolve_benchmarks(spec)
    assert "math500" in str(err.value) and "\n" not in str(err.value)


def test_spec_fields():
    spec = get_benchmark("minerva_math")
    assert spec.local_file == "minerva_math/test.jsonl" and spec.n_expected == 272
    assert spec.grading.sci_notation and not get_benchmark("math500").grading.sci_notation
    assert get_benchmark("arith").grading.integer_only


# --------------------------------------------------------------------------- real files

@needs_data
@pytest.mark.parametrize("name", list(COUNTS))
def test_real_files_load(name):
    problems = get_benchmark(name).load(str(DATA))
    assert len(problems) == COUNTS[name]
    assert len({p.id for p in problems}) == len(problems)
    assert all(isinstance(p, Problem) and p.answer.strip() and p.problem.strip() for p in problems)
    assert get_benchmark(name).load(str(DATA), limit=3) == problems[:3]


@needs_data
def test_row_mapping_examples(monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(DATA))   # the environment variable works like --data-dir
    first = {b: get_benchmark(b).load(limit=1)[0] for b in COUNTS}
    assert first["math500"].id == "test/precalculus/807.json"
    assert first["math500"].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert (first["minerva_math"].id, first["minerva_math"].answer) == ("0", "1.6")
    assert (first["olympiadbench"].id, first["olympiadbench"].answer) == ("1606", "2")
    assert first["olympiadbench"].meta["is_multiple_answer"] is False
    assert first["aime24"].answer == "204" and first["amc23"].answer == "27"
    assert (first["aime25"].id, first["aime25"].answer) == ("2025-I-1", "70")
    assert first["gsm8k"].answer == "18"
    minerva = get_benchmark("minerva_math").load(str(DATA))
    assert sum("e" in p.answer and p.answer.replace(".", "").replace("e", "").replace("-", "").isdigit()
               for p in minerva) == 58
    olymp = get_benchmark("olympiadbench").load(str(DATA))
    assert sum(p.meta["is_multiple_answer"] for p in olymp) == 94
    assert not any(p.answer.startswith("$") or p.answer.endswith("$") for p in olymp)


@needs_data
def test_aime25_ids_answers_and_the_form_feed_repair():
    """../shared/benchmarks/SOURCES.md: no id field (I 1-15, then II 1-15), digit-string answers, and a JSON ``\\f``
    escape that turned ``\\frac`` into a form feed + ``rac`` in rows 18 and 27 (repaired on loading)."""
    rows = [json.loads(line) for line in (DATA / "aime25" / "test.jsonl").read_text().splitlines()]
    assert [i for i, r in enumerate(rows) if "\x0c" in r["problem"]] == [18, 27]   # the file itself is unmodified
    problems = get_benchmark("aime25").load(str(DATA))
    assert [p.id for p in problems] == [f"2025-{c}-{k}" for c in ("I", "II") for k in range(1, 16)]
    assert [p.answer for p in problems] == [r["answer"] for r in rows] and all(p.answer.isdigit() for p in problems)
    for i in (18, 27):
        assert "\\frac" in problems[i].problem and "\x0c" not in problems[i].problem
        assert problems[i].problem == rows[i]["problem"].replace("\x0crac", "\\frac")
    assert not any("\x0c" in p.problem for p in problems)
    assert get_benchmark("aime25").load(str(DATA), limit=2) == problems[:2]


def test_aime25_hub_rows_and_a_small_file(tmp_path, monkeypatch):
    import datasets
    rows = [{"problem": f"Is \x0crac{{{i}}}{{2}} an integer?", "answer": i, "id": 100 + i} for i in range(30)]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: rows)   # math-ai/aime25: answers may be numbers
    hub = get_benchmark("aime25").load()
    assert get_benchmark("aime25").source() == "hub:math-ai/aime25"
    assert (hub[29].id, hub[29].answer, hub[29].problem) == ("2025-II-15", "29", "Is \\frac{29}{2} an integer?")
    _write(tmp_path, "aime25", _jsonl([{"problem": "Same?", "answer": "1"}] * 30))
    with pytest.raises(HarnessError, match=r"aime25/test.jsonl:2: duplicate id"):
        get_benchmark("aime25").load(str(tmp_path))


@pytest.mark.slow
@needs_data
def test_eval_runs_on_aime25(tmp_path):
    from tests.conftest import run_cli

    res = run_cli(["eval", "--model", "tiny", "--bench", "aime25", "--limit", "2", "--n", "1", "--results-dir",
                   str(tmp_path), "--name", "aime25", "--data-dir", str(DATA), "--quiet"])
    assert res.returncode == 0, res.stderr[-2000:]
    samples = [json.loads(line) for line in (tmp_path / "aime25" / "eval" / "aime25" / "samples.jsonl").open()]
    assert [s["problem_id"] for s in samples] == ["2025-I-1", "2025-I-2"]


def test_arith_builtin():
    probs = get_benchmark("arith").load("/nonexistent/ignored")
    assert len(probs) == 200 and probs[0].id == "arith-0000" and probs[0].answer.lstrip("-").isdigit()
    assert get_benchmark("arith").load(limit=5) == probs[:5]


# --------------------------------------------------------------------------- prompts

class _ChatTok:
    chat_template = "{{ stuff }}"

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        assert add_generation_prompt is True and tokenize is False
        return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"


class _PlainTok:
    chat_template = None


def test_prompts():
    p = Problem(id="1", problem="What is 1+1?", answer="2", meta={})
    chat = get_benchmark("math500").prompt(p, _ChatTok())
    assert chat == f"system:{SYSTEM_PROMPT}|user:What is 1+1?{USER_SUFFIX}|assistant:"
    assert get_benchmark("math500").prompt(p, _PlainTok()) == "What is 1+1?" + USER_SUFFIX + "\n"
    assert USER_SUFFIX == " Let's think step by step and output the final answer within \\boxed{}."
    assert get_benchmark("arith").prompt(p, _PlainTok()) == "What is 1+1?\n"
    assert get_benchmark("arith").prompt(p, _ChatTok()) == chat


# --------------------------------------------------------------------------- bad input

def _write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _aime_rows(n: int = 30) -> list[dict]:
    return [{"id": i, "problem": f"Problem {i}?", "answer": str(i)} for i in range(n)]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_small_valid_file(tmp_path):
    _write(tmp_path, "aime24", _jsonl(_aime_rows()))
    probs = get_benchmark("aime24").load(str(tmp_path), limit=2)
    assert probs == [Problem("0", "Problem 0?", "0", {"url": None}), Problem("1", "Problem 1?", "1", {"url": None})]


def _error(tmp_path, content, name="aime24") -> str:
    path = _write(tmp_path, name, content)
    with pytest.raises(HarnessError) as err:
        get_benchmark(name).load(str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    return msg.replace(str(path), "FILE")


def test_malformed_json_line(tmp_path):
    rows = _jsonl(_aime_rows()).splitlines()
    rows[6] = '{"id": 6, "problem": "x", '
    assert _error(tmp_path, "\n".join(rows) + "\n").startswith("FILE:7: invalid JSON")


def test_missing_field(tmp_path):
    rows = _aime_rows()
    del rows[3]["answer"]
    assert _error(tmp_path, _jsonl(rows)).startswith("FILE:4: missing field 'answer'")


def test_wrong_field_type(tmp_path):
    rows = _aime_rows()
    rows[0]["problem"] = 5
    assert _error(tmp_path, _jsonl(rows)).startswith("FILE:1: field 'problem' must be string")


def test_not_an_object(tmp_path):
    assert _error(tmp_path, "[1, 2]\n").startswith("FILE:1: expected a JSON object")


def test_empty_file(tmp_path):
    assert _error(tmp_path, "").startswith("FILE: empty file")
    assert _error(tmp_path, "\n\n").startswith("FILE: empty file")


def test_wrong_row_count(tmp_path):
    assert _error(tmp_path, _jsonl(_aime_rows(29))) == "FILE: expected 30 rows for aime24, found 29"


def test_non_utf8(tmp_path):
    content = _jsonl(_aime_rows()).encode()
    content = content.replace(b"Problem 2?", b"Probl\xe9m 2?")
    assert _error(tmp_path, content).startswith("FILE:3: not valid UTF-8 (byte 0xe9")


def test_duplicate_id(tmp_path):
    rows = _aime_rows()
    rows[9]["id"] = 2
    assert _error(tmp_path, _jsonl(rows)) == "FILE:10: duplicate id '2' (first at line 3)"


def test_empty_gold(tmp_path):
    rows = _aime_rows()
    rows[4]["answer"] = "  "
    assert _error(tmp_path, _jsonl(rows)).startswith("FILE:5: empty gold answer")


def test_blank_line_in_middle(tmp_path):
    rows = _jsonl(_aime_rows()).splitlines()
    rows.insert(2, "")
    assert _error(tmp_path, "\n".join(rows) + "\n").startswith("FILE:3: empty line")


def test_minerva_without_box_and_gsm8k_without_marker(tmp_path):
    rows = [{"problem": "p", "solution": "no box", "idx": 0}]
    assert _error(tmp_path, _jsonl(rows), "minerva_math").startswith("FILE:1: field 'solution' has no \\boxed")
    rows = [{"question": "q", "answer": "42", "idx": 0}]
    assert _error(tmp_path, _jsonl(rows), "gsm8k").startswith("FILE:1: field 'answer' has no '####")


def test_missing_data_dir_and_file(tmp_path, monkeypatch):
    with pytest.raises(HarnessError, match="does not exist"):
        get_benchmark("math500").load(str(tmp_path / "nope"))
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nope"))
    with pytest.raises(HarnessError, match=f"from {DATA_ENV}"):
        get_benchmark("math500").load()
    with pytest.raises(HarnessError, match="math500/test.jsonl"):
        get_benchmark("math500").load(str(tmp_path))


def test_hub_failure_is_a_harness_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'HuggingFaceH4/MATH-500' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(HarnessError) as err:
        get_benchmark("math500").load()
    msg = str(err.value)
    assert "HuggingFaceH4/MATH-500" in msg and "--data-dir" in msg and DATA_ENV in msg and "\n" not in msg


def test_hub_rows_are_validated(monkeypatch):
    import datasets
    rows = _aime_rows()
    rows[5].pop("problem")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: rows)
    with pytest.raises(HarnessError, match=r"hub:math-ai/aime24: row 6: missing field 'problem'"):
        get_benchmark("aime24").load()
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: _aime_rows())
    assert len(get_benchmark("aime24").load()) == 30


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_bad_limit(limit):
    with pytest.raises(HarnessError, match="limit"):
        get_benchmark("arith").load(limit=limit)


# --------------------------------------------------------------------------- defaults and offline hub (issue 11.5)

def test_shared_benchmarks_folder_is_the_default(monkeypatch, tmp_path):
    import benchmarks.loader as loader
    folder = tmp_path / "shared" / "benchmarks"
    monkeypatch.setattr(loader, "default_data_dirs", lambda: [tmp_path / "missing", folder])
    assert loader.resolve_data_dir(None) is None            # neither exists: the hub
    folder.mkdir(parents=True)
    assert loader.resolve_data_dir(None) == folder
    monkeypatch.setenv(DATA_ENV, str(tmp_path))             # the environment variable comes first
    assert loader.resolve_data_dir(None) == tmp_path
    monkeypatch.undo()
    root = Path(loader.__file__).resolve().parents[1]
    assert loader.default_data_dirs() == [root.parent / "shared" / "benchmarks",
                                          Path.cwd().parent / "shared" / "benchmarks"]


def test_no_network_fails_in_one_line_without_calling_the_hub(monkeypatch):
    import datasets

    import benchmarks.loader as loader
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(loader, "hub_reachable", lambda: False)
    with pytest.raises(HarnessError) as err:
        get_benchmark("math500").load()
    msg = str(err.value)
    assert not calls and "no network" in msg and "HF_HUB_OFFLINE" in msg and "--data-dir" in msg
    assert "\n" not in msg


_REAL_HUB_REACHABLE = __import__("benchmarks.loader").loader.hub_reachable   # before the autouse patch


def test_hub_reachable_times_out_and_respects_offline_mode(monkeypatch):
    import socket
    import time

    hub_reachable = _REAL_HUB_REACHABLE
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")      # no such host
    assert hub_reachable(timeout=0.5) is False
    with socket.socket() as server:                              # accepts, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        t = time.time()
        assert hub_reachable(timeout=0.5) is False and time.time() - t < 2
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")                     # datasets reads its cache: no probe
    assert hub_reachable(timeout=0.5) is True
