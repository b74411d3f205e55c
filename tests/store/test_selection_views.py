"""Training-set and dynamics views on a small hand-built store whose right answers are known."""

import pytest

from mstar_data.keys import rollout_id
from mstar_data.sql_views import run_view
from mstar_data.store import Store


def _row(run, it, stage, q, idx, correct, prm=None, fmt=True, temp=1.0, pred=None, response=None, n_tokens=10):
    from mstar_data.steps import has_reflection

    return {"reflection": has_reflection(response),"rollout_id": rollout_id(run, it, stage, q, idx), "run_id": run, "iteration": it, "stage": stage,
            "query_id": q, "sample_idx": idx, "temperature": temp, "correct": correct, "prm_score": prm,
            "format_ok": fmt, "pred_answer": pred, "response": response or f"{q} sample {idx}",
            "steps": ["a", "b"], "n_tokens": n_tokens}


@pytest.fixture
def store(store_uri):
    s = Store(store_uri)
    rows = []
    # q1: scores pick s0 and s3 among the correct ones; s2 scores highest but is wrong.
    for idx, (c, p) in enumerate([(True, .9), (True, .5), (False, .95), (True, .7)]):
        rows.append(_row("r", 1, "explore", "q1", idx, c, p))
    rows += [_row("r", 1, "explore", "q2", i, False, .8) for i in range(3)]           # nothing correct
    rows += [_row("r", 1, "explore", "q3", 0, True, .99, fmt=False),                  # correct, bad format
             _row("r", 1, "explore", "q3", 1, True, None)]                            # correct, unscored
    rows += [_row("r", 1, "explore", "q4", i, True) for i in range(6)]                # no PRM at all
    rows += [_row("r", 2, "explore", "q1", 0, True, .1)]                              # another iteration
    s.append("rollouts", rows)
    return s


def _ids(table, q=None):
    return [(r["query_id"], r["rollout_id"]) for r in table.to_pylist() if q is None or r["query_id"] == q]


def test_top_k_by_prm_among_correct(store):
    t = run_view(store, "trainset_top_k", run="r", iteration=1, k=2)
    got = t.to_pylist()
    assert [(r["query_id"], r["prm_score"]) for r in got if r["query_id"] == "q1"] == [("q1", pytest.approx(.9)),
                                                                                    ("q1", pytest.approx(.7))]
    assert not [r for r in got if r["query_id"] == "q2"]
    assert [r["rollout_id"] for r in got if r["query_id"] == "q3"] == [rollout_id("r", 1, "explore", "q3", 1)]
    assert sum(r["query_id"] == "q4" for r in got) == 2
    stored = {rollout_id("r", 1, "explore", q, i): f"{q} sample {i}" for q in ("q1", "q3", "q4") for i in range(6)}
    assert all(r["response"] == stored[r["rollout_id"]] for r in got)  # the text fetched by offset is the winner's


def test_text_is_fetched_by_offset_across_fragments_and_pinned_versions(store):
    """Ranking carries row offsets; the response is read afterwards by take (late materialisation). Rows in later
    fragments, and a query pinned to an older version, get their own text."""
    from mstar_data.sql_views import run_read_only

    v1 = store.version("rollouts")
    store.append("rollouts", [_row("r", 3, "explore", f"z{i}", j, True, .1 * j, response=f"z{i}/{j} text")
                              for i in range(3) for j in range(4)])
    top = run_view(store, "trainset_top_k", run="r", iteration=3, k=2).to_pylist()
    assert [(r["query_id"], r["response"]) for r in top] == [(f"z{i}", f"z{i}/{j} text") for i in range(3)
                                                             for j in (3, 2)]
    assert "_text_row" not in run_view(store, "trainset_random_k", run="r", iteration=3).column_names
    old = run_view(store, "trainset_top_k", versions={"rollouts": v1}, run="r", iteration=1, k=2)
    assert old.column("response").to_pylist()[:2] == ["q1 sample 0", "q1 sample 3"]
    adhoc = run_read_only(store, "select query_id, response from trainset_top_k where query_id = 'z1'",
                          {"run": "r", "iteration": 3, "k": 1})
    assert adhoc.column("response").to_pylist() == ["z1/3 text"]  # `mstar sql` sees an ordinary column
    adhoc = run_read_only(store, "select * from trainset_top_k where query_id = 'z1'", {"run": "r", "iteration": 3,
                                                                                       "k": 1})
    assert adhoc.column("response").to_pylist() == ["z1/3 text"]
    assert "_rowoffset" not in run_read_only(store, "select * from rollouts limit 1").column_names


