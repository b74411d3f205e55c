"""The sampler worker: N responses per query, judged, split into steps, written as rollouts.

Resumable by construction: rollout ids are deterministic, ids already stored are skipped before any model
work, and rows are flushed every `flush_rows` rollouts or `flush_seconds`, whichever comes first. A worker
killed with SIGKILL loses at most the unflushed buffer, and its rerun writes exactly what is missing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import BaseModel, Field

from mstar_data.answers import judge, mstar_format_ok, r1_format_ok
from mstar_data.inputs import images_by_sha, select_queries
from mstar_data.jobs import record_job
from mstar_data.keys import rollout_id, sample_seed
from mstar_data.prompts import build_prompt
from mstar_data.sql_views import sql_literal
from mstar_data.steps import has_reflection, split_steps
from mstar_data.workers.backend import Completion, Sampler, SampleRequest

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


@dataclass
class GenerateResult:
    job_id: str
    requested: int = 0
    skipped: int = 0
    written: int = 0
    correct: int = 0
    judged: int = 0
    n_tokens: int = 0
    wall_s: float = 0.0
    gen_s: float = 0.0
    store_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.judged if self.judged else None


def job_scope(cfg: GenerateConfig) -> str:
    """The rollouts a job can collide with: its rollout ids hash (run, iteration, stage, query, sample)."""
    return (f"run_id = {sql_literal(cfg.run)} AND iteration = {int(cfg.iteration)} "
            f"AND stage = {sql_literal(cfg.stage)}")


def plan_requests(store, cfg: GenerateConfig) -> tuple[list[tuple[dict, int, str]], int]:
    """(query, sample_idx, rollout_id) still to do, and how many were already stored."""
    queries = select_queries(store, split=cfg.split, query_ids=cfg.query_ids, limit=cfg.limit, shard=cfg.shard)
    done = set(store.stored_keys("rollouts", where=job_scope(cfg)).column("rollout_id").to_pylist())
    todo, skipped = [], 0
    for q in queries:
        for k in range(cfg.sample_offset, cfg.sample_offset + cfg.n):
            rid = rollout_id(cfg.run, cfg.iteration, cfg.stage, q["query_id"], k)
            if rid in done:
                skipped += 1
            else:
                todo.append((q, k, rid))
    return todo, skipped


def rollout_row(cfg: GenerateConfig, q: dict, k: int, rid: str, seed: int, c: Completion, policy_tag: str) -> dict:
    j = judge(c.text, q["answer"], answer_type=q["answer_type"], choices=q["choices"], precision=q["precision"],
              unit=q["unit"])
    fmt = r1_format_ok(c.text) if cfg.prompt_variant == "r1" else mstar_format_ok(c.text)
    return {
        "rollout_id": rid, "run_id": cfg.run, "iteration": cfg.iteration, "stage": cfg.stage,
        "query_id": q["query_id"], "sample_idx": k, "temperature": cfg.temperature, "seed": seed,
        "policy": policy_tag, "prompt_variant": cfg.prompt_variant, "response": c.text,
        "steps": split_steps(c.text), "n_tokens": c.n_tokens, "finish_reason": c.finish_reason,
        "pred_answer": j.pred_answer, "correct": j.correct, "format_ok": fmt, "reflection": has_reflection(c.text),
        "created_at": datetime.now(timezone.utc),
    }


def run_generate(store, cfg: GenerateConfig, sampler: Sampler | None = None, progress=None) -> GenerateResult:
    """Sample, judge and store. `sampler` defaults to `cfg.backend` loaded on `cfg.policy`."""
    from mstar_data.workers.backend import load_sampler

    t_start = time.perf_counter()
    started_at = datetime.now(timezone.utc)
    result = GenerateResult(job_id=uuid.uuid4().hex)
    todo, result.skipped = plan_requests(store, cfg)
    result.requested = len(todo) + result.skipped
    if todo:
        sampler = sampler or load_sampler(cfg.backend, cfg.policy)
        policy_tag = getattr(sampler, "policy_tag", cfg.policy)
        images = images_by_sha(store, {q["image_sha256"] for q, _, _ in todo})
        buffer: list[dict] = []
        last_flush = time.perf_counter()

        def flush() -> None:
            nonlocal buffer, last_flush
            t0 = time.perf_counter()
            if buffer:
                result.written += store.append("rollouts", buffer, where=job_scope(cfg))
            result.store_s += time.perf_counter() - t0
            buffer, last_flush = [], time.perf_counter()

        task = progress.add_task(f"generate {cfg.stage} it{cfg.iteration}", total=len(todo), rate="") if progress else None
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start:start + cfg.batch_size]
            requests = []
            for q, k, rid in batch:
                seed = sample_seed(cfg.seed, cfg.run, cfg.iteration, cfg.stage, q["query_id"], k)
                prompt = build_prompt(q["question"], q["choices"], variant=cfg.prompt_variant, answer=q["answer"])
                requests.append(SampleRequest(rid, prompt, images.get(q["image_sha256"]), cfg.temperature, seed,
                                              cfg.max_new_tokens))
            t0 = time.perf_counter()
            completions = sampler.generate(requests)
            result.gen_s += time.perf_counter() - t0
            for (q, k, rid), req, c in zip(batch, requests, completions):
                row = rollout_row(cfg, q, k, rid, req.seed, c, policy_tag)
                result.n_tokens += c.n_tokens
                if row["correct"] is not None:
                    result.judged += 1
                    result.correct += bool(row["correct"])
                buffer.append(row)
            if len(buffer) >= cfg.flush_rows or time.perf_counter() - last_flush >= cfg.flush_seconds:
                flush()
            if progress:
                el = max(time.perf_counter() - t_start, 1e-9)
                done = start + len(batch)
                progress.update(task, completed=done,
                                rate=f"{done / el:.1f} rollouts/s, {result.n_tokens / el:.0f} tok/s")
        flush()
    result.wall_s = time.perf_counter() - t_start
    record_job(store, job_id=result.job_id, kind="generate", cfg=cfg, started_at=started_at, run=cfg.run,
               iteration=cfg.iteration, stage=cfg.stage, shard=cfg.shard, requested=result.requested,
               skipped=result.skipped, written=result.written, n_tokens=result.n_tokens, wall_s=result.wall_s,
               work_s=result.gen_s, store_s=result.store_s, exclude={"query_ids"})
    return result
