"""Runs of the learning tests: arms of one comparison as concurrent `mstar evolve` processes of one thread
each (two one-thread runs get ~1.6x the throughput of one two-thread run on a 2-core machine)."""

import os
import subprocess
import sys

from mstar_data.store import Store
from mstar_data.store.predicates import equals


def evolve_side_by_side(store: Store, recipe: str, arms: dict[str, list[str]]) -> None:
    """Run `mstar evolve --recipe RECIPE --set run.id=ARM --set ...` once per arm, all at once."""
    env = {**os.environ, "MSTAR_THREADS": "1"}
    procs, outs = {}, {}
    for run, sets in arms.items():
        cmd = [sys.executable, "-c", "from mstar_cli.main import main; main()", "evolve", "--recipe", recipe,
               "--store", store.uri, "--set", f"run.id='{run}'"] + [a for s in sets for a in ("--set", s)]
        procs[run] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for run, p in procs.items():
        outs[run] = p.communicate()[0]
    for run, p in procs.items():
        assert p.returncode == 0, f"{run}:\n{outs[run][-3000:]}"


def iterations(store: Store, run: str) -> list[dict]:
    return sorted(store.dataset("iterations").to_table(filter=equals("run_id", run)).to_pylist(),
                  key=lambda r: r["iteration"])
