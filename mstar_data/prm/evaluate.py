"""`mstar prm eval`: a PRM's quality on held-out data, one `prm_evals` row per (PRM, run, stage, split, aggregate).

- step AUC (sql/prm_step_auc.sql): its step scores against the hard labels of the same rollouts' responses
  to held-out queries, by the labeller it was trained on (label them with `mstar prm label --stage eval`);
- where the task has a step checker, the truth (sql/prm_step_auc_truth.sql): step AUC against whether each step
  is true (rollouts.steps_valid), and how faithful its top-2 correct picks are against 2 random correct ones
  (sql/prm_rerank.sql);
- reranking (sql/prm_rerank.sql) of N samples per query: best-of-N, PRM-weighted vote, Reward-Pass@2 (a
  correct response in its top 2) against majority vote and 2 random samples.

Scores missing for this PRM are computed first (`mstar prm score` on the run), so the numbers always come from
the stored step_scores. The row is keyed, so re-evaluating writes nothing new.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

from mstar_data.errors import MstarError
from mstar_data.prm.score import ScoreConfig, run_score
from mstar_data.store.predicates import run_scope
from mstar_data.sql_views import run_view


class EvalConfig(BaseModel):
    """Options of `mstar prm eval`."""

    prm: str = Field(description="PRM model folder.")
    run: str = Field(description="Run holding the held-out labelled rollouts and the N-sample rollouts.")
    iteration: int = Field(0, ge=0, description="Iteration of the N-sample rollouts.")
    stage: str = Field("eval", description="Stage of the N-sample rollouts that are reranked.")
    split: str = Field("val", description="Queries whose step labels are held out for the AUC.")
    aggregate: Literal["min", "mean", "last"] = "min"
    labeller: Literal["mc", "judge", "task"] | None = Field(
        None, description="Whose held-out labels the step AUC is against (default: the one the PRM learnt).")
    seed: int = Field(0, description="Seed of the random-2 baseline.")
    batch_size: int = Field(32, ge=1)


def run_eval(store, cfg: EvalConfig, prm=None, progress=None) -> dict:
    if not store.count("rollouts", run_scope(cfg.run, cfg.iteration, cfg.stage)):
        raise MstarError(f"run '{cfg.run}' has no {cfg.stage} rollouts at iteration {cfg.iteration} to evaluate: "
                         f"sample N per held-out query first (`mstar generate --run {cfg.run} --stage {cfg.stage} "
                         f"--split {cfg.split} --n 8`)")
    run_score(store, ScoreConfig(prm=cfg.prm, run=cfg.run, iteration=cfg.iteration, stage=cfg.stage,
                                 aggregate=cfg.aggregate, batch_size=cfg.batch_size), prm=prm, progress=progress)
    from mstar_data.prm.model import prm_meta, prm_tag

    tag = prm_tag(cfg.prm)
    labeller = cfg.labeller or prm_meta(cfg.prm).get("labeller", "mc")
    scope = dict(run=cfg.run, iteration=cfg.iteration, stage=cfg.stage, prm=tag, split=cfg.split)
    auc = run_view(store, "prm_step_auc", labeller=labeller, **scope).to_pylist()[0]
    truth = run_view(store, "prm_step_auc_truth", **scope).to_pylist()[0]
    rerank = run_view(store, "prm_rerank", run=cfg.run, iteration=cfg.iteration, stage=cfg.stage,
                      seed=cfg.seed).to_pylist()[0]
    row = {"prm": tag, "run_id": cfg.run, "iteration": cfg.iteration, "stage": cfg.stage,
           "split": cfg.split, "aggregate": cfg.aggregate, "n_steps": auc["n_steps"], "n_good_steps": auc["n_good"],
           "step_auc": auc["step_auc"], **{k: rerank[k] for k in (
               "n_queries", "n_samples", "best_of_n", "weighted_vote", "majority_vote", "reward_pass_at_2",
               "random_2", "pass_at_n", "sample_acc", "top2_faithful", "random2_faithful")},
           "labeller": labeller, "step_auc_truth": truth["step_auc"], "n_checked_steps": truth["n_steps"],
           "created_at": datetime.now(timezone.utc)}
    store.append("prm_evals", [row])
    return row
