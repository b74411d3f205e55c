"""Store benchmark: building the top-2 training set (with the response text) and the dynamics view over N
rollouts, against the same two jobs done the way research code does them today (JSONL files, Python dicts).

    python bench/store_bench.py --rows 1000000
    python bench/store_bench.py --rows 10000000 --no-baseline      # scale and memory (RSS) check

N/16 queries with 16 rollouts each (sample 0 greedy at T=0). Each job runs three times (median counts; the
first, cold run is printed too). The last line printed is JSON with top2_s,
dynamics_s, baseline_s and speedup = baseline_s / (top2_s + dynamics_s); rss_mb is the peak of the process
running the jobs (the store is built in a child process, and the peak is read before the baseline runs).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = np.array("red blue green shapes count there are total the so add then answer wait check one two three "
                 "four five six seven eight nine grid cell row column image left right top bottom".split())


def make_batch(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    from mstar_data.schema import ROLLOUTS

    idx = np.arange(start, start + n)
    q, k = idx // 16, idx % 16
    n_words = rng.integers(30, 70, n)
    words = WORDS[rng.integers(0, len(WORDS), int(n_words.sum()))]
    bounds = np.concatenate([[0], np.cumsum(n_words)])
    text = [" ".join(words[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    correct = rng.random(n) < 0.4
    cols = {
        "rollout_id": pa.array([f"{i:032x}" for i in idx]),
        "run_id": pa.array(["bench"] * n), "iteration": pa.array(np.ones(n, np.int32)),
        "stage": pa.array(["explore"] * n), "query_id": pa.array([f"bench/{x:07d}" for x in q]),
        "sample_idx": pa.array(k.astype(np.int32)),
        "temperature": pa.array(np.where(k == 0, 0.0, 1.0).astype(np.float32)),
        "seed": pa.array(idx.astype(np.int64)), "response": pa.array(text),
        "steps": pa.array([t.split(" so ")[:6] for t in text], pa.list_(pa.string())),
        "n_tokens": pa.array(n_words.astype(np.int32)), "pred_answer": pa.array((q % 10).astype(str)),
        "correct": pa.array(correct), "format_ok": pa.array(rng.random(n) < 0.95),
        "reflection": pa.array(rng.random(n) < 0.05), "prm_score": pa.array(rng.random(n).astype(np.float32)),
    }
    return pa.table({f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in ROLLOUTS}, schema=ROLLOUTS)


def baseline(path: Path, k: int = 4) -> tuple[float, list, dict]:
    """Research code today: json.loads every line into dicts, group per query, sort, aggregate."""
    t0 = time.perf_counter()
    rows = [json.loads(line) for line in path.open()]
    by_query = defaultdict(list)
    for r in rows:
        by_query[r["query_id"]].append(r)
    train = []
    for rs in by_query.values():
        good = sorted((r for r in rs if r["correct"] and r["format_ok"]), key=lambda r: -r["prm_score"])
        train += [(r["rollout_id"], r["response"]) for r in good[:2]]
    greedy = pass_k = rp2 = 0
    lens, refl = [], []
    for rs in by_query.values():
        samples = sorted((r for r in rs if r["temperature"] > 0), key=lambda r: r["sample_idx"])
        greedy += any(r["correct"] for r in rs if r["temperature"] == 0)
        pass_k += any(r["correct"] for r in samples[:k])
        rp2 += any(r["correct"] for r in sorted(samples, key=lambda r: -r["prm_score"])[:2])
        lens.append(sum(r["n_tokens"] for r in samples) / len(samples))
        refl.append(sum(r["reflection"] for r in samples) / len(samples))
    n = len(by_query)
    return time.perf_counter() - t0, train, {"greedy_acc": greedy / n, "pass_at_k": pass_k / n,
                                                   "reward_pass_at_2": rp2 / n}


def build(path: str, rows: int, jsonl: str | None) -> float:
    """Write N rollouts to a store at `path` (kept when it already holds them) and, for the baseline, JSONL."""
    from mstar_data.store import Store

    store = Store(path)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    table = store.table("rollouts")
    if table.count_rows() not in (0, rows):
        raise SystemExit(f"{path} holds {table.count_rows()} rollouts, not {rows}: use an empty folder")
    fresh = table.count_rows() == 0
    if not fresh and not jsonl:
        return 0.0
    with open(jsonl, "w") if jsonl else open(os.devnull, "w") as fh:
        for start in range(0, rows, 250_000):
            batch = make_batch(start, min(250_000, rows - start), rng)
            if fresh:
                table.add(batch)
            if jsonl:
                cols = ["rollout_id", "query_id", "sample_idx", "temperature", "response", "steps", "n_tokens",
                        "correct", "format_ok", "reflection", "prm_score", "pred_answer"]
                for r in batch.select(cols).to_pylist():
                    fh.write(json.dumps(r) + "\n")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--dir", default=None, help="Where temporary files go (default: the system's temp folder).")
    ap.add_argument("--store", default=None, help="Build the store here and keep it; reused if it holds N rows.")
    args = ap.parse_args()
    from mstar_data.sql_views import run_view
    from mstar_data.store import Store

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(args.store or f"{tmp}/store")
        jsonl = None if args.no_baseline else Path(tmp) / "rollouts.jsonl"
        # Built in a child process, so the peak RSS printed is the jobs' own, not the data generator's.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            build_s = pool.apply(build, (str(path), args.rows, str(jsonl) if jsonl else None))
        store = Store(str(path))

        # Each job three times through the real path (a fresh DuckDB connection each time); the median counts,
        # the first (cold) run is reported too.
        top2_runs, dyn_runs = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            top2 = run_view(store, "trainset_top_k", run="bench", iteration=1, k=2)
            top2_runs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            dyn = run_view(store, "dynamics", k=4).to_pylist()[0]
            dyn_runs.append(time.perf_counter() - t0)
        top2_s, dynamics_s = sorted(top2_runs)[1], sorted(dyn_runs)[1]
        assert top2.num_rows > 0 and top2.column("response").null_count == 0

        result = {"rows": args.rows, "top2_s": round(top2_s, 3), "dynamics_s": round(dynamics_s, 3),
                  "top2_first_s": round(top2_runs[0], 3), "dynamics_first_s": round(dyn_runs[0], 3),
                  "top2_rows": top2.num_rows, "build_s": round(build_s, 1),
                  "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}  # before the baseline
        if not args.no_baseline:
            base_s, train, base_dyn = baseline(jsonl)
            ours = dict(zip(top2.column("rollout_id").to_pylist(), top2.column("response").to_pylist()))
            assert dict(train) == ours, "top-2 rows or their text differ from the baseline's"
            for key, v in base_dyn.items():
                assert abs(v - dyn[key]) < 1e-9, (key, v, dyn[key])
            result.update(baseline_s=round(base_s, 2), speedup=round(base_s / (top2_s + dynamics_s), 1))
    for key, v in result.items():
        print(f"{key:>12}: {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
