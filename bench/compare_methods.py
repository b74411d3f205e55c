"""The M-STAR paper's comparison on the embedded task, one factor at a time, with seeds (`make compare`).

Every configuration is recipes/demo.toml (continuous training, PRM top-2, Reward-Pass@2 temperature search every
2 iterations) with ONE factor changed, so each pair in the table isolates it:

    mstar     the reference
    random2   selection: seeded random-2 among the correct answers instead of PRM top-2
    static    temperature: static T (the recipe's 0.7) instead of the search
    rft       method: iterative RFT (fresh optimizer and schedule each iteration) instead of continuous
    restem    method: ReST-EM (restart from the base model each iteration)
    checker   selection: top-2 by the task's step checker (trainset_faithful_k), the skyline of a PRM that sees
              every wrong step (not in the default set: `--configs checker`)

It first builds what the demo builds (the embedded task, the bootstrap policy, the demo's PRM) with
`mstar demo`, unless the store already has them, then runs `mstar evolve` per configuration and seed as
`cmp-<config>-s<seed>`, then `mstar compare --run-prefix cmp-`. Rerunning continues: finished runs are skipped
by the loop itself. About 5-6 minutes per run on 2 CPU cores.

    python bench/compare_methods.py --store compare-store [--configs mstar,random2] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    "mstar": [],
    "random2": ["select.view='trainset_random_k'"],
    "static": ["temperature.search_every=0"],
    "rft": ["train.method='iterative-rft'"],
    "restem": ["train.method='rest-em'"],
}
EXTRA = {"checker": ["select.view='trainset_faithful_k'"]}
MSTAR = [sys.executable, "-c", "from mstar_cli.main import main; main()"]


def run(args: list[str]) -> None:
    print("$ mstar " + " ".join(args), flush=True)
    subprocess.run(MSTAR + args, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="compare-store")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--iterations", type=int, default=4)
    a = ap.parse_args()
    configs = a.configs.split(",")
    known = {**CONFIGS, **EXTRA}
    unknown = [c for c in configs if c not in known]
    if unknown:
        sys.exit(f"--configs: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    store = Path(a.store)
    if not (store / "policies" / "prm" / "config.json").is_file():
        run(["demo", "--store", str(store)])  # the task, the bootstrap policy and the PRM (and the demo run)
    for seed in map(int, a.seeds.split(",")):
        for name in configs:
            t0 = time.perf_counter()
            run(["evolve", "--recipe", "demo.toml", "--store", str(store), "--run-id", f"cmp-{name}-s{seed}",
                 "--set", "run.base_policy='policies/base'", "--set", "prm.path='policies/prm'",
                 "--set", f"run.seed={seed}", "--set", f"data.iterations={a.iterations}",
                 *[x for s in known[name] for x in ("--set", s)]])
            print(f"cmp-{name}-s{seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    run(["compare", "--run-prefix", "cmp-", "--store", str(store), "--out", str(store / "compare.png")])


if __name__ == "__main__":
    main()
