"""The Trainer (one model in training: setup, step, save, close) and `train_iteration`, the recipe that
trains one iteration's training set into one checkpoint, resumable at step granularity.

Where each method starts and how long its LR schedule runs is decided in train/schedule.py; what is
optimised is a loss module from train/losses.py. The batch order of iteration k is a pure function of
(seed, k), so a run resumed from a step checkpoint sees the same batches, LRs and steps as one that never
stopped. On GPU we keep fp32 master weights and autocast to bf16; on CPU everything is fp32.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mstar_data.errors import MstarError
from mstar_data.progress import report
from mstar_data.train import checkpoint as ckpt
from mstar_data.models.batches import PromptCache
from mstar_data.train.losses import Loss, sft
from mstar_data.train.ranks import average_gradients, rank_and_world, rank_slice, sum_across_ranks
from mstar_data.train.schedule import (HORIZON_KEY, is_resume, lr_lambda, schedule_horizon, start_point,
                                       steps_for)

METHODS = ("continuous", "iterative-rft", "rest-em")
__all__ = ["METHODS", "TrainConfig", "TrainResult", "Trainer", "batch_order", "lr_lambda", "steps_for",
           "train_iteration"]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["continuous", "iterative-rft", "rest-em"] = Field("continuous", description="How an iteration starts.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW).")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine floor, as a fraction of lr.")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up steps (once per schedule).")
    total_steps: int | None = Field(None, ge=1, description="Schedule horizon. None: the iteration's steps; "
                                    "continuous: iteration 1's steps x the run's iterations.")
    batch_size: int = Field(16, ge=1, description="Examples per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    epochs: float = Field(1.0, gt=0, description="Passes over the iteration's training set.")
    max_steps: int | None = Field(None, ge=1, description="Cap on optimizer steps per iteration.")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    save_every: int = Field(50, ge=1, description="Steps between mid-iteration checkpoints.")
    seed: int = Field(0)


@dataclass
class TrainResult:
    checkpoint: str
    steps: int = 0
    global_step: int = 0
    resumed_from: int | None = None
    mean_loss: float | None = None
    seconds: float = 0.0
    n_examples: int = 0
    log: list[dict] = field(default_factory=list)


def batch_order(n: int, n_micro: int, batch_size: int, seed: int, iteration: int) -> list[list[int]]:
    """Micro-batches of example indices: shuffled passes, concatenated, cut to size. Pure in its inputs."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
    flat: list[int] = []
    while len(flat) < n_micro * batch_size:
        flat += torch.randperm(n, generator=g).tolist()
    return [flat[i * batch_size:(i + 1) * batch_size] for i in range(n_micro)]


