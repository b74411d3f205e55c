"""Writing a query result as CSV, JSON (a list of row objects) or Parquet, to a file or stdout, and the text of
each value as a table shows it (as DuckDB prints it: 0.7 not 0.699999988, [0.70, 0.70] not [Decimal(...)])."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from mstar_data.errors import MstarError

FORMATS = ("table", "csv", "json", "parquet")
SUFFIXES = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
PARQUET_KEY = b"mstar"  # schema metadata that marks a Parquet file `mstar sql` wrote


def cell_text(v: object, *, nested: bool = False) -> str:
    """One value as text: NULL, floats to 7 significant digits (float32 noise gone), decimals as written,
    lists and structs the way DuckDB prints them."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format(v, ".7g")
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bytes):
        return f"<{len(v):,} bytes>"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(cell_text(x, nested=True) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"'{k}': {cell_text(x, nested=True)}" for k, x in v.items()) + "}"
    text = str(v)
    return f"'{text}'" if nested and isinstance(v, str) and ("," in text or not text) else text


def shorten(text: str, width: int) -> str:
    """One line of at most `width` characters: newlines shown as ⏎, the rest cut with an ellipsis."""
    text = text.replace("\r\n", "\n").replace("\n", "⏎")
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def format_for(fmt: str | None, out: Path | None) -> str:
    """--format, else the --out file's suffix, else a table on the terminal. A table is not written to a file."""
    if fmt is None:
        fmt = SUFFIXES.get(out.suffix.lower()) if out is not None else "table"
        if fmt is None:
            raise MstarError(f"--out {out}: give --format (csv, json or parquet); the suffix "
                             f"'{out.suffix}' does not say which")
    if fmt not in FORMATS:
        raise MstarError(f"--format '{fmt}': expected one of {', '.join(FORMATS)}")
    if fmt == "table" and out is not None:
        raise MstarError(f"--format table is for the terminal: write --out {out} with --format csv, json or parquet")
    return fmt


def is_result_file(path: Path, fmt: str) -> bool:
    """Whether `path` looks like an earlier result of this format (what --force may replace)."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return PARQUET_KEY in (pq.read_schema(path).metadata or {})
        text = path.read_text(encoding="utf-8")
        return isinstance(json.loads(text), list) if fmt == "json" else "\x00" not in text
    except (OSError, ValueError, UnicodeDecodeError, pa.ArrowException):
        return False


def _jsonable(v: object) -> object:
    if isinstance(v, Decimal):  # DuckDB's sum() of integers is a HUGEINT, which arrives as a Decimal
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def to_json(table: pa.Table) -> str:
    return json.dumps(table.to_pylist(), default=_jsonable, ensure_ascii=False)


def to_csv(table: pa.Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.column_names)
    for row in table.to_pylist():
        w.writerow(["" if v is None else json.dumps(v, default=_jsonable) if isinstance(v, (list, dict)) else
                    _jsonable(v) if isinstance(v, (datetime, date, bytes)) else v for v in row.values()])
    return buf.getvalue()


def write_result(table: pa.Table, fmt: str, out: Path | None) -> None:
    """csv / json / parquet to `out` (or stdout for csv and json), written whole or not at all. 'table' is
    printed by the CLI. `out` was checked by outputs.check_out_file."""
    from mstar_data.outputs import write_file_atomically

    if fmt not in FORMATS or fmt == "table":
        raise MstarError(f"--format '{fmt}': expected csv, json or parquet")
    if fmt == "parquet":
        if out is None:
            raise MstarError("--format parquet needs --out FILE")
        import pyarrow.parquet as pq

        marked = table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_KEY: b"sql"})
        write_file_atomically(out, lambda tmp: pq.write_table(marked, tmp))
        return
    text = to_json(table) if fmt == "json" else to_csv(table)
    if out is None:
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
    else:
        write_file_atomically(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
