"""The `mstar` entry point: builds the Typer app and turns errors into one line and a non-zero exit."""

from __future__ import annotations

import os
import sys

import typer

from mstar_cli import evolve, export, generate, ingest, prm, sql, store_cmds, train
from mstar_cli import judge as judge_cmd
from mstar_cli.options import err_console

app = typer.Typer(
    name="mstar",
    help="Self-evolving training of vision-language models on a LanceDB + DuckDB store. "
         "Add --debug to any command for tracebacks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
store_cmds.register(app)
app.add_typer(ingest.app, name="ingest")
sql.register(app)
judge_cmd.register(app)
generate.register(app)
train.register(app)
evolve.register(app)
prm.register(app)
export.register(app)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MSTAR_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    from mstar_data.errors import MstarError

    try:
        # Typer handles usage errors itself (message + exit 2); our errors and crashes come out here.
        app(args=args, prog_name="mstar")
        rc = 0
    except MstarError as e:
        if debug:
            raise
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        rc = 1
    except Exception as e:  # anything unexpected still gets one line; --debug shows where
        if debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else ""
        err_console.print(f"error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)",
                          markup=False, highlight=False, soft_wrap=True)
        rc = 1
    sys.exit(rc)
