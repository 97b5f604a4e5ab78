"""wandb logging (harness/train/wandb_log.py): mode selection, and offline runs written under the run directory whose
history, summary and tables are read back from wandb's own transaction log (``run-<id>.wandb``)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from common.errors import HarnessError
from harness.train.wandb_log import has_api_key, init_wandb, is_rank_zero, log_run_evals, log_table_dir, wandb_mode


def read_wandb_records(path: Path) -> list:
    """Records of a ``.wandb`` file: a 7-byte file header, then LevelDB-log chunks in 32 KiB blocks, each chunk with a
    7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) around a serialised protobuf Record."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf, out = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # block padding
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def offline_run(run_dir: Path) -> dict:
    """{"run": RunRecord, "history": [{key: value}], "summary": {key: value}, "artifacts": [(name, [file])]} of the
    one offline run in run_dir (nested logged values have flattened keys, e.g. "table/table/nrows")."""
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    deadline = time.time() + 20
    while True:  # wandb-core may still be writing the file for a moment after run.finish() returns
        records = read_wandb_records(files[0])
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.time() > deadline:
            break
        time.sleep(0.1)
    out = {"run": None, "history": [], "summary": {}, "artifacts": []}
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["run"] = rec.run
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "artifact":
            out["artifacts"].append((rec.artifact.name, [m.path for m in rec.artifact.manifest.contents]))
        elif kind == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in rec.summary.update})
    return out


def test_mode_selection(tmp_path):
    no_netrc = str(tmp_path / "missing")
    assert wandb_mode({"NETRC": no_netrc}) == "offline"
    assert wandb_mode({"NETRC": no_netrc, "WANDB_API_KEY": "k" * 40}) == "online"
    assert wandb_mode({"NETRC": no_netrc, "WANDB_API_KEY": "k", "WANDB_MODE": "offline"}) == "offline"
    assert wandb_mode({"NETRC": no_netrc, "WANDB_MODE": "Disabled"}) == "disabled"
    assert wandb_mode({"NETRC": no_netrc, "WANDB_DISABLED": "true"}) == "disabled"
    assert wandb_mode({"NETRC": no_netrc, "WANDB_MODE": ""}) == "offline"
    with pytest.raises(HarnessError, match="WANDB_MODE must be one of"):
        wandb_mode({"WANDB_MODE": "sometimes"})
    rc = tmp_path / "netrc"
    rc.write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    rc.chmod(0o600)
    assert has_api_key({"NETRC": str(rc)}) and wandb_mode({"NETRC": str(rc)}) == "online"
    assert not has_api_key({"NETRC": str(rc), "WANDB_BASE_URL": "https://wandb.example.com"})


def test_rank_zero():
    assert is_rank_zero({}) and is_rank_zero({"RANK": "0", "LOCAL_RANK": "0"})
    assert not is_rank_zero({"LOCAL_RANK": "1"}) and not is_rank_zero({"RANK": "3"})


def test_offline_run_logs_metrics_and_eval_summaries(tmp_path, monkeypatch):
    from harness.config import build_config

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = build_config({}, ["algo.name=prl", "algo.eta=50", "log.wandb=true", "log.wandb_group=grp",
                            f"results_dir={tmp_path}", "name=r1"])
    run_dir = tmp_path / "r1"
    for split, avg in (("eval_base", 0.25), ("eval", 0.5)):
        d = run_dir / split / "arith"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"bench": "arith", "n": 2, "num_problems": 4, "avg@n": avg,
                                                    "maj@n": avg, "pass@k": {"1": avg, "2": avg + 0.25}}))
    run = init_wandb(cfg, run_dir)
    run.log({"step": 1, "reward_mean": 0.125, "kl": float("nan")}, step=1)
    run.log({"step": 2, "reward_mean": 0.375, "kl": 0.01}, step=2)
    metrics = log_run_evals(run, run_dir)
    run.finish()
    assert metrics["eval/arith/avg@n"] == 0.5 and metrics["eval_base/arith/pass@2"] == 0.5

    got = offline_run(run_dir)
    assert (got["run"].display_name, got["run"].run_group, got["run"].project) == ("r1", "grp", "rl-harness")
    config = {i.key: json.loads(i.value_json) for i in got["run"].config.update}
    assert config["algo"]["eta"] == 50.0 and config["algo"]["name"] == "prl"
    steps = [(h["_step"], h["reward_mean"]) for h in got["history"] if "reward_mean" in h]
    assert steps == [(1, 0.125), (2, 0.375)]
    assert any(h.get("eval/pass_at_k/nrows") == 4 for h in got["history"])  # 2 splits x 2 k (flattened keys)
    s = got["summary"]
    assert s["eval/arith/avg@n"] == 0.5 and s["eval_base/arith/avg@n"] == 0.25 and s["eval/arith/pass@2"] == 0.75
    assert (run_dir / "wandb" / "run_id").read_text().strip() == got["run"].run_id


def test_log_table_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "report"
    out.mkdir()
    (out / "table.csv").write_text("row,bench,metric,value\nbase,arith,avg@n,0.25\nprl,arith,avg@n,0.5\n")
    (out / "table.md").write_text("| row | avg |\n")
    log_table_dir(out, group="sw")
    got = offline_run(out)
    assert got["run"].display_name == "table-report" and got["run"].run_group == "sw"
    tables = [h for h in got["history"] if h.get("table/table/_type") == "table-file"]
    assert tables and tables[0]["table/table/nrows"] == 2 and tables[0]["table/table/ncols"] == 4
    assert ("table-report-files", ["table.csv", "table.md"]) in got["artifacts"]
    with pytest.raises(HarnessError, match="no table files"):
        log_table_dir(tmp_path / "report" / "wandb")
