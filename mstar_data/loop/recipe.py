"""Recipes: pydantic models hold the defaults, a TOML file overrides them, `--set a.b=v` overrides the file.

Unknown keys are refused (a typo in a recipe is an error, not a silently ignored setting). Field
descriptions are the documentation; the recipe files repeat them. `mstar validate RECIPE...` checks a recipe
without running it (its views EXPLAINed, its model folders and backend looked for: loop/validate.py), and
`mstar evolve` runs the same checks before its first step.

Relative paths in a recipe (`run.base_policy`, `prm.path`) resolve against the artifacts root (`--artifacts`,
else MSTAR_ARTIFACTS, else the local store's folder), never the working directory: loop/validate.py
`resolve_path` is the one rule, and errors name the recipe key.

What a run records is the RESOLVED recipe (every default, the file, `--set` and `--smoke` applied) as JSON in
`runs.recipe`: a rerun of a run id with anything different is refused, naming the keys that differ.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mstar_data.errors import MstarError
from mstar_data.train.trainer import TrainConfig


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSection(Section):
    method: Literal["mstar"] = Field("mstar", description="mstar: the self-evolving loop (with its baselines, by "
                                     "train.method); grpo: online RL (loop/grpo_recipe.py).")
    id: str = Field("mstar", description="Run id: tags every rollout, checkpoint and iterations row.")
    seed: int = Field(0, description="Base seed for sampling, selection and training.")
    base_policy: str = Field(description="Starting model folder (after warm-up).")
    memory_plan: Literal["auto", "one-model", "keep-loaded"] = Field(
        "auto", description="one-model: release the sampling engine before training and before the PRM loads, "
        "and the PRM after scoring (one GPU); keep-loaded: keep them between stages; auto: one-model on CUDA.")


class DataSection(Section):
    train_split: str = Field("train", description="Labelled queries explored each iteration.")
    val_split: str = Field("val", description="Held-out queries for dynamics and the temperature search.")
    dataset: str | None = Field(None, description="Only queries of this dataset (default: all).")
    interval: float = Field(0.25, gt=0, le=1, description="Fraction of the labelled queries used per iteration.")
    iterations: int = Field(4, ge=1, description="Number of self-evolving iterations.")
    train_limit: int | None = Field(None, ge=1, description="Use only the first M train queries.")
    val_limit: int | None = Field(None, ge=1, description="Use only the first M val queries.")
    # Unlabelled prompts with pseudo-labels (M-STAR Table 3): mstar_data/loop/unlabeled.py, docs/unlabeled.md.
    unlabeled_split: str = Field("unlabeled", description="Queries without answers, pseudo-labelled by the loop.")
    unlabeled_ratio: float = Field(0.0, ge=0, lt=1, description="Share of each iteration's explored queries drawn "
                                   "from data.unlabeled_split once they join (0: labelled queries only).")
    unlabeled_start: float = Field(0.0, ge=0, le=1, description="Fraction of the run after which unlabelled "
                                   "queries join: iteration k of N takes them once k-1 >= floor(start * N).")
    pseudo_label: Literal["weighted_vote", "oracle"] = Field(
        "weighted_vote", description="weighted_vote: the PRM-weighted vote of the samples (a majority vote without "
        "a PRM); oracle: the true answer held aside in queries.meta.held_out_answer (the skyline).")


class SampleSection(Section):
    n: int = Field(16, ge=1, description="Responses sampled per query (M-STAR: 16).")
    temperature: float = Field(1.0, ge=0, description="Starting temperature (the search moves it only when "
                               "another T is better beyond the noise: docs/temperature.md).")
    max_new_tokens: int = Field(512, ge=1)
    batch_size: int = Field(32, ge=1)
    backend: Literal["hf", "lmdeploy", "vllm"] = "hf"


class SelectSection(Section):
    view: str = Field("trainset_top_k", description="Training-set view in sql/ (trainset_top_k, trainset_threshold, "
                      "trainset_random_k, trainset_all_correct, trainset_r3v; trainset_faithful_k: "
                      "by the task's step checker, the skyline of a PRM that sees every wrong step).")
    k: int = Field(2, ge=1, description="Responses kept per query (top-K / random-K).")
    alpha: float = Field(0.5, description="PRM score threshold (trainset_threshold).")
    correct_only: bool = Field(True, description="trainset_random_k: false draws wrong answers too (the control).")
    refine_k: int = Field(2, ge=0, description="trainset_r3v: self-refine examples per query (a wrong rationale "
                          "shown, a right one the target).")
    select_k: int = Field(1, ge=0, description="trainset_r3v: self-select examples per query (3 numbered "
                          "candidates, the right final answer the target).")


class TemperatureSection(Section):
    search_every: int = Field(2, ge=0, description="Search T every this many iterations (0: static T).")
    t_min: float = Field(0.3, gt=0)
    t_max: float = Field(1.6, gt=0)
    t_step: float = Field(0.1, gt=0)
    n: int = Field(4, ge=2, description="Samples per val query for each T in the search.")
    min_gain: float = Field(0.0, ge=0, le=1, description="Move off the current T only if a candidate's gain "
                            "(Reward-Pass@2, or Pass@K without a PRM) has the lower end of its paired-bootstrap "
                            "interval above this (0: above zero, i.e. beyond the sampling noise).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence of that interval (one-sided, "
                              "Bonferroni-corrected over the candidate temperatures).")
    bootstrap: int = Field(2000, ge=100, description="Bootstrap resamples of the val queries (seeded by "
                           "run.seed and the iteration).")


class EvalSection(Section):
    n: int = Field(4, ge=1, description="Samples per val query at the current T (for Pass@K, Reward-Pass@2).")
    k: int = Field(4, ge=1, description="Pass@K on val (at most eval.n: Pass@K needs K samples).")

    @field_validator("k")
    @classmethod
    def _k_within_n(cls, k: int, info):
        n = info.data.get("n")
        if n is not None and k > n:  # Pass@4 over 2 samples would be Pass@2 under another name
            raise ValueError(f"{k} is more than eval.n = {n} samples; Pass@K needs K samples (set eval.k <= eval.n)")
        return k


class PrmSection(Section):
    path: str | None = Field(None, description="PRM model folder (`mstar prm train`); none: top-K falls back to "
                             "seeded random-K and the search uses Pass@K.")
    aggregate: Literal["min", "mean", "last"] = Field("min", description="Response score from step scores.")
    batch_size: int = Field(64, ge=1, description="Rollouts per PRM forward pass.")


class Recipe(Section):
    run: RunSection
    data: DataSection = DataSection()
    sample: SampleSection = SampleSection()
    select: SelectSection = SelectSection()
    temperature: TemperatureSection = TemperatureSection()
    eval: EvalSection = EvalSection()
    prm: PrmSection = PrmSection()
    train: TrainConfig = TrainConfig()

    def temperature_grid(self) -> list[float]:
        t = self.temperature
        n = int(round((t.t_max - t.t_min) / t.t_step)) + 1
        return [round(t.t_min + i * t.t_step, 4) for i in range(n)]


def _set(tree: dict, dotted: str, value: object) -> None:
    *path, leaf = dotted.split(".")
    for part in path:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            raise MstarError(f"--set {dotted}: '{part}' is not a section")
    tree[leaf] = value


def parse_set(item: str) -> tuple[str, object]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise MstarError(f"--set '{item}': expected section.key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string
    return key.strip(), value


def recipe_model(tree: dict):
    """The recipe class a TOML tree is validated against: `run.method` picks it."""
    if isinstance(tree.get("run"), dict) and tree["run"].get("method") == "grpo":
        from mstar_data.loop.grpo_recipe import GrpoRecipe

        return GrpoRecipe
    return Recipe


def smoke_overrides(model) -> list[str]:
    if model is Recipe:
        return SMOKE
    from mstar_data.loop.grpo_recipe import GRPO_SMOKE

    return GRPO_SMOKE


def recipe_json(recipe: Recipe) -> str:
    """The resolved recipe as canonical JSON (what `runs.recipe` holds and `--print-config` prints)."""
    return json.dumps(recipe.model_dump(mode="json"), indent=1, sort_keys=True)


def _flat(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def recipe_diff(stored: str, recipe: Recipe) -> list[str]:
    """The dotted keys whose values differ between a stored run record and `recipe`. The record is resolved
    again with today's defaults: a record from before runs kept the resolved recipe (raw TOML text), or one
    made before a field was added, differs only where a value was really set differently."""
    try:
        tree = json.loads(stored)
    except json.JSONDecodeError:
        tree = tomllib.loads(stored)
    try:  # fields added since the record was made take today's defaults, so an upgrade alone is no difference
        old = recipe_model(tree).model_validate(tree).model_dump(mode="json")
    except ValidationError:
        old = tree
    new = recipe.model_dump(mode="json")
    a, b = _flat(old), _flat(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def resolve_recipe(path: str | Path, overrides: list[str] | None = None, *, smoke: bool = False,
                   run_id: str | None = None) -> Recipe:
    """The recipe a run executes: the file, then SMOKE (with --smoke), then `overrides`, then `run_id`.
    A smoke run gets its own id (`<id>-smoke`) unless the id is set explicitly, so it never shares iterations
    with the full run."""
    overrides = list(overrides or [])
    smoke_set = smoke_overrides(recipe_model(_read_tree(path)[0])) if smoke else []
    recipe, _ = load_recipe(path, smoke_set + overrides)
    explicit_id = run_id is not None or any(parse_set(o)[0] == "run.id" for o in overrides)
    if run_id is not None:
        recipe = recipe.model_copy(update={"run": recipe.run.model_copy(update={"id": run_id})})
    elif smoke and not explicit_id:
        recipe = recipe.model_copy(update={"run": recipe.run.model_copy(update={"id": f"{recipe.run.id}-smoke"})})
    return recipe


def _read_tree(path: str | Path) -> tuple[dict, str, Path]:
    path = Path(path)
    if not path.is_file():
        from mstar_data.resources import recipes_dir

        packaged = recipes_dir() / path.name
        if not packaged.is_file():
            raise MstarError(f"--recipe {path}: not found")
        path = packaged
    text = path.read_text()
    try:
        return tomllib.loads(text), text, path
    except tomllib.TOMLDecodeError as e:
        raise MstarError(f"{path}: not valid TOML ({e})") from e


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> tuple[Recipe, str]:
    """The validated recipe (a Recipe, or a GrpoRecipe for `run.method = "grpo"`) and the TOML text."""
    tree, text, path = _read_tree(path)
    for item in overrides or []:
        _set(tree, *parse_set(item))
    try:
        return recipe_model(tree).model_validate(tree), text
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"]))
        raise MstarError(f"{path}: field '{where}': {err['msg'].removeprefix('Value error, ')}") from e


# --smoke: any recipe, shrunk to finish in well under a minute on CPU (a check before booking GPUs), so on the
# hf engine (`--set sample.backend=vllm` after --smoke checks the vLLM path on a GPU box).
SMOKE = ["sample.backend='hf'", "data.iterations=2", "data.train_limit=32", "data.val_limit=16", "sample.n=2", "sample.max_new_tokens=48",
         "temperature.t_min=0.7", "temperature.t_max=1.0", "temperature.t_step=0.3", "temperature.n=2",
         "eval.n=2", "eval.k=2", "train.max_steps=4", "train.save_every=1000"]
