"""mstar init | tables"""

from __future__ import annotations

import typer

from mstar_cli.options import StoreOpt, cell, console, open_store, plain_table


def init(store: StoreOpt = None) -> None:
    """Create the store's tables (idempotent: existing tables are left as they are). The folder must be new,
    empty, or an existing store.

    Example: mstar init --store mstar-store"""
    s = open_store(store, create=True)
    note = f"created {', '.join(s.created)}" if s.created else "up to date"
    _print_tables(s, title=f"store {s.uri} ({note})")


def tables(store: StoreOpt = None) -> None:
    """Rows, Lance version and fragment count of each table.

    Example: mstar tables --store mstar-store"""
    _print_tables(open_store(store, create=False), title=None)


def _print_tables(s, title: str | None) -> None:
    t = plain_table(title or f"store {s.uri}")
    for col in ("table", "rows", "version", "fragments"):
        t.add_column(col, justify="left" if col == "table" else "right")
    for info in s.info():
        t.add_row(*(cell(v) for v in (info.name, f"{info.rows:,}", info.version, info.fragments)))
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("tables")(tables)
