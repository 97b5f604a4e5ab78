"""Training data in DAPO-Math-17k's layout (harness/train/data.py): dotted field paths, the user turn of a chat list,
and DAPO's instruction wrapper removed, on a local fixture (tests/fixtures/dapo_math/train.jsonl; no network).

    .tox/py/bin/python -m pytest tests/train/test_train_data_fields.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import HarnessError
from harness.config import build_config
from harness.train.data import DAPO_PREFIX, DAPO_SUFFIX, FileSource, build_source, problem_text

pytestmark = pytest.mark.fast

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dapo_math" / "train.jsonl"
DAPO = {"problem_field": "prompt", "answer_field": "reward_model.ground_truth"}
EXPECTED = [("What is $1+2$?", "3"), ("Find the remainder when $2^{10}$ is divided by $7$.", "2"),
            ("If $\\frac{x}{3} = 4$, what is $x$?", "12"), ("How many primes are below $10$?", "4")]


def _rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def test_dapo_rows_from_a_local_jsonl():
    src = FileSource(str(FIXTURE), seed=0, per_rank=4, **DAPO)
    assert src.rows == EXPECTED
    batch = src.batch(0)
    assert sorted((p.problem, p.answer) for p in batch) == sorted(EXPECTED)
    assert {p.bench for p in batch} == {"math500"}


def test_dapo_rows_from_parquet_and_from_the_hub(tmp_path, monkeypatch):
    import datasets

    ds = datasets.Dataset.from_list(_rows())
    ds.to_parquet(str(tmp_path / "dapo.parquet"))   # the hub copies are parquet: nested columns are Arrow structs
    assert FileSource(str(tmp_path / "dapo.parquet"), seed=0, per_rank=1, **DAPO).rows == EXPECTED
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or ds)
    cfg = build_config({}, ["algo.name=frpo", "data.train_data=YouJiacheng/DAPO-Math-17k-dedup",
                            "data.problem_field=prompt", "data.answer_field=reward_model.ground_truth"])
    assert build_source(cfg.data, seed=0, per_rank=2).rows == EXPECTED
    assert calls == [(("YouJiacheng/DAPO-Math-17k-dedup",), {"split": "train"})]


def test_problem_text_rules():
    wrapped = DAPO_PREFIX + "Find $x$." + DAPO_SUFFIX
    assert problem_text(wrapped) == "Find $x$."
    assert problem_text([{"role": "user", "content": wrapped}]) == "Find $x$."
    assert problem_text(DAPO_PREFIX + "Find $x$.") == DAPO_PREFIX + "Find $x$."   # only the whole wrapper goes
    assert problem_text("Find $x$." + DAPO_SUFFIX) == "Find $x$." + DAPO_SUFFIX
    turns = [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "assistant",
                                                                                   "content": "b"},
             {"role": "user", "content": "c"}]
    assert problem_text(turns) == "c"                                             # the last user turn
    assert problem_text([{"role": "system", "content": "s"}]) is None
    assert problem_text("plain") == "plain" and problem_text(7) == 7


@pytest.mark.parametrize("fields,match", [
    ({"problem_field": "prompt", "answer_field": "reward_model.answer"},
     r"row 1 has no field 'reward_model.answer' \(found: ground_truth, style\)"),
    ({"problem_field": "prompt", "answer_field": "ability.x"}, r"row 1 has no field 'ability.x' \(found: a str\)"),
    ({"problem_field": "question", "answer_field": "reward_model.ground_truth"}, r"has no field 'question'"),
    ({"problem_field": "extra_info", "answer_field": "reward_model.ground_truth"}, "row 1 has an empty problem"),
])
def test_bad_field_paths_are_one_line_errors(fields, match):
    with pytest.raises(HarnessError, match=match) as err:
        FileSource(str(FIXTURE), seed=0, per_rank=1, **fields)
    assert "\n" not in str(err.value)


def test_a_chat_list_without_a_user_turn_is_an_empty_problem(tmp_path):
    row = {"prompt": [{"role": "system", "content": "s"}], "reward_model": {"ground_truth": "1"}}
    (tmp_path / "t.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(HarnessError, match="row 1 has an empty problem or answer"):
        FileSource(str(tmp_path / "t.jsonl"), seed=0, per_rank=1, **DAPO)


def test_flat_fields_and_a_dotted_column_name_still_work(tmp_path):
    rows = [{"problem": "p", "answer": 5, "a.b": "q"}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert FileSource(str(tmp_path / "t.jsonl"), seed=0, per_rank=1).rows == [("p", "5")]
    assert FileSource(str(tmp_path / "t.jsonl"), seed=0, per_rank=1, problem_field="a.b").rows == [("q", "5")]
