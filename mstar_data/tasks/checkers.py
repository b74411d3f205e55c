"""Step checkers: tasks whose reasoning steps can be checked against the truth (the faithful-reasoning metric).

A query's `meta` says whether its task has a checker; `checker_spec` turns it into a compact JSON string that
travels with the query row (`select_queries` adds it as `checker`), and `check_steps` gives one bool per step,
or None when the task has no checker. Rollouts get the result as `steps_valid` when written (docs/prm.md).
"""

from __future__ import annotations

import json

from mstar_data.tasks import shapes


def checker_spec(meta: str | dict | None) -> str | None:
    """The checker a query's meta supports, as JSON (None: its steps cannot be checked)."""
    try:
        m = json.loads(meta) if isinstance(meta, str) else meta
    except ValueError:
        return None
    if isinstance(m, dict) and m.get("variant") in shapes.VARIANTS and isinstance(m.get("counts"), dict):
        return json.dumps({"task": "shapes", "counts": m["counts"]}, sort_keys=True)
    return None


def check_steps(spec: str | None, question: str, steps: list[str] | None) -> list[bool] | None:
    if not spec or steps is None:
        return None
    s = json.loads(spec)
    if s.get("task") == "shapes":
        return shapes.check_steps(question, {k: int(v) for k, v in s["counts"].items()}, steps)
    return None


def query_checker(q: dict) -> str | None:
    """The checker of a query row, from its `checker` field, or its `meta` when the row carries that."""
    if q.get("checker") is not None:
        return q["checker"]
    return checker_spec(q.get("meta"))
