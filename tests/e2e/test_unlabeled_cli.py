"""The Table 3 recipe as a user runs it: `mstar ingest synthetic --unlabeled-fraction`, then `mstar evolve
--recipe mstar_unlabeled.toml --smoke` on the real tiny model, then the pseudo-labels through `mstar sql`."""

import json

import pytest

from mstar_data.store import Store


@pytest.mark.slow
def test_smoke_of_the_table3_recipe_mixes_unlabelled_queries_in_late(bootstrapped_policy, tmp_path, cli):
    policy, _ = bootstrapped_policy
    uri = str(tmp_path / "store")
    assert cli("ingest", "synthetic", "--n", 200, "--unlabeled-fraction", 0.5, "--store", uri).rc == 0
    r = cli("evolve", "--recipe", "mstar_unlabeled.toml", "--smoke", "--set", f"run.base_policy='{policy}'",
            "--set", "prm.path=''", "--store", uri)
    assert r.rc == 0, r.err
    s = Store(uri, create=False)
    queries = s.dataset("queries").to_table(columns=["query_id", "split"]).to_pylist()
    split = {q["query_id"]: q["split"] for q in queries}
    explore = s.dataset("rollouts").to_table(filter="stage = 'explore'").to_pylist()
    unl = [x for x in explore if split[x["query_id"]] == "unlabeled"]
    # 0.75 of the 2 smoke iterations: from iteration 2, as many unlabelled queries as labelled ones (8 each)
    assert {x["iteration"] for x in unl} == {2} and len({x["query_id"] for x in unl}) == 8
    assert all(x["correct"] is None for x in unl) and all(x["correct"] is not None for x in explore if x not in unl)
    labels = {x["query_id"]: x for x in s.dataset("pseudo_labels").to_table().to_pylist()}
    assert set(labels) == {x["query_id"] for x in unl}
    assert all(x["labeller"] == "majority" and x["label_correct"] is not None for x in labels.values() if x["label"])
    for x in unl:
        label = labels[x["query_id"]]["label"]
        assert (x["pseudo_correct"] is None) == (label is None)
    out = cli("sql", "select iteration, n_unlabeled, pseudo_label_acc from dynamics where run_id = "
                     "'mstar-unlabeled-smoke' and stage = 'val' order by iteration", "--format", "json", "--store", uri)
    assert out.rc == 0, out.err
    checked = [x["label_correct"] for x in labels.values() if x["label_correct"] is not None]
    acc = sum(checked) / len(checked)
    rows = json.loads(out.out)
    assert [(x["iteration"], x["n_unlabeled"]) for x in rows] == [(0, None), (1, None), (2, 8)]
    assert rows[2]["pseudo_label_acc"] == pytest.approx(acc) and rows[1]["pseudo_label_acc"] is None
    assert f"{acc:.1%}" in cli("dynamics", "--run", "mstar-unlabeled-smoke", "--store", uri).out
