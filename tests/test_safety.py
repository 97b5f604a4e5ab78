"""Safety (issue 6): model output is never executed, remote code only when asked, writes stay in the results root.

* A source scan (Python's ``ast``, so comments and strings do not count) of ``harness/``,
  ``algorithms/`` and ``benchmarks/`` finds no ``eval``/``exec``/``compile`` builtin call, no
  ``sympify``/``parse_expr`` (SymPy's string parsers call ``eval``), no ``yaml.load``/``unsafe_load``,
  no ``pickle.load(s)`` and no literal ``trust_remote_code=True``. The scanner is checked on a
  snippet that has each of these, so the test can fail.
* ``trust_remote_code`` defaults to False in the config and in ``load_model``, and a model directory
  whose config points at custom code (``auto_map``) is refused without running that code.
* Run names cannot leave the results root (the CLI cases are in ``tests/test_bad_input.py``).

    .venv/bin/python -m pytest tests/test_safety.py -q
"""

from __future__ import annotations

import ast
import inspect
import json
import shutil
from pathlib import Path

import pytest

from common.errors import HarnessError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "algorithms", "benchmarks")
BANNED_CALLS = {"eval", "exec", "compile", "sympify", "parse_expr", "unsafe_load", "full_load"}
BANNED_ATTR_CALLS = {("yaml", "load"), ("pickle", "load"), ("pickle", "loads"), ("marshal", "loads")}


def banned_calls(source: str, filename: str = "<src>") -> list[str]:
    """``file:line: call`` for every banned call in ``source`` (method calls such as ``model.eval()`` are fine)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in BANNED_CALLS:
                found.append(f"{filename}:{node.lineno}: {f.id}()")
            elif isinstance(f, ast.Attribute):
                owner = f.value.id if isinstance(f.value, ast.Name) else None
                if (owner, f.attr) in BANNED_ATTR_CALLS or (f.attr in BANNED_CALLS - {"eval", "compile"}):
                    found.append(f"{filename}:{node.lineno}: {owner}.{f.attr}()")
            for kw in node.keywords:
                if kw.arg == "trust_remote_code" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                    found.append(f"{filename}:{node.lineno}: trust_remote_code=True")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = {a.name.split(".")[-1] for a in node.names}
            if names & {"sympify", "parse_expr"}:
                found.append(f"{filename}:{node.lineno}: import {', '.join(sorted(names))}")
    return found


def source_files() -> list[Path]:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 20, files
    return files


def test_scanner_catches_each_pattern():
    bad = ("import yaml, pickle\nfrom sympy import sympify\neval(text)\nexec(code)\ncompile(s, 'f', 'exec')\n"
           "sympify(answer)\nyaml.load(f)\npickle.loads(b)\nload_model(p, trust_remote_code=True)\n")
    assert len(banned_calls(bad)) == 8, banned_calls(bad)
    ok = ("model.eval()\nref.requires_grad_(False).eval()\nevaluate(x)\nyaml.safe_load(f)\n"
          "# eval(x) in a comment\ns = 'exec(code)'\nload_model(p, trust_remote_code=cfg.trust)\n")
    assert banned_calls(ok) == []


def test_no_eval_or_exec_of_model_output():
    found = [hit for p in source_files()
             for hit in banned_calls(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert found == []


def test_trust_remote_code_defaults_off():
    from harness.config import ModelConfig, build_config
    from harness.models import load_model

    assert ModelConfig().trust_remote_code is False
    assert build_config({}, ["algo.name=grpo"]).model.trust_remote_code is False
    assert inspect.signature(load_model).parameters["trust_remote_code"].default is False


def test_remote_code_model_is_refused_without_running_it(tmp_path, tiny_path):
    """A checkpoint whose config.json maps AutoConfig to its own module must not import that module."""
    from harness.models import load_model

    marker = tmp_path / "PWNED"
    model = tmp_path / "model"
    model.mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        shutil.copy(tiny_path / f, model / f)
    config = json.loads((tiny_path / "config.json").read_text())
    config.update(model_type="evil", auto_map={"AutoConfig": "evil.EvilConfig",
                                               "AutoModelForCausalLM": "evil.EvilModel"})
    (model / "config.json").write_text(json.dumps(config))
    (model / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                   "from transformers import LlamaConfig as EvilConfig\n")
    with pytest.raises(HarnessError) as err:
        load_model(str(model))
    assert "\n" not in str(err.value) and str(model) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../x", "..", "/etc/passwd", "a/b", "a\\b", "", ".x", "x/..", "x" * 129,
                                  "a\nb", "a\x00b", "~", "~root"])
def test_run_names_cannot_escape_the_results_root(tmp_path, name):
    from harness.results import prepare_run_dir

    with pytest.raises(HarnessError, match="invalid run name"):
        prepare_run_dir(tmp_path / "results", name)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", ["grpo-math500-s0", "prl_eta=10_entropy_coef=0.001_s1", "a.b", "A+B,c"])
def test_valid_run_names_stay_inside(tmp_path, name):
    from harness.results import prepare_run_dir

    run_dir = prepare_run_dir(tmp_path / "results", name)
    assert run_dir.resolve().parent == (tmp_path / "results").resolve() and run_dir.is_dir()
