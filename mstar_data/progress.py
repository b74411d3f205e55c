"""Progress reporting without a UI library: the library calls `progress(task, done, total, note)`, and the CLI
decides how to draw it (rich bars today). `None` means nobody is watching.

A task is named by its first call; later calls with the same name update it. `done` is absolute (not a
delta), so a reporter that misses a call still shows the right count.
"""

from __future__ import annotations

from typing import Callable, Optional

ProgressFn = Callable[[str, int, int, str], None]


def report(progress: Optional[ProgressFn], task: str, done: int, total: int, note: str = "") -> None:
    if progress is not None:
        progress(task, done, total, note)
