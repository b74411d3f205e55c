"""Sampling throughput on this machine, and the share of sampler wall time spent writing to the store.

Runs `run_generate` (the code path of `mstar generate`) with the hf backend on the embedded task, then the
same requests through the sampler alone (the baseline: no judging, no store). Prints the figures; the last
line is JSON with rollouts_per_s, tokens_per_s, store_share and overhead (generate wall / sampler-only wall).

    python bench/sample_bench.py --queries 100 --n 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--policy", default=None, help="A policy folder; default: a fresh tiny model.")
    args = ap.parse_args()

    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.inputs import images_by_sha, select_queries
    from mstar_data.models.tiny import build_tiny_policy
    from mstar_data.prompts import build_prompt
    from mstar_data.store import Store
    from mstar_data.sampling.engine import SampleRequest
    from mstar_data.sampling.engines.hf import HFEngine
    from mstar_data.sampling.generate import GenerateConfig, run_generate

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"{tmp}/store")
        ingest_items(store, synthetic_items(int(args.queries / 0.7) + 2, 1, "easy", 0.2), source="bench",
                     dataset="synthetic", split="train")
        policy = args.policy or f"{tmp}/policy"
        if args.policy is None:
            build_tiny_policy(policy)
        sampler = HFEngine(policy)
        cfg = GenerateConfig(policy=policy, n=args.n, limit=args.queries, run="bench", temperature=1.0,
                             max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, flush_rows=256)
        sampler.generate([SampleRequest("warm", "warm up", build_tiny_image(), 1.0, 0, 4)])  # first-call costs
        r = run_generate(store, cfg, engine=sampler)

        queries = select_queries(store, split="train", limit=args.queries)
        images = images_by_sha(store, {q["image_sha256"] for q in queries})
        reqs = [SampleRequest(f"{q['query_id']}/{k}", build_prompt(q["question"]), images[q["image_sha256"]], 1.0,
                              k, args.max_new_tokens) for q in queries for k in range(args.n)]
        t0 = time.perf_counter()
        for i in range(0, len(reqs), args.batch_size):
            sampler.generate(reqs[i:i + args.batch_size])
        base_s = time.perf_counter() - t0
    result = {"rollouts": r.written, "wall_s": round(r.wall_s, 2), "rollouts_per_s": round(r.written / r.wall_s, 1),
              "tokens_per_s": round(r.n_tokens / r.wall_s), "store_s": round(r.store_s, 3),
              "store_share": round(r.store_s / r.wall_s, 4), "sampler_only_s": round(base_s, 2),
              "overhead": round(r.wall_s / base_s, 3)}
    for k, v in result.items():
        print(f"{k:>16}: {v}")
    print(json.dumps(result))


def build_tiny_image() -> bytes:
    from mstar_data.tasks.shapes import make_example

    return make_example(0, 0).image_png


if __name__ == "__main__":
    main()
