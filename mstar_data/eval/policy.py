"""`mstar eval`: one policy, sampled once, judged by every test-time selection method on the same samples.

    queries      a split of the store, or a benchmark file (ingested first, in any format `mstar ingest` reads)
    sample       greedy (sample 0, T = 0) and N samples (1..N at T)            -> rollouts, stage eval
    self-select  for each K: the first K samples as numbered candidates, shuffled by the seed, and the policy
                 asked for the correct final answer (a second generation call)  -> rollouts, stage eval-select
    PRM          step scores of the samples, with --prm                        -> rollouts.prm_score
    select       sql/eval_selection.sql: per query, method and K, the picked answer and its verdict
    record       accuracy per method (and per question_type / answer_type / metadata field) -> evals

Every step is keyed (rollout ids hash run, iteration, stage, query and sample; evals rows hash what was
evaluated), so a rerun after Ctrl-C samples only what is missing, and a finished evaluation writes nothing new.
The samples of one (run, iteration) belong to one policy at one temperature and seed: asking the same run for
another is refused (give another --run), never mixed.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field

from mstar_data.errors import Interrupted, MstarError
from mstar_data.eval.selection import METHODS, NEEDS_PRM, accuracy_rows, query_groups, selection_rows
from mstar_data.keys import rollout_id, sample_seed
from mstar_data.store.predicates import equals, queries_where, run_scope

STAGE = "eval"
SELECT_STAGE = "eval-select"
DEFAULT_RUN = "eval"
BENCHMARK_FORMATS = ("auto", "mathvista", "mathv360k", "jsonl", "parquet")


class EvalConfig(BaseModel):
    """Options of `mstar eval` (CLI flags share these names)."""

    policy: str | None = Field(None, description="Policy model folder (default: the latest policy of the latest run).")
    run: str | None = Field(None, description="Run the samples are stored under (with --policy; default 'eval'), "
                            "or the run whose latest policy is evaluated (without --policy; default the latest).")
    split: str | None = Field("test", description="Queries of this split (ignored with --benchmark).")
    benchmark: str | None = Field(None, description="A test-set file, ingested first (split test).")
    benchmark_format: Literal["auto", "mathvista", "mathv360k", "jsonl", "parquet"] = Field(
        "auto", description="Format of --benchmark (auto: mathvista for pid-keyed records, mathv360k for "
        "conversations, else jsonl/parquet by suffix with --preset).")
    preset: str = Field("default", description="Field mapping for a jsonl/parquet benchmark (docs/ingest.md).")
    images: str | None = Field(None, description="Image root of --benchmark (default: its folder).")
    dataset: str | None = Field(None, description="Dataset name of --benchmark (default: the file's stem).")
    select: list[str] = Field(list(METHODS), description="Selection methods, comma-separated.")
    n: int = Field(8, ge=1, description="Samples per query (N).")
    select_k: tuple[int, int] = Field((3, 3), description="Self-select candidates K, or a range LO..HI (a curve).")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature of the N samples.")
    prm: str | None = Field(None, description="PRM folder for weighted-vote and prm-best-of-n.")
    aggregate: Literal["min", "mean", "last"] = Field("min", description="PRM response score from step scores.")
    seed: int = Field(0, description="Base seed of the samples and of the candidates' shuffle.")
    limit: int | None = Field(None, ge=1, description="Only the first M queries (by id).")
    max_new_tokens: int = Field(512, ge=1, description="Generation length cap (samples and self-select picks).")
    batch_size: int = Field(32, ge=1, description="Requests per backend call.")
    backend: str = Field("hf", description="hf, lmdeploy or vllm.")
    prompt_variant: str = Field("cot", description="cot or benchmark (the dataset's own instruction).")
    plot: str | None = Field(None, description="PNG of the self-select scaling curve (with a --select-k range).")
    executor: str = Field("local", description="Where the samples are made: local, or ray (shards on Ray actors, "
                                               "one engine each; needs the ray extra).")


def parse_methods(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise MstarError(f"--select '{bad[0] if bad else text}': expected a comma-separated list of "
                         f"{', '.join(METHODS)}")
    return list(dict.fromkeys(names))


def parse_k(text: str) -> tuple[int, int]:
    """'3' -> (3, 3); '2..6' -> (2, 6)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?", text)
    lo, hi = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, 0)
    if not m or lo < 2 or hi < lo:
        raise MstarError(f"--select-k '{text}': expected K >= 2 or a range LO..HI (e.g. 2..6)")
    return lo, hi


