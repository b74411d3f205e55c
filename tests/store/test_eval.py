"""`mstar eval` with a scripted engine and PRM: one sampling pass, every selector on the same samples, the
self-select picks as rows, the evals table, resume, refusals, and a MathVista-style breakdown of a benchmark
file ingested on the way (the real tiny model and a trained PRM: tests/e2e/test_prm.py)."""

import hashlib
import json
import re
from collections import Counter, defaultdict

import pyarrow as pa
import pytest

from mstar_data.errors import MstarError
from mstar_data.eval.policy import EvalConfig, EvalParts, parse_k, parse_methods, run_policy_eval
from mstar_data.ingest.synthetic import synthetic_items
from mstar_data.ingest.writer import ingest_items
from mstar_data.inputs import select_queries
from mstar_data.loop.dynamics_plot import written_by_us
from mstar_data.sampling.engine import Completion
from mstar_data.sampling.rollouts import query_prompt
from mstar_data.select.self_select import SELECT_INSTRUCTION, candidate_order, select_example
from mstar_data.store import Store
from tests.datasets import write_mathvista


class ScriptedEngine:
    """Right when the seed says so (greedy: by the prompt's hash); asked to self-select, it answers the gold
    answer when a candidate holds it (an oracle picker, so self-select at K must equal Pass@K), else the
    first candidate's answer."""

    def __init__(self, store, policy, fail_after=None):
        self.policy_tag, self.calls, self.fail_after, self.live = str(policy), 0, fail_after, True
        self.gold = {(query_prompt(q, "cot"), q["image_sha256"]): q["answer"] for q in select_queries(store)}
        self.by_image = defaultdict(set)
        for (_, sha), a in self.gold.items():
            self.by_image[sha].add(a)
        self.select_prompts = []

    def generate(self, requests):
        assert self.live
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        out = []
        for r in requests:
            sha = hashlib.sha256(r.image).hexdigest()
            if SELECT_INSTRUCTION in r.prompt:
                self.select_prompts.append(r.prompt)
                question = r.prompt.split("\n\nCandidate 1:")[0]
                gold = self.gold[(question, sha)]
                answers = re.findall(r"# Answer\n\n(.*)", r.prompt)
                answer = gold if gold in answers else answers[0]
            else:
                gold = self.gold[(r.prompt, sha)]
                key = r.seed if r.temperature > 0 else int(hashlib.sha256(r.prompt.encode()).hexdigest(), 16)
                answer = gold if key % 3 == 0 else f"{key % 2}9"
            out.append(Completion(f"I count.\n\n# Answer\n\n{answer}", 6, "stop", [-0.1] * 6, [1] * 6))
        return out

    def release(self):
        self.live = False


def fake_score(store, cfg, progress):
    """A PRM that knows the truth: 0.9 for a correct sample, 0.2 for a wrong one."""
    from mstar_data.prm.score import score_scope

    rows = store.dataset("rollouts").to_table(columns=["rollout_id", "correct"], filter=score_scope(cfg)).to_pylist()
    store.update("rollouts", pa.table({"rollout_id": [r["rollout_id"] for r in rows],
                                       "step_scores": [[0.9 if r["correct"] else 0.2] for r in rows],
                                       "prm_score": [0.9 if r["correct"] else 0.2 for r in rows],
                                       "prm": [f"{cfg.prm}@1"] * len(rows)}))


def parts(store, engines=None, fail_after=None):
    def load(backend, policy):
        e = ScriptedEngine(store, policy, fail_after)
        if engines is not None:
            engines.append(e)
        return e
    return EvalParts(load_engine=load, score=fake_score, prm_tag=lambda path: f"{path}@1")


@pytest.fixture
def store(store_uri, tmp_path):
    s = Store(store_uri)
    ingest_items(s, synthetic_items(80, 3, "easy", 0.0), source="synthetic", dataset="synthetic", split="train")
    (tmp_path / "pol").mkdir()
    return s


def _cfg(tmp_path, **kw):
    base = dict(policy=str(tmp_path / "pol"), n=4, select_k=(2, 4), batch_size=5, plot=str(tmp_path / "k.png"))
    return EvalConfig(**{**base, **kw})


def _samples(store, run="eval"):
    rows = store.dataset("rollouts").to_table(filter=f"run_id = '{run}' AND stage = 'eval'").to_pylist()
    by_q = defaultdict(list)
    for r in rows:
        if r["sample_idx"] > 0:
            by_q[r["query_id"]].append(r)
    return {q: sorted(v, key=lambda r: r["sample_idx"]) for q, v in by_q.items()}, rows