def test_without_scores_top_k_is_a_seeded_random_k(store):
    picks = {seed: _ids(run_view(store, "trainset_top_k", run="r", iteration=1, k=2, seed=seed), "q4")
             for seed in range(6)}
    assert picks[0] == _ids(run_view(store, "trainset_top_k", run="r", iteration=1, k=2, seed=0), "q4")
    assert len({tuple(p) for p in picks.values()}) > 1  # the seed changes the draw
    # Same seed, same hash: top-K without scores is exactly random-K among the correct.
    assert picks[3] == _ids(run_view(store, "trainset_random_k", run="r", iteration=1, k=2, seed=3), "q4")


def test_threshold_all_correct_and_random_control(store):
    assert {r["rollout_id"] for r in run_view(store, "trainset_threshold", run="r", iteration=1, alpha=.6).to_pylist()} \
        == {rollout_id("r", 1, "explore", "q1", 0), rollout_id("r", 1, "explore", "q1", 3)}
    allc = run_view(store, "trainset_all_correct", run="r", iteration=1).to_pylist()
    assert len(allc) == 3 + 1 + 6 and all(r["query_id"] != "q2" for r in allc)
    ctrl = run_view(store, "trainset_random_k", run="r", iteration=1, k=2, correct_only=False).to_pylist()
    assert {r["query_id"] for r in ctrl} == {"q1", "q2", "q3", "q4"}
    assert any(r["correct"] is False for r in ctrl)
    assert all(r["correct"] for r in run_view(store, "trainset_random_k", run="r", iteration=1, k=2).to_pylist())


def test_pseudo_labels_weighted_vote(store_uri, tmp_path, cli):
    s = Store(store_uri)
    s.append("queries", [
        {"query_id": f"u/{i}", "dataset": "u", "split": "unlabeled", "question": "?", "answer_type": "integer",
         "record_sha256": str(i)} for i in (1, 2)] + [
        {"query_id": "l/1", "dataset": "l", "split": "train", "question": "?", "answer_type": "integer",
         "answer": "1", "record_sha256": "l"}])
    rows = [_row("p", 0, "explore", "u/1", i, None, prm, pred=a) for i, (a, prm) in
            enumerate([("3", .9), ("4", .2), ("4", .3), ("4", .1)])]
    rows += [_row("p", 0, "explore", "u/2", i, None, None, pred=a) for i, a in enumerate(["7", "8", "7", None])]
    rows += [_row("p", 0, "explore", "l/1", 0, True, .5, pred="1")]
    s.append("rollouts", rows)
    got = {r["query_id"]: r for r in run_view(s, "pseudo_labels_weighted_vote", run="p", iteration=0).to_pylist()}
    assert set(got) == {"u/1", "u/2"}  # labelled queries get no pseudo-label
    assert got["u/1"]["pseudo_answer"] == "3" and got["u/1"]["vote_share"] == pytest.approx(.9 / 1.5)
    assert got["u/2"]["pseudo_answer"] == "7" and got["u/2"]["n_samples"] == 3  # majority without scores


def test_dynamics(store_uri):
    s = Store(store_uri)
    rows = [_row("d", 0, "val", "q1", 0, True, temp=0.0), _row("d", 0, "val", "q2", 0, False, temp=0.0)]
    for idx, (c, p) in enumerate([(False, .1), (True, .9), (False, .2), (False, .3)]):
        rows.append(_row("d", 0, "val", "q1", idx + 1, c, p, response="wait, let me re-check" if idx == 0 else None,
                         n_tokens=20))
    for idx, (c, p) in enumerate([(False, .8), (False, .7), (True, .1), (False, .2)]):
        rows.append(_row("d", 0, "val", "q2", idx + 1, c, p, n_tokens=40))
    # The greedy row holds sample_idx 0 of the stage, so the samples are numbered from 1.
    s.append("rollouts", rows)
    d2 = run_view(s, "dynamics", k=2).to_pylist()
    assert len(d2) == 1
    m = d2[0]
    assert (m["run_id"], m["iteration"], m["stage"], m["n_queries"]) == ("d", 0, "val", 2)
    assert m["greedy_acc"] == pytest.approx(.5)
    assert m["pass_at_k"] == pytest.approx(.5) and m["k"] == 2          # q1: idx 1 correct; q2: no
    assert m["pass_at_k_minus_greedy"] == pytest.approx(0.0)
    assert m["reward_pass_at_2"] == pytest.approx(.5)                   # q1 top-2 holds the correct; q2 not
    assert m["mean_len"] == pytest.approx(30) and m["reflection_share"] == pytest.approx(.125)
    m5 = run_view(s, "dynamics", k=5).to_pylist()[0]
    assert m5["pass_at_k"] == pytest.approx(1.0)


