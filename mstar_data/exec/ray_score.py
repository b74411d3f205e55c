"""`mstar prm score --executor ray`: step scores computed on Ray actors, one PRM replica each.

Scoring fills columns of stored rows instead of adding rows, so it needs no fragments or ledger: the driver
cuts the rollouts still to score into shards (sorted by rollout id, `shard_size` each), every actor loads the
PRM once and returns the step scores of a shard (the prompt, image and steps travel with it), and the driver
writes them with the same keyed merge_insert as local scoring (prm/score.py), every `flush_rows`. A retried
shard (its actor died; Ray restarts it) scores the same rows to the same values, and a rerun scores only what
has no score from this PRM, so nothing is lost and nothing is counted twice. Actors take 1 GPU each where the
cluster has GPUs, else `cpus_per_worker` CPUs.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Callable

from mstar_data.errors import MstarError
from mstar_data.exec.ray_executor import DEFAULT_SHARD_SIZE, _first_line, _init_ray, import_ray

FAULT_ENV = "MSTAR_RAY_SCORE_FAULT"  # tests: "<shard>:<marker file>" makes that shard's actor die once


class ScoreWorker:
    """One PRM replica (a Ray actor; a plain class so it imports without Ray)."""

    def __init__(self, prm_path: str):
        from mstar_data.models.batches import PromptCache
        from mstar_data.prm.model import load_prm

        self.prm, self.cache = load_prm(prm_path), PromptCache()

    def run(self, index: int, examples: list[tuple[str, bytes, list[str]]], batch_size: int,
            fault: str | None = None) -> tuple[int, list[list[float]]]:
        from mstar_data.prm.format import PRMExample, step_scores

        out: list[list[float]] = []
        for start in range(0, len(examples), batch_size):
            batch = [PRMExample(p, img, steps) for p, img, steps in examples[start:start + batch_size]]
            out += step_scores(self.prm, batch, self.cache)
            if fault and int(fault.split(":", 1)[0]) == index and not Path(fault.split(":", 1)[1]).exists():
                Path(fault.split(":", 1)[1]).write_text(f"{index}\n")  # a test's kill, once per marker file
                os._exit(1)
        return index, out


def score_on_ray(prm_path: str, examples: list[tuple[str, bytes, list[str]]], *, batch_size: int,
                 on_scores: Callable[[int, list[list[float]]], None], workers: int | None = None,
                 shard_size: int = DEFAULT_SHARD_SIZE, cpus_per_worker: float = 0.5, max_retries: int = 2,
                 address: str | None = None) -> None:
    """Score `examples` on actors; `on_scores(first_index, scores)` gets each shard's scores as it finishes
    (in any order)."""
    if not examples:
        return
    ray = import_ray()
    if not ray.is_initialized():
        _init_ray(ray, address)
    from ray.exceptions import RayActorError, RayTaskError

    shards = deque((i, examples[i:i + shard_size]) for i in range(0, len(examples), shard_size))
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    n = min(len(shards), workers or (gpus if gpus >= 1 else max(1, int(res.get("CPU", 1)))))
    resources = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": cpus_per_worker}
    worker = ray.remote(max_restarts=max_retries, max_task_retries=max_retries, **resources)(ScoreWorker)
    actors = [worker.remote(prm_path) for _ in range(n)]
    fault = os.environ.get(FAULT_ENV)
    pending: dict = {}
    try:
        while shards or pending:
            while shards and actors:
                actor = actors.pop()
                index, chunk = shards.popleft()
                pending[actor.run.remote(index // shard_size, chunk, batch_size, fault)] = (index, actor)
            ready, _ = ray.wait(list(pending), num_returns=1)
            index, actor = pending.pop(ready[0])
            try:
                _, scores = ray.get(ready[0])
            except (RayActorError, RayTaskError) as e:
                raise MstarError(f"--executor ray: prm score shard {index // shard_size} failed after "
                                 f"{max_retries} retries: {_first_line(e)}") from None
            actors.append(actor)
            on_scores(index, scores)
    finally:
        for a in actors + [a for _, a in pending.values()]:
            try:
                ray.kill(a)
            except Exception:  # already gone
                pass
