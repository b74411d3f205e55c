"""Options shared by every command, and the printing they all end with.

Every value we print is data, never markup: cells are rich `Text` (no [tags], no :emoji: codes), and
console.print of a line goes through `say` with markup and emoji off. Model outputs carry `[/INST]` often."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

StoreOpt = Annotated[Optional[str], typer.Option(
    "--store", envvar="MSTAR_STORE", show_envvar=True,
    help="Store URI: a local folder or s3://bucket/prefix. Default ./mstar-store.")]

ArtifactsOpt = Annotated[Optional[str], typer.Option(
    "--artifacts", envvar="MSTAR_ARTIFACTS", show_envvar=True,
    help="Folder for policies and checkpoints. Default: beside a local store; required for an s3:// store.")]

def choice(name: str, *values: str) -> type[Enum]:
    """An option type that lists its allowed values in --help and refuses others with a usage error. Its
    members are str, so a parsed value compares and formats as the plain string (see `value`)."""
    return Enum(name, {v: v for v in values}, type=str)


def value(v: object) -> object:
    """The plain value of a `choice` option."""
    return v.value if isinstance(v, Enum) else v


ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Replace a previous output of this command in --out (nothing else is ever replaced).")]

console = Console()
err_console = Console(stderr=True)


def say(message: object, *, err: bool = False) -> None:
    """One line of plain text (paths and values printed as they are)."""
    (err_console if err else console).print(str(message), markup=False, emoji=False, highlight=False,
                                            soft_wrap=True)


def shell_command(*args: str) -> str:
    """An `mstar ...` command line that runs as printed in a fresh shell: quoted, and naming this
    installation's mstar when `mstar` is not on the PATH (a virtual environment that is not activated)."""
    import shlex
    import shutil
    import sys
    from pathlib import Path

    exe = "mstar"
    beside = Path(sys.executable).parent / "mstar"
    if shutil.which("mstar") is None or Path(shutil.which("mstar")).resolve() != beside.resolve():
        exe = str(beside) if beside.exists() else exe
    return " ".join([shlex.quote(exe)] + [shlex.quote(a) for a in args])


def cell(value: object) -> Text:
    """A table cell that shows its value literally."""
    return value if isinstance(value, Text) else Text(str(value))


class _LiteralTable(Table):
    """A table that never drops characters: a value (or header) too long for its column folds onto more lines
    instead of ending in an ellipsis."""

    def add_column(self, *args, **kwargs) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(*args, **kwargs)


def plain_table(title: str | None = None, **kwargs) -> Table:
    return _LiteralTable(title=None if title is None else cell(title), title_justify="left", **kwargs)


def open_store(uri: str | None, *, create: bool = True):
    from mstar_data.store import Store

    return Store(uri, create=create)


def summary(title: str, rows: list[tuple[str, object]]) -> None:
    table = plain_table(title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(cell(key), cell(value))
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


def check_fsdp(fsdp: bool, nproc: int) -> None:
    """--fsdp shards across the training processes: --nproc 2 or more, or a torchrun launch of several."""
    import os

    if fsdp and nproc < 2 and int(os.environ.get("WORLD_SIZE", "1")) < 2:
        from mstar_data.errors import MstarError

        raise MstarError("--fsdp shards the model across the training processes: give --nproc 2 or more")
