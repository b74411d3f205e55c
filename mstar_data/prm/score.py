"""`mstar prm score`: step scores and a response score for stored rollouts, filled in place.

step_scores (P('+') at each step tag) and prm_score (min over steps by default; mean or last) are written
with a merge_insert keyed on rollout_id that updates only the score columns. Rollouts this PRM already
scored are not run through the model again; only their prm_score is recomputed if the aggregate changed, so a
rerun writes nothing. Rows are flushed every `flush_rows`, so a killed job keeps what it scored.
"""

from __future__ import annotations

import time
from collections import Counter
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, Field

from mstar_data.inputs import query_inputs
from mstar_data.exec.jobs import record_job
from mstar_data.progress import report
from mstar_data.prm.format import PRMExample, aggregate, step_scores
from mstar_data.store.predicates import rollouts_to_score


class ScoreConfig(BaseModel):
    """Options of `mstar prm score`."""

    prm: str = Field(description="PRM model folder (from `mstar prm train`).")
    run: str = Field(description="Run whose rollouts are scored.")
    iteration: int | None = Field(None, ge=0, description="Only this iteration (default: all).")
    stage: str | None = Field(None, description="Only this stage (default: every stage but mc).")
    aggregate: Literal["min", "mean", "last"] = Field("min", description="Response score from step scores.")
    correct_only: bool = Field(False, description="Only correct, well-formed rollouts (all top-K selection reads).")
    more_than: int | None = Field(None, ge=1, description="With correct_only: only queries with more than this many "
                                  "(top-K takes every correct response of the others, so needs no ranking).")
    sampled_only: bool = Field(False, description="Only rollouts sampled at T > 0 (all Reward-Pass@2 reads).")
    unjudged_only: bool = Field(False, description="Only rollouts without a gold verdict (unlabelled queries: "
                                "their weighted vote reads every sample's score).")
    batch_size: int = Field(32, ge=1)
    flush_rows: int = Field(2048, ge=1)
    executor: Literal["local", "ray"] = Field("local", description="Where the PRM runs: here, or on Ray actors "
                                              "(one PRM each; needs the ray extra).")
    ray_workers: int | None = Field(None, ge=1, description="ray: actors (default: one per GPU, else per CPU).")
    ray_shard_size: int = Field(256, ge=1, description="ray: rollouts per shard.")


@dataclass
class ScoreResult:
    job_id: str
    selected: int = 0
    scored: int = 0      # run through the PRM
    rescored: int = 0    # prm_score recomputed from stored step scores (another aggregate)
    unchanged: int = 0
    wall_s: float = 0.0
    model_s: float = 0.0
    store_s: float = 0.0


def score_scope(cfg: ScoreConfig) -> str:
    return rollouts_to_score(cfg.run, cfg.iteration, cfg.stage, correct_only=cfg.correct_only,
                             sampled_only=cfg.sampled_only, unjudged_only=cfg.unjudged_only)


UPDATE_SCHEMA = pa.schema([("rollout_id", pa.string()), ("step_scores", pa.list_(pa.float32())),
                           ("prm_score", pa.float32()), ("prm", pa.string())])


def run_score(store, cfg: ScoreConfig, prm=None, progress=None) -> ScoreResult:
    from mstar_data.prm.model import load_prm, prm_meta, prm_tag
    from mstar_data.models.batches import PromptCache

    t_start = time.perf_counter()
    started_at = datetime.now(timezone.utc)
    result = ScoreResult(uuid.uuid4().hex)
    tag = prm_tag(cfg.prm)
    rows = store.dataset("rollouts").to_table(
        columns=["rollout_id", "query_id", "steps", "step_scores", "prm_score", "prm"],
        filter=score_scope(cfg)).sort_by("rollout_id").to_pylist()
    rows = [r for r in rows if r["steps"]]
    if cfg.correct_only and cfg.more_than:
        per_query = Counter(r["query_id"] for r in rows)
        rows = [r for r in rows if per_query[r["query_id"]] > cfg.more_than]
    result.selected = len(rows)
    updates: list[dict] = []
    todo = []
    for r in rows:
        if r["prm"] == tag and r["step_scores"] is not None:
            s = aggregate(r["step_scores"], cfg.aggregate)
            if r["prm_score"] is None or abs(r["prm_score"] - s) > 1e-6:
                updates.append({"rollout_id": r["rollout_id"], "step_scores": r["step_scores"], "prm_score": s,
                                "prm": tag})
                result.rescored += 1
            else:
                result.unchanged += 1
        else:
            todo.append(r)

    def flush() -> None:
        nonlocal updates
        t0 = time.perf_counter()
        if updates:
            store.update("rollouts", pa.Table.from_pylist(updates, schema=UPDATE_SCHEMA))
        updates = []
        result.store_s += time.perf_counter() - t0

    if todo:
        # the prompt the PRM was trained to read (PRMs from before the choice read the policy's)
        inputs = query_inputs(store, (r["query_id"] for r in todo), variant=prm_meta(cfg.prm).get("prompt", "cot"))
        # Similar lengths together: less padding per batch.
        todo.sort(key=lambda r: (sum(len(s) for s in r["steps"]), r["rollout_id"]))

        def take(first: int, scores: list[list[float]]) -> None:
            """The scores of todo[first:first + len(scores)], from this process or an actor."""
            for r, s in zip(todo[first:first + len(scores)], scores):
                updates.append({"rollout_id": r["rollout_id"], "step_scores": s,
                                "prm_score": aggregate(s, cfg.aggregate), "prm": tag})
            result.scored += len(scores)
            if len(updates) >= cfg.flush_rows:
                flush()
            report(progress, "prm score", result.scored, len(todo),
                   f"{result.scored / max(time.perf_counter() - t_start, 1e-9):.0f} rollouts/s")

        examples = [PRMExample(inputs[r["query_id"]].prompt, inputs[r["query_id"]].image, r["steps"]) for r in todo]
        t0, store_before = time.perf_counter(), result.store_s
        if cfg.executor == "ray":
            from mstar_data.exec.ray_score import score_on_ray

            score_on_ray(cfg.prm, [(e.prompt, e.image, e.steps) for e in examples], batch_size=cfg.batch_size,
                         on_scores=take, workers=cfg.ray_workers, shard_size=cfg.ray_shard_size)
        else:
            # `prm`: a loaded PRM, or a zero-argument loader (the loop's, which decides what stays resident)
            prm = prm() if callable(prm) else (prm or load_prm(cfg.prm))
            cache = PromptCache()
            for start in range(0, len(todo), cfg.batch_size):
                take(start, step_scores(prm, examples[start:start + cfg.batch_size], cache))
        result.model_s += time.perf_counter() - t0 - (result.store_s - store_before)
    flush()
    result.wall_s = time.perf_counter() - t_start
    record_job(store, job_id=result.job_id, kind="prm-score", cfg=cfg, started_at=started_at, run=cfg.run,
               iteration=cfg.iteration, stage=cfg.stage, requested=result.selected, skipped=result.unchanged,
               written=result.scored + result.rescored, rows=result.scored, wall_s=result.wall_s,
               work_s=result.model_s, store_s=result.store_s)
    return result
