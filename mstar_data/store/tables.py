"""The dataset store: LanceDB tables with idempotent, batched appends.

A store is a LanceDB database at a URI: a local folder (the default, `./mstar-store`) or an object store
(`s3://bucket/prefix`, with the usual AWS_* variables, AWS_ENDPOINT_URL included, passed through to Lance).
Every write is keyed (schema.KEYS): rows whose key is already stored are skipped, so rerunning any stage
after a crash writes no duplicates. A write that would add nothing writes nothing, and leaves the table
version alone.
"""

from __future__ import annotations

import errno
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from mstar_data.errors import InputError, StoreError
from mstar_data.interrupts import uninterrupted
from mstar_data.schema import KEY_NULLS, KEYS, TABLES, conform

DEFAULT_URI = "./mstar-store"
# Compact a table once it holds more than this many fragments (each append makes at least one).
COMPACT_AFTER_FRAGMENTS = 64
# Tries of a compaction that lost a commit race to another writer's (Store.maybe_compact).
COMPACT_ATTEMPTS = 3

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_DEFAULT_REGION": "aws_region",
    "AWS_REGION": "aws_region",
    "AWS_ENDPOINT_URL": "aws_endpoint",
    "AWS_ENDPOINT_URL_S3": "aws_endpoint",  # the S3-only endpoint wins over the general one, as in the AWS SDKs
    "AWS_ALLOW_HTTP": "allow_http",
}


