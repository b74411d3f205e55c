"""Data parallelism: which rank this process is, its slice of each global micro-batch, and averaging across
ranks. Without an initialised torch.distributed process group, everything is rank 0 of 1."""

from __future__ import annotations


def rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_slice(items: list, rank: int, world: int) -> list:
    """This rank's share of a global micro-batch: every world-th item from `rank` on. The slices of all ranks
    are disjoint, cover the batch, and differ in size by at most one."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    return items[rank::world]


def average_gradients(model, world: int) -> None:
    """Make every rank's gradients the mean over ranks (each rank's loss is a mean over its own slice)."""
    if world == 1:
        return
    import torch
    import torch.distributed as dist

    for p in model.parameters():
        if p.requires_grad:
            if p.grad is None:  # a rank whose slice was empty still takes part in every all-reduce
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad /= world


def sum_across_ranks(values: list[float], world: int, device: str = "cpu") -> list[float]:
    if world == 1:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
