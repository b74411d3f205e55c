"""mstar compare"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar_cli.options import StoreOpt, cell, console, open_store, plain_table, say


def compare(runs: Annotated[Optional[str], typer.Option(help="Comma-separated run ids.")] = None,
            run_prefix: Annotated[Optional[str], typer.Option(help="Every run whose id starts with this.")] = None,
            out: Annotated[Optional[str], typer.Option(help="PNG of greedy accuracy per iteration per run.")] = None,
            store: StoreOpt = None) -> None:
    """Runs side by side (M-STAR Tables 1-2): runs that differ only in seed are one row, mean ± std.

    Example: mstar compare --run-prefix cmp- --out compare.png"""
    from mstar_data.compare import compare_runs, greedy_curves, plot_compare

    names = [r.strip() for r in runs.split(",") if r.strip()] if runs else None
    s = open_store(store, create=False)
    if out:
        from mstar_data.loop.dynamics_plot import check_plot_path

        check_plot_path(out)  # before any work
    groups = compare_runs(s, runs=names, prefix=run_prefix)
    for table in compare_tables(groups):
        console.print(table)
    if out:
        ids = [r["run_id"] for g in groups for r in g.runs]
        say(f"wrote {plot_compare(groups, greedy_curves(s, ids), out)}")


def _fmt(mean, std, pct: bool) -> str:
    if mean is None:
        return "-"
    if pct:
        return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")
    return f"{mean:.0f}" + ("" if std is None else f" ± {std:.0f}")


def compare_tables(groups):
    """Three tables that fit a terminal: what each configuration is, its accuracy, and its faithful reasoning
    and cost (joined by #)."""
    from mstar_data.compare import run_label

    what = plain_table("configurations (runs that differ only in seed are one row)")
    for c in ("#", "method", "selection", "PRM", "temperature", "seeds", "runs"):
        what.add_column(c)
    got = plain_table("val accuracy in % at the last iteration (several seeds: mean ± population std)")
    for c in ("#", "final greedy", "best greedy", "Pass@K", "Reward-Pass@2"):
        got.add_column(c)
    faithful = any(r["final_faithful"] is not None for g in groups for r in g.runs)  # tasks with a step checker
    cost = plain_table(("faithful rate in % (correct samples whose every step is true), " if faithful else "")
                       + "rows trained on and seconds, summed over iterations")
    for c in ("#",) + (("faithful",) if faithful else ()) + ("training rows", "wall s"):
        cost.add_column(c)
    for i, g in enumerate(groups, 1):
        ks = sorted({r["k"] for r in g.runs if r["k"] is not None})
        what.add_row(*(cell(v) for v in (i, g.method, g.selection, g.prm, g.temperature,
                                          " / ".join(str(s) for s in g.seeds), ", ".join(run_label(r) for r in g.runs))))
        got.add_row(*(cell(v) for v in (
            i, _fmt(*g.stat("final_greedy"), True), _fmt(*g.stat("best_greedy"), True),
            _fmt(*g.stat("final_pass_at_k"), True) + (f" (K={ks[0]})" if len(ks) == 1 else ""),
            _fmt(*g.stat("final_reward_pass_at_2"), True))))
        cost.add_row(*(cell(v) for v in (
            i, *((_fmt(*g.stat("final_faithful"), True),) if faithful else ()), _fmt(*g.stat("training_rows"), False),
            _fmt(*g.stat("wall_s"), False))))
    return what, got, cost


def register(app: typer.Typer) -> None:
    app.command("compare", epilog="Example: mstar compare --runs a,b,c --out compare.png")(compare)
