"""`mstar prm label --labeller task|judge`: the task's step checker, and a model judging steps (scripted here)."""

import re

import pytest

from mstar_data.errors import MstarError
from mstar_data.ingest.synthetic import synthetic_items
from mstar_data.ingest.writer import ingest_items
from mstar_data.inputs import select_queries
from mstar_data.keys import rollout_id
from mstar_data.prm.label import LabelConfig, run_label
from mstar_data.sampling.engine import Completion
from mstar_data.sql_views import run_view
from mstar_data.steps import split_steps
from mstar_data.store import Store


def _rollout(q, idx, steps, correct=True):
    return {"rollout_id": rollout_id("r", 0, "explore", q["query_id"], idx), "run_id": "r", "iteration": 0,
            "stage": "explore", "query_id": q["query_id"], "sample_idx": idx, "response": "\n\n".join(steps),
            "steps": steps, "correct": correct, "format_ok": True}


@pytest.fixture
def store(store_uri):
    s = Store(store_uri)
    ingest_items(s, synthetic_items(20, 3, "easy", 1.0), source="synthetic", dataset="synthetic", split="train")
    return s


def _labels(s, labeller):
    rows = s.dataset("step_labels").to_table(filter=f"labeller = '{labeller}'").to_pylist()
    return {(r["rollout_id"], r["step_idx"]): r for r in rows}


def test_task_labels_are_the_checked_truth(store):
    s = store
    q0, q1 = select_queries(s, split="train", limit=2)
    good = split_steps(q0["reference_cot"])
    bad = ["red: 17."] + split_steps(q1["reference_cot"])[1:]          # a false count, then the true steps
    s.append("rollouts", [_rollout(q0, 0, good), _rollout(q1, 0, bad)])
    r = run_label(s, LabelConfig(labeller="task", run="r"))
    labels = _labels(s, "task")
    a, b = rollout_id("r", 0, "explore", q0["query_id"], 0), rollout_id("r", 0, "explore", q1["query_id"], 0)
    assert [labels[a, j]["hard_label"] for j in range(len(good))] == [True] * len(good)
    assert [labels[b, j]["hard_label"] for j in range(len(bad))] == [False] + [True] * (len(bad) - 1)
    assert r.labels_written == len(good) + len(bad) and r.rollouts_written == 0
    trainset = run_view(s, "prm_trainset", run="r", labeller="task").to_pylist()
    assert sorted(len(t["hard_labels"]) for t in trainset) == sorted([len(good), len(bad)])
    again = run_label(s, LabelConfig(labeller="task", run="r"))
    assert again.labels_written == 0 and again.labels_skipped == r.labels_written
    job = s.dataset("jobs").to_table(filter="kind = 'prm-label'").to_pylist()[-1]
    assert '"labeller": "task"' in job["args"]


def test_task_labeller_refuses_a_task_without_a_checker(store):
    s = store
    s.append("queries", [{"query_id": "plain/1", "dataset": "plain", "split": "train", "question": "1 + 1?",
                          "answer": "2", "answer_type": "integer", "record_sha256": "p1"}])
    q0 = next(q for q in select_queries(s, split="train") if q["reference_cot"])
    s.append("rollouts", [_rollout(q0, 0, split_steps(q0["reference_cot"])),
                          _rollout({"query_id": "plain/1"}, 0, ["1 + 1 = 2.", "# Answer\n\n2"])])
    with pytest.raises(MstarError, match=r"query 'plain/1' has no step checker.*--labeller mc or judge"):
        run_label(s, LabelConfig(labeller="task", run="r"))
    assert s.count("step_labels") == 0  # checked before anything is written


class ScriptedJudge:
    """Answers about the last step shown: 'good...' -> Yes, 'bad...' -> No, 'odd...' -> words that are not a verdict."""

    policy_tag = "judge"

    def __init__(self, fail_after=None):
        self.fail_after, self.calls, self.requests = fail_after, 0, []

    def generate(self, requests):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("killed")
        self.calls += 1
        self.requests += requests
        out = []
        for r in requests:
            k = int(re.search(r"Is step (\d+) correct\?", r.prompt).group(1))
            step = re.search(rf"Step {k}: (.*)", r.prompt).group(1)
            assert f"Step {k + 1}:" not in r.prompt and r.image  # the steps so far only, with the image
            text = " yes." if step.startswith("good") else "No" if step.startswith("bad") else "I think it is fine"
            out.append(Completion(text, 2, "stop"))
        return out


def _judge_store(s):
    qs = select_queries(s, split="train", limit=3)
    plans = [["good", "good", "bad", "good"], ["good", "good"], ["good", "odd", "good"]]
    rows = [_rollout(q, 0, [f"{w} step {i}" for i, w in enumerate(p)]) for q, p in zip(qs, plans)]
    s.append("rollouts", rows)
    return [r["rollout_id"] for r in rows]


def test_judge_labels_asked_step_by_step_and_parsed_strictly(store):
    s = store
    a, b, c = _judge_store(s)
    judge = ScriptedJudge()
    r = run_label(s, LabelConfig(labeller="judge", run="r", temperature=0.0, max_new_tokens=4), engine=judge)
    L = _labels(s, "judge")
    assert [L[a, j]["hard_label"] for j in range(4)] == [True, True, False, False]
    assert [L[a, j]["n_rollouts"] for j in range(4)] == [1, 1, 1, 0]        # step 3 is not asked: after a No
    assert [L[b, j]["hard_label"] for j in range(2)] == [True, True]
    assert L[c, 1]["hard_label"] is None and L[c, 1]["verdict"] == "I think it is fine" and (c, 2) not in L
    assert L[a, 0]["verdict"] == " yes." and L[a, 3]["verdict"] is None
    assert len(judge.requests) == 3 + 2 + 2 and {q.temperature for q in judge.requests} == {0.0}
    # c has an unread verdict, so it is not fully labelled: only a and b train the PRM.
    ids = {t["rollout_id"] for t in run_view(s, "prm_trainset", run="r", labeller="judge").to_pylist()}
    assert ids == {a, b} and r.labels_written == 4 + 2 + 2
    again = ScriptedJudge()
    assert run_label(s, LabelConfig(labeller="judge", run="r"), engine=again).labels_written == 0
    assert again.requests == []


def test_judge_labelling_killed_mid_way_resumes(store):
    s = store
    a, _, _ = _judge_store(s)
    cfg = LabelConfig(labeller="judge", run="r")
    with pytest.raises(RuntimeError, match="killed"):
        run_label(s, cfg, engine=ScriptedJudge(fail_after=2))   # the third wave (a's step 2) dies
    assert s.count("step_labels") == 3 + 3                        # waves 1 and 2 are kept
    judge = ScriptedJudge()
    r = run_label(s, cfg, engine=judge)
    assert [q.key for q in judge.requests] == [f"{a}/2"] and r.labels_skipped == 6
    assert s.count("step_labels") == 8 and s.count("step_labels", "verdict = 'No'") == 1
