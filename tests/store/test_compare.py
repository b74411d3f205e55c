"""`mstar compare` over runs written straight into a store: the recipe columns, seed groups as mean ± std, the
PNG, and the refusals (a loop-made store is compared in tests/store/test_export_cot.py)."""

import json
import statistics
from datetime import datetime, timezone

import pytest

from mstar_data.compare import compare_runs
from mstar_data.errors import MstarError
from mstar_data.loop.dynamics_plot import written_by_us
from mstar_data.loop.recipe import recipe_json, resolve_recipe
from mstar_data.store import Store

# (run, recipe overrides, greedy per iteration 0..3, n_train per iteration)
RUNS = [
    ("cmp-s0", ["run.seed=0", "data.iterations=3"], [0.30, 0.60, 0.80, 0.867], 40),
    ("cmp-s1", ["run.seed=1", "data.iterations=3"], [0.30, 0.50, 0.78, 0.733], 42),
    ("cmp-s2", ["run.seed=2", "data.iterations=3"], [0.30, 0.55, 0.70, 0.800], 44),
    ("cmp-rft", ["run.seed=0", "train.method='iterative-rft'", "select.view='trainset_all_correct'",
                 "temperature.search_every=0"], [0.30, 0.70, 0.85, 0.90], 100),   # stopped after iteration 3
    ("other", ["run.seed=0", "select.view='trainset_random_k'", "select.correct_only=false"], [0.3, 0.2], 10),
]


@pytest.fixture
def store(store_uri):
    s = Store(store_uri)
    now = datetime.now(timezone.utc)
    for run, sets, greedy, n_train in RUNS:
        r = resolve_recipe("demo.toml", ["run.base_policy='base'", "prm.path='prms/prm-a'", *sets], run_id=run)
        s.append("runs", [{"run_id": run, "recipe": recipe_json(r), "created_at": now}])
        s.append("iterations", [{
            "run_id": run, "iteration": i, "policy_out": f"{run}/it-{i}", "greedy_acc": g, "pass_at_k": g + 0.1,
            "k": 4, "reward_pass_at_2": None if run == "cmp-rft" else g + 0.05, "n_train": n_train if i else 0,
            "timings": json.dumps({"explore_s": 10.0, "train_s": 5.0 * i}), "created_at": now,
            "metrics": json.dumps({"faithful_rate": None if run == "other" else 0.1 * i})}
            for i, g in enumerate(greedy)])
    return s


def test_runs_differing_only_in_seed_are_one_row_with_mean_and_std(store):
    groups = compare_runs(store, prefix="cmp-")
    assert [len(g.runs) for g in groups] == [1, 3]  # in run-id order: cmp-rft, then cmp-s0..2
    rft, seeds = groups
    assert seeds.seeds == [0, 1, 2] and [r["run_id"] for r in seeds.runs] == ["cmp-s0", "cmp-s1", "cmp-s2"]
    finals = [0.867, 0.733, 0.800]
    mean, std = seeds.stat("final_greedy")
    assert mean == pytest.approx(statistics.fmean(finals)) and std == pytest.approx(statistics.pstdev(finals))
    assert seeds.stat("best_greedy")[0] == pytest.approx(statistics.fmean([0.867, 0.78, 0.8]))
    assert seeds.stat("training_rows")[0] == pytest.approx(3 * 42)
    assert seeds.stat("final_faithful") == (pytest.approx(0.3), pytest.approx(0.0))  # the last iteration's
    assert seeds.stat("wall_s")[0] == pytest.approx(4 * 10 + 5 * (1 + 2 + 3))
    assert (seeds.method, seeds.selection, seeds.prm, seeds.temperature) == (
        "continuous", "top-2 by PRM", "prm-a", "search every 2 (0.4..1)")
    assert (rft.method, rft.selection, rft.temperature) == ("iterative-rft", "all correct", "static T=0.7")
    assert rft.stat("final_reward_pass_at_2") == (None, None) and rft.stat("final_greedy") == (0.9, None)
    other = compare_runs(store, runs=["other"])[0]
    assert other.selection == "random-2 incl. wrong" and other.stat("final_faithful") == (None, None)


def test_cli_prints_the_grouped_table_and_writes_the_png(store, cli, tmp_path):
    png = tmp_path / "cmp.png"
    r = cli("compare", "--run-prefix", "cmp-", "--out", png, "--store", store.uri)
    assert r.rc == 0, r.err
    assert "80.0 ± 5.5" in r.out and "0 / 1 / 2" in r.out and "cmp-rft" in r.out and "90.0" in r.out
    assert "faithful" in r.out and "30.0 ± 0.0" in r.out
    assert r.out.count("unfinished") == 1 and "3/4" in r.out  # cmp-rft was asked for 4 iterations and ran 3
    assert written_by_us(png)
    (tmp_path / "mine.png").write_text("not ours")
    r = cli("compare", "--runs", "cmp-s0", "--out", tmp_path / "mine.png", "--store", store.uri)
    assert r.rc == 1 and "mine.png: exists" in r.err and (tmp_path / "mine.png").read_text() == "not ours"


def test_refusals_name_the_run(store):
    with pytest.raises(MstarError, match="--runs: run 'nope' has no iterations"):
        compare_runs(store, runs=["cmp-s0", "nope"])
    with pytest.raises(MstarError, match="--run-prefix 'zz'"):
        compare_runs(store, prefix="zz")
    with pytest.raises(MstarError, match="one of them"):
        compare_runs(store)