# -- what is evaluated -------------------------------------------------------------------------------------
def latest_policy(store, run: str | None) -> tuple[str, str, int]:
    """(policy, run, iteration): the last iteration's policy_out of `run`, or of the run recorded last."""
    rows = store.dataset("iterations").to_table(
        columns=["run_id", "iteration", "policy_out", "created_at"],
        filter=None if run is None else equals("run_id", run)).to_pylist()
    rows = [r for r in rows if r["policy_out"]]
    if not rows:
        raise MstarError(f"run '{run}' has no iterations in {store.uri}: give --policy PATH" if run else
                         f"no --policy given and {store.uri} has no iterations (no run to take the latest "
                         f"policy from): give --policy PATH")
    latest_run = max(rows, key=lambda r: r["created_at"])["run_id"] if run is None else run
    last = max((r for r in rows if r["run_id"] == latest_run), key=lambda r: r["iteration"])
    return last["policy_out"], latest_run, last["iteration"]


def benchmark_items(cfg: EvalConfig):
    """The benchmark file's records through the ingest readers, and the format that read them."""
    from mstar_data.ingest.mathv360k import mathv360k_items
    from mstar_data.ingest.mathvista import mathvista_items
    from mstar_data.ingest.sources import read_records
    from mstar_data.ingest.tabular import resolve_mapping, tabular_items

    path = Path(cfg.benchmark)
    fmt = cfg.benchmark_format
    if fmt == "auto":
        first = next(read_records(path, id_field="pid"), None)
        if first is None:
            raise MstarError(f"--benchmark {path}: holds no records")
        label, rec = first
        if "conversations" in rec:
            fmt = "mathv360k"
        elif "pid" in rec or ("question_type" in rec and "answer_type" in rec and "query" in rec):
            fmt = "mathvista"
        else:
            fmt = "parquet" if path.suffix.lower() == ".parquet" else "jsonl"
    if fmt == "mathvista":
        return mathvista_items(path), fmt
    if fmt == "mathv360k":
        return mathv360k_items(path), fmt
    return tabular_items(path, resolve_mapping(cfg.preset, []), preset=cfg.preset), fmt


def eval_queries(store, cfg: EvalConfig) -> tuple[str, list[dict]]:
    """(source, labelled queries sorted by id): a split, or the benchmark file ingested into split test."""
    from mstar_data.inputs import check_split, select_queries

    if cfg.benchmark:
        from mstar_data.ingest.writer import ingest_items

        path = Path(cfg.benchmark)
        items, fmt = benchmark_items(cfg)
        name = cfg.dataset or re.sub(r"[^A-Za-z0-9._-]", "_", path.stem)
        ingest_items(store, items, source=str(path), dataset=name, split="test",
                     image_root=Path(cfg.images) if cfg.images else path.parent)
        ids = {f"{name}/{it.fields.id}" for it in items}
        queries = [q for q in select_queries(store, split="test", where=queries_where(dataset=name))
                   if q["query_id"] in ids]
        source = f"{path} ({fmt})"
    else:
        check_split(store, cfg.split)
        queries = select_queries(store, split=cfg.split)
        source = f"split:{cfg.split}"
    labelled = [q for q in queries if q["answer"] is not None]
    if not labelled:
        raise MstarError(f"{source}: no labelled queries to evaluate (every answer is null)")
    return source, labelled[:cfg.limit] if cfg.limit else labelled