class Trainer:
    """One model in training. Each rank runs its own Trainer on its slice of every global micro-batch; only
    rank 0 writes the train log and checkpoints."""

    def __init__(self, loss: Loss = sft, *, fsdp: bool = False):
        self.loss = loss
        self.rank, self.world = rank_and_world()
        self.sharded = fsdp and self.world > 1  # FSDP2 (train/fsdp.py); one process has nothing to shard
        if self.world == 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # N copies would each train alone
            raise MstarError("started by torchrun, but this command does not join its process group: only "
                             "`mstar train` trains across processes (docs/scaling.md)")
        self.policy = self.model = self.optimizer = self.scheduler = None
        self.horizon: int | None = None
        self.global_step = 0
        self.cache = PromptCache()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self, source, cfg: TrainConfig, *, horizon: int | None, state_from: Path | None = None,
              device: str | None = None, seed: int | None = None, freeze_vision: bool = False) -> dict:
        """Load `source` (a model folder, or an already loaded Policy), build AdamW and an LR schedule over
        `horizon` steps (None: constant after warm-up), and restore the optimizer, scheduler, RNG and step of
        the checkpoint `state_from`. `freeze_vision`: the vision tower gets no gradient and no optimizer
        state, so its weights stay bit-identical. A sharded Trainer (`fsdp`) shards the model before AdamW is
        built on its shards. Returns that checkpoint's metadata ({} for a fresh start)."""
        import torch

        if isinstance(source, (str, Path)):
            from mstar_data.models.loading import load_policy

            source = load_policy(source, device=device, dtype="fp32")
        self.policy, self.model, self.cfg, self.horizon = source, source.model, cfg, horizon
        if seed is not None:
            torch.manual_seed(seed)
        if freeze_vision:
            from mstar_data.models.loading import vision_parameters

            for p in vision_parameters(self.model):
                p.requires_grad_(False)
        load_optimizer = None
        if self.sharded:
            from mstar_data.train import fsdp

            if cfg.batch_size < self.world:
                raise MstarError(f"--fsdp: a micro-batch of {cfg.batch_size} examples leaves some of the {self.world} "
                                 f"processes without data; use --batch-size {self.world} or more")
            fsdp.shard(self.model)
            load_optimizer = lambda state: fsdp.load_optimizer_state(self.model, self.optimizer, state)  # noqa: E731
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, horizon))
        meta: dict = {}
        if state_from is not None:
            meta = ckpt.load_trainer_state(state_from, self.optimizer, self.scheduler, load_optimizer=load_optimizer)
            self.global_step = meta.get("global_step", 0)
        return meta

    def _autocast(self):
        import torch

        if str(self.policy.device).startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def step(self, micro_batches: list[list]) -> dict:
        """One optimizer step over global micro-batches (lists of examples): this rank's slice of each,
        gradients accumulated, averaged over ranks and clipped. Returns step, loss, lr, n_tokens, grad_norm
        (before clipping) and seconds.

        The step's loss is the mean over micro-batches of each global micro-batch's mean over ALL its tokens
        (or scored steps), whichever ranks hold them: a rank's mean over its own tokens is weighted by its share
        of the global count, so N processes compute the loss and gradients of 1 process at the same global
        batch. A loss normalised by counts of the whole global batch (GRPO, `global_norm`) is already a share
        of the step's loss, and its parts are only added up.

        Sharded (FSDP2), every rank runs every forward and backward, which gather and reduce-scatter the
        weights and gradients of each unit: a rank with nothing to learn from a micro-batch backpropagates zero."""
        import torch

        t0 = time.perf_counter()
        self.model.train()
        device = str(self.policy.device)
        global_norm = getattr(self.loss, "global_norm", False)
        loss_sum, n_tok = 0.0, 0
        for micro in micro_batches:
            mine = rank_slice(micro, self.rank, self.world)
            if self.sharded and not mine:
                raise MstarError(f"--fsdp: a micro-batch of {len(micro)} examples across {self.world} processes "
                                 f"leaves rank {self.rank} without data")
            loss, tokens = None, 0
            if mine:
                with self._autocast():
                    loss, tokens = self.loss(self.policy, mine, self.cache)
            if not global_norm:  # every rank takes part in this all-reduce, even one with an empty slice
                n_global = sum_across_ranks([float(tokens)], self.world, device)[0]
                if tokens:
                    loss = loss * (tokens / n_global) / len(micro_batches)
            if loss is None or not tokens:  # nothing to learn from (and a mean over no tokens is NaN)
                if self.sharded:  # ... but the unit's reduce-scatter waits for this rank's backward
                    (torch.nan_to_num(loss) * 0).backward()
                continue
            # average_gradients divides by the world: the gradient is then that of the sum of the shares
            (loss * self.world).backward()
            loss_sum += loss.item()
            n_tok += tokens
        if not self.sharded:  # FSDP's reduce-scatter has averaged them already
            average_gradients(self.model, self.world)
        loss_sum, n_tok = sum_across_ranks([loss_sum, n_tok], self.world, device)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        if hasattr(grad_norm, "full_tensor"):  # sharded: a DTensor of partial norms
            grad_norm = grad_norm.full_tensor()
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        return {"step": self.global_step, "loss": loss_sum, "lr": lr, "n_tokens": int(n_tok),
                "grad_norm": float(grad_norm), "seconds": time.perf_counter() - t0}

    def append_log(self, store, rows: list[dict]) -> None:
        if self.is_main and rows:
            store.append("train_log", rows)

    def save(self, path: Path, meta: dict) -> None:
        """An atomic checkpoint (checkpoint.py: metadata last, then renamed into place). It records the
        global step and the schedule horizon, which the next iteration or a resume reads back. Sharded, every
        rank takes part in gathering the whole model and optimizer state, which rank 0 writes as one process
        would."""
        states = {}
        if self.sharded:
            from mstar_data.train import fsdp

            states = {"model_state": fsdp.full_model_state(self.model),
                      "optimizer_state": fsdp.full_optimizer_state(self.model, self.optimizer)}
        if self.is_main:
            ckpt.save(Path(path), self.model, self.policy.processor, self.optimizer, self.scheduler,
                      {**meta, "global_step": self.global_step, HORIZON_KEY: self.horizon}, **states)
        self._barrier()

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Drop the model and optimizer (the GPU memory goes back before sampling starts again)."""
        import gc

        import torch

        on_gpu = self.policy is not None and str(self.policy.device).startswith("cuda")
        self.policy = self.model = self.optimizer = self.scheduler = None
        self.cache = PromptCache()
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()


def train_iteration(store, examples: list, *, run: str, iteration: int, policy_in: str,
                    base_policy: str | None = None, cfg: TrainConfig, checkpoints: Path | None = None,
                    out: Path | None = None, device: str | None = None, progress=None,
                    extra_meta: dict | None = None, loss: Loss = sft, iterations: int = 1,
                    freeze_vision: bool = False, fsdp: bool = False) -> TrainResult:
    """Train on `examples` into `out` (default `<checkpoints>/<run>/it-000k`) with `loss` (SFT by default,
    the PRM's step loss for `mstar prm train`). `iterations`: the run's iteration count, which a continuous
    schedule spans. `freeze_vision`: the vision tower is not trained. `fsdp`: under torchrun, shard the model
    across the ranks (train/fsdp.py); the checkpoint is the same. `progress(task, done, total, note)` hears of
    every step."""
    final = Path(out) if out is not None else ckpt.iteration_dir(checkpoints, run, iteration)
    if ckpt.is_complete(final):  # already trained: a rerun after a crash goes straight on
        meta = ckpt.read_meta(final)
        return TrainResult(str(final), meta.get("steps", 0), meta.get("global_step", 0), n_examples=len(examples))
    t0 = time.perf_counter()
    start = start_point(cfg, final, policy_in, base_policy or policy_in)
    carried = ckpt.read_meta(start.state_from) if start.state_from and ckpt.is_complete(start.state_from) else None
    n_steps = steps_for(len(examples), cfg)
    horizon = schedule_horizon(cfg, n_steps, iterations=iterations, carried=carried)
    trainer = Trainer(loss, fsdp=fsdp)
    restored = trainer.setup(start.weights, cfg, horizon=horizon, state_from=start.state_from, device=device,
                             seed=cfg.seed * 7919 + iteration, freeze_vision=freeze_vision)
    local_start = restored["local_step"] if is_resume(start) else 0
    result = TrainResult(str(final), steps=n_steps, n_examples=len(examples),
                         resumed_from=trainer.global_step if is_resume(start) else None)
    order = batch_order(len(examples), n_steps * cfg.grad_accum, cfg.batch_size, cfg.seed, iteration)
    task = f"train it{iteration}"
    if trainer.is_main:
        report(progress, task, local_start, n_steps)
    pending: list[dict] = []
    for local in range(local_start, n_steps):
        micro = order[local * cfg.grad_accum:(local + 1) * cfg.grad_accum]
        s = trainer.step([[examples[i] for i in idx] for idx in micro])
        pending.append({"run_id": run, "iteration": iteration, "step": s["step"], "local_step": local + 1,
                        "loss": s["loss"], "lr": s["lr"], "n_tokens": s["n_tokens"], "seconds": s["seconds"],
                        "created_at": datetime.now(timezone.utc)})
        if trainer.is_main:
            report(progress, task, local + 1, n_steps, f"loss {s['loss']:.3f} lr {s['lr']:.2e}")
        if (local + 1) % cfg.save_every == 0 and local + 1 < n_steps:
            _save(trainer, store, ckpt.steps_dir(final) / f"step-{local + 1:06d}",
                  {"local_step": local + 1, "steps": n_steps}, pending)
            result.log += pending
            pending = []
    trainer.model.eval()
    meta = {"local_step": n_steps, "steps": n_steps, "method": cfg.method, "loss": getattr(loss, "name", None),
            "run": run, "iteration": iteration, "policy_in": str(policy_in), "config": cfg.model_dump(),
            **(extra_meta or {})}
    _save(trainer, store, final, meta, pending)
    result.log += pending
    result.global_step = trainer.global_step
    trainer.close()
    if trainer.is_main:
        ckpt.remove_step_checkpoints(final)
    result.seconds = time.perf_counter() - t0
    losses = [r["loss"] for r in result.log]
    result.mean_loss = sum(losses) / len(losses) if losses else None
    return result


def _save(trainer: Trainer, store, path: Path, meta: dict, log_rows: list[dict]) -> None:
    # The log rows of these steps are written before the checkpoint that covers them: after a crash the
    # steps are recomputed identically and their rows are skipped by key, so nothing doubles.
    trainer.append_log(store, log_rows)
    trainer.save(path, meta)
