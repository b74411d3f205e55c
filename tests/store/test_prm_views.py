"""PRM views on a hand-built store whose answers are known: training set, step AUC, reranking."""

import pytest

from mstar_data.sql_views import run_view
from mstar_data.store import Store


def _q(qid, split):
    return {"query_id": qid, "dataset": "t", "split": split, "question": "?", "answer": "1", "answer_type": "integer",
            "record_sha256": qid}


def _r(rid, qid, steps, stage="eval", scores=None, correct=True, pred="1", temp=1.0, prm="P"):
    return {"rollout_id": rid, "run_id": "r", "iteration": 0, "stage": stage, "query_id": qid,
            "sample_idx": int(rid[-1]) if rid[-1].isdigit() else 0, "temperature": temp, "steps": steps,
            "response": "\n\n".join(steps), "correct": correct, "pred_answer": pred, "format_ok": True,
            "step_scores": scores, "prm_score": min(scores) if scores else None, "prm": prm if scores else None}


def _l(rid, idx, good, soft=None):
    return {"rollout_id": rid, "step_idx": idx, "n_rollouts": 4, "n_correct": 4 if good else 0,
            "soft_label": soft if soft is not None else float(good), "hard_label": good, "run_id": "r"}


@pytest.fixture
def store(store_uri):
    s = Store(store_uri)
    s.append("queries", [_q("t1", "train"), _q("t2", "train"), _q("v1", "val"), _q("v2", "val")])
    s.append("rollouts", [
        _r("a", "t1", ["s1", "s2"], stage="explore"), _r("b", "t2", ["s1", "s2", "s3"], stage="explore"),
        _r("m", "t1", ["s1", "x"], stage="mc"),
        _r("v1s1", "v1", ["x", "y"], scores=[0.9, 0.3]), _r("v1s2", "v1", ["x", "y"], scores=[0.8, 0.8]),
    ])
    s.append("step_labels", [_l("a", 1, False, 0.25), _l("a", 0, True, 0.75),   # out of order on purpose
                             _l("b", 0, True),                                   # b is only partly labelled
                             _l("m", 0, True), _l("m", 1, True),                 # mc rows are not examples
                             _l("v1s1", 0, True), _l("v1s1", 1, False), _l("v1s2", 0, True), _l("v1s2", 1, False)])
    return s


def test_prm_trainset_orders_labels_and_keeps_fully_labelled_responses(store):
    rows = run_view(store, "prm_trainset", run="r").to_pylist()
    assert [(r["rollout_id"], r["hard_labels"], r["soft_labels"]) for r in rows] == [("a", [True, False], [0.75, 0.25])]
    assert [r["rollout_id"] for r in run_view(store, "prm_trainset", run="r", split="val").to_pylist()] == ["v1s1", "v1s2"]


def test_step_auc_is_the_mann_whitney_statistic(store):
    got = run_view(store, "prm_step_auc", run="r", prm="P").to_pylist()[0]
    # good steps score 0.9 and 0.8, bad ones 0.3 and 0.8: 3 wins and a tie out of 4 pairs.
    assert (got["n_steps"], got["n_good"]) == (4, 2)
    assert got["step_auc"] == pytest.approx(3.5 / 4)
    assert run_view(store, "prm_step_auc", run="r", prm="other").to_pylist()[0]["step_auc"] is None


