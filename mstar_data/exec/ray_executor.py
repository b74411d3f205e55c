"""The Ray executor: the same plan as the local executor, cut into deterministic shards run by Ray actors,
with one committer (this driver) and a shard-commit ledger.

How a job runs:
- `make_shards` sorts the plan's rollouts by rollout_id and cuts them every `shard_size`; a shard's id hashes
  (plan scope, shard index, its rollout ids), so the same plan always gives the same shard ids.
- Shards already in the ledger (`shard_ledger`, exec/ledger.py) are dropped before any actor starts. (Across
  reruns of a CLI job the plan itself already leaves out every stored rollout_id: the rows are the truth, the
  ledger is the record of which shard results were taken.)
- Each actor loads its own engine from a picklable factory (functools.partial(load_engine, backend,
  policy)), makes its shard's rollouts with the same `request`/`row` functions as the local executor, writes
  them as Lance fragments to the rollouts dataset (`lance.fragment.write_fragments`, uncommitted) and returns
  the FragmentMetadata. An actor that dies is restarted by Ray and its shard retried (`max_retries`).
- The driver alone commits: for each returned shard, if its id is in the ledger it is dropped; otherwise one
  `LanceOperation.Append` commit of the shard's fragments, then the ledger row. Only the driver compacts.

Crash windows, and why each is safe:
- An actor dies before or after writing its fragments: they were never committed, so no reader sees them
  (orphan files: Lance's cleanup_old_versions deletes them after 7 days); Ray reruns the shard on a restarted
  actor.
- The driver dies between `write_fragments` and the commit: the same; the rerun plans those rollouts again.
- The driver dies between the commit and the ledger row: the rows are stored, so a rerun's plan skips them.
  A driver that still holds that shard (the same plan, a duplicated result) first looks up the shard's
  rollout_ids in the table: all present -> no commit, the ledger row is written with outcome `found`; some
  present (another writer raced it) -> the shard is redone with only the missing rollouts. This check is what
  makes the order "commit, then ledger" safe; the ledger row is written only after the commit.
- Two drivers running the same job at once can both pass that check and commit (Lance appends do not
  conflict): hold the run's lease (`mstar evolve` does) or run one driver per scope.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from mstar_data.errors import MstarError
from mstar_data.exec.ledger import committed_shards, record_shard
from mstar_data.exec.local import SampleStats
from mstar_data.progress import ProgressFn, report
from mstar_data.sampling.rollouts import Plan, Planned, RolloutContext, request, row
from mstar_data.store.predicates import all_of, ids_in

RAY_MISSING = "--executor ray needs Ray: pip install 'mstar[ray]'"
LIVE_ENGINE = ("--executor ray: each Ray actor loads its own engine, so it needs a backend and a policy path "
               "(a picklable factory such as functools.partial(load_engine, backend, policy)), not a loaded engine")
DEFAULT_SHARD_SIZE = 256
# Test hook: "SHARD_INDEX:AFTER_ROLLOUTS:MARKER_FILE" makes the actor running that shard exit (os._exit) once
# it has made AFTER_ROLLOUTS rollouts of it (>= the shard's size: after writing its fragments), on the first
# try only (the marker file records that it happened).
FAULT_ENV = "MSTAR_RAY_FAULT"
TABLE = "rollouts"


@dataclass
class Shard:
    index: int
    shard_id: str
    todo: list[Planned]

    @property
    def rollout_ids(self) -> list[str]:
        return [p.rollout_id for p in self.todo]


@dataclass
class ShardResult:
    index: int
    shard_id: str
    rollout_ids: list[str]
    fragments: list = field(default_factory=list)   # lance FragmentMetadata, written and not committed
    stats: SampleStats = field(default_factory=SampleStats)
    rows: Optional[list[dict]] = None              # only when the caller wants on_rows


def shard_id(scope: str, index: int, rollout_ids: list[str]) -> str:
    h = hashlib.sha256("\x1f".join([scope, str(index), *rollout_ids]).encode())
    return h.hexdigest()[:32]


def make_shards(plan: Plan, shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """The plan's rollouts sorted by rollout_id, cut every `shard_size`."""
    if shard_size < 1:
        raise MstarError(f"--ray-shard-size {shard_size}: expected at least 1")
    todo = sorted(plan.todo, key=lambda p: p.rollout_id)
    shards = []
    for i, start in enumerate(range(0, len(todo), shard_size)):
        part = todo[start:start + shard_size]
        shards.append(Shard(i, shard_id(plan.scope, i, [p.rollout_id for p in part]), part))
    return shards


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise MstarError(RAY_MISSING) from e
    return ray


