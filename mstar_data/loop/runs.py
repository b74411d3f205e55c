"""The run record: the resolved recipe goes in `runs` once, and a rerun with a different one is refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from mstar_data.errors import MstarError
from mstar_data.loop.recipe import recipe_diff, recipe_json
from mstar_data.store.predicates import equals


def recorded(store, recipe) -> tuple[bool, str | None]:
    """(is the run id recorded, why `recipe` may not run under it or None). Reads only."""
    run = recipe.run.id
    stored = store.dataset("runs").to_table(filter=equals("run_id", run)).to_pylist()
    if not stored:
        return False, None
    diff = recipe_diff(stored[0]["recipe"], recipe)
    if diff:
        return True, (f"run '{run}' was recorded with a different recipe (differs in {', '.join(diff)}): "
                      f"use another run id (--run-id) or the recorded settings "
                      f"(mstar sql \"select recipe from runs where run_id = '{run}'\")")
    return True, None


def record_run(store, recipe) -> None:
    """Before any work: a new run id is recorded with its resolved recipe; a known one must match it."""
    run = recipe.run.id
    known, problem = recorded(store, recipe)
    if problem:
        raise MstarError(problem)
    if known:
        return
    store.append("runs", [{"run_id": run, "recipe": recipe_json(recipe), "created_at": datetime.now(timezone.utc),
                           "versions": json.dumps({i.name: i.version for i in store.info()})}],
                 conflict_column="recipe", source=f"run {run}")


@dataclass
class LoopResult:
    """What a loop gives back: its `iterations` rows (the val measurements), and how long it took."""

    run: str
    iterations: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def start_acc(self) -> float | None:
        return self.iterations[0]["greedy_acc"] if self.iterations else None

    @property
    def final_acc(self) -> float | None:
        return self.iterations[-1]["greedy_acc"] if self.iterations else None

    def metric(self, name: str, at: int = -1):
        """A dynamics value of one measured iteration (first: 0, last: -1), from its `metrics` JSON."""
        import json

        return json.loads(self.iterations[at]["metrics"] or "{}").get(name) if self.iterations else None