def test_rerank_against_majority_and_random(store_uri):
    s = Store(store_uri)
    s.append("queries", [_q("q1", "val"), _q("q2", "val")])
    rows = []
    # q1: the majority answer (7, three votes) is wrong; the PRM scores the one right answer highest.
    for i, (pred, ok, score) in enumerate([("7", False, .2), ("7", False, .3), ("7", False, .1), ("1", True, .9)]):
        rows.append(_r(f"q1s{i}", "q1", ["a"], scores=[score], correct=ok, pred=pred))
    # q2: right answer by majority, but the PRM prefers a wrong one.
    for i, (pred, ok, score) in enumerate([("1", True, .2), ("1", True, .1), ("5", False, .9), ("6", False, .8)]):
        rows.append(_r(f"q2s{i}", "q2", ["a"], scores=[score], correct=ok, pred=pred))
    s.append("rollouts", rows)
    got = run_view(s, "prm_rerank", run="r").to_pylist()[0]
    assert (got["n_queries"], got["n_samples"], got["scored_share"]) == (2, 4, 1.0)
    assert got["best_of_n"] == 0.5            # q1 yes, q2 no
    assert got["reward_pass_at_2"] == 0.5    # q2's top 2 are both wrong
    assert got["majority_vote"] == 0.5       # q1's majority is wrong, q2's right
    assert got["weighted_vote"] == 0.5       # q1: 1 (0.9) beats 7 (0.6); q2: 5 (0.9) beats 1 (0.3)
    assert got["pass_at_n"] == 1.0 and got["sample_acc"] == pytest.approx(3 / 8)
    seeds = {run_view(s, "prm_rerank", run="r", seed=k).to_pylist()[0]["random_2"] for k in range(8)}
    assert seeds <= {0.0, 0.5, 1.0} and len(seeds) > 1  # seeded draws of 2, which differ with the seed
    assert got["top2_faithful"] is None      # no step checker: nothing to say about faithfulness


def test_labellers_keep_their_own_labels_of_the_same_steps(store):
    s = store
    s.append("step_labels", [dict(_l("a", 0, False), labeller="task"), dict(_l("a", 1, False), labeller="task"),
                             dict(_l("a", 0, True), labeller="mc")])  # already stored as mc (NULL): skipped
    assert s.count("step_labels") == 11
    mc = run_view(s, "prm_trainset", run="r").to_pylist()
    task = run_view(s, "prm_trainset", run="r", labeller="task").to_pylist()
    assert [r["hard_labels"] for r in mc] == [[True, False]] and [r["hard_labels"] for r in task] == [[False, False]]
    assert run_view(s, "prm_trainset", run="r", labeller="judge").num_rows == 0


def test_step_auc_against_the_truth_and_faithful_top_2(store_uri):
    s = Store(store_uri)
    s.append("queries", [_q("q1", "val"), _q("q2", "val")])
    rows = []
    # q1: four correct samples; the PRM ranks the two faithful ones first.
    for i, (valid, scores) in enumerate([([True, True], [.9, .8]), ([False, True], [.2, .9]),
                                         ([True, True], [.7, .7]), ([True, False], [.6, .1])]):
        rows.append(dict(_r(f"q1s{i}", "q1", ["a", "b"], scores=scores), steps_valid=valid))
    rows.append(dict(_r("q2s0", "q2", ["a", "b"], scores=[.5, .5], correct=False, pred="3"), steps_valid=[False, False]))
    s.append("rollouts", rows)
    auc = run_view(s, "prm_step_auc_truth", run="r", prm="P").to_pylist()[0]
    # 7 true steps, 3 false ones (scores .2, .1, .5 and .5): every true step outscores every false one but
    # one tie (.5 is below all true steps; .6 > .5, ...), so count the pairs by hand.
    true_s, false_s = [.9, .8, .9, .7, .7, .6], [.2, .1, .5, .5]
    want = sum((t > f) + .5 * (t == f) for t in true_s for f in false_s) / (len(true_s) * len(false_s))
    assert (auc["n_steps"], auc["n_good"]) == (10, 6) and auc["step_auc"] == pytest.approx(want)
    got = run_view(s, "prm_rerank", run="r").to_pylist()[0]
    assert got["top2_faithful"] == 1.0                         # q1s0 and q1s2
    draws = {run_view(s, "prm_rerank", run="r", seed=k).to_pylist()[0]["random2_faithful"] for k in range(12)}
    assert draws <= {0.0, 0.5, 1.0} and min(draws) < 1.0      # random picks of 2 among 4 miss sometimes
