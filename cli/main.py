"""The `mstar` entry point: builds the Typer app and turns errors into one line and a non-zero exit."""

from __future__ import annotations

import inspect
import os
import signal
import sys

import typer

from mstar_cli import evolve, export, generate, ingest, prm, sql, store_cmds, train
from mstar_cli import judge as judge_cmd
from mstar_cli import validate as validate_cmd
from mstar_cli import compare as compare_cmd
from mstar_cli import eval as eval_cmd
from mstar_cli.options import err_console

app = typer.Typer(
    name="mstar",
    help="Self-evolving training of vision-language models on a LanceDB + DuckDB store. "
         "Add --debug to any command for tracebacks.",
    epilog="Start with: mstar demo (the whole recipe on the embedded task, about 5 minutes on a CPU).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"mstar {version('mstar')}")
        except PackageNotFoundError:
            typer.echo("mstar (not installed)")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Self-evolving training of vision-language models on a LanceDB + DuckDB store. Add --debug to any
    command for tracebacks."""
store_cmds.register(app)
app.add_typer(ingest.app, name="ingest")
sql.register(app)
judge_cmd.register(app)
generate.register(app)
train.register(app)
evolve.register(app)
validate_cmd.register(app)
prm.register(app)
export.register(app)
eval_cmd.register(app)
compare_cmd.register(app)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MSTAR_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    from mstar_data.errors import Interrupted, MstarError

    _debug_in_help(app)
    Interrupted.latest = None
    from mstar_data.interrupts import handle_signal

    # Ctrl-C and SIGTERM stop the job at a safe point (never inside a store write): finished work is kept.
    previous = ({s: signal.signal(s, handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
                if _main_thread() else None)
    try:
        # Click reports usage errors itself (message + exit 2); our errors and crashes come out here.
        rv = app(args=args, prog_name="mstar", standalone_mode=False)
        rc = rv if isinstance(rv, int) else 0
        if rc == 130:  # Typer's code for a KeyboardInterrupt (Ctrl-C or our SIGTERM handler)
            raise Interrupted.latest or KeyboardInterrupt()
    except typer.Exit as e:  # --help, --version
        rc = e.exit_code
    except (KeyboardInterrupt, typer.Abort) as e:  # Ctrl-C or SIGTERM: the job kept what it had finished
        if debug:
            raise
        cause = e if isinstance(e, KeyboardInterrupt) else e.__cause__
        err_console.print(str(cause or "") or "interrupted: finished work is kept; rerun the same command to "
                          "continue", markup=False, highlight=False, soft_wrap=True)
        rc = 130
    except MstarError as e:
        if debug:
            raise
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        rc = 1
    except Exception as e:  # anything unexpected still gets one line; --debug shows where
        if _bad_value(e):  # a value an option does not take is bad input: one line, exit 1
            err_console.print(f"error: {_bad_value(e)}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(1)
        if _usage_error(e):  # click's own (typer may vendor click, so by shape rather than by class)
            e.show()
            sys.exit(e.exit_code)
        if debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else ""
        err_console.print(f"error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)",
                          markup=False, highlight=False, soft_wrap=True)
        rc = 1
    finally:
        for signum, handler in (previous or {}).items():
            signal.signal(signum, handler)
    sys.exit(rc)


def _bad_value(e: Exception) -> str | None:
    """"--format 'csv': expected one of trl" for click's BadParameter on an option, else None."""
    import re

    param = getattr(e, "param", None)
    if type(e).__name__ != "BadParameter" or not getattr(param, "opts", None):
        return None
    opt = max(param.opts, key=len)
    msg = str(getattr(e, "message", e))
    m = re.search(r"'([^']*)' is not one of (.*)$", msg)
    if m:
        return f"{opt} '{m.group(1)}': expected one of {m.group(2).replace(chr(39), '')}"
    return f"{opt}: {msg}"


def _usage_error(e: Exception) -> bool:
    return callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _debug_in_help(typer_app: typer.Typer) -> None:
    """`--debug` is read before Typer parses (it works anywhere on the line); every command's help shows it."""
    note = "Add --debug for the traceback of an error."
    for info in typer_app.registered_commands:
        doc = inspect.cleandoc(info.help or info.callback.__doc__ or "")
        if note not in doc:
            info.help = doc + "\n\n" + note
    for group in typer_app.registered_groups:
        _debug_in_help(group.typer_instance)
