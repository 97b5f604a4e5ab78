"""``python -m tests.train.ddp_trace run ...``: ``harness run`` with a per-rank trace of every RL step.

Each process appends ``{"step", "prompts", "param_sum"}`` to ``$TRACE_DIR/rank<r>.jsonl`` after each
training step. Lightning's DDP launcher starts the other ranks with this same command line, so every
rank is traced; test_ddp.py reads the traces to check that ranks see different prompts and keep
identical parameters.
"""

from __future__ import annotations

import os
import sys

from harness.cli import main
from harness.results import append_jsonl
from harness.train import loop

_step = loop.RLModule.training_step


def traced_step(self, batch, batch_idx):
    out = _step(self, batch, batch_idx)
    checksum = sum(p.detach().double().sum().item() for p in self.policy.parameters())
    append_jsonl(os.path.join(os.environ["TRACE_DIR"], f"rank{self.global_rank}.jsonl"),
                 [{"step": self.rollout_step, "prompts": [p.id for p in batch], "param_sum": checksum}])
    return out


loop.RLModule.training_step = traced_step

if __name__ == "__main__":
    sys.exit(main())
