"""The local executor: runs a rollout plan on this machine, in batches, flushing rows as it goes.

It owns what every sampling job shares: the lazy engine (loaded only if the plan has work), batching,
flushing every `flush_rows` rows or `flush_seconds` (whichever first) so a killed job loses at most one
buffer, the counters of the `jobs` row, and progress through a callback (mstar_data/progress.py). What to
sample is the plan's business (mstar_data/sampling); where it runs is the executor's. The Ray executor will
take the same plan, cut it into deterministic shards and commit each shard's rows once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from mstar_data.inputs import images_by_sha
from mstar_data.progress import ProgressFn, report
from mstar_data.sampling.rollouts import Plan, request, row


@dataclass
class SampleStats:
    requested: int = 0
    skipped: int = 0
    written: int = 0
    judged: int = 0
    correct: int = 0
    n_tokens: int = 0
    gen_s: float = 0.0
    store_s: float = 0.0
    wall_s: float = 0.0

    def add(self, other: "SampleStats") -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))


class LocalExecutor:
    name = "local"

    def __init__(self, store, *, batch_size: int = 32, flush_rows: int = 1024, flush_seconds: float = 10.0,
                 progress: Optional[ProgressFn] = None):
        self.store, self.batch_size, self.flush_rows = store, batch_size, flush_rows
        self.flush_seconds, self.progress = flush_seconds, progress

    def sample(self, plan: Plan, engine, *, task: str,
               on_rows: Optional[Callable[[list[dict]], None]] = None) -> SampleStats:
        """Make every rollout of `plan` with `engine` (an Engine, or a zero-argument callable giving one) and
        append the rows. `on_rows` sees each batch's rows (MC labelling counts their verdicts)."""
        t_start = time.perf_counter()
        stats = SampleStats(requested=plan.requested, skipped=plan.skipped)
        if not plan.todo:
            return stats
        live = engine() if callable(engine) and not hasattr(engine, "generate") else engine
        tag = str(getattr(live, "policy_tag", ""))
        images = images_by_sha(self.store, {p.query["image_sha256"] for p in plan.todo})
        buffer: list[dict] = []
        last_flush = time.perf_counter()

        def flush() -> None:
            nonlocal buffer, last_flush
            t0 = time.perf_counter()
            if buffer:
                stats.written += self.store.append("rollouts", buffer, where=plan.scope)
            stats.store_s += time.perf_counter() - t0
            buffer, last_flush = [], time.perf_counter()

        total = len(plan.todo)
        report(self.progress, task, 0, total)
        try:
            for start in range(0, total, self.batch_size):
                batch = plan.todo[start:start + self.batch_size]
                requests = [request(p, plan.context, images.get(p.query["image_sha256"])) for p in batch]
                t0 = time.perf_counter()
                completions = live.generate(requests)
                stats.gen_s += time.perf_counter() - t0
                rows = [row(p, plan.context, c, tag) for p, c in zip(batch, completions)]
                for r, c in zip(rows, completions):
                    stats.n_tokens += c.n_tokens
                    if r["correct"] is not None:
                        stats.judged += 1
                        stats.correct += bool(r["correct"])
                buffer += rows
                if on_rows is not None:
                    on_rows(rows)
                if len(buffer) >= self.flush_rows or time.perf_counter() - last_flush >= self.flush_seconds:
                    flush()
                el = max(time.perf_counter() - t_start, 1e-9)
                done = start + len(batch)
                report(self.progress, task, done, total,
                       f"{done / el:.1f} rollouts/s, {stats.n_tokens / el:.0f} tok/s")
        finally:
            # Ctrl-C or an engine error: what is finished is kept (the rerun plans only what is missing).
            flush()
            stats.wall_s = time.perf_counter() - t_start
        return stats
