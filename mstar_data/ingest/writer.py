"""Validate a whole input, then write it: images first, then the queries that point at them.

Nothing is written until every record has passed every check, so a bad file leaves the tables (rows and
versions) exactly as they were. Writing images before queries means a crash between the two leaves only
unreferenced images, which the rerun skips by hash.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from mstar_data.ingest.images import ImageBlob, decode, resolve_inside
from mstar_data.ingest.records import QueryFields, Where, build_row
from mstar_data.schema import TABLES, conform


@dataclass
class Item:
    where: Where
    fields: QueryFields
    image: str | bytes | None  # a path inside the image root, or the image's bytes
    source_path: str | None = None
    split: str | None = None  # overrides the ingest's split (the synthetic task writes all three at once)


@dataclass
class IngestResult:
    source: str
    records: int = 0
    queries_added: int = 0
    images_added: int = 0
    images_distinct: int = 0
    by_split: Counter = field(default_factory=Counter)
    by_answer_type: Counter = field(default_factory=Counter)

    @property
    def queries_skipped(self) -> int:
        return self.records - self.queries_added


def _load_image(item: Item, image_root: Path | None) -> ImageBlob | None:
    w = item.where
    if item.image is None:
        return None
    if isinstance(item.image, (bytes, bytearray)):
        return decode(bytes(item.image), source=w.source, record=w.record, source_path=item.source_path)
    if image_root is None:
        raise w.error("image", "the record names an image file but no --images root was given")
    path = resolve_inside(image_root, str(item.image), source=w.source, record=w.record)
    return decode(path.read_bytes(), source=w.source, record=w.record, source_path=str(item.image))


def ingest_items(store, items: list[Item], *, source: str, dataset: str, split: str,
                 image_root: Path | None = None, val_fraction: float = 0.0, workers: int = 4) -> IngestResult:
    # Pillow releases the GIL while decoding, so threads decode images in parallel. map() keeps file
    # order, so the error reported is the first bad record in the file.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        blobs = list(pool.map(lambda it: _load_image(it, image_root), items))
    rows = [build_row(it.where, it.fields, dataset=dataset, split=it.split or split,
                      image_sha256=b.sha256 if b else None, source_path=it.source_path or str(it.image or "") or None,
                      val_fraction=val_fraction)
            for it, b in zip(items, blobs)]
    now = datetime.now(timezone.utc)
    for r in rows:
        r["ingested_at"] = now
    images = {b.sha256: b.row() for b in blobs if b is not None}
    result = IngestResult(source, records=len(rows), images_distinct=len(images))
    result.by_split.update(r["split"] for r in rows)
    result.by_answer_type.update(r["answer_type"] for r in rows)
    if not rows:
        return result
    queries = conform(pa.Table.from_pylist(rows, schema=TABLES["queries"]), "queries")
    # Every refusal happens here, before the first write.
    new_queries = store.new_rows("queries", queries, conflict_column="record_sha256", source=source)
    if images:
        result.images_added = store.append("images", pa.Table.from_pylist(list(images.values()), schema=TABLES["images"]))
    # Checked again under the table's write lock: another ingest may have added some of them meanwhile.
    result.queries_added = store.append("queries", new_queries, conflict_column="record_sha256", source=source)
    return result
