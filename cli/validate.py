"""mstar validate"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar_cli.evolve import SetOpt
from mstar_cli.options import ArtifactsOpt, open_store, say

# Not the shared StoreOpt: here no store is a mode of its own (the recipes alone), not ./mstar-store.
CheckStoreOpt = Annotated[Optional[str], typer.Option(
    "--store", envvar="MSTAR_STORE", show_envvar=True,
    help="Check against this store: EXPLAIN on it, count its queries, and fail on missing models or backend. "
         "Default: none (a temporary empty store).")]

MARK = {"ok": "ok", "fail": "FAIL", "warn": "warn", "skip": "skip"}


def validate(recipes: Annotated[list[str], typer.Argument(help="Recipe TOML files (paths, or packaged names: "
                                                                "mstar.toml).")],
             set: SetOpt = None,
             smoke: Annotated[bool, typer.Option(help="Check the recipes as --smoke shrinks them.")] = False,
             artifacts: ArtifactsOpt = None,
             store: CheckStoreOpt = None) -> None:
    """Check recipes without running them: every field, every sql/ view they read (EXPLAINed with their
    parameters), their splits' queries, model folders and sampling backend. Prints each check and the counts.

    Without --store, views are EXPLAINed on a temporary empty store, relative model paths are skipped (they
    resolve against the artifacts root) and a missing folder or backend is a warning. With --store, every
    check applies and a missing model or backend fails (what `mstar evolve` checks before its first step).
    Exits 1 if any check failed."""
    from mstar_data.loop.validate import validate_files

    s = open_store(store, create=False) if store else None
    reports = validate_files(list(recipes), list(set or []), smoke=smoke, store=s, artifacts=artifacts)
    totals = {k: 0 for k in MARK}
    for r in reports:  # plain lines, never wrapped: each check greps as one line
        say(r.source if r.run_id is None else f"{r.source} (run {r.run_id}, {r.method})")
        for c in r.checks:
            totals[c.status] += 1
            say(f"  {MARK[c.status]:<5} {c.kind:<8} {c.detail}")
    bad = [r.source for r in reports if r.failures]
    say(f"checked {len(reports)} recipe(s): {sum(totals.values())} checks, {totals['ok']} ok, {totals['fail']} "
        f"failed, {totals['warn']} warnings, {totals['skip']} skipped"
        + (f" (failed: {', '.join(bad)})" if bad else ""))
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate", epilog="Example: mstar validate recipes/*.toml --store mstar-store")(validate)
