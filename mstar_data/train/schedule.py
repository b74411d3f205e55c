"""Where each method starts and how long its LR schedule is: the one place that decides both.

    method          weights from            optimizer + schedule state    schedule horizon (steps)
    continuous      previous iteration      carried over                  the whole run, fixed once
    iterative-rft   previous iteration      fresh                         this iteration's steps
    rest-em         the base model          fresh                         this iteration's steps

A single `mstar train` or `mstar prm train` is one iteration of its method. An explicit `total_steps` always
wins. Otherwise a fresh schedule's horizon is the iteration's step count from its real training-set size,
so the LR warms up and reaches the cosine floor on the iteration's last step. Continuous fixes its horizon
when its schedule starts (the first iteration's real step count times the run's iterations) and records it
in every checkpoint's metadata: LambdaLR's state_dict holds the step but not the lambda, so later iterations
and resumes read the horizon back instead of recomputing it from a different training-set size.
A resumed step checkpoint restores everything, whatever the method.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from mstar_data.train import checkpoint as ckpt

HORIZON_KEY = "schedule_horizon"


class StartPoint(NamedTuple):
    weights: Path             # model folder to load
    state_from: Path | None   # checkpoint whose optimizer, scheduler, RNG and step counters to restore


def start_point(cfg, final: Path, policy_in: str, base_policy: str) -> StartPoint:
    step = ckpt.latest_step(final)
    if step is not None:  # a step checkpoint of this very training: go on from it
        return StartPoint(step, step)
    if cfg.method == "rest-em":
        return StartPoint(Path(base_policy), None)
    carry = cfg.method == "continuous" and ckpt.has_trainer_state(Path(policy_in))
    return StartPoint(Path(policy_in), Path(policy_in) if carry else None)


def is_resume(start: StartPoint) -> bool:
    """Whether the state comes from a mid-iteration step checkpoint (not from the previous iteration)."""
    return start.state_from is not None and start.state_from.parent.name.endswith(".steps")


def steps_for(n_examples: int, cfg) -> int:
    steps = math.ceil(cfg.epochs * n_examples / (cfg.batch_size * cfg.grad_accum)) if n_examples else 0
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def schedule_horizon(cfg, n_steps: int, *, iterations: int = 1, carried: dict | None = None) -> int:
    """Steps of the LR schedule that this training runs in. `n_steps`: this training's step count;
    `carried`: the metadata of the checkpoint whose scheduler state is restored (None: a fresh schedule)."""
    if cfg.total_steps:
        return cfg.total_steps
    if carried and carried.get(HORIZON_KEY):
        return carried[HORIZON_KEY]
    if cfg.method == "continuous":
        return max(1, n_steps * iterations)
    return max(1, n_steps)


def lr_lambda(cfg, total_steps: int | None = None):
    """LR factor at scheduler step s (0-based: step s+1 trains with it). Linear warm-up, then a cosine that
    reaches `min_lr_ratio` on the last step of the horizon (`total_steps`, else cfg's); none: constant."""
    total = total_steps or cfg.total_steps
    warmup = cfg.warmup_steps

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if not total:
            return 1.0
        span = total - 1 - warmup
        progress = min(1.0, (step - warmup) / span) if span > 0 else 1.0
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f
