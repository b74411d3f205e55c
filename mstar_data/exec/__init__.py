"""Executors: where and how a job runs. A job spec says what to do (mstar_data/sampling); an executor runs
its plan (local today; Ray next, over deterministic shards of the same plan)."""

from __future__ import annotations

from typing import Callable, Optional, Protocol


class Executor(Protocol):
    name: str

    def sample(self, plan, engine, *, task: str, on_rows: Optional[Callable[[list[dict]], None]] = None):
        """Make every rollout of `plan` (mstar_data.sampling.rollouts.Plan) with `engine` (an Engine, or a
        zero-argument callable that loads one) and commit its rows; returns exec.local.SampleStats."""
