"""The store: Lance tables with keyed idempotent writes (tables.py) and every Lance filter the code uses,
built in one place (predicates.py)."""

from mstar_data.store.tables import (COMPACT_AFTER_FRAGMENTS, DEFAULT_URI, Store, TableInfo, is_remote,
                                     resolve_uri, storage_options)

__all__ = ["COMPACT_AFTER_FRAGMENTS", "DEFAULT_URI", "Store", "TableInfo", "is_remote", "resolve_uri",
           "storage_options"]
