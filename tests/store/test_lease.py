"""One process per run id: the lease log decides one holder, a second process is refused naming it, and a
holder killed with SIGKILL is taken over after its expiry (on another host) or at once (on its own host)."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from mstar_data.store import Store
from mstar_data.store.lease import LeaseHeld, RunLease, holder_of
from tests.store.test_s3 import s3_env  # noqa: F401 (a fixture: a local moto S3 server)

# A process that claims the run (after `go` exists, so two of them claim at the same moment), says whether it
# holds it, and keeps holding (heartbeats running) until its stdin closes.
CHILD = textwrap.dedent("""
    import os, sys, time
    from mstar_data.store import Store
    from mstar_data.store.lease import LeaseHeld, RunLease
    uri, run, host, ttl, go = sys.argv[1:6]
    store = Store(uri, create=False)
    lease = RunLease(store, run, ttl_s=float(ttl), heartbeat_s=float(ttl) / 4, host=host)
    while not os.path.exists(go):
        time.sleep(0.01)
    try:
        lease.acquire()
        print("held", os.getpid(), flush=True)
    except LeaseHeld as e:
        print("refused:", e, flush=True)
        sys.exit(3)
    sys.stdin.read()
    lease.release()
""")


def _child(uri, run, host, ttl, go):
    return subprocess.Popen([sys.executable, "-c", CHILD, uri, run, host, str(ttl), str(go)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"))


def test_the_log_decides_one_holder():
    ev = lambda kind, who, at, ttl=10.0: {"event": kind, "holder": who, "at": at, "host": "h", "pid": 1, "ttl_s": ttl}
    assert holder_of([]) is None
    # two claims at once: the first in the log wins, the second is a no-op
    assert holder_of([ev("claim", "a", 5.0), ev("claim", "b", 4.0)]).holder == "a"
    # a claim after the holder's expiry takes over; one within it does not
    assert holder_of([ev("claim", "a", 0.0), ev("heartbeat", "a", 8.0), ev("claim", "b", 17.0)]).holder == "a"
    assert holder_of([ev("claim", "a", 0.0), ev("heartbeat", "a", 8.0), ev("claim", "b", 18.5)]).holder == "b"
    # a late heartbeat of the old holder does not win the run back
    assert holder_of([ev("claim", "a", 0.0), ev("claim", "b", 11.0), ev("heartbeat", "a", 12.0)]).holder == "b"
    # a release frees the run; a release by someone who does not hold it changes nothing
    assert holder_of([ev("claim", "a", 0.0), ev("release", "a", 1.0)]) is None
    assert holder_of([ev("claim", "a", 0.0), ev("release", "b", 1.0)]).holder == "a"


def test_two_concurrent_processes_one_is_refused_naming_the_holder(store, tmp_path):
    go = tmp_path / "go"
    procs = [_child(store.uri, "r", f"host-{i}", 30, go) for i in range(2)]
    go.write_text("")  # both claim now
    lines = [p.stdout.readline().strip() for p in procs]
    held = [(p, line) for p, line in zip(procs, lines) if line.startswith("held")]
    refused = [line for line in lines if line.startswith("refused:")]
    for p in procs:
        p.stdin.close()
    rcs = [p.wait(timeout=60) for p in procs]
    assert len(held) == 1 and len(refused) == 1, lines
    winner_pid = held[0][1].split()[1]
    assert f"run 'r' is held by pid {winner_pid} on host-" in refused[0]
    assert sorted(rcs) == [0, 3]
    assert holder_of(RunLease(store, "r").events()) is None  # the winner released it on exit


def test_threads_racing_for_a_run_get_one_holder(store):
    results, barrier = [], threading.Barrier(5)

    def claim(i):
        lease = RunLease(store, "race", host=f"h{i}")
        barrier.wait()
        try:
            lease.acquire()
            results.append(("held", lease.holder))
        except LeaseHeld as e:
            results.append(("refused", str(e)))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [r for r in results if r[0] == "held"]
    assert len(held) == 1 and len(results) == 5
    assert holder_of(RunLease(store, "race").events()).holder == held[0][1]


def test_a_killed_holder_is_taken_over_after_its_expiry(store, tmp_path):
    go = tmp_path / "go"
    go.write_text("")
    ttl = 30.0
    # two holders on host-a (runs r and r2), both killed with SIGKILL: nothing of theirs lets go
    procs = [_child(store.uri, run, "host-a", ttl, go) for run in ("r", "r2")]
    for p in procs:
        line = p.stdout.readline().strip()
        assert line.startswith("held"), line + p.stderr.read()
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    p, p2 = procs
    before = len(RunLease(store, "r").events())
    # from another host we cannot see the pid: refused (writing nothing) until the ttl has passed
    with pytest.raises(LeaseHeld, match=rf"run 'r' is held by pid {p.pid} on host-a .*expires in"):
        RunLease(store, "r", host="host-b").acquire()
    assert len(RunLease(store, "r").events()) == before
    import time

    later = RunLease(store, "r", host="host-b", clock=lambda: time.time() + ttl + 1)
    with later:
        assert holder_of(later.events()).holder == later.holder and later.lost is None
    # on the holder's own host a gone pid is released at once (a rerun right after a crash is not made to wait)
    with RunLease(store, "r2", host="host-a") as again:
        events = again.events()
        assert [e["event"] for e in events][-2:] == ["release", "claim"]
        assert events[-2]["note"] == f"pid {p2.pid} on host-a is gone"


def test_a_holder_that_stalls_past_its_ttl_learns_it_lost_the_run(store):
    import time

    now = time.time()
    slow = RunLease(store, "r", ttl_s=10, heartbeat_s=3600, clock=lambda: now)
    slow.acquire()
    slow.check()  # still ours
    RunLease(store, "r", host="elsewhere", clock=lambda: now + 11).acquire()
    assert slow.heartbeat() is False  # its next beat reads the log and sees the takeover
    with pytest.raises(LeaseHeld, match="taken over by pid .* on elsewhere"):
        slow.check()
    slow.release()  # and it does not release what it no longer holds
    assert holder_of(slow.events()).host == "elsewhere"


def test_the_lease_works_on_an_object_store(s3_env):
    """The same log on s3:// (a local moto server): racing claimants get one holder, the others are refused
    naming it, and a release frees the run."""
    store = Store(s3_env)  # a new store has the leases table
    results, barrier = [], threading.Barrier(3)

    def claim(i):
        lease = RunLease(store, "r", host=f"h{i}")
        barrier.wait()
        try:
            lease.acquire()
            results.append(lease)
        except LeaseHeld as e:
            results.append(str(e))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [r for r in results if isinstance(r, RunLease)]
    assert len(held) == 1 and all(f"on {held[0].host} " in r for r in results if isinstance(r, str))
    held[0].release()
    with RunLease(store, "r", host="later") as lease:
        assert holder_of(lease.events()).host == "later"
