"""Step labels for PRM data, by one of three labellers (`mstar prm label --labeller mc|judge|task`):

- mc (below): Monte-Carlo labels (Math-Shepherd), how often the policy still reaches the right answer from a
  step. They measure the policy's value from a prefix, not whether the step is true.
- judge (prm/label_judge.py): a model served by a sampling engine is asked, step by step, whether the step is
  correct; its words are kept in `verdict`.
- task (prm/label_task.py): the task's own step checker, where it has one (the truth, standing in for a strong
  judge or human labels).
Every label row records its labeller; each labeller keeps its own labels of the same step.

Monte-Carlo labels in detail:

For a source rollout with steps s1..sn and each step j < n, the policy continues the prefix s1..sj M times;
soft_label = the fraction of continuations judged correct, hard_label = any was. The last step's label is
the response's own verdict (it is its own and only continuation: n_rollouts = 1). Labelling runs in waves, one
step of every live response per wave, and a response stops after its first step with no correct
continuation: its later steps are written with label 0 and n_rollouts = 0.

Every continuation is stored as a rollout (stage "mc", parent_rollout_id, prefix_steps = j) with an id and seed
derived from (parent, step, sample), so a rerun reuses what was stored, samples only what is missing, and
writes each label once. Sharding splits the source rollouts (every n-th by id from i).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

from mstar_data.errors import MstarError
from mstar_data.exec.jobs import record_job
from mstar_data.inputs import select_queries
from mstar_data.keys import sample_seed
from mstar_data.progress import report
from mstar_data.sampling.rollouts import Plan, Planned, RolloutContext
from mstar_data.store.predicates import equals, judged_in, run_scope


class LabelConfig(BaseModel):
    """Options of `mstar prm label`."""

    labeller: Literal["mc", "judge", "task"] = Field("mc", description="Who labels the steps.")
    policy: str | None = Field(None, description="mc: the policy that continues the step prefixes (warm-up/"
                               "bootstrap policy).")
    judge_model: str | None = Field(None, description="judge: the model asked whether each step is correct.")
    run: str = Field(description="Run whose rollouts are labelled (and that the continuations belong to).")
    iteration: int = Field(0, ge=0, description="Iteration of the source rollouts.")
    stage: str = Field("explore", description="Stage of the source rollouts.")
    split: str | None = Field(None, description="Only rollouts of queries in this split.")
    m: int = Field(8, ge=1, description="Continuations per step prefix.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature of the continuations (mc) or of the "
                               "verdicts (judge; 0 is greedy).")
    shard: tuple[int, int] = Field((0, 1), description="Shard i of n of the source rollouts.")
    limit: int | None = Field(None, ge=1, description="Only the first M source rollouts (by id).")
    seed: int = Field(0)
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(64, ge=1)
    backend: str = Field("hf", description="hf or vllm (lmdeploy cannot continue an assistant prefix).")
    flush_rows: int = Field(1024, ge=1, description="Write continuations every this many rows.")
    executor: str = Field("local", description="mc: where the continuations are sampled: local, or ray (shards "
                                               "on Ray actors, one engine each; needs the ray extra).")


@dataclass
class LabelResult:
    job_id: str
    parents: int = 0
    labels_written: int = 0
    labels_skipped: int = 0
    rollouts_written: int = 0
    rollouts_reused: int = 0
    n_tokens: int = 0
    wall_s: float = 0.0
    gen_s: float = 0.0
    store_s: float = 0.0


def mc_rollout_id(parent: str, step: int, sample: int) -> str:
    return hashlib.sha256(f"mc\x1f{parent}\x1f{step}\x1f{sample}".encode()).hexdigest()[:32]


def source_rollouts(store, cfg: LabelConfig) -> list[dict]:
    rows = store.dataset("rollouts").to_table(columns=["rollout_id", "query_id", "steps", "correct"],
                                              filter=judged_in(cfg.run, cfg.iteration, cfg.stage)).sort_by("rollout_id").to_pylist()
    if cfg.split is not None:
        keep = {q["query_id"] for q in select_queries(store, split=cfg.split)}
        rows = [r for r in rows if r["query_id"] in keep]
    rows = [r for r in rows if r["steps"]]
    if cfg.limit:
        rows = rows[:cfg.limit]
    i, n = cfg.shard
    return rows[i::n]


def _label(parent: str, step: int, n: int, k: int, run: str) -> dict:
    """A Monte-Carlo label: k of n continuations from the step reached the right answer."""
    return {"rollout_id": parent, "step_idx": step, "n_rollouts": n, "n_correct": k,
            "soft_label": k / n if n else 0.0, "hard_label": k > 0, "run_id": run, "labeller": "mc",
            "created_at": datetime.now(timezone.utc)}


def verdict_label(parent: str, step: int, good: bool | None, run: str, labeller: str, *, asked: bool = True,
                  verdict: str | None = None) -> dict:
    """A judge or task label: the step is good, not, or (None) the judge's words could not be read. `asked`:
    the judge was asked about this step (a step after a wrong one is labelled wrong without asking)."""
    return {"rollout_id": parent, "step_idx": step, "n_rollouts": int(asked), "n_correct": int(bool(good)),
            "soft_label": None if good is None else float(good), "hard_label": good, "run_id": run,
            "labeller": labeller, "verdict": verdict, "created_at": datetime.now(timezone.utc)}


def no_sources_error(cfg: LabelConfig) -> MstarError:
    return MstarError(f"run '{cfg.run}' has no judged rollouts with steps at iteration {cfg.iteration}, stage "
                      f"'{cfg.stage}'{f', split {cfg.split}' if cfg.split else ''}"
                      f"{f', shard {cfg.shard[0]}/{cfg.shard[1]}' if cfg.shard != (0, 1) else ''}: "
                      f"sample some with `mstar generate` first")


def start_job(store, cfg: LabelConfig) -> tuple[float, datetime, LabelResult, list[dict]]:
    """What every labeller starts with: the clock, the job's result and its source rollouts (none: an error)."""
    t_start, started_at = time.perf_counter(), datetime.now(timezone.utc)
    result = LabelResult(uuid.uuid4().hex)
    parents = source_rollouts(store, cfg)
    result.parents = len(parents)
    if not parents:
        raise no_sources_error(cfg)
    return t_start, started_at, result, parents


