"""The one writer behind every `mstar export` (prm, cot): a folder other tools load, written whole or not at all.

- `check_export_folder` runs before any work: `--out` must be new, empty, or a previous export (marked by
  `mstar_export.json`); `--force` replaces only a previous export's own entries (mstar_data/outputs.py).
- `write_export` builds the export in `<out>/.mstar-partial`, writes the marker last and moves it into place;
  an error or Ctrl-C on the way removes the partial folder, so nothing half-written is ever left to load.
- `parquet_table` attaches the `huggingface` schema metadata that `datasets` reads to decode columns, so
  `load_dataset("parquet", data_files=...)` returns PIL images for an `Image` column (a struct of bytes and
  path). The features are written as datasets 3.x wrote them (a list feature as a one-element JSON list),
  which datasets 3, 4 and 5 all read.
- `sharegpt` records follow LLaMA-Factory's multimodal layout, and `check_sharegpt` applies its own rules
  (src/llamafactory/data/converter.py and mm_plugin.py) to every record before anything is published.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from mstar_data.errors import InputError
from mstar_data.outputs import check_out_folder, publish_folder, staging_folder

MARKER = "mstar_export.json"
DATA_FILE = "data/train-00000-of-00001.parquet"
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
IMAGE_FEATURE = {"_type": "Image"}
IMAGE_TOKEN = "<image>"  # LLaMA-Factory's placeholder: one per image, in the human turn


def value(dtype: str) -> dict:
    return {"dtype": dtype, "_type": "Value"}


def check_export_folder(out, *, force: bool = False) -> Path:
    return check_out_folder(out, marker=MARKER, kind="mstar export", force=force)


def write_export(out: Path, *, marker: dict, write: Callable[[Path], None]) -> Path:
    """`write(partial)` fills the staging folder; then the marker, then the move into `out`."""
    existed = Path(out).exists()
    partial = staging_folder(out)
    try:
        write(partial)
        (partial / MARKER).write_text(json.dumps(marker, indent=1, default=str))
        return publish_folder(partial, out, MARKER)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        if not existed and Path(out).is_dir() and not any(Path(out).iterdir()):
            Path(out).rmdir()  # the folder we made for it
        raise


def parquet_table(columns: dict[str, list], schema: pa.Schema, features: dict) -> pa.Table:
    """The table with the `huggingface` metadata that tells `datasets` each column's feature."""
    assert list(features) == schema.names, "every column needs its feature"
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.table(columns, schema=schema.with_metadata(meta))


def write_parquet(partial: Path, table: pa.Table) -> None:
    (partial / DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, partial / DATA_FILE)


def card_front_matter(tags: list[str], data_files: str = DATA_FILE) -> list[str]:
    """The YAML header the Hub (and `load_dataset(folder)`) reads: one train split from `data_files`."""
    return ["---", "configs:", "- config_name: default", "  data_files:", "  - split: train",
            f"    path: {data_files}", "tags:", *[f"- {t}" for t in tags], "---", ""]


# -- LLaMA-Factory sharegpt ------------------------------------------------------------------------------------
def image_file(image: bytes) -> str:
    """images/<sha256>.<ext>: one file per distinct image, named by content."""
    ext = "png" if image[:8] == b"\x89PNG\r\n\x1a\n" else "jpg" if image[:3] == b"\xff\xd8\xff" else None
    if ext is None:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(image)) as im:
            ext = (im.format or "bin").lower()
    return f"images/{hashlib.sha256(image).hexdigest()}.{ext}"


def sharegpt_record(prompt: str, completion: str, image: bytes | None, **extra) -> tuple[dict, bytes | None]:
    """One single-turn record: the human turn opens with the image placeholder, the gpt turn is the target."""
    images = [image_file(image)] if image else []
    human = (IMAGE_TOKEN if image else "") + prompt
    return ({"conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": completion}],
             "images": images, **extra}, image)


def check_sharegpt(record: dict, *, source: str, where: str, root: Path | None = None) -> None:
    """LLaMA-Factory's rules for a sharegpt record: roles alternate human/gpt from a human turn, the message
    count is even (the converter drops the record otherwise), the `<image>` placeholders number the images
    (mm_plugin refuses the batch otherwise), and each image path is a file inside the export."""
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise InputError(source, "no conversation turns", record=where, field="conversations")
    for i, t in enumerate(turns):
        want = "human" if i % 2 == 0 else "gpt"
        if t.get("from") != want or not isinstance(t.get("value"), str):
            raise InputError(source, f"turn {i} is '{t.get('from')}', expected '{want}' with a text value",
                             record=where, field="conversations")
    if len(turns) % 2:
        raise InputError(source, f"{len(turns)} turns: LLaMA-Factory needs an even count", record=where,
                         field="conversations")
    images = record.get("images") or []
    tokens = sum(t["value"].count(IMAGE_TOKEN) for t in turns)
    if tokens != len(images):
        raise InputError(source, f"{tokens} '{IMAGE_TOKEN}' placeholder(s) for {len(images)} image(s) (a text "
                         f"that contains '{IMAGE_TOKEN}' itself cannot be exported)", record=where,
                         field="conversations")
    for p in images:
        if root is not None and (Path(p).is_absolute() or ".." in Path(p).parts or not (root / p).is_file()):
            raise InputError(source, f"image '{p}' is not a file inside the export", record=where, field="images")


def write_sharegpt(partial: Path, records: list[tuple[dict, bytes | None]], *, name: str,
                   file_name: str = "data.json") -> None:
    """data.json, images/ beside it, and the dataset_info.json entry LLaMA-Factory reads (`--dataset NAME
    --dataset_dir <out>`). Every record is checked against LLaMA-Factory's rules first."""
    for rec, image in records:
        if image:
            path = partial / rec["images"][0]
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(image)
    data = [rec for rec, _ in records]
    for i, rec in enumerate(data):
        check_sharegpt(rec, source=file_name, where=str(rec.get("query_id", f"#{i}")), root=partial)
    (partial / file_name).write_text(json.dumps(data, ensure_ascii=False, indent=1))
    info = {name: {"file_name": file_name, "formatting": "sharegpt",
                   "columns": {"messages": "conversations", "images": "images"}}}
    (partial / "dataset_info.json").write_text(json.dumps(info, indent=1))
