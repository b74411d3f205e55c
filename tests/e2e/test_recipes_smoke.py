"""Every packaged recipe under `mstar evolve --smoke` on the embedded task, each in under 60 s on CPU, with
what its method must have left in the store. The recipes are globbed and counted, so none is skipped."""

import json
import shutil
import statistics
import time
from collections import defaultdict
from pathlib import Path

import pytest

from mstar_data.prm.format import NEGATIVE, POSITIVE, STEP_TAG

RECIPES = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "recipes").glob("*.toml"))


def test_the_packaged_recipes_are_all_here():
    assert len(RECIPES) >= 8 and {"mstar.toml", "continuous_static.toml", "iterative_rft.toml", "rest_em.toml",
                                  "r3v.toml", "grpo.toml", "grpo_dapo.toml", "demo.toml"} <= set(RECIPES)


@pytest.fixture(scope="module")
def smoke_store(shapes_store, tmp_path_factory):
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.store import Store

    uri = tmp_path_factory.mktemp("recipes") / "store"
    shutil.copytree(shapes_store, uri)  # one store for all: every recipe runs under its own id
    # mstar_unlabeled.toml draws from split `unlabeled`: add one (other seeds' examples; no recipe else reads it)
    pool = [it for it in synthetic_items(120, 2, "easy", 0.0, unlabeled_fraction=0.5) if it.split == "unlabeled"]
    ingest_items(Store(str(uri), create=False), pool, source="synthetic", dataset="synthetic", split="train")
    return uri


@pytest.fixture(scope="module")
def stand_in_prm(bootstrapped_policy, tmp_path_factory):
    """An UNTRAINED PRM: the policy's weights with a PRM's metadata. The smoke checks the wiring (scoring, top-K
    by score, Reward-Pass@2), not the scores; tests/e2e/test_prm.py trains a real one."""
    policy, _ = bootstrapped_policy
    out = tmp_path_factory.mktemp("prm") / "prm"
    shutil.copytree(policy, out)
    meta_path = out / "checkpoint.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta["prm"] = {"id": "stand-in", "step_tag": STEP_TAG, "positive": POSITIVE, "negative": NEGATIVE}
    meta_path.write_text(json.dumps(meta))
    return str(out)


def _sql(cli, store, query, *params):
    r = cli("sql", "--store", store, "--format", "json", query, *(a for p in params for a in ("--param", p)))
    assert r.rc == 0, r.err
    return json.loads(r.out)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_under_smoke(recipe, smoke_store, bootstrapped_policy, stand_in_prm, cli):
    policy, _ = bootstrapped_policy
    paths = ["--set", f"run.base_policy='{policy}'"]
    config = json.loads(cli("evolve", "--recipe", recipe, "--smoke", *paths, "--print-config").out)
    if config.get("prm", {}).get("path"):  # the recipe names a PRM folder: give it one
        paths += ["--set", f"prm.path='{stand_in_prm}'"]
    t0 = time.perf_counter()
    r = cli("evolve", "--recipe", recipe, "--smoke", *paths, "--store", smoke_store)
    assert r.rc == 0, r.err
    assert time.perf_counter() - t0 < 60
    run = config["run"]["id"]
    if recipe.startswith("grpo"):
        _check_grpo(cli, smoke_store, run)
        return
    its = _sql(cli, smoke_store, f"select iteration, n_train, greedy_acc from iterations where run_id = '{run}' "
                                 "order by iteration")
    assert [i["iteration"] for i in its] == [0, 1, 2] and all(i["greedy_acc"] is not None for i in its)
    assert sum(i["n_train"] for i in its) > 0
    if recipe == "mstar_unlabeled.toml":  # unlabelled queries join at 75% (iteration 2 of the smoke's 2)
        labels = _sql(cli, smoke_store, "select iteration, count(*) as n, list(distinct labeller) as by "
                                        f"from pseudo_labels where run_id = '{run}' group by iteration")
        assert labels == [{"iteration": 2, "n": 8, "by": ["weighted_vote"]}]  # the stand-in PRM weighs the votes
    if recipe == "r3v.toml":  # the reflection examples are in its training sets
        kinds = _sql(cli, smoke_store, "select kind, count(*) as n from trainset_r3v group by kind",
                     f"run={run}", "iteration=2")
        assert {k["kind"] for k in kinds if k["n"] > 0} == {"cot", "refine", "select"}


def _check_grpo(cli, store, run):
    rows = _sql(cli, store, "select iteration as step, query_id, reward, advantage from rollouts "
                            f"where stage = 'grpo' and run_id = '{run}'")
    assert sorted({x["step"] for x in rows}) == [1, 2, 3]
    groups = defaultdict(list)
    for x in rows:
        groups[(x["step"], x["query_id"])].append(x)
    assert all(len(g) == 4 for g in groups.values())  # the smoke's G
    for g in groups.values():
        rewards, adv = [x["reward"] for x in g], [x["advantage"] for x in g]
        if len(set(rewards)) > 1:  # normalised within the group
            assert abs(statistics.fmean(adv)) < 1e-5 and abs(statistics.pstdev(adv) - 1) < 1e-2
        else:
            assert adv == [0.0] * 4
    dyn = _sql(cli, store, f"select * from grpo_dynamics where run_id = '{run}'")
    assert [d["step"] for d in dyn] == [1, 2, 3] and all(d["loss"] is not None for d in dyn)
    png = Path(store).parent / f"{run}.png"
    r = cli("dynamics", "--run", run, "--plot", png, "--store", store)
    assert r.rc == 0 and "GRPO" in r.out and png.read_bytes()[:4] == b"\x89PNG"
