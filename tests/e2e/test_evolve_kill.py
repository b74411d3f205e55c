"""`mstar evolve --smoke` SIGKILLed at 3 seeded random points and rerun: the iterations, train_log and rollouts
rows equal those of a run that never stopped (same keys, same values; timings and write times aside)."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mstar_data.store import Store

# Every run with one thread: a different thread count reorders float sums, and the runs must match exactly.
ENV = {**os.environ, "MSTAR_THREADS": "1"}
DROP = {"iterations": {"created_at", "timings", "trainset_version"},  # versions count appends, not content
        "train_log": {"created_at", "seconds"},
        "rollouts": {"created_at"}}


def _evolve(store, policy):
    return [sys.executable, "-c", "from mstar_cli.main import main; main()", "evolve", "--recipe", "demo.toml",
            "--smoke", "--set", f"run.base_policy='{policy}'", "--set", "train.save_every=2", "--set",
            "train.max_steps=6", "--store", str(store)]


def _progress(store) -> int:
    """How far a run has come, from its rows: a kill point is a seeded target on this scale."""
    try:
        s = Store(str(store), create=False)
        return s.count("rollouts") + 10 * s.count("train_log") + 100 * s.count("iterations")
    except Exception:  # the store is being created
        return 0


def _rows(store, table):
    out = []
    for r in Store(str(store), create=False).dataset(table).to_table().to_pylist():
        row = {k: v for k, v in r.items() if k not in DROP[table]}
        out.append(json.loads(json.dumps(row, default=str).replace(str(store), "<store>")))
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


@pytest.mark.slow
def test_sigkill_at_three_random_points_then_rerun_matches_uninterrupted(shapes_store, bootstrapped_policy, tmp_path):
    policy, _ = bootstrapped_policy
    straight = tmp_path / "straight"
    shutil.copytree(shapes_store, straight)
    t0 = time.perf_counter()
    r = subprocess.run(_evolve(straight, policy), capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    want = {t: _rows(straight, t) for t in DROP}
    assert len(want["iterations"]) == 3 and want["train_log"] and want["rollouts"]

    rng = random.Random(7)
    done = _progress(straight) - _progress(shapes_store)
    for point in range(3):
        killed = tmp_path / f"killed-{point}"
        shutil.copytree(shapes_store, killed)
        target = _progress(killed) + rng.randrange(1, done)
        proc = subprocess.Popen(_evolve(killed, policy), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=ENV)
        deadline = time.time() + 10 * wall
        while proc.poll() is None and _progress(killed) < target and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"point {point}: the run ended before reaching {target}"
        at_kill = {t: len(_rows(killed, t)) for t in DROP}
        print(f"point {point}: killed past {target} of {done} with rows {at_kill}")
        r = subprocess.run(_evolve(killed, policy), capture_output=True, text=True, env=ENV)
        assert r.returncode == 0, r.stderr[-3000:]
        for table in DROP:
            assert _rows(killed, table) == want[table], f"point {point}: {table} differs"
