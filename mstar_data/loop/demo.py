"""`mstar demo`: the whole recipe on the embedded default, each stage one visible step."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mstar_data.loop.evolve import Evolve, EvolveResult
from mstar_data.loop.recipe import load_recipe
from mstar_data.prm.pipeline import PrmBuild

QUERIES = [
    "select iteration, temperature, greedy_acc, pass_at_k, reward_pass_at_2, n_train from iterations "
    "where run_id = 'demo' order by 1",
    "select stage, iteration, count(*) as rollouts, avg(correct::int) as acc, avg(n_tokens) as len "
    "from rollouts where run_id = 'demo' group by all order by 2, 1",
    "select query_id, response, steps_valid, step_scores, prm_score from rollouts where run_id = 'demo' "
    "and stage = 'explore' "
    "and prm_score is not null order by prm_score limit 5",
]


@dataclass
class DemoOutput:
    result: EvolveResult
    plot: str
    seconds: float
    queries: list[str]
    prm: PrmBuild | None = None


def run_demo(store, *, n: int = 2400, iterations: int = 4, prm: bool = True, artifacts: str | None = None,
             progress=None, log=print) -> DemoOutput:
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.loop.dynamics_plot import plot_dynamics
    from mstar_data.models.bootstrap import BootstrapConfig, run_bootstrap

    t0 = time.perf_counter()
    log("1. the embedded task: coloured shapes to count and add")
    r = ingest_items(store, synthetic_items(n, 1, "easy", 0.2), source="synthetic", dataset="synthetic", split="train")
    log(f"   {r.records} queries ({r.queries_added} new)")
    from mstar_data.artifacts import artifacts_root

    root = artifacts_root(store.uri, artifacts)
    base = root / "policies" / "base"
    if not (base / "mstar_policy.json").is_file():
        log("2. bootstrap the tiny policy on the seed CoT subset (the stand-in for a base model + warm-up)")
        b = run_bootstrap(store, BootstrapConfig(out=str(base)), progress=progress)
        log(f"   {b.steps} steps, held-out greedy accuracy {b.accuracy:.1%}")
    # recipe paths are relative to the artifacts root (loop/validate.py: resolve_path)
    overrides = ["run.base_policy='policies/base'", f"data.iterations={iterations}"]
    recipe, _ = load_recipe("demo.toml", overrides)
    built = None
    if prm:
        built = demo_prm(store, recipe, str(base), root / "policies" / "prm", progress=progress, log=log)
        overrides.append("prm.path='policies/prm'")
    log(f"{4 if prm else 3}. self-evolve (recipes/demo.toml{', PRM top-2 and Reward-Pass@2 search' if prm else ''})")
    recipe, _ = load_recipe("demo.toml", overrides)
    result = Evolve(store, recipe, artifacts=str(root), progress=progress, log=log).run_all()
    plot = plot_dynamics(result.iterations, root / "dynamics-demo.png", "mstar demo")
    return DemoOutput(result, str(plot), time.perf_counter() - t0, QUERIES, built)


# The demo's PRM: the best labeller the embedded task supports is its own step checker (`task`), which stands
# in for a strong judge model or human step labels; Monte-Carlo labels (`mc`) measure the policy's value from a
# prefix, and our tiny policy reaches the right answer whatever its steps say (docs/prm.md). The labelled data
# are 2 responses of the bootstrap policy on 800 train queries plus 4 perturbed copies of each (numbers moved:
# `mstar prm perturb`), and the PRM trains 400 steps of 32 with the vision tower frozen (faster, and a
# better PRM: docs/prm.md), reading the question alone before the steps: with fewer examples than that (or the
# policy's responses alone) it does not learn to count, and its step AUC against the truth stays at 0.64-0.71
# (300 steps: 0.86-0.91).
DEMO_PRM = {"labeller": "task", "n_train_queries": 800, "n_eval_queries": 48, "n_train": 2, "n_eval": 4, "m": 4,
            "perturb": {"source": "rollouts", "stage": "explore", "per_source": 4},
            "train": {"lr": 1e-3, "epochs": 2, "max_steps": 400, "batch_size": 32, "warmup_steps": 50,
                      "save_every": 1000, "freeze_vision": True, "prompt": "question"}}


def demo_prm(store, recipe, base: str, out: Path, *, progress=None, log=print) -> PrmBuild:
    from mstar_data.inputs import select_queries
    from mstar_data.prm.pipeline import build_prm

    d = DEMO_PRM
    log("3. PRM: the task's step checker labels the bootstrap policy's steps and perturbed copies of them (it "
        "stands in for a strong judge model or human step labels), then train and evaluate it"
        if d["labeller"] == "task" else
        f"3. PRM: Monte-Carlo step labels of the bootstrap policy (M={d['m']}), then train and evaluate it")
    train_ids = [q["query_id"] for q in select_queries(store, split="train", limit=d["n_train_queries"])]
    eval_ids = [q["query_id"] for q in select_queries(store, split="val", limit=d["n_eval_queries"])]
    built = build_prm(store, policy=base, run="demo-prm", out=str(out), train_ids=train_ids, eval_ids=eval_ids,
                      n_train=d["n_train"], n_eval=d["n_eval"], m=d["m"], temperature=recipe.sample.temperature,
                      max_new_tokens=recipe.sample.max_new_tokens, train=d["train"], labeller=d["labeller"],
                      perturb=d.get("perturb"), sample_batch_size=recipe.sample.batch_size,
                      progress=progress)
    e = built.evaluation
    truth = "-" if e.get("step_auc_truth") is None else f"{e['step_auc_truth']:.3f}"
    log(f"   {built.n_labels} step labels; held-out step AUC {e['step_auc']:.3f} ({truth} against the truth); "
        f"faithful share of top-2 correct picks {_pct(e.get('top2_faithful'))} vs random-2 "
        f"{_pct(e.get('random2_faithful'))}; on {e['n_samples']} samples of "
        f"{e['n_queries']} queries: best-of-N {e['best_of_n']:.1%}, PRM vote {e['weighted_vote']:.1%}, "
        f"majority {e['majority_vote']:.1%}, Reward-Pass@2 {e['reward_pass_at_2']:.1%}, random-2 {e['random_2']:.1%}")
    return built


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"
