"""`mstar evolve --smoke` SIGKILLed at 3 seeded random points and rerun: the iterations, train_log and rollouts
rows equal those of a run that never stopped (same keys, same values; timings and write times aside)."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.kills import kill_points_match, table_rows

# Every run with one thread: a different thread count reorders float sums, and the runs must match exactly.
ENV = {**os.environ, "MSTAR_THREADS": "1"}
DROP = {"iterations": {"created_at", "timings", "trainset_version"},  # versions count appends, not content
        "train_log": {"created_at", "seconds"},
        "rollouts": {"created_at"}}


def _evolve(store, policy):
    return [sys.executable, "-c", "from mstar_cli.main import main; main()", "evolve", "--recipe", "demo.toml",
            "--smoke", "--set", f"run.base_policy='{policy}'", "--set", "train.save_every=2", "--set",
            "train.max_steps=6", "--store", str(store)]


@pytest.mark.slow
def test_sigkill_at_three_random_points_then_rerun_matches_uninterrupted(shapes_store, bootstrapped_policy, tmp_path):
    policy, _ = bootstrapped_policy
    straight = tmp_path / "straight"
    shutil.copytree(shapes_store, straight)
    r = subprocess.run(_evolve(straight, policy), capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    want = {t: table_rows(straight, t, DROP[t]) for t in DROP}
    assert len(want["iterations"]) == 3 and want["train_log"] and want["rollouts"]

    kill_points_match(lambda store: _evolve(store, policy), shapes_store, tmp_path, want, DROP, seed=7, points=3,
                      env=ENV)