def engine_factory(engine) -> Callable:
    """A zero-argument engine factory each actor can call; a live engine is refused (it cannot be shipped)."""
    if engine is None or hasattr(engine, "generate") or not callable(engine):
        raise MstarError(LIVE_ENGINE)
    return engine


def _ids_filter(scope: str, ids: list[str]) -> str:
    return all_of(scope, ids_in("rollout_id", ids))


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(e).__name__


def _parse_fault(text: str | None) -> tuple[int, int, str] | None:
    if not text:
        return None
    idx, after, marker = text.split(":", 2)
    return int(idx), int(after), marker


@dataclass
class Target:
    """What a shard reads and where its fragments go: dataset URIs, the table's schema, the storage options."""

    images_uri: str                                # the images dataset (read for the shard's queries)
    table_uri: str
    schema: object                                 # pa.Schema of the stored table
    storage_options: Optional[dict] = None         # the driver's (an actor's own AWS_* may differ or be unset)
    batch_size: int = 32
    fault: Optional[str] = None                    # FAULT_ENV, read by the driver


class _ImagesReader:
    """What inputs.images_by_sha reads (`.dataset("images")`), opened with the driver's storage options."""

    def __init__(self, target: Target):
        self.target = target

    def dataset(self, name: str):
        import lance

        if name != "images":
            raise ValueError(f"an actor reads only the images table, not {name}")
        return lance.dataset(self.target.images_uri, storage_options=self.target.storage_options or None)


class ShardWorker:
    """One engine replica; made a Ray actor by RayExecutor (kept a plain class so it imports without Ray).
    It serves any store: where a shard reads and writes travels with it (Target)."""

    def __init__(self, factory: Callable):
        self.engine = factory()
        self.tag = str(getattr(self.engine, "policy_tag", ""))
        self.weights_version = 0  # the set_weights version this engine holds (0: the factory's own)

    def _load_weights(self, weights: tuple | None) -> None:
        """Before a shard: load the driver's current weights if this engine holds older ones (a restarted
        actor starts from the factory's weights again, so it reloads them here)."""
        if weights is None or weights[2] == self.weights_version:
            return
        import ray

        (ref,), tag, version = weights
        self.engine.update_weights(ray.get(ref).items())
        self.tag, self.weights_version = tag, version

    @staticmethod
    def _maybe_die(target: Target, shard: Shard, done: int) -> None:
        fault = _parse_fault(target.fault)
        if fault is None:
            return
        idx, after, marker = fault
        if shard.index == idx and done >= after and not Path(marker).exists():
            Path(marker).write_text(f"{shard.shard_id} {done}\n")
            os._exit(1)

    def run(self, shard: Shard, ctx: RolloutContext, target: Target, want_rows: bool,
            weights: tuple | None = None) -> ShardResult:
        import pyarrow as pa
        from lance.fragment import write_fragments

        self._load_weights(weights)
        from mstar_data.inputs import images_by_sha
        from mstar_data.schema import TABLES, conform

        stats = SampleStats()
        images = images_by_sha(_ImagesReader(target), {p.query["image_sha256"] for p in shard.todo})
        rows: list[dict] = []
        for start in range(0, len(shard.todo), target.batch_size):
            batch = shard.todo[start:start + target.batch_size]
            reqs = [request(p, ctx, images.get(p.query["image_sha256"])) for p in batch]
            t0 = time.perf_counter()
            completions = self.engine.generate(reqs)
            stats.gen_s += time.perf_counter() - t0
            for p, c in zip(batch, completions):
                r = row(p, ctx, c, self.tag)
                rows.append(r)
                stats.n_tokens += c.n_tokens
                if r["correct"] is not None:
                    stats.judged += 1
                    stats.correct += bool(r["correct"])
            if len(rows) < len(shard.todo):
                self._maybe_die(target, shard, len(rows))
        table = conform(pa.Table.from_pylist(rows, schema=TABLES[TABLE]), TABLE)
        table = table.select(target.schema.names).cast(target.schema)
        fragments = write_fragments(table, target.table_uri, schema=target.schema,
                                    storage_options=target.storage_options or None)
        self._maybe_die(target, shard, len(rows))
        return ShardResult(shard.index, shard.shard_id, shard.rollout_ids, list(fragments), stats,
                           rows if want_rows else None)


