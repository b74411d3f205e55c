"""One process per run id: a lease held in the store itself, so it works wherever the store does (s3:// too).

The `leases` table is an append-only log of events (claim, heartbeat, release). Lance commits appends one
version at a time, and every reader sees the same log in the same order (sorted by row address: fragment ids
only grow). So who holds a run is a pure function of the log (`holder_of`): a claim wins if the run is free,
if its last holder released it, or if that holder's last heartbeat is older than its ttl at the claim's time.
Two processes that claim at once both append; the log puts one claim first, and both read the same winner.
We need no conditional write beyond the one Lance already makes for every commit, which is what makes it
work on an object store (as far as Lance's commits are atomic there: S3 with conditional puts, as AWS and
moto have, or a commit store; tests/store/test_lease.py races claimants on a moto server).

The holder appends a heartbeat every ttl/3 seconds from a daemon thread. A process killed with SIGKILL stops
heartbeating, and after its ttl anyone may take the run over. On the same host we do not wait: a holder whose
pid is gone is released on its behalf (a `release` row written `by` the new claimant), then claimed.
The loops call `check()` between steps: a holder whose lease was taken over (it stalled past its ttl) stops
instead of writing beside the new holder.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa

from mstar_data.errors import MstarError
from mstar_data.schema import LEASES
from mstar_data.store.predicates import equals

TABLE = "leases"
DEFAULT_TTL_S = 180.0


class LeaseHeld(MstarError):
    """Another live process holds the run."""


@dataclass
class Holder:
    holder: str
    host: str | None
    pid: int | None
    claimed_at: float
    last_seen: float
    ttl_s: float

    def describe(self, now: float) -> str:
        left = self.ttl_s - (now - self.last_seen)
        return (f"pid {self.pid} on {self.host} (holder {self.holder[:8]}, last heartbeat {now - self.last_seen:.0f} s "
                f"ago, expires in {max(0.0, left):.0f} s)")


def holder_of(events: list[dict]) -> Holder | None:
    """Who holds the run after these events (in log order)."""
    owner: Holder | None = None
    for e in events:
        kind, who, at = e["event"], e["holder"], e["at"]
        if kind == "claim":
            if owner is None or owner.holder == who or at - owner.last_seen > owner.ttl_s:
                if owner is None or owner.holder != who:
                    owner = Holder(who, e["host"], e["pid"], at, at, e["ttl_s"] or DEFAULT_TTL_S)
                else:
                    owner.last_seen = max(owner.last_seen, at)
        elif kind == "heartbeat" and owner is not None and owner.holder == who:
            owner.last_seen = max(owner.last_seen, at)
        elif kind == "release" and owner is not None and owner.holder == who:
            owner = None
    return owner


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _open_table(store):
    """The leases table. A store gets it when it is created (schema.TABLES); a store from an older release
    gets it here. Lance's create is not exclusive (two creators racing can both commit, the second as an
    overwrite), so the one unsafe moment is two processes taking the very first lease of an old store within
    milliseconds of each other; `mstar init` on such a store closes it."""
    try:
        return store.db.open_table(TABLE)
    except (FileNotFoundError, ValueError):
        pass
    try:
        return store.db.create_table(TABLE, schema=LEASES, exist_ok=True)
    except Exception:  # another process created it between our open and our create
        return store.db.open_table(TABLE)


class RunLease:
    """`with RunLease(store, run):` holds the run for the block, or raises LeaseHeld naming the holder.

    `clock`, `host` and `pid` are what the events record (tests move the clock past an expiry, or pose as
    another host); the defaults are the real ones."""

    def __init__(self, store, run: str, *, ttl_s: float = DEFAULT_TTL_S, heartbeat_s: float | None = None,
                 clock=time.time, host: str | None = None, pid: int | None = None):
        self.store, self.run, self.ttl_s, self.clock = store, run, float(ttl_s), clock
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else self.ttl_s / 3
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self.holder = uuid.uuid4().hex
        self.held = False
        self.lost: Holder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the log ------------------------------------------------------------------------------------
    def events(self) -> list[dict]:
        ds = _open_table(self.store).to_lance()
        t = ds.to_table(filter=equals("run_id", self.run), with_row_address=True)
        return t.sort_by("_rowaddr").drop_columns(["_rowaddr"]).to_pylist()

    def _append(self, event: str, *, holder: str | None = None, note: str | None = None) -> None:
        row = {"run_id": self.run, "holder": holder or self.holder, "event": event, "host": self.host,
               "pid": self.pid, "at": float(self.clock()), "ttl_s": self.ttl_s, "by": self.holder, "note": note}
        if holder and holder != self.holder:  # a release on behalf of a gone holder: its host, not ours
            row["host"], row["pid"] = None, None
        _open_table(self.store).add(pa.Table.from_pylist([row], schema=LEASES))

    # -- holding --------------------------------------------------------------------------------------
    def acquire(self) -> "RunLease":
        now = self.clock()
        owner = holder_of(self.events())
        if owner is not None and owner.holder != self.holder and now - owner.last_seen <= owner.ttl_s:
            if owner.host == self.host and owner.pid is not None and not _pid_alive(owner.pid):
                self._append("release", holder=owner.holder, note=f"pid {owner.pid} on {owner.host} is gone")
            else:
                raise self._refusal(owner, now)  # refused before writing anything
        self._append("claim")
        owner = holder_of(self.events())
        if owner is None or owner.holder != self.holder:  # another claim came first in the log
            raise self._refusal(owner, self.clock())
        self.held = True
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.run}", daemon=True)
        self._thread.start()
        return self

    def _refusal(self, owner: Holder | None, now: float) -> LeaseHeld:
        who = owner.describe(now) if owner else "another process"
        return LeaseHeld(f"run '{self.run}' is held by {who}: one process per run id (wait for it to finish, "
                         f"or use another --run-id)")

    def heartbeat(self) -> bool:
        """One beat: append a heartbeat, then read who holds the run. False (and `lost` set) if not us."""
        self._append("heartbeat")
        owner = holder_of(self.events())
        if owner is None or owner.holder != self.holder:
            self.lost = owner or Holder("none", None, None, 0.0, 0.0, 0.0)
            return False
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                if not self.heartbeat():
                    return
            except Exception:  # a store hiccup: try again at the next beat (the ttl allows for a few)
                continue

    def check(self) -> None:
        """Raise if another process took the run over (this one stalled past its ttl)."""
        if self.lost is not None:
            raise LeaseHeld(f"run '{self.run}': the lease was taken over by {self.lost.describe(self.clock())} "
                            f"after this process missed its heartbeats; stopping")

    def release(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self.held and self.lost is None:
            self._append("release")
        self.held = False

    def __enter__(self) -> "RunLease":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
