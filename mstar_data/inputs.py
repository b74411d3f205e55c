"""What workers read: the queries of a split (limited, sharded) and their image bytes."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from mstar_data.errors import MstarError
from mstar_data.store.predicates import all_of, equals

QUERY_COLUMNS = ["query_id", "split", "question", "choices", "answer", "answer_type", "precision", "unit",
                 "image_sha256", "reference_cot"]


def select_queries(store, *, split: str | None = None, query_ids: list[str] | None = None,
                   limit: int | None = None, shard: tuple[int, int] = (0, 1),
                   where: str | None = None) -> list[dict]:
    """Queries sorted by id; `limit` takes the first M, then shard i of n takes every n-th from i. `where` is
    a predicate from mstar_data.store.predicates."""
    table = store.dataset("queries").to_table(columns=QUERY_COLUMNS,
                                              filter=all_of(None if split is None else equals("split", split), where))
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


def query_inputs(store, query_ids) -> dict[str, QueryInput]:
    """Prompt and image bytes per query id: what every model pass over stored rollouts feeds the model."""
    from mstar_data.prompts import build_prompt

    queries = select_queries(store, query_ids=sorted(set(query_ids)))
    images = images_by_sha(store, {q["image_sha256"] for q in queries})
    return {q["query_id"]: QueryInput(q, build_prompt(q["question"], q["choices"]), images.get(q["image_sha256"]))
            for q in queries}
