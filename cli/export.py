"""mstar export prm"""

from __future__ import annotations

from typing import Annotated

import typer

from mstar_cli.options import StoreOpt, open_store, summary

app = typer.Typer(help="Export store data in other tools' formats.", no_args_is_help=True)


@app.command("prm")
def prm(out: Annotated[str, typer.Option(help="Output folder (replaced if it exists).")],
        run: Annotated[str, typer.Option(help="Run whose step labels are exported.")],
        format: Annotated[str, typer.Option("--format", help="trl (stepwise supervision).")] = "trl",
        split: Annotated[str, typer.Option(help="Queries of this split.")] = "train",
        label: Annotated[str, typer.Option(help="hard (any continuation correct) or soft (fraction >= threshold).")] = "hard",
        threshold: float = 0.5, store: StoreOpt = None) -> None:
    """Step-labelled responses as Parquet (prompt, completions, labels, images) plus a dataset card."""
    from mstar_data.errors import MstarError
    from mstar_data.prm.export import export_prm_trl

    if format != "trl":
        raise MstarError(f"--format '{format}': expected trl")
    r = export_prm_trl(open_store(store, create=False), out, run=run, split=split, label=label, threshold=threshold)
    summary(f"export prm --format trl -> {r.out}", [("rows", r.rows), ("steps", r.steps),
                                                    ("good steps", f"{r.good_steps} ({r.good_steps / max(r.steps, 1):.1%})")])


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="export")
