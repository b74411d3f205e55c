"""The shard-commit ledger: which shards of a job have had their rows committed (the Ray executor's record).

One row per (scope, shard_id) in the `shard_ledger` table (schema.SHARD_LEDGER). Only the driver writes it,
right after it commits a shard's fragments, through Store.append (keyed, so recording a shard twice adds
nothing). A store made before the ledger existed gains the table the first time a job needs it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from mstar_data.schema import SHARD_LEDGER
from mstar_data.store.predicates import equals

TABLE = "shard_ledger"


def ensure_ledger(store) -> None:
    """Create the ledger table in a store from an older release (Store.init creates every missing table;
    a store opened with create=False skips it). Racing creators are handled by Store.init."""
    if TABLE not in store.table_names():
        store.init()


def committed_shards(store, scope: str) -> set[str]:
    """The shard ids of `scope` already in the ledger."""
    ensure_ledger(store)
    if store.count(TABLE) == 0:
        return set()
    return set(store.stored_keys(TABLE, where=equals("scope", scope)).column("shard_id").to_pylist())


def record_shard(store, *, scope: str, shard_id: str, shard_index: int, table: str, n_rows: int,
                 table_version: int | None, outcome: str = "committed") -> int:
    """Record one finished shard; returns the ledger rows written (0: it was recorded already)."""
    return store.append(TABLE, [{
        "scope": scope, "shard_id": shard_id, "table_name": table, "shard_index": shard_index,
        "n_rows": n_rows, "table_version": table_version, "outcome": outcome,
        "committed_at": datetime.now(timezone.utc),
    }])


__all__ = ["TABLE", "SHARD_LEDGER", "ensure_ledger", "committed_shards", "record_shard"]
