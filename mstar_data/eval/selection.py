"""Test-time selection over one evaluation's samples: the picks (sql/eval_selection.sql), the slices each query
falls in, and the `evals` rows (accuracy per method and K, per slice, and a row with a note for a skipped one)."""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

METHODS = ("greedy", "majority", "weighted-vote", "prm-best-of-n", "self-select")
NEEDS_PRM = ("weighted-vote", "prm-best-of-n")
MAX_GROUP_VALUES = 50  # a breakdown field with more distinct values than this is an id, not a category


def main_k(select_k: tuple[int, int]) -> int:
    """The K the summary reports for self-select: R3V's 3 when the range holds it."""
    lo, hi = select_k
    return min(max(3, lo), hi)


def selection_rows(store, *, run: str, iteration: int, n: int, prm: str | None, ids: set[str]) -> list[dict]:
    from mstar_data.sql_views import run_view

    table = run_view(store, "eval_selection", run=run, iteration=iteration, n=n, prm=prm)
    keep = pc.is_in(table.column("query_id"), value_set=pa.array(sorted(ids), pa.string()))
    return table.filter(keep).to_pylist()


def query_groups(store, ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Per query, the (field, value) slices it falls in: question_type, answer_type, and each scalar (or list of
    scalars) under meta.metadata, as MathVista reports (category, task, grade, skills, ...)."""
    table = store.dataset("queries").to_table(columns=["query_id", "question_type", "answer_type", "meta"])
    table = table.filter(pc.is_in(table.column("query_id"), value_set=pa.array(ids, pa.string())))
    out: dict[str, list[tuple[str, str]]] = {}
    for q in table.to_pylist():
        groups = [(f, str(q[f])) for f in ("question_type", "answer_type") if q[f] is not None]
        try:
            meta = json.loads(q["meta"]) if q["meta"] else {}
        except ValueError:
            meta = {}
        md = meta.get("metadata") if isinstance(meta, dict) else None
        for key, v in (md.items() if isinstance(md, dict) else []):
            values = v if isinstance(v, list) else [v]
            groups += [(f"metadata.{key}", str(x)) for x in values if isinstance(x, (str, int, float, bool))]
        out[q["query_id"]] = groups
    return out


def accuracy_rows(picks: list[dict], *, queries: dict[str, list[tuple[str, str]]], methods: list[str], n: int,
                  select_k: tuple[int, int], prm: str | None) -> list[dict]:
    """The evals rows: per method its accuracy at its K (a query without a pick counts wrong), the breakdown
    slices, the self-select curve with majority at the same K, and a row with a note for a skipped method."""
    correct: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    for p in picks:
        correct[(p["method"], p["k"])][p["query_id"]] = int(p["correct"] or 0)
    lo, hi = select_k
    k_of = {"greedy": 1, "majority": n, "weighted-vote": n, "prm-best-of-n": n, "self-select": main_k(select_k)}
    wanted = [(m, k_of[m], True) for m in methods]
    if "self-select" in methods:
        wanted += [(m, k, False) for m in ("self-select", "majority") for k in range(lo, hi + 1)
                   if (m, k) not in {(w[0], w[1]) for w in wanted}]
    fields: dict[str, set[str]] = defaultdict(set)
    for groups in queries.values():
        for f, v in groups:
            fields[f].add(v)
    sliced = {f for f, vs in fields.items() if len(vs) <= MAX_GROUP_VALUES}
    rows = []
    for method, k, main in wanted:
        if method in NEEDS_PRM and prm is None:
            rows.append({"method": method, "k": k, "group_by": "all", "group_value": "all", "n_queries": len(queries),
                         "n_correct": None, "accuracy": None, "_main": main,
                         "note": "skipped: needs a PRM (--prm PATH)"})
            continue
        got = correct.get((method, k), {})
        slices: dict[tuple[str, str], list[int]] = defaultdict(list)
        for qid, groups in queries.items():
            ok = got.get(qid, 0)
            slices[("all", "all")].append(ok)
            if main:
                for f, v in groups:
                    if f in sliced:
                        slices[(f, v)].append(ok)
        for (f, v), oks in sorted(slices.items(), key=lambda x: (x[0][0] != "all", x[0])):
            rows.append({"method": method, "k": k, "group_by": f, "group_value": v, "n_queries": len(oks),
                         "n_correct": sum(oks), "accuracy": sum(oks) / len(oks), "note": None, "_main": main})
    return rows