def check_samples_match(store, run: str, iteration: int, policy: str, cfg: EvalConfig) -> None:
    """Samples already stored under (run, iteration) must be this policy's, at this temperature and seed."""
    stored = store.dataset("rollouts").to_table(
        columns=["query_id", "stage", "sample_idx", "policy", "temperature", "seed"],
        filter=run_scope(run, iteration)).to_pylist()
    for r in stored:
        if r["stage"] not in (STAGE, SELECT_STAGE):
            continue
        what = f"run '{run}' iteration {iteration} holds {r['stage']} samples"
        if r["policy"] != policy:
            raise MstarError(f"--policy {policy}: {what} of policy {r['policy']} (record {r['query_id']}); "
                             f"give another --run")
        if r["stage"] == STAGE and r["sample_idx"] > 0 and abs(r["temperature"] - cfg.temperature) > 1e-6:
            raise MstarError(f"--temperature {cfg.temperature}: {what} at T={r['temperature']:.3g} "
                             f"(record {r['query_id']}); use that temperature or another --run")
        if r["seed"] != sample_seed(cfg.seed, run, iteration, r["stage"], r["query_id"], r["sample_idx"]):
            raise MstarError(f"--seed {cfg.seed}: {what} drawn with another seed (record {r['query_id']}); "
                             f"use that seed or another --run")


# -- the parts (tests pass scripted ones) --------------------------------------------------------------------
def _load_engine(backend: str, policy: str):
    from mstar_data.sampling.engines import load_engine

    return load_engine(backend, policy)


def _score(store, cfg, progress):
    from mstar_data.prm.score import run_score

    return run_score(store, cfg, progress=progress)


def _prm_tag(path: str) -> str:
    from mstar_data.prm.model import prm_tag

    return prm_tag(path)


@dataclass
class EvalParts:
    load_engine: Callable = _load_engine   # (backend, policy) -> Engine
    score: Callable = _score               # (store, ScoreConfig, progress) -> ScoreResult
    prm_tag: Callable = _prm_tag           # (path) -> 'folder@training id' (refuses a folder that is no PRM)


@dataclass
class EvalResult:
    eval_id: str
    run: str
    iteration: int
    policy: str
    source: str
    n_queries: int
    rows: list[dict] = field(default_factory=list)   # the evals rows (written, or found from an earlier run)
    written: int = 0
    sampled: int = 0                                 # rollouts generated by this call (0: all were stored)
    plot: str | None = None
    seconds: float = 0.0

    def summary(self) -> list[dict]:
        return [r for r in self.rows if r["group_by"] == "all" and r.get("_main")]

    def curve(self) -> list[tuple[int, float | None, float | None]]:
        """(K, self-select accuracy, majority accuracy over the same K samples)."""
        acc = {(r["method"], r["k"]): r["accuracy"] for r in self.rows if r["group_by"] == "all"}
        ks = sorted(k for m, k in acc if m == "self-select")
        return [(k, acc.get(("self-select", k)), acc.get(("majority", k))) for k in ks]

    def breakdown(self) -> list[dict]:
        return [r for r in self.rows if r["group_by"] != "all"]


