"""`mstar evolve`: the M-STAR recipe on the tables, one iteration at a time.

    iteration 0   measure the base policy on val (greedy, Pass@K, Reward-Pass@2)
    iteration k   [search T on val every `search_every` iterations]
                  take the next interval of labelled train queries
                  sample N responses per query at T, judge them            -> rollouts (stage explore)
                  [score with the PRM what selection ranks]                -> rollouts.step_scores, prm_score
                  select through the configured view, pinned to a tagged rollouts version
                  train (continuous / iterative-rft / rest-em)             -> checkpoints/<run>/it-000k
                  measure on val                                           -> rollouts (stage val), iterations

Every step writes keyed rows, and every step first looks for what it already wrote, so rerunning the same
command after a crash goes on from the last finished step and writes nothing twice.

Where the sampling runs (`executor`, `mstar evolve --executor local|ray`): `local` samples in this process
with one engine, loaded on first use and kept between stages as the memory plan allows. `ray` hands every
sampling stage (explore, val, temp-sweep) to one RayExecutor (exec/ray_executor.py) with a picklable factory
for the stage's policy folder: its actors are kept between stages on the same policy and closed wherever the
local engine would be released (a new policy, training, the PRM under the one-model plan, the end). The rows
are the same either way (rollouts are seeded per row), so the executor is not part of the run's recipe: a run
may be resumed under the other one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import partial
from datetime import datetime, timezone
from typing import Callable

from mstar_data.errors import MstarError
from mstar_data.inputs import select_queries
from mstar_data.loop.recipe import Recipe
from mstar_data.loop.runs import LoopResult, record_run
from mstar_data.sampling.generate import GenerateConfig, run_generate
from mstar_data.sql_views import run_read_only
from mstar_data.store.predicates import equals, literal, queries_where
from mstar_data.select.trainset import pin_trainset, trainset_examples, trainset_params


def _load_engine(backend: str, policy: str):
    from mstar_data.sampling.engines import load_engine

    return load_engine(backend, policy)


def _load_prm(path: str):
    from mstar_data.prm.model import load_prm

    return load_prm(path)


def _score(store, cfg, prm, progress):
    from mstar_data.prm.score import run_score

    return run_score(store, cfg, prm=prm, progress=progress)


def _train(store, examples, **kwargs):
    from mstar_data.train.trainer import train_iteration

    return train_iteration(store, examples, **kwargs)


@dataclass
class LoopParts:
    """The loop's collaborators. The defaults are the real ones; tests pass fakes (a scripted engine, a
    trainer that writes a marker folder) to run the whole loop in a second."""

    load_engine: Callable = _load_engine    # (backend, policy) -> Engine (with release())
    load_prm: Callable = _load_prm          # (path) -> PRM model (release: dropped)
    score: Callable = _score                # (store, ScoreConfig, prm, progress) -> ScoreResult
    train: Callable = _train                # (store, examples, **train_iteration kwargs) -> TrainResult
    check_models: bool = True               # the preflight looks for the model folders and backend (fakes: no)


EvolveResult = LoopResult


class Evolve:
    def __init__(self, store, recipe: Recipe, *, artifacts: str | None = None, parts: LoopParts | None = None,
                 progress=None, log=lambda msg: None, executor: str = "local", ray_workers: int | None = None,
                 ray_shard_size: int | None = None, nproc: int = 1, fsdp: bool = False):
        from mstar_data.artifacts import checkpoints_dir
        from mstar_data.exec import make_executor

        from mstar_data.loop.validate import with_resolved_paths

        self.store, self.progress, self.log = store, progress, log
        # The sampling executor: None samples here (the engine below); a RayExecutor (made now, so a missing
        # Ray fails in one line before any step) owns its actors, one engine each.
        self._ray = None if executor == "local" else make_executor(
            executor, store, batch_size=recipe.sample.batch_size, shard_size=ray_shard_size, workers=ray_workers,
            progress=progress)
        self.executor, self.ray_workers, self.ray_shard_size = executor, ray_workers, ray_shard_size
        self.nproc = nproc  # > 1: each iteration trains in that many torchrun processes (train/launch.py)
        self.fsdp = fsdp  # ... sharded across them (train/fsdp.py)
        self._factory, self._factory_policy = None, None  # the actors' engine factory, one per policy
        # The run record keeps the recipe as given; the loop uses its model paths resolved (relative ones
        # against the artifacts root).
        self.given, self.artifacts = recipe, artifacts
        self.r = with_resolved_paths(recipe, store.uri, artifacts)
        self.parts = parts or LoopParts()
        self.run = recipe.run.id
        self.root = checkpoints_dir(store.uri, artifacts)
        self.lease = None
        where = queries_where(dataset=recipe.data.dataset)
        self.train_ids = [q["query_id"] for q in select_queries(store, split=recipe.data.train_split, where=where,
                                                                limit=recipe.data.train_limit)]
        self.val_ids = [q["query_id"] for q in select_queries(store, split=recipe.data.val_split, where=where,
                                                              limit=recipe.data.val_limit)]
        if not self.train_ids:
            raise MstarError(f"recipe data.train_split '{recipe.data.train_split}': no queries in {store.uri}")
        if not self.val_ids:
            raise MstarError(f"recipe data.val_split '{recipe.data.val_split}': no queries in {store.uri}")
        from mstar_data.loop.unlabeled import UnlabeledMix

        self.unlabeled = UnlabeledMix(store, recipe)  # checks the unlabelled pool before anything is written
        # A store from an older release gains the tables and columns added since (pseudo_labels, pseudo_correct)
        # as nulls: the views the preflight EXPLAINs read them.
        store.init()
        from mstar_data.loop.validate import preflight

        # Every check of `mstar validate` before the first step (and before torch is imported just below): a
        # misspelled view or a missing model folder fails here, not after the sampling.
        preflight(store, recipe, artifacts=artifacts, models=self.parts.check_models)
        self.one_model = self._one_model(recipe.run.memory_plan)
        self._engine, self._engine_policy = None, None
        self._prm = None

    # -- what is resident ------------------------------------------------------------------------
    @staticmethod
    def _one_model(plan: str) -> bool:
        if plan != "auto":
            return plan == "one-model"
        try:
            import torch
        except ImportError:
            return False
        return torch.cuda.is_available()

    def engine(self, policy: str):
        """The sampling engine on `policy`, loaded on first use; a stale one (another policy) is released
        first, and under the one-model plan so is the PRM."""
        if self._engine is not None and self._engine_policy != policy:
            self.release_engine()
        if self._engine is None:
            if self.one_model:
                self.release_prm()
            self._engine, self._engine_policy = self.parts.load_engine(self.r.sample.backend, policy), policy
        return self._engine

    def release_engine(self) -> None:
        if self._engine is not None:
            self._engine.release()
        self._engine, self._engine_policy = None, None
        if self._ray is not None:  # the actors hold engines (GPUs): they go wherever the local engine would
            self._ray.close()
        self._factory, self._factory_policy = None, None

    def engine_factory(self, policy: str):
        """--executor ray: the picklable factory the actors load `policy` with. The same object while the
        policy stays (the executor keeps its actors for the same factory); a new policy first closes the
        actors of the old one, and under the one-model plan releases the PRM, as engine() does."""
        if self._factory is not None and self._factory_policy != policy:
            self.release_engine()
        if self._factory is None:
            if self.one_model:
                self.release_prm()
            self._factory = partial(self.parts.load_engine, self.r.sample.backend, policy)
            self._factory_policy = policy
        return self._factory

    def prm(self):
        if self._prm is None:
            if self.one_model:
                self.release_engine()
            self._prm = self.parts.load_prm(self.r.prm.path)
        return self._prm

    def release_prm(self) -> None:
        if self._prm is not None and hasattr(self._prm, "release"):
            self._prm.release()
        self._prm = None
        from mstar_data.sampling.engines import free_device_memory

        free_device_memory()

    # -- pieces -----------------------------------------------------------------------------------
    def generate(self, policy: str, *, iteration: int, stage: str, query_ids: list[str], n: int,
                 temperature: float, offset: int = 0):
        s = self.r.sample
        cfg = GenerateConfig(policy=policy, split=None, query_ids=query_ids, n=n, temperature=temperature,
                             run=self.run, iteration=iteration, stage=stage, backend=s.backend, seed=self.r.run.seed,
                             max_new_tokens=s.max_new_tokens, batch_size=s.batch_size, sample_offset=offset)
        if self._ray is None:
            return run_generate(self.store, cfg, engine=lambda: self.engine(policy), progress=self.progress)
        ray_opts = {"executor": self.executor, "ray_workers": self.ray_workers}  # as the jobs row records them
        if self.ray_shard_size:
            ray_opts["ray_shard_size"] = self.ray_shard_size
        cfg = cfg.model_copy(update=ray_opts)
        return run_generate(self.store, cfg, engine=self.engine_factory(policy), executor=self._ray,
                            progress=self.progress)

    def score(self, iteration: int, stage: str, **only) -> None:
        """PRM step scores for this iteration's rollouts of `stage`, only those the loop reads (`only`: see
        ScoreConfig). Nothing without a PRM; a rerun skips what is scored."""
        if not self.r.prm.path:
            return
        from mstar_data.prm.score import ScoreConfig

        cfg = ScoreConfig(prm=self.r.prm.path, run=self.run, iteration=iteration, stage=stage,
                          aggregate=self.r.prm.aggregate, batch_size=self.r.prm.batch_size, **only)
        self.parts.score(self.store, cfg, self.prm, self.progress)  # the PRM loads only if needed
        if self.one_model:
            self.release_prm()

    def interval(self, iteration: int) -> list[str]:
        size = max(1, math.ceil(self.r.data.interval * len(self.train_ids)))
        n_chunks = math.ceil(len(self.train_ids) / size)
        start = ((iteration - 1) % n_chunks) * size
        return self.train_ids[start:start + size]

    def measure(self, policy: str, iteration: int, temperature: float) -> dict:
        """Greedy (sample 0 at T=0) and samples (1..n at T) on val, then the dynamics view."""
        self.generate(policy, iteration=iteration, stage="val", query_ids=self.val_ids, n=1, temperature=0.0)
        self.generate(policy, iteration=iteration, stage="val", query_ids=self.val_ids, n=self.r.eval.n,
                      temperature=temperature, offset=1)
        self.score(iteration, "val", sampled_only=True)  # Reward-Pass@2 ranks the samples
        rows = run_read_only(self.store, f"select * from dynamics where run_id = {literal(self.run)} "
                                         f"and iteration = {int(iteration)} and stage = 'val'", {"k": self.r.eval.k})
        return rows.to_pylist()[0]

    def search_temperature(self, policy: str, iteration: int, current: float) -> tuple[float, dict]:
        """Sample the grid on val, then keep `current` unless a T beats it beyond the noise (loop/temperature.py).
        Returns the T and the search's record (every T's value, gain and interval) for the iterations row."""
        from mstar_data.loop.temperature import sweep_choice

        t = self.r.temperature
        for i, temp in enumerate(self.r.temperature_grid()):
            self.generate(policy, iteration=iteration, stage="temp-sweep", query_ids=self.val_ids, n=t.n,
                          temperature=temp, offset=i * t.n)
        self.score(iteration, "temp-sweep")
        choice = sweep_choice(self.store, self.r, iteration, current)
        return choice.temperature, choice.record()

    def done_iterations(self) -> dict[int, dict]:
        rows = self.store.dataset("iterations").to_table(filter=equals("run_id", self.run)).to_pylist()
        return {r["iteration"]: r for r in rows}

    def record(self, iteration: int, *, policy_in: str, policy_out: str, temperature: float, metrics: dict,
               timings: dict, version: int | None = None, tag: str | None = None, n_train: int = 0) -> dict:
        row = {"run_id": self.run, "iteration": iteration, "policy_in": policy_in, "policy_out": policy_out,
               "temperature": temperature, "trainset_version": version, "trainset_tag": tag, "n_train": n_train,
               "greedy_acc": metrics.get("greedy_acc"), "pass_at_k": metrics.get("pass_at_k"),
               "k": metrics.get("k"), "reward_pass_at_2": metrics.get("reward_pass_at_2"),
               "mean_len": metrics.get("mean_len"), "metrics": json.dumps(metrics, default=str),
               "timings": json.dumps(timings), "created_at": datetime.now(timezone.utc)}
        self.store.append("iterations", [row])
        return row

    def record_run(self) -> None:
        record_run(self.store, self.given)

    # -- the recipe -------------------------------------------------------------------------------
    def run_all(self) -> EvolveResult:
        from mstar_data.store.lease import RunLease

        with RunLease(self.store, self.run) as self.lease:  # one process per run id
            try:
                return self._run_all()
            finally:
                self.release_engine()
                self.release_prm()

    def _run_all(self) -> EvolveResult:
        t0 = time.perf_counter()
        r = self.r
        self.record_run()
        done = self.done_iterations()
        base = r.run.base_policy
        policy, temperature = base, r.sample.temperature
        if 0 not in done:
            t = time.perf_counter()
            metrics = self.measure(base, 0, temperature)
            done[0] = self.record(0, policy_in=base, policy_out=base, temperature=temperature, metrics=metrics,
                                  timings={"measure_s": time.perf_counter() - t})
        self.log(f"iteration 0 (base): greedy {done[0]['greedy_acc']:.1%}")
        if self.unlabeled.queries:
            self.log(self.unlabeled.describe())
        train_cfg = r.train.model_copy(update={"seed": r.run.seed})
        for it in range(1, r.data.iterations + 1):
            if it in done:
                policy, temperature = done[it]["policy_out"], done[it]["temperature"]
                continue
            self.lease.check()  # stop if another process took the run over while this one stalled
            timings: dict[str, float] = {}
            t = time.perf_counter()
            sweep = None
            if r.temperature.search_every and (it - 1) % r.temperature.search_every == 0:
                temperature, sweep = self.search_temperature(policy, it, temperature)
                timings["temp_search_s"] = time.perf_counter() - t
                self.log(f"iteration {it}: temperature search {'moved to' if sweep['moved'] else 'kept'} "
                         f"T={temperature}")
            t = time.perf_counter()
            labelled = self.interval(it)
            unlabelled = self.unlabeled.sample(it, len(labelled))  # none before data.unlabeled_start
            self.generate(policy, iteration=it, stage="explore", query_ids=labelled + unlabelled, n=r.sample.n,
                          temperature=temperature)
            timings["explore_s"] = time.perf_counter() - t
            t = time.perf_counter()
            # top-K ranks correct responses, and only where a query has more than K of them
            self.score(it, "explore", correct_only=True, more_than=r.select.k)
            if unlabelled:  # the weighted vote weighs every unlabelled sample by its PRM score
                self.score(it, "explore", unjudged_only=True)
            timings["prm_s"] = time.perf_counter() - t
            if unlabelled:  # pseudo-label them at a pinned version, then judge their rollouts against the labels
                t = time.perf_counter()
                pseudo = self.unlabeled.pseudo_label(it, unlabelled)
                timings["pseudo_label_s"] = time.perf_counter() - t
                acc = "-" if pseudo["label_acc"] is None else f"{pseudo['label_acc']:.0%}"
                self.log(f"iteration {it}: {pseudo['queries']} unlabelled queries, {pseudo['labelled']} labelled by "
                         f"{pseudo['labeller']} (accuracy {acc}), {pseudo['pseudo_correct']} responses agree")
            t = time.perf_counter()
            version, tag = pin_trainset(self.store, self.run, it)
            params = trainset_params(r.model_dump(mode="json"), it)
            examples = trainset_examples(self.store, r.select.view, run=self.run, iteration=it, version=version,
                                         params=params)
            timings["select_s"] = time.perf_counter() - t
            t = time.perf_counter()
            if examples:
                # The trainer loads its own copy: the engine's weights are stale after this step anyway.
                self.release_engine()
                if self.one_model:
                    self.release_prm()
                meta = {"view": r.select.view, "trainset_version": version}
                if self.nproc > 1:  # the same pinned set, read by every rank
                    from mstar_data.train.launch import train_in_ranks

                    self.log(f"iteration {it}: training in {self.nproc} processes (torchrun"
                             f"{', FSDP' if self.fsdp else ''})")
                    trained = train_in_ranks(self.nproc, self.store, view=r.select.view, params=params,
                                             version=version, run=self.run, iteration=it, policy_in=policy,
                                             base_policy=base, cfg=train_cfg, iterations=r.data.iterations,
                                             checkpoints=self.root, extra_meta=meta, fsdp=self.fsdp,
                                             progress=self.progress)
                else:
                    trained = self.parts.train(self.store, examples, run=self.run, iteration=it, policy_in=policy,
                                               base_policy=base, cfg=train_cfg, iterations=r.data.iterations,
                                               checkpoints=self.root, progress=self.progress, extra_meta=meta)
                policy_out = trained.checkpoint
            else:  # nothing selected: the policy stays as it was
                policy_out = policy
            timings["train_s"] = time.perf_counter() - t
            t = time.perf_counter()
            metrics = self.measure(policy_out, it, temperature)
            timings["measure_s"] = time.perf_counter() - t
            if sweep is not None:
                metrics["temperature_search"] = sweep
            done[it] = self.record(it, policy_in=policy, policy_out=policy_out, temperature=temperature,
                                   metrics=metrics, timings=timings, version=version, tag=tag, n_train=len(examples))
            self.log(f"iteration {it}: T={temperature} selected {len(examples)} greedy {metrics['greedy_acc']:.1%} "
                     f"pass@{metrics['k']} {metrics['pass_at_k']:.1%}")
            policy = policy_out
        return EvolveResult(self.run, [done[i] for i in sorted(done)], time.perf_counter() - t0)

