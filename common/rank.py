"""This process's rank, the one place that decides it.

Inside a process group the answer is ``torch.distributed``'s. Before one exists (while a run checks its
input and creates its directory) it is read from the launcher's environment in the order Lightning's
``rank_zero_only`` uses (``lightning.fabric.utilities.rank_zero._get_rank``: ``RANK``, ``LOCAL_RANK``,
``SLURM_PROCID``, ``JSM_NAMESPACE_RANK``), plus ``NODE_RANK``, which Lightning's own multi-node
launcher sets beside ``LOCAL_RANK`` for the processes it starts.

    python -c "from common.rank import global_rank; print(global_rank())"
"""

from __future__ import annotations

import os
from typing import Mapping


def global_rank(environ: Mapping[str, str] | None = None, devices_per_node: int = 1) -> int:
    """The global rank: the process group's, else the launcher's environment variables, else 0."""
    if environ is None:
        rank, world = shard()
        if world > 1:
            return rank
    env = os.environ if environ is None else environ
    if env.get("RANK"):
        return int(env["RANK"])
    if env.get("LOCAL_RANK"):
        return int(env.get("NODE_RANK") or 0) * devices_per_node + int(env["LOCAL_RANK"])
    if int(env.get("NODE_RANK") or 0) > 0:  # local rank 0 of a later node
        return int(env["NODE_RANK"]) * devices_per_node
    for key in ("SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if env.get(key):
            return int(env[key])
    return 0


def is_rank_zero(environ: Mapping[str, str] | None = None) -> bool:
    return global_rank(environ) == 0


def shard() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised ``torch.distributed`` group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
