"""The PRM from scratch in one call: sample with the policy, label steps, train, evaluate (`mstar demo`).

    explore  n_train responses per train query at T       -> rollouts (run, stage explore)
    eval     n_eval responses per held-out query at T     -> rollouts (run, stage eval)
    perturb  (optional) known chains with numbers changed -> rollouts (run, stage perturb)
    label    mc: M continuations per step prefix of both  -> step_labels, rollouts (stage mc)
             task: the task's step checker on all three  -> step_labels (labeller task)
    train    the PRM on the train-query labels            -> <out>
    eval     step AUC on the held-out labels, reranking   -> prm_evals

Each stage is one of the resumable jobs behind `mstar generate`, `mstar prm label | train | eval`, so a rerun
continues where a crash stopped it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mstar_data.prm.evaluate import EvalConfig, run_eval
from mstar_data.prm.label import LabelConfig, run_label
from mstar_data.prm.perturb import PerturbConfig, run_perturb
from mstar_data.prm.train import PrmTrainConfig, train_prm
from mstar_data.sampling.generate import GenerateConfig, run_generate


@dataclass
class PrmBuild:
    path: str
    evaluation: dict
    n_labels: int = 0
    timings: dict = field(default_factory=dict)


def build_prm(store, *, policy: str, run: str, out: str, train_ids: list[str], eval_ids: list[str],
              train_split: str = "train", eval_split: str = "val", n_train: int = 2, n_eval: int = 4, m: int = 4,
              temperature: float = 0.7, max_new_tokens: int = 48, seed: int = 0, train: dict | None = None,
              labeller: str = "mc", perturb: dict | None = None, nproc: int = 1, sample_batch_size: int = 64,
              engine=None, progress=None) -> PrmBuild:
    """`perturb`: PerturbConfig fields (source, per_source, p_step, ...) to add perturbed chains of thought on
    train queries to the PRM's training data (prm/perturb.py); they are labelled by the same labeller as the
    rest. `nproc` > 1: the PRM trains in that many processes (train/launch.py)."""
    from mstar_data.sampling.engines import load_engine

    engine = engine or load_engine("hf", policy)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    for stage, ids, n in (("explore", train_ids, n_train), ("eval", eval_ids, n_eval)):
        run_generate(store, GenerateConfig(policy=policy, split=None, query_ids=ids, n=n, temperature=temperature,
                                           run=run, stage=stage, seed=seed, max_new_tokens=max_new_tokens,
                                           batch_size=sample_batch_size), engine=engine, progress=progress)
    if perturb:
        run_perturb(store, PerturbConfig(run=run, split=train_split, seed=seed, **perturb), progress=progress)
    timings["sample_s"] = time.perf_counter() - t
    t = time.perf_counter()
    n_labels = 0
    for stage in ("explore", "eval") + (("perturb",) if perturb else ()):
        r = run_label(store, LabelConfig(labeller=labeller, policy=policy, run=run, stage=stage, m=m,
                                         temperature=temperature, seed=seed, max_new_tokens=max_new_tokens),
                      engine=engine, progress=progress)
        n_labels += r.labels_written + r.labels_skipped
    timings["label_s"] = time.perf_counter() - t
    engine.release()  # the trainer loads its own copy
    t = time.perf_counter()
    train_prm(store, PrmTrainConfig(policy=policy, run=run, out=out, split=train_split, seed=seed, labeller=labeller,
                                    **(train or {})),
              progress=progress, nproc=nproc)
    timings["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    evaluation = run_eval(store, EvalConfig(prm=out, run=run, stage="eval", split=eval_split, seed=seed),
                          progress=progress)
    timings["eval_s"] = time.perf_counter() - t
    return PrmBuild(out, evaluation, n_labels, timings)
