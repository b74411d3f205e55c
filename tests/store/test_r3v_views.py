"""R3V's training set (sql/trainset_r3v.sql) on a hand-built store: the pool, the three kinds, the seeds."""

from collections import Counter

import pytest

from mstar_data.keys import rollout_id
from mstar_data.select.r3v import example_text, refine_prompt, select_prompt
from mstar_data.sql_views import run_view
from mstar_data.store import Store


def _row(it, q, idx, correct, text, pred, fmt=True, run="r"):
    return {"rollout_id": rollout_id(run, it, "explore", q, idx), "run_id": run, "iteration": it, "stage": "explore",
            "query_id": q, "sample_idx": idx, "correct": correct, "format_ok": fmt, "pred_answer": pred,
            "response": text, "steps": [text], "n_tokens": 5}


@pytest.fixture
def store(store_uri):
    s = Store(store_uri)
    s.append("rollouts", [
        # q1 over two iterations: right texts A, B (B twice: pooled once), wrong texts X, Y
        _row(1, "q1", 0, True, "A # Answer 2", "2"), _row(1, "q1", 1, False, "X # Answer 3", "3"),
        _row(1, "q1", 2, True, "B # Answer 2", "2"),
        _row(2, "q1", 0, True, "B # Answer 2", "2"), _row(2, "q1", 1, False, "Y # Answer 5", "5"),
        _row(2, "q1", 2, False, "Z # Answer 6", "6", fmt=False),          # badly formed: not in the pool
        # q2: all right: cot only
        _row(1, "q2", 0, True, "C # Answer 1", "1"), _row(1, "q2", 1, True, "D # Answer 1", "1"),
        # q3: one right, one wrong: cot and refine, but only 2 distinct texts, so no select
        _row(1, "q3", 0, True, "E # Answer 4", "4"), _row(1, "q3", 1, False, "F # Answer 7", "7"),
        # another run: never read
        _row(1, "q1", 0, False, "W # Answer 9", "9", run="other"),
        # a later iteration: not in iteration 2's pool
        _row(3, "q1", 0, False, "V # Answer 8", "8"),
    ])
    return s


def _rows(store, it=2, **params):
    return run_view(store, "trainset_r3v", run="r", iteration=it, **params).to_pylist()


def test_pool_is_every_iteration_so_far_deduplicated(store):
    rows = _rows(store)
    cot = {(r["query_id"], r["response"]) for r in rows if r["kind"] == "cot"}
    assert cot == {("q1", "A # Answer 2"), ("q1", "B # Answer 2"), ("q2", "C # Answer 1"), ("q2", "D # Answer 1"),
                   ("q3", "E # Answer 4")}
    assert len([r for r in rows if r["kind"] == "cot"]) == 5  # B sampled twice, trained on once
    # iteration 1 alone: q1's Y is not drawn yet
    refine1 = {r["context"][0] for r in _rows(store, it=1) if r["kind"] == "refine" and r["query_id"] == "q1"}
    assert refine1 == {"X # Answer 3"}


def test_refine_pairs_each_wrong_text_with_a_right_one(store):
    refine = [r for r in _rows(store) if r["kind"] == "refine"]
    assert Counter(r["query_id"] for r in refine) == {"q1": 2, "q3": 1}
    assert {r["context"][0] for r in refine if r["query_id"] == "q1"} == {"X # Answer 3", "Y # Answer 5"}
    assert all(r["response"] in {"A # Answer 2", "B # Answer 2", "E # Answer 4"} for r in refine)
    assert len(_rows(store, refine_k=1)) == len(_rows(store)) - 1   # q1 keeps one


def test_select_shows_three_shuffled_candidates_and_the_right_answer(store):
    sel = [r for r in _rows(store) if r["kind"] == "select"]
    assert [r["query_id"] for r in sel] == ["q1"]                    # q3 has 2 texts, q2 no wrong one
    s = sel[0]
    assert len(s["context"]) == 3 and len(set(s["context"])) == 3
    right = {"A # Answer 2", "B # Answer 2"}
    assert 1 <= sum(c in right for c in s["context"]) <= 2
    assert s["context"][s["pick"] - 1] in right and s["answer"] == "2"
    assert all(c not in s["context"][:s["pick"] - 1] for c in right)  # pick is the FIRST right candidate
    orders = {tuple(r["context"]) for seed in range(8) for r in _rows(store, seed=seed) if r["kind"] == "select"}
    assert len(orders) > 1                                            # the seed shuffles
    assert _rows(store, seed=3) == _rows(store, seed=3)               # and the same seed gives the same rows


def test_examples_are_worded_per_kind(store):
    by_kind = {r["kind"]: r for r in _rows(store)}
    assert example_text(by_kind["cot"], "Q?") == ("Q?", by_kind["cot"]["response"])
    p, t = example_text(by_kind["refine"], "Q?")
    assert p == refine_prompt("Q?", by_kind["refine"]["context"][0]) and "Model's prediction" in p
    assert t == by_kind["refine"]["response"]
    s = by_kind["select"]
    p, t = example_text(s, "Q?")
    assert p == select_prompt("Q?", s["context"]) and "Candidate 3:" in p
    assert t.endswith("# Answer 2") and f"Candidate {s['pick']}" in t