def resolve_uri(uri: str | None) -> str:
    """--store, else MSTAR_STORE, else ./mstar-store."""
    return uri or os.environ.get("MSTAR_STORE") or DEFAULT_URI


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def storage_options(uri: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """Object-store settings for Lance, taken from the AWS_* environment variables."""
    if not is_remote(uri):
        return {}
    env = os.environ if env is None else env
    opts: dict[str, str] = {}
    for var, key in _AWS_ENV.items():  # later entries win: AWS_REGION over AWS_DEFAULT_REGION
        if env.get(var):
            opts[key] = env[var]
    if opts.get("aws_endpoint", "").startswith("http://"):
        opts.setdefault("allow_http", "true")
    return opts


def _check_local_folder(uri: str, create: bool) -> None:
    """A local store is a new or empty folder, or one that holds tables (*.lance): never a folder of other
    files, which `init` would fill with tables beside the user's own."""
    path = Path(uri.removeprefix("file://"))
    if not create and not path.exists():
        raise StoreError(f"no store at {uri}: run `mstar init --store {uri}` or ingest data first")
    if path.exists() and not path.is_dir():
        raise StoreError(f"--store {uri}: is a file, not a folder; give a new or empty folder, or an existing store")
    if path.is_dir():
        entries = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
        if entries and not any(name.endswith(".lance") for name in entries):
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise StoreError(f"--store {uri}: folder holds files that are not a store ({shown}); give a new or "
                             f"empty folder, or an existing store")


def _is_commit_conflict(e: BaseException) -> bool:
    """A Lance commit that lost to a concurrent one (pylance raises a plain OSError for some of them)."""
    from lance.commit import CommitConflictError

    return isinstance(e, CommitConflictError) or "commit conflict" in str(e).lower()


def _is_disk_full(e: OSError) -> bool:
    """ENOSPC or EDQUOT, as an OSError's errno or in the message of one that Lance (Rust) raises."""
    import errno

    return e.errno in (errno.ENOSPC, errno.EDQUOT) or any(
        m in str(e).lower() for m in ("no space left on device", "os error 28", "disk quota exceeded"))


@dataclass
class TableInfo:
    name: str
    rows: int
    version: int
    fragments: int


def _key_strings(table: pa.Table, key: tuple[str, ...]) -> pa.Array:
    if len(key) == 1:
        return table.column(key[0]).combine_chunks()
    # A key column added to an older table reads NULL there: it means what schema.KEY_NULLS says.
    parts = [pc.fill_null(pc.cast(table.column(k), pa.string()), KEY_NULLS.get(k, "")) for k in key]
    return pc.binary_join_element_wise(*parts, "\x1f")


class Store:
    compact_after = COMPACT_AFTER_FRAGMENTS  # fragments a table may hold before a write compacts it

    def __init__(self, uri: str | None = None, *, create: bool = True):
        import lancedb

        self.uri = resolve_uri(uri)
        if not is_remote(self.uri):
            _check_local_folder(self.uri, create)
        self.storage_options = storage_options(self.uri)
        self.db = lancedb.connect(self.uri, storage_options=self.storage_options or None)
        self.created = self.init() if create else []

    # -- tables ---------------------------------------------------------------------------------
    def table_names(self) -> list[str]:
        return list(self.db.list_tables().tables)

    def init(self) -> list[str]:
        """Create every table that is missing. Returns the names created."""
        existing = set(self.table_names())
        created = []
        for name, schema in TABLES.items():
            if name not in existing:
                try:
                    self.db.create_table(name, schema=schema, exist_ok=True)
                    created.append(name)
                except (ValueError, OSError):
                    # Another process created it since we listed (two writers opening a new store at once, as
                    # on a shared s3:// prefix). exist_ok does not cover that for every table: the stored
                    # schema of a blob column (images) differs from the one given, so lancedb refuses.
                    if name not in self.table_names():
                        raise
            else:
                self._add_missing_columns(name, schema)
        return created

    def _add_missing_columns(self, name: str, schema: pa.Schema) -> None:
        """A store made by an older release gains the columns added since, all null (nothing is rewritten)."""
        ds = self.dataset(name)
        missing = [f for f in schema if f.name not in ds.schema.names]
        if missing:
            ds.add_columns(pa.schema(missing))

    def table(self, name: str):
        if name not in TABLES:
            raise StoreError(f"unknown table '{name}' (tables: {', '.join(TABLES)})")
        try:
            return self.db.open_table(name)
        except (FileNotFoundError, ValueError) as e:
            raise StoreError(f"store {self.uri} has no table '{name}': run `mstar init`") from e

    def dataset(self, name: str, version: int | None = None):
        """The Lance dataset behind a table (projection and filter push-down), optionally at a version."""
        ds = self.table(name).to_lance()
        return ds.checkout_version(version) if version is not None else ds

    def version(self, name: str) -> int:
        return self.table(name).version

    def count(self, name: str, where: str | None = None) -> int:
        return self.table(name).count_rows(where)

    def info(self) -> list[TableInfo]:
        out = []
        for name in TABLES:
            if name not in self.table_names():
                continue
            ds = self.dataset(name)
            out.append(TableInfo(name, ds.count_rows(), ds.version, len(ds.get_fragments())))
        return out

    # -- writes ---------------------------------------------------------------------------------
    def stored_keys(self, name: str, columns: tuple[str, ...] | None = None, where: str | None = None) -> pa.Table:
        """The key columns (plus `columns`) of the stored rows matching `where`; reads only those columns."""
        cols = list(KEYS[name]) + [c for c in (columns or ()) if c not in KEYS[name]]
        return self.dataset(name).to_table(columns=cols, filter=where)

    def new_rows(self, name: str, rows: pa.Table, *, conflict_column: str | None = None,
                 source: str = "", where: str | None = None) -> pa.Table:
        """The rows whose key is not stored yet, with duplicates inside `rows` dropped (first wins).

        With `conflict_column`, a key that is already stored (or repeated in `rows`) with a different value
        in that column is an error: the same id given twice with different content. `where` limits the
        stored keys compared against to a slice that is known to hold every possible match (a sampler job
        compares only against its own run, iteration and stage, not the whole table).
        """
        key = KEYS[name]
        keys = _key_strings(rows, key)
        # Repeats inside the batch: keep the first, refuse if the content differs.
        first = pc.equal(pc.index_in(keys, keys), pa.array(range(len(keys)), pa.int32()))
        if conflict_column and not pc.all(first).as_py():
            seen: dict[str, object] = {}
            for k, v in zip(keys.to_pylist(), rows.column(conflict_column).to_pylist()):
                if k in seen and seen[k] != v:
                    raise InputError(source or name, "given twice with different content",
                                     record=k.replace("\x1f", "/"), field=key[-1])
                seen.setdefault(k, v)
        rows, keys = rows.filter(first), keys.filter(first)
        if self.count(name) == 0:
            return rows
        stored = self.stored_keys(name, (conflict_column,) if conflict_column else None, where)
        stored_keys = _key_strings(stored, key)
        present = pc.is_in(keys, value_set=stored_keys)
        if conflict_column and pc.any(present).as_py():
            stored_val = dict(zip(stored_keys.to_pylist(), stored.column(conflict_column).to_pylist()))
            for k, v in zip(keys.filter(present).to_pylist(),
                            rows.filter(present).column(conflict_column).to_pylist()):
                if stored_val[k] != v:
                    raise InputError(source or name, "already stored with different content",
                                     record=k.replace("\x1f", "/"), field=key[-1])
        return rows.filter(pc.invert(present))

    def append(self, name: str, rows: pa.Table | list[dict], *, conflict_column: str | None = None,
               source: str = "", where: str | None = None) -> int:
        """Append the rows whose key is new. Returns how many were written (0 writes nothing).

        The key check and the append it leads to run under the table's write lock (`write_lock`), so two
        processes appending the same keys at once (two samplers on overlapping shards) store each key once.
        """
        if isinstance(rows, list):
            rows = pa.Table.from_pylist(rows, schema=TABLES[name])
        rows = conform(rows, name)
        with uninterrupted(), self.write_lock(name):
            return self.write(name, self.new_rows(name, rows, conflict_column=conflict_column, source=source,
                                                  where=where))

    @contextmanager
    def write_lock(self, name: str):
        """Hold the table's write lock: an exclusive flock on `<store>/.locks/<table>.lock`, for a local store.

        A Lance append commits whatever it is given, so "check the stored keys, then append the new ones" is
        atomic only if no other writer can append in between; this lock makes it so across processes and
        threads on one host (a new open file per call, so threads of one process exclude each other too;
        the kernel drops the lock of a killed process). It costs one open + flock + close per append (tens
        of microseconds against the append's milliseconds). An object store (s3://) has no such lock: there,
        two writers of the same keys at the same moment can still both store them (docs/reliability.md).
        """
        if is_remote(self.uri):
            yield
            return
        import fcntl

        folder = Path(self.uri.removeprefix("file://")) / ".locks"
        folder.mkdir(exist_ok=True)
        fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:  # a filesystem without locks (some network or FUSE mounts): write unlocked
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                logging.getLogger("mstar.store").warning(
                    "store %s: the filesystem has no file locks (%s); concurrent writers of the same keys may "
                    "store them twice", self.uri, e.strerror)
            yield
        finally:
            os.close(fd)  # closing the file releases the lock

    def write(self, name: str, rows: pa.Table) -> int:
        """Write rows already checked by `new_rows`, as they are."""
        if rows.num_rows == 0:
            return 0
        with uninterrupted():
            try:
                return self._write(name, rows)
            except OSError as e:
                if not _is_disk_full(e):
                    raise
                raise StoreError(f"store {self.uri}: no space left on device while writing {rows.num_rows} rows to "
                                 f"{name}; the rows committed before are kept: free some space and rerun the "
                                 f"same command to write only what is missing") from e

    def _write(self, name: str, rows: pa.Table) -> int:
        table = self.table(name)
        if len(table.schema) != len(TABLES[name]):  # a store from an older release
            self._add_missing_columns(name, TABLES[name])
            table = self.table(name)
        table.add(conform(rows, name))
        self.maybe_compact(name)
        return rows.num_rows

    def update(self, name: str, rows: pa.Table) -> int:
        """Fill in columns of stored rows (PRM scores): `rows` holds the key and the columns to set. A
        merge_insert on the key that updates only those columns and never inserts."""
        schema = TABLES[name]
        missing = [k for k in KEYS[name] if k not in rows.column_names]
        if missing:
            raise StoreError(f"update {name}: the rows need the key column(s) {', '.join(missing)}")
        rows = pa.table({c: rows.column(c).cast(schema.field(c).type) for c in rows.column_names})
        if rows.num_rows == 0:
            return 0
        with uninterrupted():
            result = self.table(name).merge_insert(list(KEYS[name])).when_matched_update_all().execute(rows)
            self.maybe_compact(name)
        return result.num_updated_rows

    def maybe_compact(self, name: str, max_fragments: int | None = None) -> bool:
        """Merge small fragments once they pile up. Old versions stay readable (training sets pin them).

        Best effort: two writers that cross the threshold together both compact, and Lance refuses the second
        rewrite of the same fragments (a commit conflict). The loser looks again (the winner has usually
        compacted already) and, if it still conflicts, leaves it to a later write: its rows are committed
        either way, and a failed compaction must not fail the append that triggered it.
        """
        max_fragments = self.compact_after if max_fragments is None else max_fragments
        for _ in range(COMPACT_ATTEMPTS):
            ds = self.dataset(name)
            if len(ds.get_fragments()) <= max_fragments:
                return False
            try:
                ds.optimize.compact_files()
                return True
            except OSError as e:  # lance.commit.CommitConflictError, or the OSError it raises for one
                if not _is_commit_conflict(e):
                    raise
        return False
