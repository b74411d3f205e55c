"""CPU threads for torch. On a small machine that another process keeps busy, two OpenMP threads are much
slower than one: every parallel region waits at its barrier for the thread that is not scheduled. We take the
cores that other processes leave free now (MSTAR_THREADS overrides).

"Other" matters: the load average counts this process too, so a job that reloads its model (the loop does,
every stage) would see its own two threads as a busy machine and drop to one thread for good. Where
/proc/stat exists we measure the machine's busy time over a short window and take away our own.
"""

from __future__ import annotations

import os
import time

WINDOW_S = 0.1


def configure_threads() -> int:
    import torch

    env = os.environ.get("MSTAR_THREADS")
    if env:
        n = max(1, int(env))
    else:
        cores = os.cpu_count() or 1
        busy = busy_cores_of_others(cores)
        n = max(1, min(cores, round(cores - busy + 0.25)))
    torch.set_num_threads(n)
    return n


def busy_cores_of_others(cores: int, window: float = WINDOW_S) -> float:
    """How many cores other processes keep busy: measured from /proc/stat over `window` seconds, less this
    process's own CPU time; elsewhere the 1-minute load average (which counts this process too)."""
    try:
        t0, idle0, own0 = *_cpu_jiffies(), _own_seconds()
        time.sleep(window)
        t1, idle1, own1 = *_cpu_jiffies(), _own_seconds()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    total = t1 - t0
    if total <= 0:
        return 0.0
    busy = (total - (idle1 - idle0)) / total * cores
    return max(0.0, busy - (own1 - own0) / window)


def _cpu_jiffies() -> tuple[int, int]:
    """(all, idle + iowait) jiffies of all cores since boot: the first line of /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(values), values[3] + values[4]


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system
