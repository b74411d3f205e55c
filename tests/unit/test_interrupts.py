"""A signal during a store write is held until the write is done; outside one it interrupts at once."""

import pytest

from mstar_data.interrupts import handle_signal, uninterrupted


def test_a_signal_inside_a_write_waits_for_it_to_finish():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with uninterrupted():
            with uninterrupted():  # nested: raised only when the outermost block ends
                handle_signal(2, None)
                done.append("inner")
            done.append("outer")
    assert done == ["inner", "outer"]
    with uninterrupted():  # the pending signal was consumed
        pass


def test_outside_a_write_a_signal_interrupts_at_once():
    with pytest.raises(KeyboardInterrupt):
        handle_signal(2, None)
