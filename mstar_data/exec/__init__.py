"""Executors: where and how a job runs. A job spec says what to do (mstar_data/sampling); an executor runs
its plan: `local` on this machine, `ray` over deterministic shards of the same plan on Ray actors, with one
committer and a shard ledger (exec/ray_executor.py)."""

from __future__ import annotations

from typing import Callable, Optional, Protocol

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    name: str

    def sample(self, plan, engine, *, task: str, on_rows: Optional[Callable[[list[dict]], None]] = None):
        """Make every rollout of `plan` (mstar_data.sampling.rollouts.Plan) with `engine` (an Engine, or a
        zero-argument callable that loads one; the ray executor needs the callable) and commit its rows;
        returns exec.local.SampleStats."""


def make_executor(name: str, store, *, batch_size: int = 32, flush_rows: int = 1024, flush_seconds: float = 10.0,
                  shard_size: int | None = None, workers: int | None = None, progress=None):
    """The executor called `name` (--executor). Ray is imported only when the ray executor samples."""
    if name == "local":
        from mstar_data.exec.local import LocalExecutor

        return LocalExecutor(store, batch_size=batch_size, flush_rows=flush_rows, flush_seconds=flush_seconds,
                             progress=progress)
    if name == "ray":
        from mstar_data.exec.ray_executor import DEFAULT_SHARD_SIZE, RayExecutor, import_ray

        import_ray()  # fail in one line before any planning if Ray is missing
        return RayExecutor(store, batch_size=batch_size, shard_size=shard_size or DEFAULT_SHARD_SIZE,
                           workers=workers, progress=progress)
    from mstar_data.errors import MstarError

    raise MstarError(f"--executor '{name}': expected one of {', '.join(EXECUTORS)}")
