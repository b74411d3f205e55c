"""`mstar prm perturb`: PRM training responses made by changing the numbers in known chains of thought.

A PRM learns to see a wrong step only from wrong steps it is shown, next to right ones like them. The policy's
own responses are a poor source: on the embedded task its steps are mostly wrong in the same few ways (about
one in nine is true), so a PRM trained on them learns "sums are usually wrong", not to check a claim (step AUC
against the truth 0.64, docs/prm.md). Perturbing known chains gives balanced, varied examples over every
query's image (the step-level negatives of perturbation-based PRM data):

- source `reference`: the queries' reference chains of thought (`queries.reference_cot`), every step true;
- source `rollouts`: the run's own responses at --iteration / --stage (say, explore), as they are.

Each source gives `per_source` responses. In each, every step holding a number has, with probability p_step,
one of its numbers moved by 1 or 2 (never below 0): "red: 2." -> "red: 3.", "2 + 3 = 5." -> "2 + 3 = 6.".
Nothing here knows which steps are true: the perturbed responses are rollouts (stage `perturb`, model
`perturb`, `parent_rollout_id` = the source rollout) that any labeller then labels (`mstar prm label --stage
perturb --labeller task|judge`), and `mstar prm train` trains on them with the run's other labelled
responses. Ids and the perturbation's seed are pure functions of (run, iteration, source, index), so a rerun
writes nothing new.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

from mstar_data.errors import MstarError
from mstar_data.exec.jobs import record_job
from mstar_data.inputs import select_queries
from mstar_data.keys import rollout_id, sample_seed
from mstar_data.progress import report
from mstar_data.sampling.engine import Completion
from mstar_data.sampling.rollouts import Planned, RolloutContext, row
from mstar_data.steps import split_steps
from mstar_data.store.predicates import judged_in, queries_where

STAGE = "perturb"
POLICY_TAG = "perturb"
_INT = re.compile(r"\d+")


class PerturbConfig(BaseModel):
    """Options of `mstar prm perturb`."""

    run: str = Field(description="Run the perturbed responses belong to (the run whose PRM they train).")
    source: Literal["reference", "rollouts"] = Field(
        "reference", description="reference: the queries' reference chains of thought; rollouts: the run's own "
                                 "responses at --iteration/--stage.")
    iteration: int = Field(0, ge=0, description="Iteration of the written rows (and of the source rollouts).")
    stage: str = Field("explore", description="rollouts: stage of the source rollouts.")
    split: str = Field("train", description="Only queries in this split.")
    per_source: int = Field(4, ge=1, description="Perturbed responses per source chain.")
    p_step: float = Field(0.5, gt=0, le=1, description="Chance that a step holding a number gets one changed.")
    max_delta: int = Field(2, ge=1, description="A changed number moves by 1..max_delta, up or down (not below 0).")
    limit: int | None = Field(None, ge=1, description="Only the first M sources (by id).")
    seed: int = Field(0)
    flush_rows: int = Field(1024, ge=1, description="Write to the store every this many rows.")


@dataclass
class PerturbResult:
    job_id: str
    sources: int = 0
    written: int = 0
    skipped: int = 0
    wall_s: float = 0.0


def perturb_steps(steps: list[str], rng: random.Random, p_step: float, max_delta: int = 2) -> list[str]:
    """Each step holding a number has, with probability p_step, one of its numbers moved by a nonzero delta of
    at most max_delta (the result is never negative)."""
    out = []
    for step in steps:
        nums = list(_INT.finditer(step))
        if nums and rng.random() < p_step:
            m = rng.choice(nums)
            v = int(m.group())
            new = v + rng.choice([d for d in range(-max_delta, max_delta + 1) if d and v + d >= 0])
            step = step[:m.start()] + str(new) + step[m.end():]
        out.append(step)
    return out


def _sources(store, cfg: PerturbConfig) -> list[tuple[dict, str | None, list[str]]]:
    """(query row, source rollout id or None, steps) per source chain, in id order."""
    if cfg.source == "reference":
        queries = select_queries(store, split=cfg.split, where=queries_where(with_reference_cot=True))
        out = [(q, None, split_steps(q["reference_cot"])) for q in queries]  # select_queries sorts by id
    else:
        rows = store.dataset("rollouts").to_table(
            columns=["rollout_id", "query_id", "steps"],
            filter=judged_in(cfg.run, cfg.iteration, cfg.stage)).sort_by("rollout_id").to_pylist()
        queries = {q["query_id"]: q for q in select_queries(store, split=cfg.split,
                                                             query_ids=sorted({r["query_id"] for r in rows}))}
        out = [(queries[r["query_id"]], r["rollout_id"], list(r["steps"] or [])) for r in rows
               if r["query_id"] in queries]
    out = [s for s in out if s[2]]
    return out[:cfg.limit] if cfg.limit else out


def run_perturb(store, cfg: PerturbConfig, progress=None) -> PerturbResult:
    t_start, started_at = time.perf_counter(), datetime.now(timezone.utc)
    result = PerturbResult(job_id=uuid.uuid4().hex)
    sources = _sources(store, cfg)
    if not sources:
        where = (f"{cfg.split} queries with a reference chain of thought" if cfg.source == "reference" else
                 f"{cfg.stage} rollouts with steps of run '{cfg.run}' at iteration {cfg.iteration} on {cfg.split} "
                 f"queries")
        raise MstarError(f"prm perturb --source {cfg.source}: there are no {where}")
    result.sources = len(sources)
    ctx = RolloutContext(run=cfg.run, iteration=cfg.iteration, stage=STAGE, temperature=0.0, max_new_tokens=0)
    rows: list[dict] = []
    total = len(sources) * cfg.per_source

    def flush() -> None:
        n = store.append("rollouts", rows)
        result.written += n
        result.skipped += len(rows) - n
        rows.clear()
        report(progress, "prm perturb", result.written + result.skipped, total, "")

    for q, parent, steps in sources:
        key = parent or f"reference:{q['query_id']}"
        for k in range(cfg.per_source):
            seed = sample_seed(cfg.seed, cfg.run, cfg.iteration, STAGE, key, k)
            text = "\n\n".join(perturb_steps(steps, random.Random(seed), cfg.p_step, cfg.max_delta))
            planned = Planned(rollout_id(cfg.run, cfg.iteration, STAGE, key, k), q, k, seed, parent_rollout_id=parent)
            rows.append(row(planned, ctx, Completion(text, 0, "stop", engine=POLICY_TAG), POLICY_TAG))
            if len(rows) >= cfg.flush_rows:
                flush()
    if rows:
        flush()
    result.wall_s = time.perf_counter() - t_start
    record_job(store, job_id=result.job_id, kind="prm-perturb", cfg=cfg, started_at=started_at, run=cfg.run,
               iteration=cfg.iteration, stage=STAGE, requested=total, skipped=result.skipped,
               written=result.written, wall_s=result.wall_s)
    return result
