"""What workers read: the queries of a split (limited, sharded) and their image bytes."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from mstar_data.errors import MstarError
from mstar_data.store.predicates import all_of, equals

QUERY_COLUMNS = ["query_id", "split", "question", "choices", "answer", "answer_type", "precision", "unit",
                 "image_sha256", "reference_cot"]
HINT_KEY = "query"  # the meta field with the dataset's own prompt (MathVista), read by the benchmark variant
HELD_OUT_KEY = "held_out_answer"  # the meta field with an unlabelled query's true answer, never trained on


def benchmark_hint(meta: str | None) -> str | None:
    """The dataset's own instruction for a query (its meta's `query`), if it has one."""
    import json

    try:
        hint = json.loads(meta).get(HINT_KEY) if meta else None
    except (ValueError, AttributeError):
        return None
    return hint if isinstance(hint, str) and hint.strip() else None


def split_counts(store) -> dict[str, int]:
    """How many queries each split of the store holds."""
    splits = store.dataset("queries").to_table(columns=["split"]).column("split")
    return {r["values"]: r["counts"] for r in pc.value_counts(splits).to_pylist()}


def check_split(store, split: str | None, option: str = "--split") -> None:
    """Refuse a split the store does not hold, naming those it does (a typo would otherwise select nothing)."""
    if split is None:
        return
    counts = split_counts(store)
    if counts.get(split):
        return
    held = ", ".join(f"{k} ({v:,} queries)" for k, v in sorted(counts.items())) or "none: ingest a dataset first"
    raise MstarError(f"{option} '{split}': the store {store.uri} has no queries in that split (splits: {held})")


def check_run(store, run: str, option: str = "--run", iteration: int | None = None) -> None:
    """Refuse a run (or a run's iteration) with no rollouts in the store, naming the runs it holds."""
    from mstar_data.store.predicates import run_scope

    if store.count("rollouts", run_scope(run, iteration)):
        return
    runs = sorted(set(store.dataset("rollouts").to_table(columns=["run_id"]).column("run_id").to_pylist()))
    what = f"run '{run}'" if iteration is None else f"run '{run}' iteration {iteration}"
    shown = ", ".join(runs[:10]) + (", ..." if len(runs) > 10 else "") if runs else "none yet: run `mstar generate`"
    raise MstarError(f"{option} '{run}': the store {store.uri} has no rollouts of {what} (runs: {shown})")


def select_queries(store, *, split: str | None = None, query_ids: list[str] | None = None,
                   limit: int | None = None, shard: tuple[int, int] = (0, 1),
                   where: str | None = None) -> list[dict]:
    """Queries sorted by id; `limit` takes the first M, then shard i of n takes every n-th from i. `where` is
    a predicate from mstar_data.store.predicates."""
    table = store.dataset("queries").to_table(columns=QUERY_COLUMNS + ["meta"],
                                              filter=all_of(None if split is None else equals("split", split), where))
    from mstar_data.tasks.checkers import checker_spec

    metas = table.column("meta").to_pylist()
    hints = pa.array([benchmark_hint(m) for m in metas], pa.string())
    checkers = pa.array([checker_spec(m) for m in metas], pa.string())  # the task's step checker, if any
    table = table.drop_columns(["meta"]).append_column("hint", hints).append_column("checker", checkers)
    if query_ids is not None:
        table = table.filter(pc.is_in(table.column("query_id"), value_set=pa.array(query_ids, pa.string())))
    table = table.sort_by("query_id")
    if limit is not None:
        table = table.slice(0, limit)
    rows = table.to_pylist()
    i, n = shard
    return rows[i::n]


def images_by_sha(store, shas: set[str]) -> dict[str, bytes]:
    """Image bytes for the given hashes, read as Lance blobs (only the rows asked for)."""
    shas = {s for s in shas if s}
    if not shas:
        return {}
    ds = store.dataset("images")
    keys = ds.to_table(columns=["image_sha256"], with_row_id=True)
    mask = pc.is_in(keys.column("image_sha256"), value_set=pa.array(sorted(shas), pa.string()))
    hits = keys.filter(mask)
    row_ids = hits.column("_rowid").to_pylist()
    found = dict(zip(hits.column("image_sha256").to_pylist(), (b.readall() for b in ds.take_blobs("image", ids=row_ids))))
    missing = shas - found.keys()
    if missing:
        raise MstarError(f"images table has no image {sorted(missing)[0]} (referenced by queries.image_sha256)")
    return found


@dataclass
class QueryInput:
    query: dict          # the QUERY_COLUMNS of the row
    prompt: str          # the chain-of-thought user prompt (prompts.build_prompt)
    image: bytes | None


def query_inputs(store, query_ids, variant: str = "cot") -> dict[str, QueryInput]:
    """Prompt and image bytes per query id: what every model pass over stored rollouts feeds the model (the
    prompt of `variant`: the PRM reads the `question` alone)."""
    from mstar_data.prompts import build_prompt

    queries = select_queries(store, query_ids=sorted(set(query_ids)))
    images = images_by_sha(store, {q["image_sha256"] for q in queries})
    return {q["query_id"]: QueryInput(q, build_prompt(q["question"], q["choices"], variant=variant), images.get(q["image_sha256"]))
            for q in queries}
