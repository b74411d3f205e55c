"""configure_threads counts the cores other processes keep busy, not its own: a job that reloads its model
while its own threads run must not take itself for a busy machine (it dropped to one thread for good)."""

import pytest

from mstar_data.models import threads


@pytest.fixture
def machine(monkeypatch):
    """A 2-core machine over one 0.1 s window: `busy` cores busy in all, `own` of them this process."""
    def set_load(busy: float, own: float):
        jiffies = iter([(0, 0), (20, round(20 - busy * 10))])   # 2 cores x 10 jiffies in the window
        seconds = iter([0.0, own * threads.WINDOW_S])
        monkeypatch.setattr(threads, "_cpu_jiffies", lambda: next(jiffies))
        monkeypatch.setattr(threads, "_own_seconds", lambda: next(seconds))
        monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
        monkeypatch.delenv("MSTAR_THREADS", raising=False)

    return set_load


@pytest.mark.parametrize("busy, own, expected", [(0.0, 0.0, 2), (2.0, 2.0, 2), (1.0, 0.0, 1), (2.0, 1.0, 1),
                                                 (0.5, 0.0, 2)])
def test_threads_take_the_cores_other_processes_leave(machine, busy, own, expected):
    import torch

    before = torch.get_num_threads()
    machine(busy, own)
    try:
        assert threads.configure_threads() == expected == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_mstar_threads_overrides(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("MSTAR_THREADS", "1")
    try:
        assert threads.configure_threads() == 1
    finally:
        torch.set_num_threads(before)
