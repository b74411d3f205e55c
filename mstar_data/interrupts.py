"""Ctrl-C and SIGTERM at safe points: never in the middle of a store write.

LanceDB's synchronous calls wait on an event loop in a background thread. A KeyboardInterrupt raised while a
write waits leaves that write running, and the flush that follows in a `finally` can then wait forever
behind it (seen: a Ctrl-C'd `generate` that never exited). So the CLI installs `handle_signal`: outside a
store write it raises KeyboardInterrupt at once, as Python would; inside one it notes the signal, and the
write raises it as soon as it has finished.
"""

from __future__ import annotations

from contextlib import contextmanager

_depth = 0
_pending = False


def handle_signal(signum, frame) -> None:
    global _pending
    if _depth:
        _pending = True
    else:
        raise KeyboardInterrupt


@contextmanager
def uninterrupted():
    """A block that a signal does not cut short: it is raised when the block ends (the outermost one)."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending:
            _pending = False
            raise KeyboardInterrupt