def labelled_steps(store, cfg: LabelConfig, parents: dict) -> list[dict]:
    """The stored labels of this labeller for these source rollouts."""
    return [r for r in store.stored_keys("step_labels", where=equals("run_id", cfg.run)).to_pylist()
            if r["rollout_id"] in parents and (r["labeller"] or "mc") == cfg.labeller]


def run_label(store, cfg: LabelConfig, engine=None, progress=None, executor=None) -> LabelResult:
    from functools import partial

    from mstar_data.exec import make_executor
    from mstar_data.sampling.engines import load_engine

    if cfg.executor != "local" and cfg.labeller != "mc":
        raise MstarError(f"--executor {cfg.executor}: only the mc labeller samples through an executor; "
                         f"the {cfg.labeller} labeller runs locally")
    if cfg.labeller == "task":
        from mstar_data.prm.label_task import run_task_label
        return run_task_label(store, cfg, progress=progress)
    if cfg.labeller == "judge":
        from mstar_data.prm.label_judge import run_judge_label
        return run_judge_label(store, cfg, engine=engine, progress=progress)
    if not cfg.policy:
        raise MstarError("--policy: the mc labeller continues step prefixes with a policy; give its folder")
    if cfg.backend == "lmdeploy":
        raise MstarError("--backend lmdeploy cannot continue an assistant prefix; use hf or vllm")
    t_start, started_at, result, parents = start_job(store, cfg)
    by_id = {p["rollout_id"]: p for p in parents}
    labelled = labelled_steps(store, cfg, by_id)
    done_steps: dict[str, int] = {}
    for r in labelled:
        done_steps[r["rollout_id"]] = max(done_steps.get(r["rollout_id"], 0), r["step_idx"] + 1)
    result.labels_skipped = len(labelled)
    mc_scope = run_scope(cfg.run, cfg.iteration, "mc")
    stored_mc = {r["rollout_id"]: r["correct"]
                 for r in store.stored_keys("rollouts", ("correct",), where=mc_scope).to_pylist()}
    queries = {q["query_id"]: q for q in select_queries(store, query_ids=sorted({p["query_id"] for p in parents}))}
    ctx = RolloutContext(cfg.run, cfg.iteration, "mc", cfg.temperature, cfg.max_new_tokens)
    own_executor = executor is None
    executor = executor or make_executor(cfg.executor, store, batch_size=cfg.batch_size, flush_rows=cfg.flush_rows)
    if engine is None:  # ray: each actor loads its own from the (picklable) factory, once for every wave
        factory = partial(load_engine, cfg.backend, cfg.policy)
        engine = factory if getattr(executor, "name", "") == "ray" else _lazy(factory)
    try:
        # A response is live at step j until it has a step with no correct continuation (or runs out of steps).
        live = {p["rollout_id"]: done_steps.get(p["rollout_id"], 0) for p in parents
                if done_steps.get(p["rollout_id"], 0) < len(p["steps"])}
        total = sum(len(by_id[p]["steps"]) - j for p, j in live.items())
        labels_done = 0
        while live:
            # One wave: the next step of every live response.
            wave = sorted(live.items())
            todo: list[Planned] = []
            outcome: dict[tuple[str, int], list[bool]] = {}
            for parent, j in wave:
                if j == len(by_id[parent]["steps"]) - 1:
                    continue
                prefix = "".join(f"{step}\n\n" for step in by_id[parent]["steps"][:j + 1])  # the M-STAR step format
                for m in range(cfg.m):
                    rid = mc_rollout_id(parent, j, m)
                    if rid in stored_mc:
                        outcome.setdefault((parent, j), []).append(bool(stored_mc[rid]))
                        result.rollouts_reused += 1
                    else:
                        seed = sample_seed(cfg.seed, cfg.run, cfg.iteration, "mc", f"{parent}/{j}", m)
                        todo.append(Planned(rid, queries[by_id[parent]["query_id"]], m, seed, prefix=prefix,
                                            parent_rollout_id=parent, prefix_steps=j + 1))
            by_rid = {p.rollout_id: p for p in todo}

            def count(rows: list[dict]) -> None:
                for r in rows:
                    p = by_rid[r["rollout_id"]]
                    outcome.setdefault((p.parent_rollout_id, p.prefix_steps - 1), []).append(bool(r["correct"]))

            stats = executor.sample(Plan(ctx, todo, 0, mc_scope), engine, task="prm label continuations",
                                    on_rows=count)
            result.rollouts_written += stats.written
            result.n_tokens += stats.n_tokens
            result.gen_s += stats.gen_s
            result.store_s += stats.store_s
            labels = []
            for parent, j in wave:
                p = by_id[parent]
                n_steps = len(p["steps"])
                if j == n_steps - 1:
                    labels.append(_label(parent, j, 1, int(bool(p["correct"])), cfg.run))
                    del live[parent]
                    continue
                ok = outcome[(parent, j)]
                labels.append(_label(parent, j, len(ok), sum(ok), cfg.run))
                if not any(ok):  # no correct continuation: the later steps are wrong too, without rollouts
                    labels += [_label(parent, s, 0, 0, cfg.run) for s in range(j + 1, n_steps)]
                    del live[parent]
                else:
                    live[parent] = j + 1
            # After the continuations they count (the executor has flushed them): a label never exists without
            # its rollouts.
            t0 = time.perf_counter()
            result.labels_written += store.append("step_labels", labels)
            result.store_s += time.perf_counter() - t0
            labels_done += len(labels)
            report(progress, "prm label", labels_done, total,
                   f"{result.n_tokens / max(time.perf_counter() - t_start, 1e-9):.0f} tok/s")
        return _finish(store, cfg, result, started_at, t_start)
    finally:
        if own_executor and hasattr(executor, "close"):
            executor.close()  # the ray executor's actors hold engines: free them with the job


class _lazy:
    """An engine loaded on first use and kept for the later waves."""

    def __init__(self, load):
        self._load, self._engine = load, None

    def __call__(self):
        if self._engine is None:
            self._engine = self._load()
        return self._engine


def _finish(store, cfg: LabelConfig, result: LabelResult, started_at, t_start: float) -> LabelResult:
    result.wall_s = time.perf_counter() - t_start
    record_job(store, job_id=result.job_id, kind="prm-label", cfg=cfg, started_at=started_at, run=cfg.run,
               iteration=cfg.iteration, stage="mc" if cfg.labeller == "mc" else cfg.stage, shard=cfg.shard, requested=result.parents,
               skipped=result.labels_skipped, written=result.labels_written + result.rollouts_written,
               rows=result.rollouts_written, n_tokens=result.n_tokens, wall_s=result.wall_s, work_s=result.gen_s,
               store_s=result.store_s)
    return result
