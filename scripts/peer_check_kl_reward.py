"""KL in the reward, and FRPO's outcome part, against verl's own code on the same inputs.

verl's functions are read from a verl checkout and executed as they are: ``kl_penalty`` (k1 ``kl``, k2 ``mse``, k3
``low_var_kl``), ``apply_kl_penalty``'s ``token_level_scores - beta * kld * mask`` (copied: it needs a DataProto), and
``compute_grpo_outcome_advantage`` / ``compute_rloo_outcome_advantage``, which sum the token rewards before
normalising. The inputs are the tiny model's bfloat16-sampled responses at T = 0.7, pi_old after one SGD step away
from pi_ref (so the KL is not 0), both scored at T = 0.7 in float32. Compared: ``grpo`` and ``rloo`` with
``kl_reward_coef`` 0.001 and 0.5 for each estimator, and ``frpo`` with ``beta`` 0 and the unbiased std against verl's
GRPO advantage (FRPO's future-KL term has no peer code: the official repository is not public; its v1 form is checked
against PRL's code path in tests/algorithms/test_frpo.py).

    python scripts/peer_check_kl_reward.py --verl /path/to/verl
"""

from __future__ import annotations

import argparse
import ast
import copy
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from algorithms import compute_advantages  # noqa: E402
from harness.engines import SamplingParams  # noqa: E402
from harness.engines.hf import HFEngine  # noqa: E402
from harness.models import load_model  # noqa: E402
from harness.train.batching import collate  # noqa: E402
from harness.train.logprobs import token_logp_entropy  # noqa: E402

T = 0.7
ESTIMATORS = {"k1": "kl", "k2": "mse", "k3": "low_var_kl"}   # ours -> verl's algorithm.kl_penalty name


def verl_functions(root: Path) -> SimpleNamespace:
    """verl's functions, executed from its source with the few names they use outside themselves."""
    path = root / "verl/trainer/ppo/core_algos.py"
    text = path.read_text(encoding="utf-8")
    names = {"kl_penalty", "kl_penalty_forward", "compute_grpo_outcome_advantage", "compute_rloo_outcome_advantage"}
    src = "\n\n".join(ast.get_source_segment(text, node) for node in ast.parse(text).body
                      if getattr(node, "name", None) in names)
    src = "\n".join(line for line in src.splitlines() if not line.startswith("@"))   # registry decorators
    ns = {"torch": torch, "np": np, "Optional": Optional, "defaultdict": defaultdict, "AlgoConfig": object}
    exec(src, ns)
    return SimpleNamespace(**{k: ns[k] for k in names})


def inputs() -> tuple:
    """(mask, group ids, 0/1 scores, old log-probs, ref log-probs) of 16 tiny-model responses to 4 prompts."""
    torch.manual_seed(0)
    model, tok = load_model("tiny")
    ref = copy.deepcopy(model)
    gens = HFEngine(model, tok, dtype="bfloat16").generate(["1+2=\n", "7*8-3=\n", "12/4+5=\n", "9-2*3=\n"],
                                                           SamplingParams(n=4, temperature=T, max_new_tokens=32),
                                                           seed=0)
    ids, attn, mask, L = collate(gens, tok.pad_token_id, "cpu")
    model.train()
    (-token_logp_entropy(model, ids, attn, L, with_entropy=False, temperature=T)[0].mean()).backward()
    torch.optim.SGD(model.parameters(), lr=0.05).step()
    with torch.no_grad():
        old = token_logp_entropy(model, ids, attn, L, with_entropy=False, temperature=T)[0] * mask
        lp_ref = token_logp_entropy(ref, ids, attn, L, with_entropy=False, temperature=T)[0] * mask
    scores = torch.tensor([1., 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0])
    return mask, torch.arange(4).repeat_interleave(4), scores, old, lp_ref


def verl_advantage(verl, name: str, mask, groups, scores, old, lp_ref, coef: float, est: str) -> torch.Tensor:
    """verl: scores on the last valid token, minus beta * kl_penalty * mask (apply_kl_penalty), then the estimator."""
    token_scores = torch.zeros_like(mask)
    token_scores[torch.arange(len(scores)), mask.sum(-1).long() - 1] = scores
    kld = verl.kl_penalty(old, lp_ref, kl_penalty=ESTIMATORS[est]) * mask
    fn = verl.compute_grpo_outcome_advantage if name == "grpo" else verl.compute_rloo_outcome_advantage
    return fn(token_scores - coef * kld, mask, groups.numpy())[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verl", required=True, help="a verl checkout (its verl/ package folder's parent)")
    verl = verl_functions(Path(ap.parse_args().verl))
    mask, groups, scores, old, lp_ref = inputs()
    d = (old - lp_ref)[mask.bool()]
    print(f"{int(mask.sum())} tokens, log pi_old - log pi_ref in {float(d.min()):.3f}..{float(d.max()):.3f}")
    print(f"{'algo':6s} {'estimator':9s} {'coef':>6s} {'max |dA|':>9s} {'max |A|':>8s} {'relative':>9s} "
          f"{'shift by KL':>11s}")
    worst = 0.0
    for name in ("grpo", "rloo"):
        plain = compute_advantages(name, scores, groups, mask, old, lp_ref)
        for est in ESTIMATORS:
            for coef in (0.001, 0.5):
                ours = compute_advantages(name, scores, groups, mask, old, lp_ref, kl_reward_coef=coef,
                                          kl_reward_estimator=est)
                theirs = verl_advantage(verl, name, mask, groups, scores, old, lp_ref, coef, est)
                diff, size = float((ours - theirs).abs().max()), float(ours.abs().max())
                worst = max(worst, diff / max(1.0, size))   # verl sums in float32, we in float64
                print(f"{name:6s} {est:9s} {coef:6.3f} {diff:9.1e} {size:8.3f} {diff / max(1.0, size):9.1e} "
                      f"{float((ours - plain).abs().max()):11.1e}")
    ours = compute_advantages("frpo", scores, groups, mask, old, lp_ref, beta=0.0, std="unbiased")
    theirs = verl.compute_grpo_outcome_advantage(torch.zeros_like(mask).index_put_(
        (torch.arange(16), mask.sum(-1).long() - 1), scores), mask, groups.numpy())[0]
    diff = float((ours - theirs).abs().max())
    worst = max(worst, diff)
    print(f"frpo   beta 0, unbiased std vs verl GRPO: max |dA| {diff:.1e}")
    print("match" if worst < 1e-6 else "MISMATCH", f"(largest relative difference {worst:.1e})")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
