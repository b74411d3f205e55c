"""`mstar generate` as a job: a spec (GenerateConfig) planned into rollouts and run by an executor.

Resumable by construction: rollout ids are deterministic, ids already stored are skipped before any model
work, and the executor flushes rows as it goes. A job killed with SIGKILL loses at most the unflushed
buffer, and its rerun writes exactly what is missing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from functools import partial
from datetime import datetime, timezone

from pydantic import BaseModel, Field

from mstar_data.errors import Interrupted, MstarError
from mstar_data.exec.jobs import record_job
from mstar_data.exec.local import SampleStats
from mstar_data.inputs import check_split, select_queries
from mstar_data.keys import rollout_id, sample_seed
from mstar_data.sampling.rollouts import Plan, Planned, RolloutContext
from mstar_data.store.predicates import run_scope

STAGES = ("warmup", "explore", "val", "temp-sweep", "eval", "mc")


class GenerateConfig(BaseModel):
    """Options of `mstar generate` (CLI flags and recipe keys share these names)."""

    policy: str = Field(description="Policy model folder (a Hugging Face model directory).")
    split: str | None = Field("train", description="Queries of this split (None: any split, with query_ids).")
    n: int = Field(4, ge=1, description="Responses per query.")
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature (0 = greedy).")
    run: str = Field("default", description="Run id the rollouts belong to.")
    iteration: int = Field(0, ge=0, description="Iteration tag.")
    stage: str = Field("explore", description="warmup / explore / val / temp-sweep / eval / mc.")
    backend: str = Field("hf", description="hf, lmdeploy or vllm.")
    deterministic: bool = Field(False, description="hf: fp32 weights and logits, and torch's deterministic "
                                                   "settings (slower). What reproduces where: docs/sampling.md.")
    shard: tuple[int, int] = Field((0, 1), description="Shard i of n (queries are taken every n-th from i).")
    limit: int | None = Field(None, ge=1, description="Only the first M queries (by id).")
    seed: int = Field(0, description="Base seed; each rollout's seed derives from it and the row's position.")
    max_new_tokens: int = Field(128, ge=1, description="Generation length cap.")
    batch_size: int = Field(32, ge=1, description="Requests per backend call.")
    prompt_variant: str = Field("cot", description="cot, warmup (gold answer in the prompt) or r1.")
    query_ids: list[str] | None = Field(None, description="Restrict to these queries (the loop's interval).")
    sample_offset: int = Field(0, ge=0, description="First sample index (greedy at 0, then samples from 1).")
    flush_rows: int = Field(1024, ge=1, description="Write to the store every this many rollouts ...")
    flush_seconds: float = Field(10.0, gt=0, description="... or this often, whichever comes first.")
    executor: str = Field("local", description="local (this machine) or ray (shards on Ray actors, one engine "
                                               "each; needs the ray extra).")
    ray_shard_size: int = Field(256, ge=1, description="Ray executor: rollouts per shard (one commit each).")
    ray_workers: int | None = Field(None, ge=1, description="Ray executor: actors (default: one per GPU, else "
                                                            "one per CPU of the cluster).")


@dataclass
class GenerateResult(SampleStats):
    job_id: str = ""

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.judged if self.judged else None


def job_scope(cfg: GenerateConfig) -> str:
    """The rollouts a job can collide with: its rollout ids hash (run, iteration, stage, query, sample)."""
    return run_scope(cfg.run, cfg.iteration, cfg.stage)


def plan_generate(store, cfg: GenerateConfig) -> Plan:
    """The rollouts still to make, in (query, sample) order, and how many were already stored."""
    queries = select_queries(store, split=cfg.split, query_ids=cfg.query_ids, limit=cfg.limit, shard=cfg.shard)
    scope = job_scope(cfg)
    done = set(store.stored_keys("rollouts", where=scope).column("rollout_id").to_pylist())
    todo, skipped = [], 0
    for q in queries:
        for k in range(cfg.sample_offset, cfg.sample_offset + cfg.n):
            rid = rollout_id(cfg.run, cfg.iteration, cfg.stage, q["query_id"], k)
            if rid in done:
                skipped += 1
            else:
                todo.append(Planned(rid, q, k, sample_seed(cfg.seed, cfg.run, cfg.iteration, cfg.stage,
                                                           q["query_id"], k)))
    ctx = RolloutContext(cfg.run, cfg.iteration, cfg.stage, cfg.temperature, cfg.max_new_tokens, cfg.prompt_variant)
    return Plan(ctx, todo, skipped, scope)


def run_generate(store, cfg: GenerateConfig, engine=None, progress=None, executor=None) -> GenerateResult:
    """Sample, judge and store. `engine` defaults to `cfg.backend` loaded on `cfg.policy` (only if there is
    work); `executor` to cfg.executor (local, or ray)."""
    from mstar_data.exec import make_executor
    from mstar_data.sampling.engines import load_engine

    t_start = time.perf_counter()
    started_at = datetime.now(timezone.utc)
    if cfg.deterministic and cfg.backend != "hf":
        raise MstarError(f"--deterministic: only the hf backend offers it (not {cfg.backend})")
    if cfg.query_ids is None:  # the loop names its queries; a person names a split, which may be mistyped
        check_split(store, cfg.split)
    plan = plan_generate(store, cfg)
    own_executor = executor is None
    executor = executor or make_executor(cfg.executor, store, batch_size=cfg.batch_size, flush_rows=cfg.flush_rows,
                                         flush_seconds=cfg.flush_seconds, shard_size=cfg.ray_shard_size,
                                         workers=cfg.ray_workers, progress=progress)
    stored_before = store.count("rollouts", plan.scope) if plan.todo else 0
    try:
        # A picklable factory: the ray executor ships it to each actor, which loads its own engine.
        stats = executor.sample(plan, engine or partial(load_engine, cfg.backend, cfg.policy,
                                                        **({"deterministic": True} if cfg.deterministic else {})),
                                task=f"generate {cfg.stage} it{cfg.iteration}")
    except KeyboardInterrupt as e:
        # The executor flushed what was finished before this reached us; the jobs row says the job stopped
        # short, and the rerun plans only what is missing.
        result = GenerateResult(requested=plan.requested, skipped=plan.skipped, job_id=uuid.uuid4().hex,
                                written=store.count("rollouts", plan.scope) - stored_before,
                                wall_s=time.perf_counter() - t_start)
        _record(store, cfg, result, started_at, status="interrupted")
        raise Interrupted(f"generate interrupted: {result.written} of {len(plan.todo)} rollouts stored, job "
                          f"{result.job_id} recorded as interrupted; rerun the same command to continue") from e
    finally:
        if own_executor and hasattr(executor, "close"):
            executor.close()  # the ray executor's actors hold engines (GPUs): free them with the job
    result = GenerateResult(**asdict(stats), job_id=uuid.uuid4().hex)
    result.wall_s = time.perf_counter() - t_start
    _record(store, cfg, result, started_at)
    return result


def _record(store, cfg: GenerateConfig, result: GenerateResult, started_at: datetime,
            status: str = "finished") -> None:
    record_job(store, job_id=result.job_id, kind="generate", cfg=cfg, started_at=started_at, run=cfg.run,
               iteration=cfg.iteration, stage=cfg.stage, shard=cfg.shard, requested=result.requested,
               skipped=result.skipped, written=result.written, n_tokens=result.n_tokens, wall_s=result.wall_s,
               work_s=result.gen_s, store_s=result.store_s, exclude={"query_ids"}, status=status)
