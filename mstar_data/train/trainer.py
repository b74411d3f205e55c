"""The SFT trainer: one iteration's training set in, one checkpoint out, resumable at step granularity.

Methods (how an iteration starts):
- continuous: the previous iteration's model, optimizer state and LR schedule carry over; the schedule
  runs over the whole run (`total_steps`), so training is one continuous optimisation (M-STAR).
- iterative-rft: the previous iteration's weights, a fresh optimizer and schedule.
- rest-em: the base model every iteration, a fresh optimizer and schedule.

The batch order of iteration k is a pure function of (seed, k), so a run resumed from a step checkpoint
sees the same batches, LRs and steps as one that never stopped. On GPU we keep fp32 master weights and
autocast to bf16; on CPU everything is fp32.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mstar_data.train import checkpoint as ckpt
from mstar_data.train.batches import PromptCache, SFTExample, sft_batch

METHODS = ("continuous", "iterative-rft", "rest-em")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["continuous", "iterative-rft", "rest-em"] = Field("continuous", description="How an iteration starts.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW).")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine floor, as a fraction of lr.")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up steps (once per schedule).")
    total_steps: int | None = Field(None, ge=1, description="Schedule horizon; continuous: the whole run. "
                                    "None: constant LR after warm-up.")
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


def lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if not cfg.total_steps:
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def steps_for(n_examples: int, cfg: TrainConfig) -> int:
    steps = math.ceil(cfg.epochs * n_examples / (cfg.batch_size * cfg.grad_accum)) if n_examples else 0
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def batch_order(n: int, n_micro: int, batch_size: int, seed: int, iteration: int) -> list[list[int]]:
    """Micro-batches of example indices: shuffled passes, concatenated, cut to size. Pure in its inputs."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
    flat: list[int] = []
    while len(flat) < n_micro * batch_size:
        flat += torch.randperm(n, generator=g).tolist()
    return [flat[i * batch_size:(i + 1) * batch_size] for i in range(n_micro)]


def _start_point(cfg: TrainConfig, final: Path, policy_in: str, base_policy: str):
    """(model folder to load weights from, folder whose optimizer/scheduler to restore or None)."""
    step = ckpt.latest_step(final)
    if step is not None:
        return step, step
    if cfg.method == "rest-em":
        return Path(base_policy), None
    carry = cfg.method == "continuous" and ckpt.has_trainer_state(Path(policy_in))
    return Path(policy_in), (Path(policy_in) if carry else None)


def sft_loss(policy, examples: list[SFTExample], cache: PromptCache):
    """Next-token cross-entropy on the completion tokens; (loss, tokens it covers)."""
    batch = sft_batch(policy, examples, cache)
    return policy.model(**batch, use_cache=False).loss, int((batch["labels"] != -100).sum())


def train_iteration(store, examples: list, *, run: str, iteration: int, policy_in: str,
                    base_policy: str | None = None, cfg: TrainConfig, checkpoints: Path | None = None,
                    out: Path | None = None, device: str | None = None, progress=None,
                    extra_meta: dict | None = None, loss_fn=sft_loss) -> TrainResult:
    """Train on `examples` into `out` (default `<checkpoints>/<run>/it-000k`). `loss_fn(policy, examples,
    cache) -> (loss, n_tokens)` is the objective: SFT by default, the PRM's step loss for `mstar prm train`."""
    import torch

    from mstar_data.models.loading import load_policy

    final = Path(out) if out is not None else ckpt.iteration_dir(checkpoints, run, iteration)
    if ckpt.is_complete(final):  # already trained: a rerun after a crash goes straight on
        meta = ckpt.read_meta(final)
        return TrainResult(str(final), meta.get("steps", 0), meta.get("global_step", 0), n_examples=len(examples))
    t0 = time.perf_counter()
    weights, state_from = _start_point(cfg, final, policy_in, base_policy or policy_in)
    policy = load_policy(weights, device=device, dtype="fp32")
    model = policy.model
    torch.manual_seed(cfg.seed * 7919 + iteration)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    local_start, global_step, resumed = 0, 0, None
    if state_from is not None:
        meta = ckpt.load_trainer_state(state_from, opt, sched)
        global_step = meta.get("global_step", 0)
        if state_from.parent.name.endswith(".steps"):  # a mid-iteration checkpoint of this iteration
            local_start = meta["local_step"]
            resumed = global_step
    n_steps = steps_for(len(examples), cfg)
    order = batch_order(len(examples), n_steps * cfg.grad_accum, cfg.batch_size, cfg.seed, iteration)
    result = TrainResult(str(final), steps=n_steps, resumed_from=resumed, n_examples=len(examples))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if policy.device.startswith("cuda")
                else torch.autocast("cpu", enabled=False))
    task = progress.add_task(f"train it{iteration}", total=n_steps, completed=local_start, rate="") if progress else None
    pending: list[dict] = []
    cache = PromptCache()
    model.train()
    for local in range(local_start, n_steps):
        t_step = time.perf_counter()
        loss_sum, n_tok = 0.0, 0
        for micro in order[local * cfg.grad_accum:(local + 1) * cfg.grad_accum]:
            with autocast:
                loss, tokens = loss_fn(policy, [examples[i] for i in micro], cache)
                loss = loss / cfg.grad_accum
            loss.backward()
            loss_sum += loss.item()
            n_tok += tokens
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        global_step += 1
        pending.append({"run_id": run, "iteration": iteration, "step": global_step, "local_step": local + 1,
                        "loss": loss_sum, "lr": lr, "n_tokens": n_tok, "seconds": time.perf_counter() - t_step,
                        "created_at": datetime.now(timezone.utc)})
        if progress:
            progress.update(task, completed=local + 1, rate=f"loss {loss_sum:.3f} lr {lr:.2e}")
        if (local + 1) % cfg.save_every == 0 and local + 1 < n_steps:
            _save(ckpt.steps_dir(final) / f"step-{local + 1:06d}", policy, opt, sched,
                  {"local_step": local + 1, "global_step": global_step, "steps": n_steps}, store, pending)
            result.log += pending
            pending = []
    model.eval()
    meta = {"local_step": n_steps, "global_step": global_step, "steps": n_steps, "method": cfg.method,
            "run": run, "iteration": iteration, "policy_in": str(policy_in), "config": cfg.model_dump(),
            **(extra_meta or {})}
    _save(final, policy, opt, sched, meta, store, pending)
    result.log += pending
    shutil.rmtree(ckpt.steps_dir(final), ignore_errors=True)
    result.global_step = global_step
    result.seconds = time.perf_counter() - t0
    losses = [r["loss"] for r in result.log]
    result.mean_loss = sum(losses) / len(losses) if losses else None
    return result


def _save(path: Path, policy, opt, sched, meta: dict, store, log_rows: list[dict]) -> None:
    # The log rows of these steps are written before the checkpoint that covers them: after a crash the
    # steps are recomputed identically and their rows are skipped by key, so nothing doubles.
    if log_rows:
        store.append("train_log", log_rows)
    ckpt.save(path, policy.model, policy.processor, opt, sched, meta)
