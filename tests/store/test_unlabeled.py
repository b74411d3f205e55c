"""Unlabelled queries on small hand-built stores: the pseudo-label views and their rows, the pseudo judgement,
selection by it, dynamics, and the synthetic task's held-out split (the loop: tests/unit/test_unlabeled_loop.py)."""

import json

import pytest

from mstar_data.errors import MstarError
from mstar_data.keys import rollout_id
from mstar_data.loop.recipe import resolve_recipe
from mstar_data.loop.unlabeled import UnlabeledMix, first_iteration, pin_votes
from mstar_data.sql_views import run_read_only, run_view
from mstar_data.store import Store


def _q(qid, split, answer=None, held=None):
    meta = json.dumps({"held_out_answer": held}) if held is not None else None
    return {"query_id": qid, "dataset": "d", "split": split, "question": "How many?", "answer": answer,
            "answer_type": "integer", "meta": meta, "record_sha256": qid}


def _r(q, idx, pred, prm=None, correct=None, it=1, run="u", fmt=True):
    text = f"one.\n\ntwo.\n\n# Answer\n\n{pred}" if pred is not None else "no answer here"
    return {"rollout_id": rollout_id(run, it, "explore", q, idx), "run_id": run, "iteration": it, "stage": "explore",
            "query_id": q, "sample_idx": idx, "temperature": 1.0, "response": text, "pred_answer": pred,
            "correct": correct, "format_ok": fmt, "prm_score": prm, "steps": ["one.", "two."], "n_tokens": 9}


# u/1: PRM weights pick the minority answer 3 (0.9 + 0.8 = 1.7 against 0.3 + 0.2 + 0.1 = 0.6 for 4).
# u/2: "5" and "6" tie on weight (0.5 each); more votes wins -> 6 (two samples); the unscored "7" weighs 0.
# u/3: nobody gives an answer -> a row with no label.
# u/4: sampled in another iteration only.
VOTES = {"u/1": [("3", .9), ("4", .3), ("3", .8), ("4", .2), ("4", .1)],
         "u/2": [("5", .5), ("6", .25), ("6", .25), ("7", None)],
         "u/3": [(None, .4), (None, .6)]}
HELD = {"u/1": "3", "u/2": "5", "u/3": "7", "u/4": "8"}


def _recipe(*extra):
    return resolve_recipe("demo.toml", ["run.base_policy='base'", "run.id='u'", "prm.path='prm'",
                                        "data.unlabeled_ratio=0.5", "data.iterations=4", *extra])


@pytest.fixture
def store(store_uri):
    s = Store(store_uri)
    s.append("queries", [_q(q, "unlabeled", held=h) for q, h in HELD.items()]
             + [_q("l/1", "train", answer="2"), _q("v/1", "val", answer="2")])
    rows = [_r(q, i, pred, prm) for q, votes in VOTES.items() for i, (pred, prm) in enumerate(votes)]
    rows += [_r("l/1", 0, "2", .5, correct=True), _r("l/1", 1, "3", .9, correct=False), _r("u/4", 0, "8", .5, it=2)]
    s.append("rollouts", rows)
    return s


def _by_hand(votes):
    """The PRM-weighted vote, spelled out: weight per answer (unscored samples weigh 0 when others are scored,
    1 when none is), the heaviest wins, ties to more votes, then the smaller string."""
    answered = [(a, p) for a, p in votes if a is not None]
    if not answered:
        return None, None
    scored = any(p is not None for _, p in answered)
    weight, count = {}, {}
    for a, p in answered:
        weight[a] = weight.get(a, 0.0) + ((p or 0.0) if scored else 1.0)
        count[a] = count.get(a, 0) + 1
    best = sorted(weight, key=lambda a: (-weight[a], -count[a], a))[0]
    return best, weight[best] / sum(weight.values())


