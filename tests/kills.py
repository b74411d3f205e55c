"""Kill-and-rerun helpers for the loop tests: how far a run has come, its rows without timings, and a SIGKILL
once a run reaches a seeded point."""

import json
import signal
import subprocess
import sys
import time
from collections import Counter

from mstar_data.schema import KEYS
from mstar_data.store import Store


def mstar(*args) -> list[str]:
    """The command line of `mstar ARGS...` run by this interpreter (the venv's, whatever PATH says)."""
    return [sys.executable, "-c", "from mstar_cli.main import main; main()", *map(str, args)]


def duplicate_keys(store, table: str) -> list[tuple]:
    """The keys (schema.KEYS) stored more than once in a table, read from every row."""
    key = KEYS[table]
    rows = Store(str(store), create=False).dataset(table).to_table(columns=list(key)).to_pylist()
    return [k for k, n in Counter(tuple(r[c] for c in key) for r in rows).items() if n > 1]


def run_progress(store) -> int:
    """How far a run has come, from its rows: a kill point is a target on this scale."""
    try:
        s = Store(str(store), create=False)
        return s.count("rollouts") + 10 * s.count("train_log") + 100 * s.count("iterations")
    except Exception:  # the store is being created
        return 0


def table_rows(store, table: str, drop: set[str]) -> list[dict]:
    """A table's rows without the `drop` columns, the store's path written as <store>, in a stable order."""
    out = []
    for r in Store(str(store), create=False).dataset(table).to_table().to_pylist():
        row = {k: v for k, v in r.items() if k not in drop}
        out.append(json.loads(json.dumps(row, default=str).replace(str(store), "<store>")))
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


def kill_when(cmd: list[str], store, target: int, env: dict, timeout: float = 300, progress=run_progress) -> int:
    """Start `cmd`, SIGKILL it once `progress(store)` (by default run_progress) reaches `target`; its return
    code (-SIGKILL when the kill came before the command ended on its own)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    while proc.poll() is None and progress(store) < target and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def kill_points_match(cmd_for, base_store, tmp_path, want: dict, drop: dict, seed: int, points: int, env: dict):
    """For each seeded point: copy the base store, kill the run there, rerun it, and compare each table."""
    import random
    import shutil

    done = run_progress(tmp_path / "straight") - run_progress(base_store)
    rng = random.Random(seed)
    for point in range(points):
        killed = tmp_path / f"killed-{point}"
        shutil.copytree(base_store, killed)
        target = run_progress(killed) + rng.randrange(1, done)
        rc = kill_when(cmd_for(killed), killed, target, env)
        assert rc == -signal.SIGKILL, f"point {point}: the run ended before reaching {target}"
        print(f"point {point}: killed past {target} of {done}: "
              f"{ {t: len(table_rows(killed, t, drop[t])) for t in drop} }")
        r = subprocess.run(cmd_for(killed), capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        for table in drop:
            assert table_rows(killed, table, drop[table]) == want[table], f"point {point}: {table} differs"
