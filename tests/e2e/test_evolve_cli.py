"""`mstar evolve` as a user meets it: the resolved recipe, smoke ids, and a changed rerun refused up front."""

import json
import shutil

from mstar_data.loop.evolve import Evolve
from mstar_data.loop.recipe import resolve_recipe
from mstar_data.store import Store


def test_a_missing_base_policy_names_the_recipe_key(cli, shapes_store):
    r = cli("evolve", "--recipe", "demo.toml", "--smoke", "--store", shapes_store)
    # a relative path resolves against the artifacts root (here the store's folder), and the error says so
    assert r.rc == 1 and f"recipe run.base_policy 'policies/base' (-> {shapes_store}/policies/base): no such " \
                         f"folder" in r.err
    assert "--set run.base_policy=PATH (relative paths resolve against the artifacts root)" in r.err
    assert "--policy" not in r.err and len(r.err.strip().splitlines()) == 1


def test_print_config_shows_the_resolved_recipe(cli):
    r = cli("evolve", "--recipe", "demo.toml", "--smoke", "--set", "run.base_policy='p'", "--set", "sample.n=3",
            "--print-config")
    assert r.rc == 0, r.err
    rec = json.loads(r.out)
    assert rec["run"]["id"] == "demo-smoke" and rec["sample"]["n"] == 3  # --set after --smoke wins
    assert rec["data"]["iterations"] == 2 and rec["train"]["max_steps"] == 4  # the smoke shrink
    assert rec["train"]["lr"] == 5e-4 and rec["prm"]["path"] is None  # the file, then the defaults
    r = cli("evolve", "--recipe", "demo.toml", "--run-id", "mine", "--set", "run.base_policy='p'", "--print-config")
    assert json.loads(r.out)["run"]["id"] == "mine"


def test_a_changed_rerun_is_refused_naming_the_keys(cli, shapes_store, tmp_path):
    uri = str(tmp_path / "store")
    shutil.copytree(shapes_store, uri)
    s = Store(uri, create=False)
    policy = tmp_path / "p"  # checked for its files only: the refusal comes before any model is loaded
    policy.mkdir()
    (policy / "config.json").write_text("{}")
    (policy / "model.safetensors").write_bytes(b"")
    Evolve(s, resolve_recipe("demo.toml", [f"run.base_policy='{policy}'"], smoke=True)).record_run()
    before = {i.name: i.version for i in s.info()}
    r = cli("evolve", "--recipe", "demo.toml", "--smoke", "--set", f"run.base_policy='{policy}'", "--set",
            "select.k=3", "--store", uri)
    assert r.rc == 1
    assert "run 'demo-smoke' was recorded with a different recipe (differs in select.k)" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert {i.name: i.version for i in Store(uri, create=False).info()} == before  # nothing written
    # the full run is another run id, so it is not refused
    assert Store(uri, create=False).count("runs", "run_id = 'demo'") == 0
