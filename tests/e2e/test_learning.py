"""Our proof that the system learns: a shrunken demo gains held-out accuracy through selection, and a control
that trains on randomly chosen responses (wrong answers included), with the same steps, does not.

The two arms are independent runs on one store, so they run side by side as two `mstar evolve` processes of
one thread each (two one-thread runs get ~1.6x the throughput of one two-thread run on this 2-core machine).
"""

import pytest

from tests.learning import evolve_side_by_side, iterations

SHRINK = ["data.iterations=3", "data.interval=0.5", "data.val_limit=90", "sample.n=6", "temperature.search_every=0",
          "eval.n=2", "eval.k=2", "train.epochs=4"]
CONTROL = ["select.view='trainset_random_k'", "select.correct_only=false"]


@pytest.mark.slow
def test_selection_learns_and_random_selection_does_not(learning_store):
    store, base = learning_store
    given = [f"run.base_policy='{base}'", *SHRINK]
    evolve_side_by_side(store, "demo.toml", {"select": given, "control": given + CONTROL})
    sel, ctrl = iterations(store, "select"), iterations(store, "control")
    assert [r["iteration"] for r in sel] == [r["iteration"] for r in ctrl] == [0, 1, 2, 3]
    start, sel_final, ctrl_final = sel[0]["greedy_acc"], sel[-1]["greedy_acc"], ctrl[-1]["greedy_acc"]
    print(f"selection {start:.3f} -> {sel_final:.3f}; control {ctrl[0]['greedy_acc']:.3f} -> {ctrl_final:.3f}")
    assert ctrl[0]["greedy_acc"] == start  # same base policy, same greedy measurement
    sel_gain, ctrl_gain = sel_final - start, ctrl_final - start
    assert sel_gain >= 0.15
    assert ctrl_gain <= sel_gain - 0.15
    # Same amount of training: the control's training sets are at least as large.
    assert sum(r["n_train"] or 0 for r in ctrl) >= sum(r["n_train"] or 0 for r in sel)
