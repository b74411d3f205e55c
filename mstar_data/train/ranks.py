"""Data parallelism: which rank this process is, its slice of each global micro-batch, and averaging across
ranks. Without an initialised torch.distributed process group, everything is rank 0 of 1.

Under torchrun (`python -m torch.distributed.run --nproc_per_node=N ...`), `join_from_env` joins the group
torchrun describes in the environment: nccl with one GPU per local rank where CUDA is available, gloo on CPU.
"""

from __future__ import annotations

import atexit
import os


def rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def join_from_env() -> tuple[int, int]:
    """Join torchrun's process group (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the environment) once, and leave
    it at exit; without a WORLD_SIZE over 1, nothing. Each rank takes its share of the CPU cores (MSTAR_THREADS,
    unless set)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return rank_and_world()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        os.environ.setdefault("MSTAR_THREADS", str(threads_per_rank(int(os.environ.get("LOCAL_WORLD_SIZE", world)))))
        if torch.cuda.is_available():  # "cuda" then means this rank's own GPU
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(leave)
    return rank_and_world()


def threads_per_rank(nproc: int) -> int:
    """Each of `nproc` processes on this machine gets its share of the cores."""
    return max(1, (os.cpu_count() or 1) // nproc)


def torchrun_command(nproc: int, module: str, *args: str) -> list[str]:
    """`python -m torch.distributed.run` starting `python -m module args` in `nproc` processes here. The "--"
    keeps torchrun's own parser off our options (it would take --run for an abbreviation of its --run-path)."""
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "--", module, *args]


def rank_env(nproc: int) -> dict[str, str]:
    """This environment for the ranks torchrun will start, with OMP_NUM_THREADS their share of the cores unless
    set (torchrun would set 1 and say so)."""
    return {"OMP_NUM_THREADS": str(threads_per_rank(nproc)), **os.environ}


def leave() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def from_rank0(value):
    """Rank 0's `value` on every rank (a picklable object): what only rank 0 may decide, such as a store write."""
    rank, world = rank_and_world()
    if world == 1:
        return value
    import torch.distributed as dist

    box = [value if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank_slice(items: list, rank: int, world: int) -> list:
    """This rank's share of a global micro-batch: every world-th item from `rank` on. The slices of all ranks
    are disjoint, cover the batch, and differ in size by at most one."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    return items[rank::world]


BUCKET = 1 << 23  # elements (32 MB of fp32) per all-reduce


def average_gradients(model, world: int) -> None:
    """Make every rank's gradients the mean over ranks, as DDP does. The Trainer scales each rank's loss by
    `world` first, so the result is the gradient of the sum of the ranks' shares of the global loss. The
    gradients go in flat buckets of up to BUCKET elements (one all-reduce per parameter costs its latency a
    hundred times a step)."""
    if world == 1:
        return
    import torch
    import torch.distributed as dist
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    grads = []
    for p in model.parameters():
        if p.requires_grad:
            if p.grad is None:  # a rank whose slice was empty still takes part in every all-reduce
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    buckets: list[list] = []
    size = BUCKET
    for g in grads:
        if size + g.numel() > BUCKET or g.dtype != buckets[-1][0].dtype or g.device != buckets[-1][0].device:
            buckets.append([])
            size = 0
        buckets[-1].append(g)
        size += g.numel()
    for bucket in buckets:
        flat = _flatten_dense_tensors(bucket)
        dist.all_reduce(flat)
        flat /= world
        for g, avg in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            g.copy_(avg)


def sum_across_ranks(values: list[float], world: int, device: str = "cpu") -> list[float]:
    if world == 1:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
