"""How many val queries the temperature search needs to tell a better T from the current one, by simulation.

    .venv/bin/python bench/temperature_power.py [--sims 200] [--grid 14] [--sd 0.4] [--seed 0]

Each simulated val query has its own pass probability p_q (Beta, shared by both temperatures, as a query's
difficulty is) and each temperature draws its own 0/1 outcome per query (the metric of one query, like
Reward-Pass@2, is 0 or 1). The candidate's probability is p_q + gain. The Beta is chosen so that the per-query
paired difference has the standard deviation `--sd` (0.30-0.53 measured between the demo's temperatures:
docs/temperature.md). For each (queries, gain) we run the loop's own rule (loop/temperature.choose_temperature,
one-sided, Bonferroni over `--grid` - 1 candidates) and count how often it moves (power) and, at gain 0, how often
it moves on noise alone. The last line is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from mstar_data.loop.temperature import choose_temperature


def beta_for_sd(sd: float, mean: float = 0.5) -> tuple[float, float]:
    # Var(d) = 2 E[p(1-p)] for independent 0/1 draws; for Beta(a, b) with a + b = s, E[p(1-p)] = mean(1-mean) s/(s+1)
    target = sd * sd / 2
    ratio = target / (mean * (1 - mean))
    s = ratio / (1 - ratio)
    return mean * s, (1 - mean) * s


def moves(rng, n_queries: int, gain: float, a: float, b: float, confidence: float, seed: int) -> bool:
    p = rng.beta(a, b, n_queries)
    cur = rng.random(n_queries) < p
    cand = rng.random(n_queries) < np.clip(p + gain, 0, 1)
    rows = [{"temperature": 1.0, "query_id": i, "m": int(v)} for i, v in enumerate(cur)]
    rows += [{"temperature": 0.9, "query_id": i, "m": int(v)} for i, v in enumerate(cand)]
    return choose_temperature(rows, 1.0, metric="m", confidence=confidence, resamples=1000, seed=seed).moved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--grid", type=int, default=14, help="temperatures in the search (M-STAR: 0.3..1.6 = 14)")
    ap.add_argument("--sd", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    # choose_temperature divides (1 - confidence) by its own candidates; with 2 temperatures here, we pass the
    # confidence that gives the same per-candidate level as the full grid.
    confidence = 1 - 0.05 / (args.grid - 1)
    a, b = beta_for_sd(args.sd)
    rng = np.random.default_rng(args.seed)
    out = {"sd": args.sd, "grid": args.grid, "sims": args.sims, "beta": [round(a, 3), round(b, 3)], "power": {}}
    z = 2.0 ** 0.5 * _erfinv(1 - 2 * 0.05 / (args.grid - 1)) + 0.8416
    t0 = time.perf_counter()
    print(f"paired sd {args.sd}, {args.grid} temperatures (one-sided level {0.05 / (args.grid - 1):.4f} each), "
          f"{args.sims} simulations per cell: how often the search moves")
    print(f"{'queries':>8} " + " ".join(f"gain {g:>4.2f}" for g in (0.0, 0.02, 0.05, 0.10)) + "   formula: gain at 80%")
    for n in (90, 250, 500, 1000, 2000):
        cells = []
        for gain in (0.0, 0.02, 0.05, 0.10):
            rate = np.mean([moves(rng, n, gain, a, b, confidence, i) for i in range(args.sims)])
            out["power"][f"{n}/{gain}"] = float(rate)
            cells.append(f"{rate:9.0%}")
        print(f"{n:>8} " + " ".join(cells) + f"   {z * args.sd / math.sqrt(n):.3f}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))


def _erfinv(y: float) -> float:
    # the inverse error function by bisection (no scipy needed)
    lo, hi = -6.0, 6.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if math.erf(mid) < y:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


if __name__ == "__main__":
    main()
