"""The GRPO recipe: pydantic models hold the defaults, a TOML file with `run.method = "grpo"` overrides them,
`--set` overrides the file (the same rules as the M-STAR recipe in loop/recipe.py: unknown keys refused, the
resolved recipe is the run record)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mstar_data.loop.recipe import RunSection, Section
from mstar_data.train.trainer import TrainConfig


class GrpoRun(RunSection):
    method: Literal["grpo"] = "grpo"


class GrpoData(Section):
    train_split: str = Field("train", description="Labelled queries the policy is trained on.")
    val_split: str = Field("val", description="Held-out queries (greedy accuracy before and after).")
    dataset: str | None = Field(None, description="Only queries of this dataset (default: all).")
    train_limit: int | None = Field(None, ge=1, description="Use only the first M train queries (by id).")
    val_limit: int | None = Field(None, ge=1, description="Use only the first M val queries.")


class GrpoSample(Section):
    group_size: int = Field(8, ge=2, description="G: completions sampled per query (one group).")
    batch_queries: int = Field(16, ge=1, description="B: queries per step (the global batch is B x G rollouts).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    max_new_tokens: int = Field(512, ge=1)
    batch_size: int = Field(64, ge=1, description="Requests per engine call.")
    backend: Literal["hf", "vllm"] = Field("hf", description="hf (tested on CPU and GPU) or vllm (weights "
                                           "pushed to the engine after every step).")
    prompt_variant: Literal["r1", "cot"] = Field("r1", description="r1: <think>/<answer>; cot: steps + '# Answer'.")


class RewardsSection(Section):
    accuracy: float = Field(1.0, description="Weight of the accuracy reward (the judge on the answer).")
    format: float = Field(1.0, description="Weight of the format reward (full match of the prompt variant's "
                          "format: <think>…</think><answer>…</answer> for r1, steps + '# Answer' for cot).")
    custom: dict[str, float] = Field(default_factory=dict, description="More reward functions by dotted path, "
                                     "with their weights: (response, query row) -> float | None.")
    shuffle: bool = Field(False, description="A control: shuffle the total rewards within each step's batch "
                          "(the policy learns nothing real from them).")


class GrpoSection(Section):
    steps: int = Field(100, ge=1, description="GRPO steps (generation batches).")
    mu: int = Field(1, ge=1, description="Optimisation passes over each generation batch (old log-probs are "
                    "recomputed once per batch when mu > 1 or mini_batches > 1).")
    mini_batches: int = Field(1, ge=1, description="Optimizer steps per pass: the generation batch is cut into this "
                              "many mini-batches of whole groups (TRL's steps_per_generation, verl's "
                              "ppo_mini_batch_size); each step is normalised over its own mini-batch.")
    epsilon_low: float = Field(0.2, ge=0, description="Clip the ratio below at 1 - epsilon_low.")
    epsilon_high: float = Field(0.2, ge=0, description="Clip the ratio above at 1 + epsilon_high (clip-higher).")
    beta: float = Field(0.04, ge=0, description="k3 KL weight to the frozen base policy (0: no reference).")
    aggregation: Literal["token_mean", "seq_mean_token_mean", "dr_grpo"] = Field(
        "token_mean", description="token_mean: over the global batch's tokens; seq_mean_token_mean: per "
        "sequence, then over sequences (GRPO paper); dr_grpo: token sum / (sequences x max_new_tokens).")
    scale: Literal["group", "batch", "none"] = Field("group", description="Advantage = (r - group mean) / std of "
                                                     "the group, of the batch, or 1.")
    mask_truncated: bool = Field(False, description="Completions cut at max_new_tokens get no loss.")
    dynamic_sampling: bool = Field(False, description="Drop zero-variance groups and refill the batch with more "
                                   "queries (DAPO), up to max_tries draws.")
    max_tries: int = Field(3, ge=1, description="Draws of B queries per step with dynamic sampling.")
    freeze_vision: bool = Field(False, description="Train only the language model (the vision tower's "
                                "parameters are frozen and stay bit-identical).")
    save_every: int = Field(10, ge=1, description="Steps between checkpoints (a rerun resumes from the last).")
    val_every: int = Field(0, ge=0, description="Greedy accuracy on val every this many steps (0: at the start "
                           "and the end only).")


class GrpoTrain(TrainConfig):
    """The optimiser of a GRPO run: each pass over a generation batch is `grpo.mini_batches` optimizer steps
    (micro-batches of `batch_size` rollouts accumulate into each)."""

    lr: float = Field(1e-6, gt=0, description="Peak learning rate (AdamW).")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up, in optimizer steps.")
    min_lr_ratio: float = Field(1.0, ge=0, le=1, description="Cosine floor as a fraction of lr (1.0: constant).")
    batch_size: int = Field(16, ge=1, description="Rollouts per micro-batch.")


class GrpoRecipe(Section):
    run: GrpoRun
    data: GrpoData = GrpoData()
    sample: GrpoSample = GrpoSample()
    rewards: RewardsSection = RewardsSection()
    grpo: GrpoSection = GrpoSection()
    train: GrpoTrain = GrpoTrain()


# --smoke for a GRPO recipe: a few steps of a few queries, short completions.
GRPO_SMOKE = ["grpo.steps=3", "sample.batch_queries=4", "sample.group_size=4", "sample.max_new_tokens=48",
              "data.train_limit=32", "data.val_limit=16", "grpo.save_every=2"]
