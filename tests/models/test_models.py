"""The tiny model: tokenizer round trip through save/load, warm-start accuracy, loading errors."""

import json

import pytest
import torch

from common.errors import HarnessError
from harness.models import build_tiny_tokenizer, load_model


def test_tokenizer_roundtrip_through_save_pretrained(tiny):
    _, tok = tiny
    text = "Compute 3+5*2-4.\n3+5*2-4\n=3+10-4\n\\boxed{9}"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == build_tiny_tokenizer()(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character, spaces and newlines included
    assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == text
    assert tok.chat_template is None


def test_tiny_is_a_real_saved_checkpoint(tiny_path, tiny):
    model, _ = tiny
    cfg = json.loads((tiny_path / "config.json").read_text())
    assert cfg["model_type"] == "llama"
    assert (tiny_path / "tokenizer.json").exists()
    assert 50_000 < sum(p.numel() for p in model.parameters()) < 2_000_000


def test_warm_start_base_pass_at_1_in_range(tiny):
    """Issue 2: base pass@1 at temperature 1.0 on the arith test split is in [15%, 50%]."""
    from benchmarks.arith import fixed_test_split
    from harness.models import sampled_accuracy

    model, tok = tiny
    accs = [sampled_accuracy(model, tok, fixed_test_split(), seed=s) for s in (0, 1)]
    assert 0.15 <= sum(accs) / 2 <= 0.50, accs


def test_missing_model_path(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        load_model(str(tmp_path / "nope"))


def test_model_dir_without_config(tmp_path):
    with pytest.raises(HarnessError, match="no config.json"):
        load_model(str(tmp_path))


def test_model_dir_without_tokenizer(tmp_path, tiny_path):
    (tmp_path / "config.json").write_text((tiny_path / "config.json").read_text())
    with pytest.raises(HarnessError, match="tokenizer"):
        load_model(str(tmp_path))


def test_not_a_causal_lm(tmp_path, tiny_path):
    import shutil

    from transformers import ViTConfig

    ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=32).save_pretrained(tmp_path)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_path / f, tmp_path / f)
    with pytest.raises(HarnessError, match="not a causal language model"):
        load_model(str(tmp_path))


def test_bad_dtype():
    with pytest.raises(HarnessError, match="model.dtype"):
        load_model("tiny", dtype="float8")


def test_model_dir_without_weights(tmp_path, tiny_path):
    import shutil

    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_path / f, tmp_path / f)
    with pytest.raises(HarnessError, match="cannot load the weights"):
        load_model(str(tmp_path))


def test_warm_start_builds_on_one_thread(monkeypatch, tmp_path):
    """The trained tiny model depends on the thread count, which the cache key cannot see: always 1."""
    import harness.models.tiny as models

    seen = []
    monkeypatch.setattr(models, "_warm_start_one_thread", lambda spec, path: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        models._warm_start(models.TinySpec(), tmp_path / "m")
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
