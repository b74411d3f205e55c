"""`mstar bootstrap-policy`: the stand-in for a pretrained base model plus M-STAR's warm-up.

There is no model hub here, so the embedded default starts from a randomly initialised tiny Qwen2-VL. A few
dozen steps of `pretrain_vision` stand in for a pretrained vision encoder (it learns which colour each grid
cell holds, on images no dataset uses); then SFT on the seed subset of train that carries a reference chain
of thought teaches the format, counting and adding. It stops as soon as greedy accuracy on held-out queries
reaches the target and beats the best constant answer (a weak but non-trivial policy is what self-evolution
needs to start from), or when the step or time budget runs out.

Without the vision stage the tiny model does not get past the commonest answer in 1000 steps: learning to see
and to count through the language model at once is too slow on a CPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from mstar_data.errors import MstarError
from mstar_data.inputs import images_by_sha, select_queries
from mstar_data.outputs import check_out_folder, publish_folder, staging_folder
from mstar_data.progress import report
from mstar_data.prompts import build_prompt
from mstar_data.store.predicates import queries_where


MARKER = "mstar_policy.json"


class BootstrapConfig(BaseModel):
    out: str = Field(description="Folder to write the Hugging Face model to (new, empty, or a previous "
                                 "bootstrap-policy output with --force).")
    force: bool = Field(False, description="Replace a previous bootstrap-policy output in --out.")
    size: Literal["tiny", "small"] = Field("tiny", description="tiny (~1.2M parameters) or small (~4M).")
    target_acc: float = Field(0.3, ge=0.0, le=1.0, description="Stop once held-out greedy accuracy reaches this ...")
    above_constant: float = Field(0.05, ge=0.0, description="... and beats the best constant answer by this much "
                                  "(a policy that always answers the commonest number is no policy).")
    max_steps: int = Field(800, ge=1, description="Step budget.")
    max_seconds: float = Field(110.0, gt=0, description="Time budget (seconds of training and evaluation).")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(50, ge=0, description="Linear learning-rate warm-up.")
    vision_steps: int = Field(50, ge=0, description="Vision-tower pretraining steps (0: skip).")
    eval_every: int = Field(10, ge=1, description="Steps between held-out evaluations.")
    eval_split: str = Field("val")
    eval_limit: int | None = Field(None, ge=1, description="Evaluate on the first M held-out queries only.")
    max_new_tokens: int = Field(48, ge=1)
    seed: int = Field(0)


@dataclass
class BootstrapResult:
    out: str
    steps: int = 0
    accuracy: float = 0.0
    reached_target: bool = False
    seconds: float = 0.0
    n_train: int = 0
    n_eval: int = 0
    constant_acc: float = 0.0
    history: list[tuple[int, float]] = field(default_factory=list)


def greedy_accuracy(sampler, queries: list[dict], images: dict[str, bytes], max_new_tokens: int,
                    batch_size: int = 128) -> float:
    from mstar_data.answers import judge
    from mstar_data.sampling.engine import SampleRequest

    correct = 0
    for i in range(0, len(queries), batch_size):
        chunk = queries[i:i + batch_size]
        reqs = [SampleRequest(q["query_id"], build_prompt(q["question"], q["choices"]), images[q["image_sha256"]],
                              0.0, 0, max_new_tokens) for q in chunk]
        for q, c in zip(chunk, sampler.generate(reqs)):
            correct += bool(judge(c.text, q["answer"], answer_type=q["answer_type"], choices=q["choices"],
                                  precision=q["precision"], unit=q["unit"]).correct)
    return correct / max(len(queries), 1)


def run_bootstrap(store, cfg: BootstrapConfig, progress=None) -> BootstrapResult:
    import torch

    from mstar_data.models.loading import Policy
    from mstar_data.models.tiny import build_tiny_policy, pretrain_vision
    from mstar_data.models.batches import SFTExample
    from mstar_data.train.losses import sft
    from mstar_data.train.trainer import TrainConfig, Trainer
    from mstar_data.sampling.engines.hf import HFEngine

    from mstar_data.models.threads import configure_threads

    # Checked before any work: a refused --out must not cost a whole training run.
    out = check_out_folder(cfg.out, marker=MARKER, kind="bootstrap-policy output", force=cfg.force)
    configure_threads()
    t0 = time.perf_counter()
    train = select_queries(store, split="train", where=queries_where(with_reference_cot=True))
    held = select_queries(store, split=cfg.eval_split, limit=cfg.eval_limit)
    if not train:
        raise MstarError("no train queries with a reference CoT in the store: run `mstar ingest synthetic` first")
    if not held:
        raise MstarError(f"no '{cfg.eval_split}' queries in the store to measure accuracy on")
    images = images_by_sha(store, {q["image_sha256"] for q in train + held})
    staging = staging_folder(out)
    model, processor = build_tiny_policy(staging, size=cfg.size, seed=cfg.seed)
    if cfg.vision_steps:
        pretrain_vision(model, processor, steps=cfg.vision_steps, seed=cfg.seed)
    policy = Policy(model, processor, str(out), "cpu")
    sampler = HFEngine(str(out), policy_obj=policy)
    examples = [SFTExample(build_prompt(q["question"], q["choices"]), images[q["image_sha256"]], q["reference_cot"])
                for q in train]
    answers = [q["answer"] for q in held]
    constant = max(answers.count(a) for a in set(answers)) / len(answers)
    goal = max(cfg.target_acc, constant + cfg.above_constant)
    result = BootstrapResult(str(out), n_train=len(examples), n_eval=len(held), constant_acc=constant)
    gen = torch.Generator().manual_seed(cfg.seed)
    # Warm-up then a constant LR (no horizon): the stop rule, not a schedule, decides when training ends.
    trainer = Trainer(sft)
    trainer.setup(policy, TrainConfig(lr=cfg.lr, warmup_steps=cfg.warmup_steps, batch_size=cfg.batch_size,
                                      weight_decay=0.0, max_grad_norm=1.0), horizon=None)
    hits = 0
    report(progress, "bootstrap-policy", 0, cfg.max_steps)
    for step in range(1, cfg.max_steps + 1):
        idx = torch.randint(len(examples), (cfg.batch_size,), generator=gen).tolist()
        loss = trainer.step([[examples[i] for i in idx]])["loss"]
        result.steps = step
        out_of_time = time.perf_counter() - t0 > cfg.max_seconds
        if step % cfg.eval_every == 0 or step == cfg.max_steps or out_of_time:
            model.eval()
            result.accuracy = greedy_accuracy(sampler, held, images, cfg.max_new_tokens)
            result.history.append((step, result.accuracy))
            report(progress, "bootstrap-policy", step, cfg.max_steps,
                   f"loss {loss:.3f}, held-out acc {result.accuracy:.1%}")
            # Two readings in a row, past warm-up: one lucky reading on ~90 queries (+-5 points) is not a policy.
            hits = hits + 1 if result.accuracy >= goal and step >= cfg.warmup_steps else 0
            if hits >= 2:
                result.reached_target = True
                break
        if out_of_time:
            break
    trainer.close()
    model.eval()
    model.save_pretrained(staging)
    result.seconds = time.perf_counter() - t0
    # The metadata file is written last, then the model is moved into place: a half-written policy is
    # never mistaken for a finished one.
    (staging / MARKER).write_text(json.dumps({
        "kind": "bootstrap", "size": cfg.size, "steps": result.steps, "accuracy": result.accuracy,
        "eval_split": cfg.eval_split, "n_eval": result.n_eval, "n_train": result.n_train,
        "reached_target": result.reached_target, "constant_answer_acc": constant, "history": result.history, "config": cfg.model_dump()}, indent=1))
    publish_folder(staging, out, MARKER)
    return result
