"""Process-group set-up for `torchrun` and the few collectives the trainer needs.

Run alone, everything here is a no-op (rank 0 of 1). Under `torchrun --nproc-per-node N -m graftlm train
...` each process joins the group (NCCL on GPUs, gloo on CPU) and the model is sharded with FSDP2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dist:
    """Where this process stands: rank, number of processes, and its torch device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); pick this process's device."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    dev = f"cuda:{local}" if use_cuda else "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if world > 1:
        import torch.distributed as td

        if not td.is_initialized():
            td.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, local, dev)


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as td

        td.barrier()


def all_sum(dist: Dist, values: list[float]) -> list[float]:
    """Element-wise sum of `values` over all processes."""
    if not dist.enabled:
        return list(values)
    import torch
    import torch.distributed as td

    t = torch.tensor(values, dtype=torch.float64, device=dist.device)
    td.all_reduce(t)
    return [float(x) for x in t.tolist()]


def broadcast(dist: Dist, obj: Any) -> Any:
    """Rank 0's `obj` on every process."""
    if not dist.enabled:
        return obj
    import torch.distributed as td

    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def decoder_layers(model: Any) -> list[Any]:
    """The decoder layers of a transformers causal LM (also inside a PEFT wrapper); [] when not found."""
    for name in ("model.layers", "base_model.model.model.layers", "transformer.h"):
        obj = model
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return list(obj)
    return []


def shard(model: Any) -> Any:
    """Shard a transformers causal LM with FSDP2: each decoder layer, then the root."""
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(model)
    return model
