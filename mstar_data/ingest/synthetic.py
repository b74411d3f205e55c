"""`mstar ingest synthetic`: the embedded shapes task, written like any other dataset."""

from __future__ import annotations

from mstar_data.ingest.records import QueryFields, Where
from mstar_data.inputs import HELD_OUT_KEY
from mstar_data.ingest.writer import Item
from mstar_data.tasks.shapes import VARIANTS, make_example, split_of


def synthetic_items(n: int, seed: int, variant: str, cot_fraction: float,
                    unlabeled_fraction: float = 0.0) -> list[Item]:
    """Items for all three splits. Reference CoT goes on the first `cot_fraction` of train (the seed set). The
    last `unlabeled_fraction` of train becomes split `unlabeled`: no answer, the true one kept aside in
    meta.held_out_answer (for the oracle skyline and pseudo-label accuracy; docs/unlabeled.md)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant '{variant}' (variants: {', '.join(VARIANTS)})")
    if not 0.0 <= cot_fraction <= 1.0:
        raise ValueError(f"cot_fraction {cot_fraction}: expected a number in [0, 1]")
    if not 0.0 <= unlabeled_fraction < 1.0:
        raise ValueError(f"unlabeled_fraction {unlabeled_fraction}: expected a number in [0, 1)")
    out: list[Item] = []
    n_train = sum(split_of(i, n) == "train" for i in range(n))
    n_cot = round(n_train * cot_fraction)
    n_unlabeled = round(n_train * unlabeled_fraction)
    if n_unlabeled > n_train - n_cot:
        raise ValueError(f"unlabeled_fraction {unlabeled_fraction}: {n_unlabeled} of {n_train} train examples, but "
                         f"{n_cot} of them carry the reference CoT (cot_fraction {cot_fraction}) and stay labelled")
    for i in range(n):
        ex = make_example(seed, i, variant)
        split = split_of(i, n)
        meta = {"seed": seed, "index": i, "variant": variant, "counts": ex.counts}
        if split == "train" and i >= n_train - n_unlabeled:
            split = "unlabeled"
            meta[HELD_OUT_KEY] = ex.answer
        fields = QueryFields(id=f"{variant}-s{seed}-{i:06d}", question=ex.question, answer=ex.answer,
                             answer_type="integer", question_type="count_sum",
                             reference_cot=ex.cot if split == "train" and i < n_cot else None, meta=meta)
        out.append(Item(Where("synthetic", str(i)), fields, ex.image_png,
                        source_path=f"synthetic://{variant}/{seed}/{i}", split=split))
    return out