def test_pseudo_labels_are_the_weighted_vote_at_the_pinned_version(store):
    mix = UnlabeledMix(store, _recipe())
    version = pin_votes(store, "u", 1)
    # Rollouts landing after the pin (they would flip u/1) are not read: the vote is the pinned version's.
    store.append("rollouts", [_r("u/1", 10 + i, "4", .99) for i in range(3)])
    stats = mix.pseudo_label(1, ["u/1", "u/2", "u/3"])
    rows = {r["query_id"]: r for r in store.dataset("pseudo_labels").to_table().to_pylist()}
    assert set(rows) == {"u/1", "u/2", "u/3"}
    for q in ("u/1", "u/2"):
        label, share = _by_hand(VOTES[q])
        assert rows[q]["label"] == label and rows[q]["vote_share"] == pytest.approx(share)
        assert rows[q]["labeller"] == "weighted_vote" and rows[q]["rollouts_version"] == version
    assert (rows["u/1"]["label"], rows["u/2"]["label"]) == ("3", "6")
    assert (rows["u/1"]["n_votes"], rows["u/1"]["n_samples"], rows["u/2"]["n_scored"]) == (2, 5, 3)
    assert rows["u/2"]["n_samples"] == 4 and rows["u/3"]["labeller"] == "weighted_vote"
    assert rows["u/3"]["label"] is None and rows["u/3"]["n_samples"] == 0
    # each label is checked against the held-aside answer: u/1 right, u/2 wrong, u/3 unlabelled
    assert [rows[q]["label_correct"] for q in ("u/1", "u/2", "u/3")] == [True, False, None]
    assert stats == {"queries": 3, "labelled": 2, "labeller": "weighted_vote", "label_acc": 0.5,
                     "pseudo_correct": 2 + 2}

    # the rollouts are judged against the label; their gold verdict stays null
    got = {(r["query_id"], r["sample_idx"]): r for r in store.dataset("rollouts").to_table(
        columns=["query_id", "sample_idx", "correct", "pseudo_correct"], filter="iteration = 1").to_pylist()}
    assert [got[("u/1", i)]["pseudo_correct"] for i in range(5)] == [True, False, True, False, False]
    assert [got[("u/2", i)]["pseudo_correct"] for i in range(4)] == [False, True, True, False]
    assert got[("u/3", 0)]["pseudo_correct"] is None and got[("u/1", 10)]["pseudo_correct"] is False
    assert all(r["correct"] is None for k, r in got.items() if k[0].startswith("u/"))
    assert got[("l/1", 0)]["pseudo_correct"] is None and got[("l/1", 0)]["correct"] is True

    # rerun: nothing written twice, no table version moves
    before = {i.name: i.version for i in store.info()}
    assert mix.pseudo_label(1, ["u/1", "u/2", "u/3"]) == stats
    assert {i.name: i.version for i in store.info()} == before


def test_without_prm_scores_the_vote_is_a_majority(store_uri):
    s = Store(store_uri)
    s.append("queries", [_q("u/1", "unlabeled")])
    s.append("rollouts", [_r("u/1", i, a) for i, a in enumerate(["7", "8", "8", None])])
    UnlabeledMix(s, _recipe("prm.path=''")).pseudo_label(1, ["u/1"])
    row = s.dataset("pseudo_labels").to_table().to_pylist()[0]
    assert (row["label"], row["labeller"], row["n_samples"], row["label_correct"]) == ("8", "majority", 3, None)
    assert row["vote_share"] == pytest.approx(2 / 3)


def test_oracle_labels_are_the_held_aside_answers(store):
    UnlabeledMix(store, _recipe("data.pseudo_label='oracle'")).pseudo_label(1, ["u/1", "u/2", "u/3"])
    rows = {r["query_id"]: r for r in store.dataset("pseudo_labels").to_table().to_pylist()}
    assert {q: r["label"] for q, r in rows.items()} == {"u/1": "3", "u/2": "5", "u/3": "7"}
    assert all(r["labeller"] == "oracle" and r["label_correct"] for r in rows.values())
    assert rows["u/2"]["vote_share"] == pytest.approx(.5 / 1.0) and rows["u/2"]["n_votes"] == 1
    got = {r["sample_idx"]: r["pseudo_correct"] for r in store.dataset("rollouts").to_table(
        filter="query_id = 'u/2' AND iteration = 1").to_pylist()}
    assert got == {0: True, 1: False, 2: False, 3: False}


def test_bad_pools_are_refused_before_any_write(store):
    store.append("queries", [_q("u/9", "unlabeled")])  # no held-aside answer
    before = {i.name: i.version for i in store.info()}
    with pytest.raises(MstarError, match=r"queries 'u/9' field 'meta.held_out_answer': missing"):
        UnlabeledMix(store, _recipe("data.pseudo_label='oracle'"))
    with pytest.raises(MstarError, match=r"data.unlabeled_split 'test': no queries"):
        UnlabeledMix(store, _recipe("data.unlabeled_split='test'"))
    with pytest.raises(MstarError, match=r"data.unlabeled_split 'train': is also the train or val split"):
        UnlabeledMix(store, _recipe("data.unlabeled_split='train'"))
    store.append("queries", [_q("x/1", "pool", answer="3")])
    with pytest.raises(MstarError, match=r"queries 'x/1' field 'answer': set"):
        UnlabeledMix(store, _recipe("data.unlabeled_split='pool'"))
    assert {i.name: i.version for i in store.info()}["pseudo_labels"] == before["pseudo_labels"]
    assert not UnlabeledMix(store, _recipe("data.unlabeled_ratio=0", "data.unlabeled_split='nope'")).active


