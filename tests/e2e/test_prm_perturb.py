"""`mstar prm perturb`: known chains of thought with numbers changed, written as rollouts, labelled, trained on."""

import random
import re

from mstar_data.ingest.synthetic import synthetic_items
from mstar_data.ingest.writer import ingest_items
from mstar_data.inputs import select_queries
from mstar_data.prm.label import LabelConfig, run_label
from mstar_data.prm.perturb import perturb_steps
from mstar_data.sql_views import run_view
from mstar_data.steps import split_steps
from mstar_data.store import Store


def test_perturb_steps_moves_one_number_per_chosen_step():
    steps = ["red: 2.", "blue: 0.", "2 + 0 = 2.", "Look again.", "# Answer\n\n2"]
    for seed in range(200):
        out = perturb_steps(steps, random.Random(seed), p_step=1.0, max_delta=2)
        assert out == perturb_steps(steps, random.Random(seed), p_step=1.0, max_delta=2)  # a pure function
        assert out[3] == "Look again."                                  # no number: never touched
        for before, after in zip(steps, out):
            a, b = re.findall(r"\d+", before), re.findall(r"\d+", after)
            assert re.sub(r"\d+", "#", before) == re.sub(r"\d+", "#", after)  # only numbers change
            moved = [(int(x), int(y)) for x, y in zip(a, b) if x != y]
            assert len(moved) == (1 if a else 0)
            assert all(1 <= abs(x - y) <= 2 and y >= 0 for x, y in moved)
    untouched = sum(perturb_steps(steps, random.Random(s), p_step=0.5) == steps for s in range(400))
    assert 400 / 16 * 0.5 < untouched < 400 / 16 * 2                    # each of 4 numbered steps: 1/2


def test_perturb_cli_writes_labels_and_trains_on_perturbed_chains(cli, store_uri):
    s = Store(store_uri)
    ingest_items(s, synthetic_items(30, 3, "easy", 0.5), source="synthetic", dataset="synthetic", split="train")
    sources = [q for q in select_queries(s, split="train") if q["reference_cot"]]
    r = cli("prm", "perturb", "--run", "p", "--per-source", "3", "--store", store_uri)
    assert r.rc == 0, r.err
    rows = s.dataset("rollouts").to_table(filter="run_id = 'p'").to_pylist()
    assert len(rows) == 3 * len(sources) and {x["stage"] for x in rows} == {"perturb"}
    assert {x["policy"] for x in rows} == {"perturb"} and len({x["rollout_id"] for x in rows}) == len(rows)
    by_query = {q["query_id"]: split_steps(q["reference_cot"]) for q in sources}
    changed = 0
    for x in rows:
        ref = by_query[x["query_id"]]
        assert len(x["steps"]) == len(ref) and x["steps_valid"] is not None
        # The reference is all true: a step is false exactly where a number was changed.
        assert x["steps_valid"] == [a == b for a, b in zip(x["steps"], ref)]
        changed += x["steps"] != ref
    assert changed > len(rows) * 0.8
    again = cli("prm", "perturb", "--run", "p", "--per-source", "3", "--store", store_uri)
    assert again.rc == 0 and s.dataset("rollouts").count_rows("run_id = 'p'") == len(rows)

    run_label(s, LabelConfig(labeller="task", run="p", stage="perturb"))
    trainset = run_view(s, "prm_trainset", run="p", labeller="task").to_pylist()
    assert len(trainset) == len(rows)
    assert {t["rollout_id"]: t["hard_labels"] for t in trainset} == {x["rollout_id"]: x["steps_valid"] for x in rows}

    # From the run's own responses: parent ids kept; no such responses is one line and nothing written.
    bad = cli("prm", "perturb", "--run", "p", "--source", "rollouts", "--store", store_uri)
    assert bad.rc == 1 and "no explore rollouts" in bad.err and len(bad.err.strip().splitlines()) == 1
    r = cli("prm", "perturb", "--run", "p2", "--source", "rollouts", "--stage", "perturb", "--per-source", "2",
            "--store", store_uri)
    assert r.rc == 1  # run p2 has no rollouts at all
    r = cli("prm", "perturb", "--run", "p", "--source", "rollouts", "--stage", "perturb", "--iteration", "0",
            "--per-source", "1", "--limit", "5", "--store", store_uri)
    assert r.rc == 0, r.err
    kids = s.dataset("rollouts").to_table(filter="run_id = 'p' AND parent_rollout_id IS NOT NULL").to_pylist()
    assert len(kids) == 5 and {k["parent_rollout_id"] for k in kids} <= {x["rollout_id"] for x in rows}
    assert all(len(k["steps"]) == len(by_query[k["query_id"]]) for k in kids)