def test_dynamics_faithful_reasoning(store_uri):
    """faithful_rate pools the correct samples whose every step is true; greedy rows count apart; rollouts of
    tasks without a checker (steps_valid NULL) count nowhere."""
    s = Store(store_uri)
    rows = [dict(_row("f", 0, "val", "q1", 0, True, temp=0.0), steps_valid=[True, True]),
            dict(_row("f", 0, "val", "q2", 0, True, temp=0.0), steps_valid=[False, True])]
    for idx, (c, v) in enumerate([(True, [True, True]), (True, [False, True]), (False, [False, False]),
                                  (True, [True, True]), (True, None)]):
        rows.append(dict(_row("f", 0, "val", "q1", idx + 1, c), steps_valid=v))
    s.append("rollouts", rows)
    m = run_view(s, "dynamics", k=2).to_pylist()[0]
    assert m["faithful_rate"] == pytest.approx(2 / 3)        # 3 checked correct samples, 2 with all steps true
    assert m["greedy_faithful_rate"] == pytest.approx(1 / 2)
    assert m["step_valid_rate"] == pytest.approx(5 / 8)      # over every checked sample, right or wrong
    s.append("rollouts", [_row("g", 0, "val", "q1", 1, True)])
    g = [r for r in run_view(s, "dynamics", k=2).to_pylist() if r["run_id"] == "g"][0]
    assert g["faithful_rate"] is None and g["step_valid_rate"] is None


def test_faithful_k_prefers_responses_whose_steps_are_true(store_uri):
    s = Store(store_uri)
    valid = [[False, True, True], [True, True, True], [False, False, True], [True, False, False], None]
    rows = [dict(_row("f", 1, "explore", "q1", i, True, response=f"r{i}"), steps_valid=v) for i, v in enumerate(valid)]
    rows += [dict(_row("f", 1, "explore", "q1", 9, False), steps_valid=[True, True, True])]     # wrong answer
    rows += [dict(_row("f", 1, "explore", "q2", i, True), steps_valid=None) for i in range(4)]  # no checker
    s.append("rollouts", rows)
    got = run_view(s, "trainset_faithful_k", run="f", iteration=1, k=2).to_pylist()
    q1 = [r for r in got if r["query_id"] == "q1"]
    assert [r["response"] for r in q1] == ["r1", "r0"]          # all true, then the larger share (2/3 > 1/3)
    assert q1[0]["steps_valid_share"] == 1.0 and q1[0]["prm_score"] is None
    q2 = [r["rollout_id"] for r in got if r["query_id"] == "q2"]
    assert q2 == [r["rollout_id"] for r in run_view(s, "trainset_random_k", run="f", iteration=1, k=2).to_pylist()
                  if r["query_id"] == "q2"]                     # without a checker: the same seeded random-2


def test_a_version_pinned_before_a_column_existed_reads_it_as_nulls(store_uri):
    """Training sets pinned by an older mstar lack columns added since (here pseudo_correct, which today's
    views read): the pinned version still runs, with the column as NULLs."""
    import lance
    import pyarrow as pa

    s = Store(store_uri)
    s.append("rollouts", [_row("r", 1, "explore", "q1", i, c, p) for i, (c, p) in enumerate([(True, .9), (True, .2),
                                                                                            (False, .8)])])
    ds = lance.dataset(s.dataset("rollouts").uri)
    ds.drop_columns(["pseudo_correct"])  # as an old store's version looked
    old = ds.version
    s.dataset("rollouts").add_columns(pa.schema([pa.field("pseudo_correct", pa.bool_())]))  # the upgrade
    assert s.version("rollouts") > old
    got = run_view(s, "trainset_top_k", versions={"rollouts": old}, run="r", iteration=1, k=1).to_pylist()
    assert [(r["query_id"], r["response"]) for r in got] == [("q1", "q1 sample 0")]
