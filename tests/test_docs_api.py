"""The examples of docs/api.md run as written (the public API's documentation stays true)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast   # the fast tier (`tox -e fast`): no training runs
DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


@pytest.mark.parametrize("block", re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S))
def test_api_examples_run(block):
    exec(compile(block, str(DOC), "exec"), {})


def test_api_names_exist():
    import algorithms
    import harness.metrics
    import harness.stats

    text = DOC.read_text(encoding="utf-8")
    for module, names in ((algorithms, ("compute_advantages", "kl_estimate", "aggregate_loss")),
                          (harness.metrics, ("pass_at_k", "ks_for", "majority_vote", "summarize", "bootstrap_pass_at_k",
                                             "expected_bootstrap_pass")),
                          (harness.stats, ("paired_bootstrap", "permutation_test", "mcnemar", "holm"))):
        for name in names:
            assert callable(getattr(module, name)) and f"| `{name}` |" in text, name
