"""Training log-probs at T != 1 against TRL's own code (``trl.trainer.utils.add_fused_lm_head``, what
``GRPOTrainer`` and ``RLOOTrainer`` score completions with, called as ``_get_per_token_logps_and_entropies``
calls it) on the tiny model's own samples. Needs trl (the ``bench`` extra); skipped without it. verl divides the
logits by the temperature before its log-softmax (``dp_actor.py``: ``logits.div_(temperature)``), which
``test_logprobs.py::test_tempered_logprobs_and_entropy`` checks against the formula.
"""

from __future__ import annotations

import copy

import pytest
import torch

from harness.engines import SamplingParams
from harness.engines.hf import HFEngine
from harness.train.batching import collate
from harness.train.logprobs import token_logp_entropy


@pytest.mark.parametrize("temperature", [0.5, 0.7, 1.0])
def test_logprobs_and_entropy_equal_trl(tiny, temperature):
    pytest.importorskip("trl")
    from trl.trainer.utils import add_fused_lm_head

    model, tok = tiny
    gens = HFEngine(model, tok).generate(["1+2=\n", "7*8-3=\n", "12/4+5=\n"],
                                         SamplingParams(n=4, temperature=temperature, max_new_tokens=32), seed=0)
    ids, attn, mask, T = collate(gens, tok.pad_token_id, "cpu")
    with torch.no_grad():
        ours, ent = token_logp_entropy(model, ids, attn, T, temperature=temperature)
        trl_model = copy.deepcopy(model).eval()
        add_fused_lm_head(trl_model, temperature=temperature, outputs=("log_probs", "entropy"))
        labels = ids.masked_fill(attn == 0, -100)
        labels[:, :-T] = -100                                   # only the completion tokens are scored
        out = trl_model(input_ids=ids, attention_mask=attn, labels=labels, fused_lm_head=True)
    valid = mask.bool()
    torch.testing.assert_close(ours[valid], out.log_probs[:, -T:][valid], rtol=1e-5, atol=5e-5)   # measured: 2.3e-5
    torch.testing.assert_close(ent[valid], out.entropy[:, -T:][valid], rtol=1e-5, atol=1e-5)
    if temperature != 1.0:
        untempered, _ = token_logp_entropy(model, ids, attn, T)
        assert (untempered - out.log_probs[:, -T:])[valid].abs().max() > 0.01
