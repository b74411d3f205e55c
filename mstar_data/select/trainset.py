"""Training sets: a sql/ view over rollouts, pinned to a Lance version and tagged, turned into SFT examples.

The `rollouts` version an iteration trains on is tagged `<run>.it0003` (the `iterations` table names it),
so any iteration's training rows can be rebuilt exactly, and a rerun after a crash trains on the same rows
even if more rollouts have landed since.
"""

from __future__ import annotations

import re

from mstar_data.errors import MstarError
from mstar_data.inputs import query_inputs
from mstar_data.sql_views import load_sql_files, run_view
from mstar_data.models.batches import SFTExample


def tag_name(run: str, iteration: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', run)}.it{iteration:04d}"


def pin_trainset(store, run: str, iteration: int) -> tuple[int, str]:
    """(rollouts version, tag): the tagged version if this iteration was pinned before, else the current one."""
    tag = tag_name(run, iteration)
    ds = store.dataset("rollouts")
    tags = ds.tags.list()
    if tag in tags:
        return tags[tag]["version"], tag
    ds.tags.create(tag, ds.version)
    return ds.version, tag


def trainset_params(recipe: dict, iteration: int) -> dict:
    """The view parameters an iteration's training set is built with, from a resolved recipe as JSON (what
    `runs.recipe` holds): the loop binds them, and `mstar export cot` rebuilds the same rows with them. A key
    a recorded recipe lacks is left out, so the view's own default applies."""
    s = recipe.get("select", {})
    params = {"k": s.get("k"), "alpha": s.get("alpha"), "seed": recipe["run"]["seed"] + iteration,
              "correct_only": s.get("correct_only"), "refine_k": s.get("refine_k"), "select_k": s.get("select_k")}
    return {k: v for k, v in params.items() if v is not None}


def trainset_examples(store, view: str, *, run: str, iteration: int, version: int | None = None,
                      params: dict | None = None) -> list[SFTExample]:
    if view not in load_sql_files():
        raise MstarError(f"unknown training-set view '{view}' (see `mstar sql --list`)")
    rows = run_view(store, view, versions={"rollouts": version} if version else None, run=run, iteration=iteration,
                    **(params or {})).to_pylist()
    if not rows:
        return []
    inputs = query_inputs(store, (r["query_id"] for r in rows))
    if "kind" in rows[0]:  # a reflection view (sql/trainset_r3v.sql): the row says how to word the example
        from mstar_data.select.r3v import example_text

        examples = []
        for r in rows:
            q = inputs[r["query_id"]]
            prompt, target = example_text(r, q.prompt)
            examples.append(SFTExample(prompt, q.image, target))
        return examples
    return [SFTExample(inputs[r["query_id"]].prompt, inputs[r["query_id"]].image, r["response"]) for r in rows]
