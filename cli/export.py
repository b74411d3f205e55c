"""mstar export prm | cot"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar_cli.options import ForceOpt, StoreOpt, choice, open_store, summary, value

app = typer.Typer(help="Export store data in other tools' formats.", no_args_is_help=True)

ExportFormat = choice("ExportFormat", "trl")
CotFormat = choice("CotFormat", "sharegpt", "parquet")
Label = choice("Label", "hard", "soft")
Labeller = choice("Labeller", "mc", "judge", "task")


@app.command("prm")
def prm(out: Annotated[str, typer.Option(help="Output folder: new, empty, or a previous `export prm` output "
                                              "(with --force).")],
        run: Annotated[str, typer.Option(help="Run whose step labels are exported.")],
        format: Annotated[ExportFormat, typer.Option("--format", help="trl (stepwise supervision).")] = "trl",
        split: Annotated[str, typer.Option(help="Queries of this split.")] = "train",
        label: Annotated[Label, typer.Option(help="hard (any continuation correct) or soft (fraction >= "
                                                  "threshold).")] = "hard",
        threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="With --label soft: the fraction of "
                                                                        "correct continuations a good step needs.")] = 0.5,
        labeller: Annotated[Labeller, typer.Option(help="Whose step labels: mc, judge or task.")] = "mc",
        force: ForceOpt = False, store: StoreOpt = None) -> None:
    """Step-labelled responses as Parquet (prompt, completions, labels, images) plus a dataset card.

    Example: mstar export prm --run r1 --out exports/prm-r1"""
    from mstar_data.prm.export import export_prm_trl

    r = export_prm_trl(open_store(store, create=False), out, run=run, split=split, label=value(label),
                       threshold=threshold, labeller=value(labeller), force=force)
    summary(f"export prm --format {value(format)} -> {r.out}", [
        ("rows", r.rows), ("steps", r.steps), ("good steps", f"{r.good_steps} ({r.good_steps / max(r.steps, 1):.1%})")])


@app.command("cot")
def cot(out: Annotated[str, typer.Option(help="Output folder: new, empty, or a previous export (with --force).")],
        run: Annotated[str, typer.Option(help="Run whose training sets are exported.")],
        format: Annotated[CotFormat, typer.Option("--format", help="sharegpt (LLaMA-Factory) or parquet (Hugging "
                                                                    "Face datasets).")] = "sharegpt",
        iteration: Annotated[Optional[list[int]], typer.Option(help="Only this iteration (repeatable). Default: "
                                                                    "every iteration that trained.")] = None,
        force: ForceOpt = False, store: StoreOpt = None) -> None:
    """The training sets the run trained on (each iteration's pinned rollouts version), plus a dataset card.

    Example: mstar export cot --run demo --format sharegpt --out exports/demo-cot"""
    from mstar_data.export.cot import export_cot

    r = export_cot(open_store(store, create=False), out, run=run, fmt=value(format), iterations=iteration,
                   force=force)
    summary(f"export cot --format {value(format)} -> {r.out}", [
        ("rows", r.rows), ("iterations", ", ".join(f"{i}: {n}" for i, n in sorted(r.by_iteration.items()))),
        ("kinds", ", ".join(f"{k}: {n}" for k, n in sorted(r.by_kind.items()))), ("distinct images", r.images)])


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="export")