def _majority(samples):
    votes = Counter(r["pred_answer"] for r in samples if r["pred_answer"] is not None)
    if not votes:
        return 0
    best = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return int(next(r["correct"] for r in samples if r["pred_answer"] == best))


def test_every_selector_reads_the_same_samples(store, tmp_path):
    engines = []
    r = run_policy_eval(store, _cfg(tmp_path), parts=parts(store, engines))
    assert len(engines) == 1 and not engines[0].live  # one engine for greedy, samples and picks; released
    n_test = len([q for q in select_queries(store, split="test")])
    assert r.n_queries == n_test == 12
    by_q, rows = _samples(store)
    assert len(rows) == n_test * 5 and len(by_q) == n_test  # greedy + 4 samples each, stage eval
    summary = {x["method"]: x for x in r.summary()}
    assert list(summary) == ["greedy", "majority", "weighted-vote", "prm-best-of-n", "self-select"]
    for m in ("weighted-vote", "prm-best-of-n"):  # reported, with the reason, not dropped
        assert summary[m]["accuracy"] is None and "needs a PRM" in summary[m]["note"]
    greedy = {x["query_id"]: x["correct"] for x in rows if x["sample_idx"] == 0}
    assert summary["greedy"]["n_correct"] == sum(greedy.values())
    assert summary["majority"]["k"] == 4 and summary["majority"]["n_correct"] == sum(
        _majority(v) for v in by_q.values())
    assert 0 < summary["majority"]["n_correct"] < n_test  # the script makes some right, some wrong
    # the picks are rows: stage eval-select, one per query and K, asked at T=0 with the self-select prompt
    picks = store.dataset("rollouts").to_table(filter="stage = 'eval-select'").to_pylist()
    assert sorted(Counter(p["sample_idx"] for p in picks).items()) == [(2, n_test), (3, n_test), (4, n_test)]
    assert all(p["prompt_variant"] == "self-select" and p["temperature"] == 0 for p in picks)
    # the oracle picker makes self-select at K equal to Pass@K over the same first K samples
    for k, sel, maj in r.curve():
        assert sel == sum(any(x["correct"] for x in v[:k]) for v in by_q.values()) / n_test
        assert maj == sum(_majority(v[:k]) for v in by_q.values()) / n_test
    assert [k for k, _, _ in r.curve()] == [2, 3, 4] and written_by_us(tmp_path / "k.png")
    # the candidates are shown in the seeded order, the numbering differs between queries
    prompt = engines[0].select_prompts[0]
    assert prompt.count("Candidate ") == 2 and prompt.endswith(SELECT_INSTRUCTION)
    stored = store.dataset("evals").to_table().to_pylist()
    assert len(stored) == r.written == len(r.rows) and {x["eval_id"] for x in stored} == {r.eval_id}
    assert {(x["method"], x["group_by"], x["group_value"]) for x in stored} >= {
        ("greedy", "question_type", "count_sum"), ("self-select", "answer_type", "integer")}


def test_a_rerun_samples_nothing_and_writes_nothing(store, tmp_path):
    run_policy_eval(store, _cfg(tmp_path), parts=parts(store))
    versions = {t: store.version(t) for t in ("rollouts", "evals")}
    engines = []
    again = run_policy_eval(store, _cfg(tmp_path), parts=parts(store, engines))
    assert again.sampled == 0 and again.written == 0 and engines == []  # no model loaded at all
    assert {t: store.version(t) for t in versions} == versions


def test_ctrl_c_keeps_finished_picks_and_the_rerun_adds_only_the_rest(store, tmp_path):
    from mstar_data.errors import Interrupted

    cfg = _cfg(tmp_path, select=["majority", "self-select"])
    # 12 queries x 4 samples in batches of 5 = 10 calls; 3 more calls of picks, then Ctrl-C
    with pytest.raises(Interrupted, match="self-select picks stored"):
        run_policy_eval(store, cfg, parts=parts(store, fail_after=13))
    assert store.count("rollouts", "stage = 'eval-select'") == 15
    assert store.count("evals") == 0
    r = run_policy_eval(store, cfg, parts=parts(store))
    assert r.sampled == 36 - 15 and store.count("rollouts", "stage = 'eval-select'") == 36
    jobs = store.dataset("jobs").to_table(filter="kind = 'self-select'").to_pylist()
    assert sorted(j["status"] for j in jobs) == ["finished", "interrupted"]


