"""Every Lance filter the toolkit pushes down, built here and nowhere else.

Values are quoted by `literal`, so a run id or split name with a quote in it is data, never SQL. Functions
return None for "no filter", which Lance reads as all rows.
"""

from __future__ import annotations


def literal(value: object) -> str:
    """A SQL literal (Lance filters and DuckDB share the syntax)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def all_of(*parts: str | None) -> str | None:
    kept = [f"({p})" for p in parts if p]
    return " AND ".join(kept) or None


def ids_in(column: str, values: list) -> str:
    """`column IN (...)` of literal values."""
    return f"{column} IN ({', '.join(literal(v) for v in values)})"


def equals(column: str, value: object) -> str:
    return f"{column} IS NULL" if value is None else f"{column} = {literal(value)}"


def run_scope(run: str, iteration: int | None = None, stage: str | None = None) -> str:
    """Rows of one run, optionally one iteration and one stage (a rollout id hashes all three, so this slice
    holds every key a sampling job can collide with)."""
    return all_of(equals("run_id", run),
                  None if iteration is None else f"iteration = {int(iteration)}",
                  None if stage is None else equals("stage", stage))


def queries_where(split: str | None = None, dataset: str | None = None, with_reference_cot: bool = False) -> str | None:
    return all_of(None if split is None else equals("split", split),
                  None if dataset is None else equals("dataset", dataset),
                  "reference_cot IS NOT NULL" if with_reference_cot else None)


def rollouts_to_score(run: str, iteration: int | None, stage: str | None, *, correct_only: bool,
                      sampled_only: bool, unjudged_only: bool = False) -> str:
    """What `prm score` reads: a run's rollouts (every stage but the MC continuations unless one is named).
    `unjudged_only`: those without a gold verdict (unlabelled queries, whose weighted vote weighs them all)."""
    return all_of(run_scope(run, iteration, stage),
                  None if stage else "stage <> 'mc'",
                  "correct = true AND format_ok = true" if correct_only else None,
                  "correct IS NULL" if unjudged_only else None,
                  "temperature > 0" if sampled_only else None)


def unlabelled_to_judge(run: str, iteration: int, stage: str) -> str:
    """Rollouts of one iteration with no gold verdict and no pseudo verdict yet (what pseudo-judging reads)."""
    return all_of(run_scope(run, iteration, stage), "correct IS NULL", "pseudo_correct IS NULL")


def judged_in(run: str, iteration: int, stage: str) -> str:
    return all_of(run_scope(run, iteration, stage), "correct IS NOT NULL")


def jobs_of(kind: str, run: str) -> str:
    return all_of(equals("kind", kind), equals("run_id", run))
