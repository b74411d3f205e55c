"""mstar sql: read-only DuckDB over the store's tables and the sql/ views."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar_cli.options import ForceOpt, StoreOpt, cell, console, open_store, plain_table, say

CELL_WIDTH = 40  # a table cell longer than this is cut with an ellipsis


def sql(query: Annotated[Optional[str], typer.Argument(help="A SELECT over tables and views, e.g. "
                                                          "\"select split, count(*) from queries group by 1\".")] = None,
        file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Read the query from this file.")] = None,
        format: Annotated[Optional[str], typer.Option(
            "--format", help="table (the terminal), csv, json (a list of row objects) or parquet. "
                             "Default: table, or the --out file's suffix.")] = None,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Write the result to this file (csv, json or parquet) instead of stdout.")] = None,
        force: ForceOpt = False,
        param: Annotated[Optional[list[str]], typer.Option(
            "--param", "-p", help="NAME=VALUE for a parameterised view ($NAME in sql/*.sql). Repeatable.")] = None,
        list_views: Annotated[bool, typer.Option("--list", help="List the tables and views, then exit.")] = False,
        max_rows: Annotated[int, typer.Option(min=1, help="Rows shown by --format table.")] = 50,
        store: StoreOpt = None) -> None:
    """Run a read-only SQL query; every table and every sql/ view is available by name.

    Example: mstar sql "select split, count(*) from queries group by 1" --out counts.csv"""
    from mstar_data.errors import MstarError
    from mstar_data.outputs import check_out_file
    from mstar_data.sql_views import load_sql_files, parse_params, run_read_only
    from mstar_data.table_output import format_for, is_result_file, write_result

    if list_views:
        _list_views(load_sql_files())
        return
    fmt = format_for(format, out)
    if out is not None:
        check_out_file(out, kind=f"{fmt} result", force=force, same_kind=lambda p: is_result_file(p, fmt))
    if file is not None:
        if not file.is_file():
            raise MstarError(f"--file {file}: not found")
        query = file.read_text()
    if not query:
        raise MstarError("give a QUERY or --file FILE (see mstar sql --help)")
    result = run_read_only(open_store(store, create=False), query, parse_params(param))
    if fmt == "table":
        print_result(result, max_rows)
    else:
        write_result(result, fmt, out)
        if out is not None:
            say(f"wrote {result.num_rows:,} rows to {out}", err=True)


def print_result(result, max_rows: int) -> None:
    """A table when the columns fit the terminal, else one block per record (psql's expanded display)."""
    from mstar_data.table_output import cell_text, shorten

    names = result.column_names
    rows = [[cell_text(v) for v in row.values()] for row in result.slice(0, max_rows).to_pylist()]
    caption = (f"{result.num_rows:,} row{'' if result.num_rows == 1 else 's'}"
               + (f" (first {max_rows} shown)" if result.num_rows > max_rows else ""))
    widths = [min(max([len(n)] + [len(r[i]) for r in rows]), CELL_WIDTH) for i, n in enumerate(names)]
    if sum(widths) + 3 * len(names) + 1 <= console.width:
        t = plain_table(caption=cell(caption))
        for name in names:
            t.add_column(cell(name), overflow="ellipsis", no_wrap=True)
        for r in rows:
            t.add_row(*(cell(shorten(v, CELL_WIDTH)) for v in r))
        console.print(t)
        return
    key_w = max(len(n) for n in names)
    value_w = max(console.width - key_w - 3, 10)
    for i, r in enumerate(rows, 1):
        say(f"-[ record {i} ]" + "-" * max(console.width - len(f"-[ record {i} ]") - 1, 0))
        for name, v in zip(names, r):
            say(f"{name.ljust(key_w)} | {shorten(v, value_w)}")
    say(caption)


def first_sentences(description: str, limit: int = 160) -> str:
    """Whole sentences of a view's leading comment, as many as fit in `limit` characters (at least one)."""
    sentences = re.split(r"(?<=\.)\s+(?=[A-Z(`'])", description.strip())
    out = sentences[0]
    if len(out) > limit and ": " in out:  # a long sentence that introduces a list or a detail: its lead-in
        return out.split(": ")[0] + "."
    for s in sentences[1:]:
        if len(out) + 1 + len(s) > limit:
            break
        out += " " + s
    return out


def _comment_block(text: str) -> str:
    """The view's leading comment (without `-- param` lines), joined into one paragraph."""
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("--"):
            break
        s = s.lstrip("-").strip()
        if not s.startswith("param "):
            lines.append(s)
    return " ".join(x for x in lines if x)


def _list_views(files) -> None:
    from mstar_data.schema import TABLES

    t = plain_table("tables and views")
    for col in ("name", "kind", "parameters", "description"):
        t.add_column(col, overflow="fold")
    for name in TABLES:
        t.add_row(cell(name), cell("table"), cell(""), cell(""))
    for name, f in files.items():
        params = ", ".join(f"{p}={f.defaults[p]!r}" if p in f.defaults else p for p in f.params)
        t.add_row(cell(name), cell("view"), cell(params), cell(first_sentences(_comment_block(f.text))))
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
