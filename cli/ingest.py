"""mstar ingest {mathvista, mathv360k, jsonl, parquet, synthetic}"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar_cli.options import StoreOpt, open_store, summary

app = typer.Typer(help="Load a dataset into the `queries` and `images` tables (validated whole, then written).",
                  no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="The dataset file (.json, .jsonl or .parquet).")]
ImagesOpt = Annotated[Optional[Path], typer.Option(
    "--images", help="Image root; image paths in the file resolve inside it. Default: the file's folder.")]
SplitOpt = Annotated[Optional[str], typer.Option(help="train, val, test or unlabeled (unlabeled drops answers).")]
ValOpt = Annotated[float, typer.Option(min=0.0, max=0.99, help="Carve this fraction of train into val, "
                                                                "deterministically by id (train only).")]
NameOpt = Annotated[str, typer.Option(help="Dataset name (query ids are DATASET/ID).")]


def _split(split: str | None, default: str) -> str:
    from mstar_data.errors import MstarError
    from mstar_data.ingest.records import SPLITS

    split = split or default
    if split not in SPLITS:
        raise MstarError(f"--split '{split}': expected one of {', '.join(SPLITS)}")
    return split


def _run(store, items, *, path: Path, images: Path | None, split: str, dataset: str, val_fraction: float):
    from mstar_data.errors import MstarError
    from mstar_data.ingest.writer import ingest_items

    if not 0.0 <= val_fraction < 1.0:
        raise MstarError(f"--val-fraction {val_fraction}: expected a number in [0, 1)")
    if val_fraction and split != "train":
        raise MstarError(f"--val-fraction {val_fraction}: carves val out of train, but --split is '{split}'")
    s = open_store(store)
    root = images if images is not None else path.parent
    result = ingest_items(s, items, source=str(path), dataset=dataset, split=split, image_root=root,
                          val_fraction=val_fraction)
    _print(result, s)


def _print(result, s) -> None:
    summary(f"ingest {result.source} -> {s.uri}", [
        ("records", result.records),
        ("queries added", result.queries_added),
        ("already stored (skipped)", result.queries_skipped),
        ("distinct images", result.images_distinct),
        ("images added", result.images_added),
        ("splits", ", ".join(f"{k}={v}" for k, v in sorted(result.by_split.items()))),
        ("answer types", ", ".join(f"{k}={v}" for k, v in sorted(result.by_answer_type.items()))),
    ])


@app.command()
def mathvista(path: FileArg, images: ImagesOpt = None, split: SplitOpt = None, dataset: NameOpt = "mathvista",
              val_fraction: ValOpt = 0.0, store: StoreOpt = None) -> None:
    """MathVista annotations: JSON dict of pid -> record, the same records as JSONL, or Parquet with decoded_image.

    The split defaults to test (MathVista is a benchmark): sample it with `mstar generate --split test`.

    Example: mstar ingest mathvista testmini.json --images data/mathvista"""
    from mstar_data.ingest.mathvista import mathvista_items

    split = _split(split, "test")
    _run(store, mathvista_items(path), path=path, images=images, split=split, dataset=dataset,
         val_fraction=val_fraction)


@app.command()
def mathv360k(path: FileArg, images: ImagesOpt = None, split: SplitOpt = None, dataset: NameOpt = "mathv360k",
              val_fraction: ValOpt = 0.0, store: StoreOpt = None) -> None:
    """MathV360K: JSON list of {id, image, conversations}; the gold answer comes from the gpt turn.

    Example: mstar ingest mathv360k train_samples.json --images data/mathv360k --val-fraction 0.05"""
    from mstar_data.ingest.mathv360k import mathv360k_items

    _run(store, mathv360k_items(path), path=path, images=images, split=_split(split, "train"), dataset=dataset,
         val_fraction=val_fraction)


def _tabular(path, images, split, dataset, val_fraction, store, preset, field, image_template):
    from mstar_data.ingest.tabular import resolve_mapping, tabular_items

    mapping = resolve_mapping(preset, field or [])
    items = tabular_items(path, mapping, image_template=image_template, preset=preset)
    _run(store, items, path=path, images=images, split=_split(split, "train"), dataset=dataset or preset,
         val_fraction=val_fraction)


PresetOpt = Annotated[str, typer.Option(
    help="Field mapping: default, geoqa, chartqa, clevr, tabmwp, sat, cvbench (docs/ingest.md).")]
FieldOpt = Annotated[Optional[list[str]], typer.Option(
    "--field", help="Override one mapping entry, TARGET=SOURCE (e.g. --field question=query). Repeatable.")]
TemplateOpt = Annotated[Optional[str], typer.Option(
    help="Image path built from the id when records name none, e.g. 'tables/{id}.png'.")]
DatasetOpt = Annotated[Optional[str], typer.Option(help="Dataset name (query ids are DATASET/ID). Default: the preset.")]


@app.command()
def jsonl(path: FileArg, images: ImagesOpt = None, split: SplitOpt = None, dataset: DatasetOpt = None,
          val_fraction: ValOpt = 0.0, preset: PresetOpt = "default", field: FieldOpt = None,
          image_template: TemplateOpt = None, store: StoreOpt = None) -> None:
    """JSON Lines (or a JSON list/dict) of records, mapped field by field.

    Example: mstar ingest jsonl geoqa.jsonl --preset geoqa --images data/geoqa"""
    _tabular(path, images, split, dataset, val_fraction, store, preset, field, image_template)


@app.command()
def parquet(path: FileArg, images: ImagesOpt = None, split: SplitOpt = None, dataset: DatasetOpt = None,
            val_fraction: ValOpt = 0.0, preset: PresetOpt = "default", field: FieldOpt = None,
            image_template: TemplateOpt = None, store: StoreOpt = None) -> None:
    """Parquet records (images as bytes or {bytes, path} structs), mapped field by field.

    Example: mstar ingest parquet chartqa.parquet --preset chartqa"""
    _tabular(path, images, split, dataset, val_fraction, store, preset, field, image_template)


@app.command()
def synthetic(n: Annotated[int, typer.Option(help="Number of examples (train/val/test = 70/15/15).")] = 600,
              seed: Annotated[int, typer.Option(help="Generator seed.")] = 1,
              variant: Annotated[str, typer.Option(help="easy (3x3 grid, 2 colours asked) or hard (4x4, 3).")] = "easy",
              cot_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of train given a reference "
                                                                                 "CoT (the seed set), 0-1.")] = 0.2,
              unlabeled_fraction: Annotated[float, typer.Option(
                  help="Share of train held out as split 'unlabeled' (no answer; the true one kept aside in "
                       "meta.held_out_answer for the oracle skyline and pseudo-label accuracy), 0-1.")] = 0.0,
              dataset: NameOpt = "synthetic", store: StoreOpt = None) -> None:
    """The embedded visual reasoning task: coloured shapes to count and add.

    Example: mstar ingest synthetic --n 600 --unlabeled-fraction 0.5"""
    from mstar_data.errors import MstarError
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items

    if n < 1:
        raise MstarError(f"--n {n}: expected at least 1")
    if not 0.0 <= cot_fraction <= 1.0:
        raise MstarError(f"--cot-fraction {cot_fraction}: expected a number in [0, 1]")
    try:
        items = synthetic_items(n, seed, variant, cot_fraction, unlabeled_fraction)
    except ValueError as e:
        option = "--unlabeled-fraction" if str(e).startswith("unlabeled_fraction") else "--variant"
        raise MstarError(f"{option}: {e}") from e
    s = open_store(store)
    source = f"synthetic n={n} seed={seed} variant={variant}" + (
        f" unlabeled={unlabeled_fraction}" if unlabeled_fraction else "")
    result = ingest_items(s, items, source=source, dataset=dataset, split="train")
    _print(result, s)
