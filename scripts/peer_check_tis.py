"""The rollout-corrected policy loss against verl's own code, on the same inputs: a checkout of verl is read (its
``compute_policy_loss_vanilla``, ``agg_loss``, ``compute_rollout_correction_weights``, ``masked_sum/mean``, executed
as written) and compared with ``algorithms.loss.compute_loss`` with ``algorithms.correction.correction_weights``.

Inputs: the ``tiny`` model samples 4 prompts x 4 responses with the kv sampler in bfloat16 at temperature 0.7 (a
real rollout/training mismatch); the float32 policy scores them at T = 0.7 as pi_old; one SGD step later it scores
them again with gradients (a second epoch: the PPO ratio is not 1); GRPO advantages from fixed rewards. For each loss
aggregation it prints the largest weight difference, the loss difference and the relative L2 difference of the full
parameter gradient at C = 2 and C = 1.05 (where the truncation bites), and exits 1 if any exceeds 1e-5.

    python scripts/peer_check_tis.py --verl /path/to/verl
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from algorithms import compute_advantages  # noqa: E402
from algorithms.core import LossConfig, Rollout  # noqa: E402
from algorithms.correction import correction_weights  # noqa: E402
from algorithms.loss import compute_loss  # noqa: E402
from harness.engines import SamplingParams  # noqa: E402
from harness.engines.hf import HFEngine  # noqa: E402
from harness.models import load_model  # noqa: E402
from harness.train.batching import collate, sampling_logp  # noqa: E402
from harness.train.logprobs import token_logp_entropy  # noqa: E402

T = 0.7


def verl_functions(root: Path) -> SimpleNamespace:
    """verl's functions, executed from its source files with the few names they use outside themselves."""
    def source(rel: str, names: set[str]) -> str:
        tree = ast.parse((root / rel).read_text(encoding="utf-8"))
        return "\n\n".join(ast.get_source_segment((root / rel).read_text(encoding="utf-8"), node)
                           for node in tree.body if getattr(node, "name", None) in names
                           or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in names
                                                                   for t in node.targets)))
    ns: dict = {"torch": torch, "Optional": Optional}
    exec(source("verl/utils/torch_functional.py", {"masked_sum", "masked_mean"}), ns)
    ns["verl_F"] = SimpleNamespace(masked_sum=ns["masked_sum"], masked_mean=ns["masked_mean"])
    ns["AlgoConfig"] = type("AlgoConfig", (), {})
    ns["compute_is_metrics"] = lambda **kw: {}
    exec(source("verl/trainer/ppo/core_algos.py", {"agg_loss", "compute_policy_loss_vanilla"}), ns)
    exec(source("verl/trainer/ppo/rollout_corr_helper.py", {"SAFETY_BOUND", "compute_rollout_correction_weights"}), ns)
    return SimpleNamespace(**{k: ns[k] for k in ("compute_policy_loss_vanilla", "compute_rollout_correction_weights")})


class ActorConfig(dict):
    """verl reads the actor config both as attributes and with ``.get``."""

    __getattr__ = dict.get


def compare(model, ids, attn, L, mask, groups, rewards, old, adv, mode, ours_w, verl_w, verl) -> tuple[float, float]:
    """(|loss difference|, relative L2 difference of the parameter gradient) of ours against verl's loss."""
    grads, losses = [], []
    for side in ("ours", "verl"):
        model.zero_grad(set_to_none=True)
        logp = token_logp_entropy(model, ids, attn, L, with_entropy=False, temperature=T)[0]
        if side == "ours":
            ro = Rollout(ids[:, -L:], mask, groups, rewards, old, None)
            loss, _ = compute_loss(logp, None, ro, adv, LossConfig(loss_agg=mode), is_weights=ours_w)
        else:
            cfg = ActorConfig(clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.2, clip_ratio_c=3.0,
                              global_batch_info={})
            loss, _ = verl.compute_policy_loss_vanilla(old, logp, adv, mask, loss_agg_mode=mode, config=cfg,
                                                       rollout_is_weights=verl_w)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    return abs(losses[0] - losses[1]), float((grads[0] - grads[1]).norm() / grads[1].norm())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verl", required=True, help="a verl checkout (its verl/ package folder's parent)")
    verl = verl_functions(Path(ap.parse_args().verl))
    torch.manual_seed(0)
    model, tok = load_model("tiny")
    gens = HFEngine(model, tok, dtype="bfloat16").generate(
        ["1+2=\n", "7*8-3=\n", "12/4+5=\n", "9-2*3=\n"],
        SamplingParams(n=4, temperature=T, max_new_tokens=32, logprobs=True), seed=0)
    ids, attn, mask, L = collate(gens, tok.pad_token_id, "cpu")
    rollout_logp = sampling_logp(gens, L, "cpu")
    with torch.no_grad():
        old = token_logp_entropy(model, ids, attn, L, with_entropy=False, temperature=T)[0] * mask
    model.train()
    (-token_logp_entropy(model, ids, attn, L, with_entropy=False, temperature=T)[0].mean()).backward()
    torch.optim.SGD(model.parameters(), lr=0.05).step()      # the policy moves: a second epoch's ratio
    rewards = torch.tensor([1., 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0])
    groups = torch.arange(4).repeat_interleave(4)
    adv = compute_advantages("grpo", rewards, groups, mask)
    u = (old - rollout_logp)[mask.bool()].exp()
    print(f"{int(mask.sum())} tokens, u = p_train / p_rollout in {float(u.min()):.3f}..{float(u.max()):.3f}")
    print(f"{'C':>5s} {'loss_agg':20s} {'truncated':>9s} {'max |dw|':>9s} {'|dloss|':>9s} {'grad rel L2':>11s}")
    worst = 0.0
    for c in (2.0, 1.05):   # 1.05: the truncation bites on some tokens
        ours_w = correction_weights(old, rollout_logp, "tis", c) * mask
        verl_w, _ = verl.compute_rollout_correction_weights(old - rollout_logp, mask, "token", c)
        for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum"):
            d_loss, rel = compare(model, ids, attn, L, mask, groups, rewards, old, adv, mode, ours_w, verl_w, verl)
            d_w = float((ours_w - verl_w).abs().max())
            worst = max(worst, d_w, d_loss, rel)
            print(f"{c:5.2f} {mode:20s} {float((u > c).float().mean()):9.1%} {d_w:9.1e} {d_loss:9.1e} {rel:11.1e}")
    print("match" if worst < 1e-5 else "MISMATCH", f"(largest difference {worst:.1e})")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
