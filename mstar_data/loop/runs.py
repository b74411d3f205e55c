"""The run record: the resolved recipe goes in `runs` once, and a rerun with a different one is refused."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from mstar_data.errors import MstarError
from mstar_data.loop.recipe import recipe_diff, recipe_json
from mstar_data.store.predicates import equals


def record_run(store, recipe) -> None:
    """Before any work: a new run id is recorded with its resolved recipe; a known one must match it."""
    run = recipe.run.id
    stored = store.dataset("runs").to_table(filter=equals("run_id", run)).to_pylist()
    if stored:
        diff = recipe_diff(stored[0]["recipe"], recipe)
        if diff:
            raise MstarError(f"run '{run}' was recorded with a different recipe (differs in {', '.join(diff)}): "
                             f"use another run id (--run-id) or the recorded settings "
                             f"(mstar sql \"select recipe from runs where run_id = '{run}'\")")
        return
    store.append("runs", [{"run_id": run, "recipe": recipe_json(recipe), "created_at": datetime.now(timezone.utc),
                           "versions": json.dumps({i.name: i.version for i in store.info()})}],
                 conflict_column="recipe", source=f"run {run}")
