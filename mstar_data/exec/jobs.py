"""One `jobs` row per job run: what it was asked, what it did, and how fast (generate, prm-label, prm-score)."""

from __future__ import annotations

import json
from datetime import datetime, timezone


def record_job(store, *, job_id: str, kind: str, cfg, started_at: datetime, run: str, iteration: int | None,
               stage: str | None, shard: tuple[int, int] = (0, 1), requested: int = 0, skipped: int = 0,
               written: int = 0, rows: int | None = None, n_tokens: int = 0, wall_s: float = 0.0,
               work_s: float = 0.0, store_s: float = 0.0, exclude: set[str] | None = None,
               status: str = "finished") -> None:
    """`rows` is what the rows/s rate counts (default: `written`); `cfg` is stored as JSON args; `status` is
    finished, or interrupted for a job stopped by Ctrl-C/SIGTERM (its rows so far are kept)."""
    wall = max(wall_s, 1e-9)
    store.append("jobs", [{
        "job_id": job_id, "kind": kind, "run_id": run, "iteration": iteration, "stage": stage,
        "shard": f"{shard[0]}/{shard[1]}", "args": json.dumps(cfg.model_dump(exclude=exclude), default=str),
        "started_at": started_at, "finished_at": datetime.now(timezone.utc), "n_requested": requested,
        "n_skipped": skipped, "n_written": written, "n_tokens": n_tokens, "wall_s": wall_s, "work_s": work_s,
        "store_s": store_s, "rows_per_s": (written if rows is None else rows) / wall, "tokens_per_s": n_tokens / wall,
        "status": status,
    }])