# -- the evaluation ------------------------------------------------------------------------------------------
def run_policy_eval(store, cfg: EvalConfig, *, parts: EvalParts | None = None, progress=None) -> EvalResult:
    from mstar_data.loop.dynamics_plot import check_plot_path
    from mstar_data.sampling.generate import GenerateConfig, run_generate

    t0 = time.perf_counter()
    parts = parts or EvalParts()
    methods = list(dict.fromkeys(cfg.select))
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise MstarError(f"--select '{bad[0]}': expected one of {', '.join(METHODS)}")
    lo, hi = cfg.select_k
    if "self-select" in methods and hi > cfg.n:
        raise MstarError(f"--select-k {hi}: self-select draws its candidates from the N samples; give --n >= {hi}")
    if cfg.policy:
        if not Path(cfg.policy).is_dir() and cfg.backend == "hf":
            raise MstarError(f"--policy {cfg.policy}: not a folder")
        policy, run, iteration = cfg.policy, cfg.run or DEFAULT_RUN, 0
    else:
        policy, run, iteration = latest_policy(store, cfg.run)
        if not Path(policy).is_absolute() and not Path(policy).is_dir():
            from mstar_data.store import is_remote

            beside = Path(store.uri) / policy  # relative paths in a recipe resolve against the artifacts root
            policy = str(beside) if not is_remote(store.uri) and beside.is_dir() else policy
        if cfg.backend == "hf" and not Path(policy).is_dir():
            raise MstarError(f"run '{run}' iteration {iteration}: its policy_out '{policy}' is not a folder from "
                             f"here ({Path.cwd()}); give --policy PATH")
    prm = parts.prm_tag(cfg.prm) if cfg.prm and any(m in methods for m in NEEDS_PRM) else None
    curve = "self-select" in methods and hi > lo
    plot = check_plot_path(Path(cfg.plot or "self-select-scaling.png")) if curve else None
    source, queries = eval_queries(store, cfg)
    ids = [q["query_id"] for q in queries]
    check_samples_match(store, run, iteration, str(policy), cfg)
    if "evals" not in store.table_names():
        store.init()  # a store made before `evals` existed gains it (and, as on any create, new columns)

    engine = {}

    def get_engine():
        if "e" not in engine:
            engine["e"] = parts.load_engine(cfg.backend, policy)
        return engine["e"]

    executor, sampler = None, get_engine
    if cfg.executor != "local":  # one set of actors (each loads its own engine) for all three samplings
        from functools import partial

        from mstar_data.exec import make_executor

        executor = make_executor(cfg.executor, store, batch_size=cfg.batch_size, progress=progress)
        sampler = partial(parts.load_engine, cfg.backend, policy)
    result = EvalResult("", run, iteration, str(policy), source, len(ids))
    gen = GenerateConfig(policy=str(policy), split=None, query_ids=ids, n=1, temperature=0.0, run=run,
                         iteration=iteration, stage=STAGE, backend=cfg.backend, seed=cfg.seed,
                         max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                         prompt_variant=cfg.prompt_variant, executor=cfg.executor)
    try:
        if "greedy" in methods:
            result.sampled += run_generate(store, gen, engine=sampler, progress=progress, executor=executor).written
        if set(methods) - {"greedy"}:
            result.sampled += run_generate(store, gen.model_copy(update={"n": cfg.n, "temperature": cfg.temperature,
                                                                         "sample_offset": 1}),
                                           engine=sampler, progress=progress, executor=executor).written
        if "self-select" in methods:
            result.sampled += self_select(store, cfg, run=run, iteration=iteration, queries=queries,
                                          engine=sampler, progress=progress, executor=executor)
    finally:
        if "e" in engine:
            engine.pop("e").release()
        if executor is not None:
            executor.close()
    if prm:
        from mstar_data.prm.score import ScoreConfig

        parts.score(store, ScoreConfig(prm=cfg.prm, run=run, iteration=iteration, stage=STAGE,
                                       aggregate=cfg.aggregate, sampled_only=True, batch_size=cfg.batch_size),
                    progress)
    picks = selection_rows(store, run=run, iteration=iteration, n=cfg.n, prm=prm, ids=set(ids))
    result.eval_id = eval_id(run, iteration, str(policy), source, ids, cfg, prm)
    rows = accuracy_rows(picks, queries=query_groups(store, ids), methods=methods, n=cfg.n,
                         select_k=cfg.select_k, prm=prm)
    now = datetime.now(timezone.utc)
    for r in rows:
        r.update(eval_id=result.eval_id, run_id=run, iteration=iteration, policy=str(policy), source=source,
                 n_samples=cfg.n, temperature=cfg.temperature, seed=cfg.seed, prm=prm, created_at=now)
    result.written = store.append("evals", [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    result.rows = rows
    if curve:
        from mstar_data.eval.plot import plot_self_select

        result.plot = str(plot_self_select(result.curve(), plot, f"self-select vs majority vote: {Path(str(policy)).name}"
                                           f" ({source}, N={cfg.n})"))
    result.seconds = time.perf_counter() - t0
    return result


def self_select(store, cfg: EvalConfig, *, run: str, iteration: int, queries: list[dict], engine,
                progress=None, executor=None) -> int:
    """For each K and query: the policy's pick among its first K samples. Returns the rollouts written.
    `executor` defaults to a local one."""
    from mstar_data.exec.jobs import record_job
    from mstar_data.exec.local import LocalExecutor
    from mstar_data.sampling.rollouts import Plan, Planned, RolloutContext, query_prompt
    from mstar_data.select.self_select import PROMPT_VARIANT, select_example

    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    scope = run_scope(run, iteration, SELECT_STAGE)
    done = set(store.stored_keys("rollouts", where=scope).column("rollout_id").to_pylist())
    samples = store.dataset("rollouts").to_table(
        columns=["query_id", "sample_idx", "temperature", "response"],
        filter=run_scope(run, iteration, STAGE)).to_pylist()
    by_query: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for s in samples:
        if s["temperature"] > 0 and 1 <= s["sample_idx"] <= cfg.n:
            by_query[s["query_id"]].append((s["sample_idx"], s["response"]))
    lo, hi = cfg.select_k
    todo, skipped = [], 0
    for k in range(lo, hi + 1):
        for q in queries:
            qid = q["query_id"]
            rid = rollout_id(run, iteration, SELECT_STAGE, qid, k)
            if rid in done:
                skipped += 1
                continue
            cands = [text for _, text in sorted(by_query.get(qid, []))[:k]]
            if len(cands) < k:
                raise MstarError(f"query {qid}: has {len(cands)} eval samples, self-select K={k} needs {k}")
            ex = select_example(query_prompt(q, cfg.prompt_variant), cands, seed=cfg.seed, key=f"{qid}\x1f{k}")
            todo.append(Planned(rid, q, k, sample_seed(cfg.seed, run, iteration, SELECT_STAGE, qid, k),
                                prompt=ex.prompt))
    ctx = RolloutContext(run, iteration, SELECT_STAGE, 0.0, cfg.max_new_tokens, PROMPT_VARIANT)
    plan = Plan(ctx, todo, skipped, scope)
    executor = executor or LocalExecutor(store, batch_size=cfg.batch_size, progress=progress)
    job_id, status = uuid.uuid4().hex, "finished"
    before = store.count("rollouts", scope) if todo else 0
    try:
        stats = executor.sample(plan, engine, task=f"self-select K={lo}..{hi}" if hi > lo else f"self-select K={lo}")
        written = stats.written
    except KeyboardInterrupt as e:
        status, written = "interrupted", store.count("rollouts", scope) - before
        raise Interrupted(f"eval interrupted: {written} of {len(todo)} self-select picks stored; rerun the same "
                          f"command to continue") from e
    finally:
        if todo:
            record_job(store, job_id=job_id, kind="self-select", cfg=cfg, started_at=started_at, run=run,
                       iteration=iteration, stage=SELECT_STAGE, requested=plan.requested, skipped=skipped,
                       written=store.count("rollouts", scope) - before, wall_s=time.perf_counter() - t0,
                       status=status)
    return written


def eval_id(run: str, iteration: int, policy: str, source: str, ids: list[str], cfg: EvalConfig,
            prm: str | None) -> str:
    what = {"run": run, "iteration": iteration, "policy": policy, "source": source,
            "queries": hashlib.sha256("\x1f".join(sorted(ids)).encode()).hexdigest(), "n": cfg.n,
            "temperature": cfg.temperature, "seed": cfg.seed, "prm": prm, "aggregate": cfg.aggregate if prm else None,
            "max_new_tokens": cfg.max_new_tokens, "prompt_variant": cfg.prompt_variant}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
