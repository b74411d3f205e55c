"""`mstar prm label` with a scripted sampler: the labels, the stop rule, the stored continuations, resume."""

import pytest

from mstar_data.ingest.synthetic import synthetic_items
from mstar_data.ingest.writer import ingest_items
from mstar_data.inputs import select_queries
from mstar_data.keys import rollout_id
from mstar_data.prm.label import LabelConfig, mc_rollout_id, run_label
from mstar_data.store import Store
from mstar_data.sampling.engine import Completion


class ScriptedSampler:
    """Continues a step prefix with the gold answer when its last step starts with 'good', else a wrong one."""

    policy_tag = "scripted"

    def __init__(self, gold: dict[str, str], fail_after: int | None = None):
        self.gold, self.fail_after, self.calls, self.requests = gold, fail_after, 0, 0

    def generate(self, requests):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("killed")
        self.calls += 1
        self.requests += len(requests)
        out = []
        for r in requests:
            last = r.prefix.strip().split("\n\n")[-1]
            gold = next(g for key, g in self.gold.items() if f"[{key}]" in r.prefix)
            out.append(Completion(f"# Answer\n\n{gold if last.startswith('good') else '999'}", 3, "stop"))
        return out


def _source(store):
    qs = select_queries(store, split="train", limit=3)
    gold = {q["query_id"]: q["answer"] for q in qs}
    plans = [["good", "good", "bad", "good", "final"],   # dies at step 2: steps 3 and 4 get 0 without rollouts
             ["good", "good", "final"],                  # lives to the end: the last step is its own verdict
             ["bad", "good"]]                            # dies at once
    rows = []
    for q, plan, correct in zip(qs, plans, [False, True, False]):
        steps = [f"{s} [{q['query_id']}] step {i}" for i, s in enumerate(plan)]
        rows.append({"rollout_id": rollout_id("r", 0, "explore", q["query_id"], 0), "run_id": "r", "iteration": 0,
                     "stage": "explore", "query_id": q["query_id"], "sample_idx": 0, "response": "\n\n".join(steps),
                     "steps": steps, "correct": correct, "format_ok": True})
    store.append("rollouts", rows)
    return rows, gold


@pytest.fixture
def labelled_store(store_uri):
    s = Store(store_uri)
    ingest_items(s, synthetic_items(20, 3, "easy", 0.2), source="synthetic", dataset="synthetic", split="train")
    rows, gold = _source(s)
    return s, rows, gold


def _labels(store):
    return {(r["rollout_id"], r["step_idx"]): r for r in store.dataset("step_labels").to_table().to_pylist()}


def test_labels_stop_rule_and_stored_continuations(labelled_store):
    s, rows, gold = labelled_store
    r = run_label(s, LabelConfig(policy="unused", run="r", m=3), engine=ScriptedSampler(gold))
    labels = _labels(s)
    a, b, c = (row["rollout_id"] for row in rows)
    assert [(labels[a, j]["n_rollouts"], labels[a, j]["n_correct"]) for j in range(5)] == \
        [(3, 3), (3, 3), (3, 0), (0, 0), (0, 0)]
    assert [labels[a, j]["hard_label"] for j in range(5)] == [True, True, False, False, False]
    assert [(labels[b, j]["n_rollouts"], labels[b, j]["soft_label"]) for j in range(3)] == [(3, 1.0), (3, 1.0), (1, 1.0)]
    assert [(labels[c, j]["n_rollouts"], labels[c, j]["hard_label"]) for j in range(2)] == [(3, False), (0, False)]
    assert r.labels_written == len(labels) == 10
    mc = s.dataset("rollouts").to_table(filter="stage = 'mc'").to_pylist()
    assert len(mc) == r.rollouts_written == 3 * (3 + 2 + 1)  # a: steps 0-2, b: steps 0-1, c: step 0
    one = next(m for m in mc if m["rollout_id"] == mc_rollout_id(a, 1, 2))
    assert one["parent_rollout_id"] == a and one["prefix_steps"] == 2 and one["correct"] is True
    assert one["response"].startswith(rows[0]["steps"][0] + "\n\n" + rows[0]["steps"][1] + "\n\n# Answer")
    # A rerun samples nothing and writes nothing.
    versions = (s.version("rollouts"), s.version("step_labels"))
    sampler = ScriptedSampler(gold)
    again = run_label(s, LabelConfig(policy="unused", run="r", m=3), engine=sampler)
    assert sampler.requests == 0 and again.labels_written == 0 and again.labels_skipped == 10
    assert (s.version("rollouts"), s.version("step_labels")) == versions


def test_killed_mid_labelling_resumes_without_duplicates(labelled_store):
    s, rows, gold = labelled_store
    cfg = LabelConfig(policy="unused", run="r", m=3, batch_size=4, flush_rows=1)
    with pytest.raises(RuntimeError, match="killed"):
        run_label(s, cfg, engine=ScriptedSampler(gold, fail_after=2))
    kept = s.count("rollouts", "stage = 'mc'")
    assert 0 < kept < 18 and s.count("step_labels") == 0  # a wave's labels land only after its continuations
    sampler = ScriptedSampler(gold)
    r = run_label(s, cfg, engine=sampler)
    assert r.rollouts_reused == kept and sampler.requests == 18 - kept
    assert s.count("rollouts", "stage = 'mc'") == 18 and s.count("step_labels") == 10


def test_shards_split_the_source_rollouts(labelled_store):
    s, rows, gold = labelled_store
    for i in range(2):
        run_label(s, LabelConfig(policy="unused", run="r", m=2, shard=(i, 2)), engine=ScriptedSampler(gold))
    assert s.count("step_labels") == 10 and s.count("rollouts", "stage = 'mc'") == 2 * 6


def test_lmdeploy_cannot_label(labelled_store, cli):
    s, _, _ = labelled_store
    r = cli("prm", "label", "--policy", "p", "--run", "r", "--backend", "lmdeploy", "--store", s.uri)
    assert r.rc == 1 and "lmdeploy cannot continue an assistant prefix" in r.err


def test_nothing_to_label_is_an_error(labelled_store, cli):
    s, _, _ = labelled_store
    r = cli("prm", "label", "--policy", "p", "--run", "nope", "--store", s.uri)
    assert r.rc == 1 and "run 'nope' has no judged rollouts" in r.err and s.count("jobs") == 0
    r = cli("prm", "train", "--policy", "p", "--run", "r", "--out", s.uri + "/prm", "--store", s.uri)
    assert r.rc == 1 and "no step-labelled responses" in r.err