def test_the_prm_methods_run_with_a_prm(store, tmp_path):
    r = run_policy_eval(store, _cfg(tmp_path, select=["majority", "weighted-vote", "prm-best-of-n"], select_k=(3, 3),
                                    prm="prm-folder"), parts=parts(store))
    summary = {x["method"]: x for x in r.summary()}
    by_q, _ = _samples(store)
    pass_n = sum(any(x["correct"] for x in v) for v in by_q.values())
    # a PRM that scores the truth: best-of-N and the weighted vote both reach Pass@N
    assert summary["prm-best-of-n"]["n_correct"] == summary["weighted-vote"]["n_correct"] == pass_n
    assert summary["majority"]["n_correct"] < pass_n
    assert all(x["prm"] == "prm-folder@1" for x in store.dataset("evals").to_table().to_pylist())
    assert r.plot is None  # no K range, no curve


def test_another_policy_or_temperature_in_the_same_run_is_refused(store, tmp_path):
    run_policy_eval(store, _cfg(tmp_path, select=["greedy", "majority"]), parts=parts(store))
    (tmp_path / "other").mkdir()
    with pytest.raises(MstarError, match="run 'eval' iteration 0 holds eval samples of policy .*give another --run"):
        run_policy_eval(store, _cfg(tmp_path, policy=str(tmp_path / "other"), select=["greedy"]), parts=parts(store))
    with pytest.raises(MstarError, match="--temperature 1.0: .* at T=0.7"):
        run_policy_eval(store, _cfg(tmp_path, temperature=1.0, select=["majority"]), parts=parts(store))
    r = run_policy_eval(store, _cfg(tmp_path, policy=str(tmp_path / "other"), run="eval-other",
                                    select=["greedy"]), parts=parts(store))
    assert r.run == "eval-other" and r.sampled == 12


def test_without_policy_the_latest_run_s_latest_policy(store, tmp_path):
    from datetime import datetime, timedelta, timezone

    t = datetime.now(timezone.utc)
    its = [("old", 0, "p-old-0", t), ("old", 1, "p-old-1", t), ("new", 0, "p-new-0", t + timedelta(seconds=5)),
           ("new", 2, "p-new-2", t + timedelta(seconds=9)), ("new", 1, "p-new-1", t + timedelta(seconds=7))]
    for _, _, p, _ in its:
        (tmp_path / p).mkdir()
    store.append("iterations", [{"run_id": r, "iteration": i, "policy_out": str(tmp_path / p), "created_at": c}
                                for r, i, p, c in its])
    r = run_policy_eval(store, _cfg(tmp_path, policy=None, select=["greedy"]), parts=parts(store))
    assert (r.policy, r.run, r.iteration) == (str(tmp_path / "p-new-2"), "new", 2)
    assert store.count("rollouts", "run_id = 'new' AND iteration = 2 AND stage = 'eval'") == 12
    r = run_policy_eval(store, _cfg(tmp_path, policy=None, run="old", select=["greedy"]), parts=parts(store))
    assert (r.policy, r.iteration) == (str(tmp_path / "p-old-1"), 1)
    (tmp_path / "p-old-1").rmdir()
    with pytest.raises(MstarError, match="run 'old' iteration 1: its policy_out .* is not a folder"):
        run_policy_eval(store, _cfg(tmp_path, policy=None, run="old", select=["greedy"]), parts=parts(store))


def test_a_benchmark_file_is_ingested_and_broken_down_by_its_metadata(store, tmp_path):
    path = write_mathvista(tmp_path / "mv", n=10)
    r = run_policy_eval(store, _cfg(tmp_path, benchmark=str(path), select=["greedy", "majority"], n=3,
                                    select_k=(2, 2)), parts=parts(store))
    assert r.n_queries == 10 and r.source.endswith("(mathvista)")
    assert store.count("queries", "dataset = 'testmini' AND split = 'test'") == 10
    slices = {(x["group_by"], x["group_value"]): x for x in r.breakdown() if x["method"] == "greedy"}
    assert slices[("question_type", "multi_choice")]["n_queries"] == 2
    assert slices[("answer_type", "float")]["n_queries"] == 2
    assert slices[("metadata.task", "figure question answering")]["n_queries"] == 10
    assert sum(x["n_correct"] for k, x in slices.items() if k[0] == "answer_type") == \
        next(x for x in r.summary() if x["method"] == "greedy")["n_correct"]