def _init_ray(ray, address: str | None) -> None:
    """Join the cluster at `address` (else RAY_ADDRESS, else start a local one), quietly. Ray starts its
    processes with fork+exec, which lance and lancedb warn about though the child never runs their code."""
    import logging
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="lance is not fork-safe", category=UserWarning)
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)


class RayExecutor:
    """Runs a plan over Ray actors (one engine each); this process commits. See the module docstring."""

    name = "ray"

    def __init__(self, store, *, batch_size: int = 32, shard_size: int = DEFAULT_SHARD_SIZE,
                 workers: int | None = None, cpus_per_worker: float = 0.5, max_retries: int = 2,
                 address: str | None = None, progress: Optional[ProgressFn] = None):
        self.store, self.batch_size, self.shard_size = store, batch_size, shard_size
        self.workers, self.cpus_per_worker, self.max_retries = workers, cpus_per_worker, max_retries
        self.address, self.progress = address, progress
        self._actors: list = []
        self._actors_for = None
        # Online RL (GRPO): the weights every actor must hold before its next shard (set_weights).
        self._weights: tuple | None = None       # (ObjectRef of name -> tensor, policy tag, version)
        # Test hooks: called with the ShardResult just before its commit / just after it (before the ledger row).
        self.before_commit: Optional[Callable[[ShardResult], None]] = None
        self.after_commit: Optional[Callable[[ShardResult], None]] = None

    # -- the driver ------------------------------------------------------------------------------------------
    def sample(self, plan: Plan, engine, *, task: str,
               on_rows: Optional[Callable[[list[dict]], None]] = None) -> SampleStats:
        """Make every rollout of `plan`, committing shard by shard. `engine` must be a zero-argument factory."""
        t_start = time.perf_counter()
        stats = SampleStats(requested=plan.requested, skipped=plan.skipped)
        if not plan.todo:
            return stats
        factory = engine_factory(engine)
        ray = import_ray()
        shards = make_shards(plan, self.shard_size)
        ledger = committed_shards(self.store, plan.scope)
        queue = deque(s for s in shards if s.shard_id not in ledger)
        for s in shards:
            if s.shard_id in ledger and on_rows is not None:
                on_rows(self._stored_rows(plan.scope, s.rollout_ids))
        total, done = len(plan.todo), sum(len(s.todo) for s in shards if s.shard_id in ledger)
        report(self.progress, task, done, total)
        if not queue:
            stats.wall_s = time.perf_counter() - t_start
            return stats
        self._complete_schema()
        if not ray.is_initialized():
            _init_ray(ray, self.address)
        actors = self._start(ray, factory, min(len(queue), self._n_workers(ray)))
        # the ref travels inside a list, so Ray does not fetch the weights for every shard: an actor fetches
        # them once per version
        weights = None if self._weights is None else ([self._weights[0]], *self._weights[1:])
        ds = self.store.dataset(TABLE)
        target = Target(self.store.dataset("images").uri, ds.uri, ds.schema, self.store.storage_options or None,
                        self.batch_size, os.environ.get(FAULT_ENV))
        pending: dict = {}
        idle = list(actors)
        try:
            while queue or pending:
                while queue and idle:
                    actor, shard = idle.pop(), queue.popleft()
                    pending[actor.run.remote(shard, plan.context, target, on_rows is not None,
                                             weights)] = (shard, actor)
                ready, _ = ray.wait(list(pending), num_returns=1)
                shard, actor = pending.pop(ready[0])
                result = self._get(ray, ready[0], shard)
                idle.append(actor)
                stats.n_tokens += result.stats.n_tokens
                stats.judged += result.stats.judged
                stats.correct += result.stats.correct
                stats.gen_s += result.stats.gen_s
                t0 = time.perf_counter()
                outcome, taken = self._commit(plan, result, ledger, stats)
                stats.store_s += time.perf_counter() - t0
                if outcome == "redo":  # another writer stored part of it: redo the rest
                    queue.append(taken)
                    ids = sorted(set(result.rollout_ids) - set(taken.rollout_ids))
                elif outcome == "duplicate":
                    continue
                else:
                    ids = result.rollout_ids
                if on_rows is not None:  # what is stored now, as the caller's count must see it
                    on_rows(result.rows or [] if outcome == "committed" else self._stored_rows(plan.scope, ids))
                done += len(ids)
                el = max(time.perf_counter() - t_start, 1e-9)
                report(self.progress, task, done, total,
                       f"{done / el:.1f} rollouts/s, {stats.n_tokens / el:.0f} tok/s, {len(actors)} actors")
        except KeyboardInterrupt:
            self.close()  # Ctrl-C: committed shards are kept, the rerun plans only what is missing
            raise
        finally:
            stats.wall_s = time.perf_counter() - t_start
        return stats

    def set_weights(self, state: dict, tag: str) -> None:
        """The weights (name -> CPU tensor) every actor samples with from the next `sample` call on, as the
        policy `tag` (GRPO pushes the trainer's after each optimizer step). Put in the object store once; an
        actor loads them before its next shard when it holds an older version."""
        ray = import_ray()
        if not ray.is_initialized():
            _init_ray(ray, self.address)
        version = (self._weights[2] if self._weights else 0) + 1
        self._weights = (ray.put(state), tag, version)

    def close(self) -> None:
        """Stop this executor's actors (their engines go with them)."""
        if self._actors:
            ray = import_ray()
            for a in self._actors:
                try:
                    ray.kill(a)
                except Exception:  # already gone
                    pass
        self._actors, self._actors_for = [], None

    def _n_workers(self, ray) -> int:
        if self.workers:
            return self.workers
        res = ray.cluster_resources()
        gpus = int(res.get("GPU", 0))
        return gpus if gpus >= 1 else max(1, int(res.get("CPU", 1)))

    def _start(self, ray, factory: Callable, n: int) -> list:
        """The actors for this factory (the same object: the loop passes one per policy): kept between calls
        (the MC labeller samples wave after wave, the loop stage after stage) until close(), or until this
        executor is dropped (Ray ends actors whose handles are gone). A job with more shards than there are
        actors adds actors; the ones already loaded stay."""
        if self._actors_for is factory and len(self._actors) >= n:
            return self._actors
        if self._actors_for is not factory:
            self.close()
        gpus = ray.cluster_resources().get("GPU", 0)
        resources = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": self.cpus_per_worker}
        worker = ray.remote(max_restarts=self.max_retries, max_task_retries=self.max_retries,
                            **resources)(ShardWorker)
        self._actors = self._actors + [worker.remote(factory) for _ in range(n - len(self._actors))]
        self._actors_for = factory
        return self._actors

    def _get(self, ray, ref, shard: Shard) -> ShardResult:
        """The shard's result; a failure becomes one line (an MstarError raised on the actor stays itself)."""
        from ray.exceptions import RayActorError, RayTaskError

        what = f"--executor ray: shard {shard.index} ({shard.shard_id[:12]})"
        kept = "the shards committed so far are kept: rerun the same command to continue"
        try:
            return ray.get(ref)
        except RayTaskError as e:
            cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else e
            if isinstance(cause, MstarError):
                raise cause from e
            raise MstarError(f"{what} failed: {type(cause).__name__}: {_first_line(cause)}; {kept}") from e
        except RayActorError as e:
            self.close()  # past its restarts: a later sample() starts new actors
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            if lines and "creation task" in lines[0]:  # the engine factory raised: its error is the last line
                raise MstarError(f"{what}: its actor could not load the engine: {lines[-1][:300]}") from e
            raise MstarError(f"{what}: its actor died {self.max_retries + 1} times in a row "
                             f"({_first_line(e)}); {kept}") from e

    def _complete_schema(self) -> None:
        """A store from an older release gains the rollouts columns added since (as Store._write does)."""
        from mstar_data.schema import TABLES

        if len(self.store.dataset(TABLE).schema) != len(TABLES[TABLE]):
            self.store._add_missing_columns(TABLE, TABLES[TABLE])

    def _stored_rows(self, scope: str, ids: list[str]) -> list[dict]:
        return self.store.dataset(TABLE).to_table(filter=_ids_filter(scope, ids)).to_pylist()

    def _commit(self, plan: Plan, result: ShardResult, ledger: set[str], stats: SampleStats) -> tuple[str, object]:
        """Commit one shard's fragments once. Returns ("committed", None), ("found", None): an earlier try
        committed it, ("duplicate", None): its result was taken already, or ("redo", shard): another writer
        stored part of it, and `shard` is the rest, to run again. The look-up and the commit hold the table's
        write lock (Store.write_lock), as every append does, so a sampler on an overlapping plan cannot store
        the same rollouts in between."""
        if result.shard_id in ledger:
            return "duplicate", None
        with self.store.write_lock(TABLE):
            return self._commit_locked(plan, result, ledger, stats)

    def _commit_locked(self, plan: Plan, result: ShardResult, ledger: set[str], stats: SampleStats):
        import lance

        stored = self.store.dataset(TABLE).to_table(columns=["rollout_id"],
                                                    filter=_ids_filter(plan.scope, result.rollout_ids))
        present = set(stored.column("rollout_id").to_pylist())
        if present and len(present) == len(set(result.rollout_ids)):
            # Committed by an earlier try whose ledger row was lost: record it, add nothing.
            record_shard(self.store, scope=plan.scope, shard_id=result.shard_id, shard_index=result.index,
                         table=TABLE, n_rows=0, table_version=self.store.version(TABLE), outcome="found")
            ledger.add(result.shard_id)
            return "found", None
        if present:
            by_id = {p.rollout_id: p for p in plan.todo}
            missing = [by_id[r] for r in result.rollout_ids if r not in present]
            return "redo", Shard(result.index, shard_id(plan.scope, result.index, [p.rollout_id for p in missing]),
                                 missing)
        if self.before_commit is not None:
            self.before_commit(result)
        opts = self.store.storage_options or None
        uri = self.store.dataset(TABLE).uri
        read_version = lance.dataset(uri, storage_options=opts).version
        ds = lance.LanceDataset.commit(uri, lance.LanceOperation.Append(result.fragments),
                                      read_version=read_version, storage_options=opts)
        if self.after_commit is not None:
            self.after_commit(result)
        n = len(result.rollout_ids)
        record_shard(self.store, scope=plan.scope, shard_id=result.shard_id, shard_index=result.index, table=TABLE,
                     n_rows=n, table_version=ds.version)
        ledger.add(result.shard_id)
        stats.written += n
        self.store.maybe_compact(TABLE)
        return "committed", None
