"""Our proof that the system learns: a shrunken demo gains held-out accuracy through selection, and a control
that trains on randomly chosen responses (wrong answers included), with the same steps, does not."""

import pytest

from mstar_data.ingest.synthetic import synthetic_items
from mstar_data.ingest.writer import ingest_items
from mstar_data.loop.evolve import Evolve
from mstar_data.loop.recipe import load_recipe
from mstar_data.store import Store
from mstar_data.models.bootstrap import BootstrapConfig, run_bootstrap

SHRINK = ["data.iterations=3", "data.interval=0.5", "data.val_limit=90", "sample.n=6", "temperature.search_every=0",
          "eval.n=2", "eval.k=2", "train.epochs=4"]


@pytest.fixture(scope="module")
def learning_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning")
    s = Store(str(root / "store"))
    ingest_items(s, synthetic_items(1200, 1, "easy", 0.2), source="synthetic", dataset="synthetic", split="train")
    base = root / "store" / "policies" / "base"
    b = run_bootstrap(s, BootstrapConfig(out=str(base)))
    assert b.accuracy > b.constant_acc  # the starting policy reads the image, a little
    return s, base


def _evolve(store, base, run, extra):
    recipe, _ = load_recipe("demo.toml", [f"run.base_policy='{base}'", f"run.id='{run}'"] + SHRINK + extra)
    return Evolve(store, recipe).run_all()


@pytest.mark.slow
def test_selection_learns_and_random_selection_does_not(learning_store):
    store, base = learning_store
    sel = _evolve(store, base, "select", [])
    ctrl = _evolve(store, base, "control", ["select.view='trainset_random_k'", "select.correct_only=false"])
    sel_gain = sel.final_acc - sel.start_acc
    ctrl_gain = ctrl.final_acc - ctrl.start_acc
    print(f"selection {sel.start_acc:.3f} -> {sel.final_acc:.3f}; control {ctrl.start_acc:.3f} -> {ctrl.final_acc:.3f}")
    assert sel.start_acc == ctrl.start_acc  # same base policy, same greedy measurement
    assert sel_gain >= 0.15
    assert ctrl_gain <= sel_gain - 0.15
    # Same amount of training: the control's training sets are at least as large.
    assert sum(r["n_train"] for r in ctrl.iterations) >= sum(r["n_train"] for r in sel.iterations)