def test_bad_options_are_one_line_errors_before_any_work(store, tmp_path, cli):
    with pytest.raises(MstarError, match="--select 'best'"):
        parse_methods("greedy,best")
    for bad in ("1", "5..3", "x"):
        with pytest.raises(MstarError, match="--select-k"):
            parse_k(bad)
    assert parse_k("2..6") == (2, 6) and parse_k("4") == (4, 4)
    with pytest.raises(MstarError, match="--select-k 6: .* --n >= 6"):
        run_policy_eval(store, _cfg(tmp_path, select_k=(2, 6)), parts=parts(store))
    with pytest.raises(MstarError, match="no --policy given .* has no iterations"):
        run_policy_eval(store, _cfg(tmp_path, policy=None), parts=parts(store))
    (tmp_path / "notes.png").write_text("mine")
    with pytest.raises(MstarError, match="notes.png: exists and is not"):
        run_policy_eval(store, _cfg(tmp_path, plot=str(tmp_path / "notes.png")), parts=parts(store))
    assert store.count("rollouts") == 0 and (tmp_path / "notes.png").read_text() == "mine"
    r = cli("eval", "--policy", tmp_path / "pol", "--select", "greedy,vote", "--store", store.uri)
    assert r.rc == 1 and r.err.startswith("error: --select 'vote'") and len(r.err.strip().splitlines()) == 1
    r = cli("eval", "--policy", tmp_path / "pol", "--split", "tst", "--store", store.uri)
    assert r.rc == 1 and "--split 'tst'" in r.err


def test_the_select_prompt_is_seeded_and_trains_on_the_chosen_answer():
    cands = ["A\n\n# Answer\n\n1", "B\n\n# Answer\n\n2", "C\n\n# Answer\n\n3"]
    a = select_example("Q?", cands, seed=0, key="q1", chosen=1, answer="2")
    assert a == select_example("Q?", cands, seed=0, key="q1", chosen=1, answer="2")  # reproducible
    assert sorted(a.order) == [0, 1, 2] and a.order == tuple(candidate_order(3, seed=0, key="q1"))
    shown = a.prompt.split("Candidate ")[1:]
    assert shown[a.pick - 1].startswith(f"{a.pick}:\nB")  # the pick numbers the chosen candidate
    assert a.target == f"Candidate {a.pick} is correct.\n\n# Answer 2"
    orders = {tuple(candidate_order(3, seed=s, key="q1")) for s in range(12)}
    assert len(orders) > 2  # the seed reorders
    with pytest.raises(ValueError, match="at least 2 candidates"):
        select_example("Q?", cands[:1], seed=0, key="q1")


def test_a_store_from_before_the_evals_table_gains_it(store, tmp_path):
    store.db.drop_table("evals")
    old = Store(store.uri, create=False)
    assert "evals" not in old.table_names()
    r = run_policy_eval(old, _cfg(tmp_path, select=["greedy"]), parts=parts(old))
    assert r.written > 0 and old.count("evals") == r.written


def test_a_jsonl_benchmark_is_read_by_suffix_and_a_bad_one_is_refused_whole(store, tmp_path):
    from mstar_data.errors import InputError
    from tests.datasets import image_bytes

    (tmp_path / "img").mkdir()
    recs = []
    for i in range(4):
        (tmp_path / "img" / f"{i}.png").write_bytes(image_bytes(i))
        recs.append({"id": f"b{i}", "question": f"How many? {i}", "answer": str(i), "image": f"img/{i}.png",
                     "question_type": "count"})
    path = tmp_path / "bench.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs))
    r = run_policy_eval(store, _cfg(tmp_path, benchmark=str(path), select=["greedy"]), parts=parts(store))
    assert r.source.endswith("(jsonl)") and r.n_queries == 4
    assert {x["group_value"] for x in r.breakdown() if x["group_by"] == "question_type"} == {"count"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(recs[0]) + "\n" + json.dumps({**recs[1], "id": "b9", "image": "img/nope.png"}))
    before = {t: store.version(t) for t in ("queries", "images", "rollouts")}
    with pytest.raises(InputError, match="bad.jsonl: record b9: field 'image'"):
        run_policy_eval(store, _cfg(tmp_path, benchmark=str(bad), select=["greedy"]), parts=parts(store))
    assert {t: store.version(t) for t in before} == before
