"""`mstar validate` and the loops' preflight: recipes checked before anything runs, one process per run id."""

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from mstar_data.errors import MstarError
from mstar_data.loop.evolve import Evolve
from mstar_data.loop.recipe import resolve_recipe
from mstar_data.loop.validate import check_recipe, resolve_path
from mstar_data.store import Store
from mstar_data.store.lease import LeaseHeld, RunLease
from tests.unit.test_loop import Models, _parts, _recipe, loop_store  # noqa: F401 (a fixture)

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.toml"))


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    return path


def test_validate_checks_every_packaged_recipe_and_counts(cli):
    r = cli("validate", *RECIPES)
    assert r.rc == 0, r.out + r.err
    m = re.search(r"checked (\d+) recipe\(s\): (\d+) checks, (\d+) ok, 0 failed, (\d+) warnings, (\d+) skipped", r.out)
    assert m and int(m.group(1)) == len(RECIPES) >= 8
    assert int(m.group(2)) == sum(map(int, m.group(3, 4, 5)))
    # every recipe's views were EXPLAINed (the training-set view and the loop's own), none silently skipped
    assert r.out.count("EXPLAIN ok") >= 2 * len(RECIPES)
    for p in RECIPES:
        assert str(p) in r.out
    # the packaged recipes name policies under the artifacts root, which only a store names: skipped, said so
    assert "recipe run.base_policy 'policies/warmup': relative, so it resolves against the artifacts root" in r.out


def test_validate_fails_on_a_misspelled_view_and_k_above_n(cli):
    r = cli("validate", "demo.toml", "--set", "select.view=trainset_topk")
    assert r.rc == 1
    assert "recipe select.view 'trainset_topk': no such view in sql/ (did you mean trainset_top_k?)" in r.out
    assert "1 failed" in r.out
    r = cli("validate", "demo.toml", "--set", "eval.n=2")
    assert r.rc == 1 and "field 'eval.k': 4 is more than eval.n = 2 samples" in r.out
    # --smoke keeps Pass@K honest: it shrinks eval.k with eval.n
    assert resolve_recipe("demo.toml", ["run.base_policy='p'"], smoke=True).eval.k == 2
    with pytest.raises(MstarError, match="field 'eval.k': 4 is more than eval.n = 2"):
        resolve_recipe("demo.toml", ["run.base_policy='p'", "eval.k=4"], smoke=True)


def test_with_a_store_models_are_looked_for_under_the_artifacts_root(cli, shapes_store, tmp_path):
    r = cli("validate", "demo.toml", "--store", shapes_store, "--artifacts", tmp_path)
    assert r.rc == 1
    assert f"recipe run.base_policy 'policies/base' (-> {tmp_path}/policies/base): no such folder" in r.out
    _model_folder(tmp_path / "policies" / "base")
    r = cli("validate", "demo.toml", "--store", shapes_store, "--artifacts", tmp_path)
    assert r.rc == 0, r.out
    assert re.search(r"recipe data.train_split 'train': \d+ queries", r.out)
    assert "0 failed" in r.out and "0 skipped" in r.out and f"run 'demo' is new in {shapes_store}" in r.out
    # the rule itself: absolute as written, relative against the artifacts root
    assert resolve_path("/abs/p", shapes_store) == Path("/abs/p")
    assert resolve_path("policies/x", shapes_store) == (Path(shapes_store) / "policies/x").absolute()
    assert resolve_path("policies/x", None) is None


def test_a_view_that_does_not_explain_is_a_failure(shapes_store, monkeypatch):
    store = Store(shapes_store, create=False)
    recipe = resolve_recipe("demo.toml", ["run.base_policy='p'"])
    rep = check_recipe(recipe, store=store, models=False)
    assert not rep.failures and [c.kind for c in rep.checks].count("view") == 3
    # a view whose SQL names a column the store does not have fails at EXPLAIN, naming the view and the column
    from mstar_data import sql_views

    real = sql_views.load_sql_files

    def with_a_typo(directory=None):
        files = real(directory)
        files["dynamics"].text = files["dynamics"].text.replace("correct::INT", "corect::INT", 1)
        return files

    monkeypatch.setattr(sql_views, "load_sql_files", with_a_typo)
    rep = check_recipe(recipe, store=store, models=False)
    assert [c.detail.split(": EXPLAIN failed")[0] for c in rep.failures] == ["view dynamics (read by the loop)"]
    assert "corect" in rep.failures[0].detail


def test_evolve_refuses_a_misspelled_view_before_any_sampling(cli, shapes_store, tmp_path):
    uri = str(tmp_path / "store")
    shutil.copytree(shapes_store, uri)
    policy = _model_folder(tmp_path / "policy")
    before = Store(uri, create=False).count("rollouts")
    t0 = time.perf_counter()
    r = cli("evolve", "--recipe", "demo.toml", "--smoke", "--set", f"run.base_policy='{policy}'",
            "--set", "select.view=trainset_topk", "--store", uri)
    seconds = time.perf_counter() - t0
    assert r.rc == 1 and seconds < 5
    assert r.err.strip() == ("error: recipe select.view 'trainset_topk': no such view in sql/ "
                             "(did you mean trainset_top_k?)")
    s = Store(uri, create=False)
    assert s.count("rollouts") == before and s.count("runs") == 0  # nothing sampled, nothing recorded


def test_the_loop_holds_the_run_id_and_records_the_search_interval(loop_store):
    store, gold = loop_store
    other = RunLease(store, "demo", host="elsewhere", pid=4242).acquire()
    try:
        with pytest.raises(LeaseHeld, match=r"run 'demo' is held by pid 4242 on elsewhere"):
            Evolve(store, _recipe(), parts=_parts(Models(gold))).run_all()
        assert store.count("runs") == 0 and store.count("rollouts") == 0  # refused before any write
    finally:
        other.release()
    result = Evolve(store, _recipe(), parts=_parts(Models(gold))).run_all()
    # the recipe's relative base_policy ('base') was used resolved against the artifacts root (the store's folder)
    # and recorded as written
    assert result.iterations[0]["policy_in"] == str((Path(store.uri) / "base").absolute())
    assert json.loads(store.dataset("runs").to_table().to_pylist()[0]["recipe"])["run"]["base_policy"] == "base"
    # the lease was taken and given back
    events = [e["event"] for e in RunLease(store, "demo").events()]
    assert events[-2:] == ["claim", "release"]
    # the search every 2 iterations left its per-T record (value, gain over the incumbent, interval)
    metrics = {it["iteration"]: json.loads(it["metrics"]) for it in result.iterations}
    search = metrics[1]["temperature_search"]
    assert "temperature_search" not in metrics[2] and "temperature_search" in metrics[3]
    assert search["incumbent"] == 0.7 and search["metric"] == "reward_pass_at_2" and search["k"] == 2
    assert [row["temperature"] for row in search["sweep"]] == [0.4, 0.7, 1.0]
    assert all(row["gain_lo"] <= row["gain"] <= row["gain_hi"] for row in search["sweep"])
    assert result.iterations[1]["temperature"] == pytest.approx(search["chosen"])
