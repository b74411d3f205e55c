"""`mstar prm train`: fine-tune a copy of the policy into a PRM on step labels (sql/prm_trainset.sql) of one
labeller (mc, judge or task: prm/label.py).

The PRM starts from the policy's weights and learns P('+') at each step tag (see prm/format.py) against hard
(any continuation correct) or soft (fraction correct) labels. It runs through the trainer with the `prm_step`
loss (train/losses.py) and a fresh LR schedule over its own steps, so it is checkpointed and resumable the
same way (step checkpoints every save_every, the same batches and LRs after a kill -9). The checkpoint's
metadata records how it reads steps and what it was trained on (run, labeller, label kind, table versions).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Literal

from pydantic import Field

from mstar_data.errors import MstarError
from mstar_data.inputs import query_inputs
from mstar_data.prm.format import NEGATIVE, POSITIVE, STEP_TAG, PRMExample
from mstar_data.sql_views import run_view
from mstar_data.train.losses import prm_step
from mstar_data.train.trainer import TrainConfig, TrainResult, train_iteration


class PrmTrainConfig(TrainConfig):
    """Options of `mstar prm train` (the optimiser options are the trainer's)."""

    policy: str = Field(description="Model folder the PRM starts from (the policy that was labelled).")
    run: str = Field(description="Run whose step labels train the PRM.")
    out: str = Field(description="Where the PRM checkpoint goes.")
    labeller: Literal["mc", "judge", "task"] = Field("mc", description="Whose step labels it learns.")
    label: Literal["hard", "soft"] = Field("hard", description="hard: any continuation correct; soft: fraction.")
    split: str = Field("train", description="Queries whose labelled responses are trained on.")
    method: Literal["iterative-rft"] = "iterative-rft"
    epochs: float = Field(3.0, gt=0)
    lr: float = Field(5e-4, gt=0)
    freeze_vision: bool = Field(False, description="Train only the language model: the vision tower keeps the "
                                "policy's weights (faster; on the embedded task also a better PRM).")
    prompt: Literal["question", "cot"] = Field("question", description="What the PRM reads before the steps: the "
                                               "question alone, or the policy's whole prompt (question and "
                                               "instruction, ~45% of the embedded task's prompt tokens).")


def prm_examples(store, run: str, split: str = "train", label: str = "hard",
                 version: dict[str, int] | None = None, labeller: str = "mc",
                 prompt: str = "question") -> list[PRMExample]:
    rows = run_view(store, "prm_trainset", versions=version, run=run, split=split, labeller=labeller).to_pylist()
    if not rows:
        return []
    inputs = query_inputs(store, (r["query_id"] for r in rows), variant=prompt)
    key = "hard_labels" if label == "hard" else "soft_labels"
    return [PRMExample(inputs[r["query_id"]].prompt, inputs[r["query_id"]].image, r["steps"],
                       [float(y) for y in r[key]]) for r in rows]


VERSIONED = ("rollouts", "step_labels", "queries")


def train_prm(store, cfg: PrmTrainConfig, progress=None, *, versions: dict[str, int] | None = None,
              nproc: int = 1, fsdp: bool = False) -> TrainResult:
    """Train the PRM on the step labels of the tables at `versions` (default: the current ones; every rank of
    a multi-process training reads the versions its launcher pinned). `nproc` > 1: in that many torchrun
    processes, data-parallel on the same global batch (train/launch.py); `fsdp`: the model sharded across them."""
    if nproc > 1:
        from mstar_data.train.launch import train_prm_in_ranks

        return train_prm_in_ranks(nproc, store, cfg, fsdp=fsdp, progress=progress)
    versions = versions or {t: store.version(t) for t in VERSIONED}
    examples = prm_examples(store, cfg.run, cfg.split, cfg.label, versions, cfg.labeller, cfg.prompt)
    if not examples:
        raise MstarError(f"run '{cfg.run}' has no step-labelled responses on {cfg.split} queries by the "
                         f"{cfg.labeller} labeller: run `mstar prm label --run {cfg.run} --labeller {cfg.labeller}` "
                         f"first")
    n_steps = sum(len(e.steps) for e in examples)
    n_good = sum(y >= 0.5 for e in examples for y in e.labels)
    train_cfg = TrainConfig(**cfg.model_dump(include=set(TrainConfig.model_fields)))
    meta = {"prm": {"id": uuid.uuid4().hex[:12], "step_tag": STEP_TAG, "positive": POSITIVE, "negative": NEGATIVE, "label": cfg.label, "prompt": cfg.prompt,
                    "labeller": cfg.labeller, "freeze_vision": cfg.freeze_vision, "run": cfg.run, "split": cfg.split, "versions": versions, "init": str(cfg.policy),
                    "n_responses": len(examples), "n_steps": n_steps, "n_good_steps": n_good}}
    return train_iteration(store, examples, run=f"prm:{Path(cfg.out).name}", iteration=0, policy_in=cfg.policy,
                           cfg=train_cfg, out=Path(cfg.out), progress=progress, extra_meta=meta,
                           loss=prm_step, freeze_vision=cfg.freeze_vision, fsdp=fsdp)
