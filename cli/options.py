"""Options shared by every command, and the summary printing they all end with."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

StoreOpt = Annotated[Optional[str], typer.Option(
    "--store", envvar="MSTAR_STORE", show_envvar=True,
    help="Store URI: a local folder or s3://bucket/prefix. Default ./mstar-store.")]

ArtifactsOpt = Annotated[Optional[str], typer.Option(
    "--artifacts", envvar="MSTAR_ARTIFACTS", show_envvar=True,
    help="Folder for policies and checkpoints. Default: beside a local store; required for an s3:// store.")]

console = Console()
err_console = Console(stderr=True)


def open_store(uri: str | None, *, create: bool = True):
    from mstar_data.store import Store

    return Store(uri, create=create)


def summary(title: str, rows: list[tuple[str, object]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)


def build_config(model, **values):
    """A pydantic config from CLI values; a validation error becomes one line naming the option."""
    from pydantic import ValidationError

    from mstar_data.errors import MstarError

    try:
        return model(**values)
    except ValidationError as e:
        err = e.errors()[0]
        raise MstarError(f"--{'-'.join(map(str, err['loc'])).replace('_', '-')}: {err['msg']}") from e
