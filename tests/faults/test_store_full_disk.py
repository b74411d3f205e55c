"""A full disk while `mstar generate` flushes rollouts: the job fails with one clear line, every row committed
before the failure is still there and readable, no key is stored twice, and a rerun once space is freed writes
exactly what is missing.

The disk fills at the Nth store write (every table: the rollouts flushes, then the job's `jobs` row), either
before Lance commits the write (the common case: the data files cannot be written) or after it (the write is
committed but a later step of the same append, its compaction, runs out of space and the append reports failure).
"""

import errno
import shutil

import pytest

from mstar_data.errors import StoreError
from mstar_data.sampling.engine import Completion
from mstar_data.sampling.generate import GenerateConfig, plan_generate, run_generate
from mstar_data.store import Store
from mstar_data.store.tables import Store as StoreImpl

N_QUERIES, N_SAMPLES, FLUSH = 30, 2, 8
TOTAL = N_QUERIES * N_SAMPLES               # 60 rollouts: 7 flushes of 8, one of 4, then the jobs row
CFG = GenerateConfig(policy="x", split=None, n=N_SAMPLES, run="r", batch_size=4, flush_rows=FLUSH,
                     flush_seconds=1e9)


class EchoEngine:
    """Answers '7' to every request and counts them."""

    policy_tag = "echo"

    def __init__(self):
        self.seen = 0

    def generate(self, requests):
        self.seen += len(requests)
        return [Completion("# Answer\n\n7", 3, "stop", [-0.1, -0.2, -0.3], [5, 6, 2]) for _ in requests]

    def release(self):
        pass


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items

    uri = str(tmp_path_factory.mktemp("fulldisk") / "store")
    ingest_items(Store(uri), synthetic_items(N_QUERIES, 2, "easy", 0.0), source="synthetic", dataset="synthetic",
                 split="train")
    return uri


class FullDisk:
    """From the `at`-th store write on (counting from 1), every write raises ENOSPC until `free()`.
    `when`: "before" the commit (Store._write) or "after" it (the compaction that follows the commit)."""

    def __init__(self, monkeypatch, at: int, when: str):
        self.at, self.writes, self.full = at, 0, True
        real_write, real_compact = StoreImpl._write, StoreImpl.maybe_compact
        fault = self

        def _write(store, name, rows):
            fault.writes += 1
            if when == "before":
                fault.maybe_fail(store)
            return real_write(store, name, rows)

        def maybe_compact(store, name, max_fragments=None):
            if when == "after":
                fault.maybe_fail(store)
            return real_compact(store, name, max_fragments)

        monkeypatch.setattr(StoreImpl, "_write", _write)
        monkeypatch.setattr(StoreImpl, "maybe_compact", maybe_compact)

    def maybe_fail(self, store):
        if self.full and self.writes >= self.at:
            raise OSError(errno.ENOSPC, "No space left on device", f"{store.uri}/rollouts.lance/data/x.lance")

    def free(self):
        self.full = False


def _rows(uri):
    """Every stored rollout, all columns (reading them is the check that the committed data is readable)."""
    return Store(uri, create=False).dataset("rollouts").to_table().to_pylist()


# (when, at, table, committed): the write that fills the disk, the table it writes to, and how many rollouts
# were committed when the job failed (write 9 is the jobs row: all 60 rollouts are in, the job's record is not)
TRIALS = [("before", 1, "rollouts", 0), ("before", 2, "rollouts", 8), ("before", 5, "rollouts", 32),
          ("before", 8, "rollouts", 56), ("before", 9, "jobs", 60),
          ("after", 1, "rollouts", 8), ("after", 4, "rollouts", 32), ("after", 8, "rollouts", 60)]


@pytest.mark.parametrize("when,at,table,committed", TRIALS, ids=[f"{w}-commit-write{a}" for w, a, *_ in TRIALS])
def test_full_disk_during_generate_keeps_committed_rows_and_rerun_completes(template, tmp_path, monkeypatch,
                                                                             when, at, table, committed):
    uri = str(tmp_path / "store")
    shutil.copytree(template, uri)
    expected = [p.rollout_id for p in plan_generate(Store(uri, create=False), CFG).todo]
    assert len(expected) == TOTAL

    disk = FullDisk(monkeypatch, at, when)
    with pytest.raises(StoreError) as e:
        run_generate(Store(uri, create=False), CFG, engine=EchoEngine())
    msg = str(e.value)
    assert "\n" not in msg and "no space left on device" in msg and uri in msg and "rerun" in msg, msg
    assert f"to {table};" in msg, msg

    rows = _rows(uri)                       # the store opens and every committed row reads back
    ids = [r["rollout_id"] for r in rows]
    assert len(ids) == len(set(ids)) == committed
    assert set(ids) == set(expected[:committed])          # flushed in plan order: the first `committed`
    assert all(r["response"] == "# Answer\n\n7" and r["token_ids"] == [5, 6, 2] and r["correct"] is not None
               for r in rows)

    disk.free()
    engine = EchoEngine()
    r = run_generate(Store(uri, create=False), CFG, engine=engine)
    assert (r.skipped, r.written, engine.seen) == (committed, TOTAL - committed, TOTAL - committed)
    rows = _rows(uri)
    ids = [x["rollout_id"] for x in rows]
    assert len(ids) == len(set(ids)) == TOTAL and set(ids) == set(expected)
    assert len({(x["query_id"], x["sample_idx"]) for x in rows}) == TOTAL
    jobs = [j for j in Store(uri, create=False).dataset("jobs").to_table().to_pylist() if j["kind"] == "generate"]
    assert [(j["n_skipped"], j["status"]) for j in jobs] == [(committed, "finished")]
    # a third run has nothing left to do and writes no rollout
    v = Store(uri, create=False).version("rollouts")
    again = run_generate(Store(uri, create=False), CFG, engine=EchoEngine())
    assert (again.skipped, again.written) == (TOTAL, 0) and Store(uri, create=False).version("rollouts") == v