def test_mix_in_schedule_and_slices(store):
    assert [first_iteration(s, 4) for s in (0, .25, .5, .75, 1)] == [1, 2, 3, 4, 5]
    assert [first_iteration(s, 8) for s in (0, .25, .5, .75)] == [1, 3, 5, 7]
    assert first_iteration(.75, 2) == 2 and first_iteration(.3, 10) == 4
    mix = UnlabeledMix(store, _recipe("data.unlabeled_start=0.5"))
    assert mix.sample(1, 4) == [] and mix.sample(2, 4) == []
    # half the explored queries: as many unlabelled as labelled; consecutive slices, wrapping round the pool
    assert mix.sample(3, 2) == ["u/1", "u/2"] and mix.sample(4, 2) == ["u/3", "u/4"]
    assert mix.sample(3, 10) == ["u/1", "u/2", "u/3", "u/4"]  # never more than the pool
    third = UnlabeledMix(store, _recipe("data.unlabeled_ratio=0.25"))
    assert len(third.sample(1, 6)) == 2  # 2 of 8 explored queries
    assert UnlabeledMix(store, _recipe("data.unlabeled_start=1.0")).sample(4, 4) == []
    # the packaged Table 3 recipe mixes in at 75% of 8 iterations, and under --smoke (2) at iteration 2
    full, smoke = resolve_recipe("mstar_unlabeled.toml"), resolve_recipe("mstar_unlabeled.toml", smoke=True)
    assert (full.data.unlabeled_start, full.data.pseudo_label, full.data.unlabeled_ratio) == (.75, "weighted_vote", .5)
    assert first_iteration(.75, full.data.iterations) == 7 and first_iteration(.75, smoke.data.iterations) == 2


def test_selection_reads_the_pseudo_judgement_and_dynamics_the_label_accuracy(store):
    UnlabeledMix(store, _recipe()).pseudo_label(1, ["u/1", "u/2", "u/3"])
    top = run_view(store, "trainset_top_k", run="u", iteration=1, k=1).to_pylist()
    assert {r["query_id"]: r["prm_score"] for r in top} == {"l/1": pytest.approx(.5), "u/1": pytest.approx(.9),
                                                            "u/2": pytest.approx(.25)}
    everything = run_view(store, "trainset_all_correct", run="u", iteration=1).to_pylist()
    assert sorted(r["query_id"] for r in everything) == ["l/1", "u/1", "u/1", "u/2", "u/2"]
    acc = run_read_only(store, "select * from pseudo_label_accuracy where run_id = 'u'").to_pylist()
    assert len(acc) == 1 and acc[0]["n_unlabeled"] == 3 and acc[0]["labeller"] == "weighted_vote"
    assert acc[0]["pseudo_label_coverage"] == pytest.approx(2 / 3) and acc[0]["pseudo_label_acc"] == pytest.approx(.5)
    # dynamics: the gold metrics ignore unlabelled rollouts; the iteration's rows carry the label accuracy
    val = {"stage": "val", "temperature": 0.0}
    store.append("rollouts", [_r("v/1", 0, "2", correct=True, it=1) | val | {"rollout_id": "val-1"},
                              _r("v/1", 0, "2", correct=True, it=1, run="other") | val | {"rollout_id": "val-2"}])
    dyn = {(r["run_id"], r["stage"]): r for r in run_view(store, "dynamics").to_pylist() if r["iteration"] == 1}
    assert dyn["u", "explore"]["n_queries"] == 1 and dyn["u", "explore"]["sample_acc"] == pytest.approx(.5)
    assert dyn["u", "val"]["pseudo_label_acc"] == pytest.approx(.5) and dyn["u", "val"]["n_unlabeled"] == 3
    assert dyn["other", "val"]["pseudo_label_acc"] is None and dyn["other", "val"]["greedy_acc"] == 1.0


def test_synthetic_holds_out_unlabelled_queries_with_their_answers_aside(store_uri, cli):
    from mstar_data.ingest.synthetic import synthetic_items

    r = cli("ingest", "synthetic", "--n", 40, "--unlabeled-fraction", 0.5, "--store", store_uri)
    assert r.rc == 0, r.err
    q = {x["query_id"]: x for x in Store(store_uri, create=False).dataset("queries").to_table().to_pylist()}
    plain = {f"synthetic/{it.fields.id}": it for it in synthetic_items(40, 1, "easy", 0.2)}
    splits = [q[k]["split"] for k in sorted(q)]
    assert splits.count("train") == 14 and splits.count("unlabeled") == 14 and splits.count("val") == 6
    for k, row in q.items():
        if row["split"] == "unlabeled":
            assert row["answer"] is None and row["reference_cot"] is None
            assert json.loads(row["meta"])["held_out_answer"] == plain[k].fields.answer
        else:
            assert row["answer"] == plain[k].fields.answer and "held_out_answer" not in json.loads(row["meta"])
    assert all(q[k]["split"] == "train" for k in sorted(q)[:14])  # the seed set (reference CoT) stays labelled
    assert "unlabeled=14" in r.out
    again = cli("ingest", "synthetic", "--n", 40, "--unlabeled-fraction", 0.5, "--store", store_uri)
    assert again.rc == 0 and Store(store_uri, create=False).count("queries") == 40
    bad = cli("ingest", "synthetic", "--n", 40, "--unlabeled-fraction", 0.95, "--store", store_uri)
    assert bad.rc != 0 and "--unlabeled-fraction: unlabeled_fraction 0.95: 27 of 28 train examples" in bad.err
    changed = cli("ingest", "synthetic", "--n", 40, "--unlabeled-fraction", 0.25, "--store", store_uri)
    assert changed.rc != 0 and "already stored with different content" in changed.err
    assert Store(store_uri, create=False).count("queries") == 40
