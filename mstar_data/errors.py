"""Errors meant for users: one line that names the record and the field."""

from __future__ import annotations


class MstarError(Exception):
    """An error the CLI prints as one line (no traceback unless --debug)."""


class InputError(MstarError):
    """Bad input: names the source (file), the record (id or line) and the field."""

    def __init__(self, source: str, message: str, *, record: str | None = None, field: str | None = None):
        self.source, self.record, self.field, self.message = source, record, field, message
        where = [str(source)]
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(": ".join(where) + f": {message}")


class StoreError(MstarError):
    """The store is missing, unreadable, or was asked for something it does not hold."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, after the job kept what it had finished: the message says what was kept. The CLI
    prints it as one line and exits 130 (Typer turns a KeyboardInterrupt into exit code 130 on its way out,
    dropping the exception, so the latest one is also kept here)."""

    latest: "Interrupted | None" = None

    def __init__(self, message: str):
        super().__init__(message)
        Interrupted.latest = self
