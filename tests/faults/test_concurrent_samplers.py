"""Two writers of the same keys at the same time store each key once.

`Store.append` checks which keys are stored, then appends the rest. Without a lock, two processes can both
find a key missing and both append it (a Lance append commits whatever it is given). The check and the append
now run under the table's write lock (`Store.write_lock`: an flock on `<store>/.locks/<table>.lock`).
These tests race real processes: first bare `Store.append`s of one row each, then two `mstar generate` jobs
on the same run, iteration and stage with overlapping query lists, flushing every rollout.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import subprocess

import pytest

from mstar_data.keys import rollout_id
from mstar_data.store import Store
from tests.kills import duplicate_keys, mstar

SCOPE = "run_id = 'race' AND iteration = 0 AND stage = 'explore'"


def _row(i: int) -> dict:
    return {"rollout_id": rollout_id("race", 0, "explore", f"q{i:04d}", 0), "run_id": "race", "iteration": 0,
            "stage": "explore", "query_id": f"q{i:04d}", "sample_idx": 0, "response": "r", "correct": True}


def _append_one_by_one(uri: str, n: int, start, written) -> None:
    s = Store(uri, create=False)
    start.wait()
    written.put(sum(s.append("rollouts", [_row(i)], where=SCOPE) for i in range(n)))


def test_two_processes_appending_the_same_keys_store_each_once(tmp_path):
    """Two processes append the same 40 keys, one row per append, released together by a barrier: 40 rows, no
    key twice, and the two appends' counts of written rows add up to 40 (each key written by exactly one)."""
    uri = str(tmp_path / "store")
    Store(uri)
    ctx = mp.get_context("spawn")
    start, written = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_append_one_by_one, args=(uri, 40, start, written)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    s = Store(uri, create=False)
    assert s.count("rollouts") == 40
    assert duplicate_keys(uri, "rollouts") == []
    assert written.get(timeout=5) + written.get(timeout=5) == 40


def test_the_lock_is_a_file_under_the_store_and_frees_on_exit(tmp_path):
    """The lock lives in `<store>/.locks/` (a dot folder: the store's folder check ignores it), is exclusive
    while held, and is free again once the holder leaves the block."""
    import fcntl

    uri = str(tmp_path / "store")
    s = Store(uri)
    lock = tmp_path / "store" / ".locks" / "rollouts.lock"
    with s.write_lock("rollouts"):
        assert lock.exists()
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free now
    finally:
        os.close(fd)
    Store(uri, create=False)  # the .locks folder does not make the store look like a folder of other files


def _generate(store, policy, limit: int) -> list[str]:
    return mstar("generate", "--policy", policy, "--split", "train", "--n", "2", "--limit", limit, "--run", "race",
                 "--temperature", "1.0", "--max-new-tokens", "4", "--batch-size", "1", "--flush-rows", "1",
                 "--store", store)


def test_two_samplers_on_overlapping_queries_store_no_rollout_twice(shapes_store, bootstrapped_policy, tmp_path):
    """Two `mstar generate` jobs started together on run 'race' (iteration 0, explore): one over the first 12
    train queries, one over the first 16, both x 2 samples, a store append per rollout. They plan the same
    rollout ids for the 12 shared queries in the same order, so their appends of those keys race. The store
    ends with exactly 32 rollouts (16 queries x 2), each id and each (query, sample) once, and both jobs
    succeed."""
    policy, _ = bootstrapped_policy
    store = tmp_path / "store"
    shutil.copytree(shapes_store, store)
    env = {**os.environ, "MSTAR_THREADS": "1"}
    procs = [subprocess.Popen(_generate(store, policy, limit), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=env) for limit in (12, 16)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    s = Store(str(store), create=False)
    rows = s.dataset("rollouts").to_table(columns=["rollout_id", "query_id", "sample_idx"], filter=SCOPE).to_pylist()
    assert duplicate_keys(store, "rollouts") == []
    assert len(rows) == s.count("rollouts") == 32
    assert len({(r["query_id"], r["sample_idx"]) for r in rows}) == 32
    # Each job counts the rows its own appends wrote: together exactly 32, so no rollout was written twice.
    jobs = [j for j in s.dataset("jobs").to_table().to_pylist() if j["kind"] == "generate"]
    assert len(jobs) == 2 and sum(j["n_written"] for j in jobs) == 32
    print("per job (requested: skipped at plan time, written):",
          {j["n_requested"]: (j["n_skipped"], j["n_written"]) for j in jobs})
