"""`mstar evolve` with unlabelled queries mixed in, on the scripted engine, PRM and trainer of test_loop.py: when
they join, how they are labelled and judged, what is trained on, and resume."""

import hashlib
import json
import shutil

import pytest

from mstar_data.inputs import select_queries
from mstar_data.loop.evolve import Evolve, LoopParts
from mstar_data.prompts import build_prompt
from mstar_data.sampling.engine import Completion
from mstar_data.store import Store
from tests.unit.test_loop import FakeEngine, Models, _parts, _recipe, _rows

MIX = ["data.iterations=4", "eval.k=2", "data.unlabeled_ratio=0.5", "data.unlabeled_start=0.5"]


class NumberEngine(FakeEngine):
    """Right on (seed % 4) < skill, else one or two off: wrong answers are numbers too, so the vote can err."""

    def generate(self, requests):
        assert self.live, "a released engine was used"
        out = []
        for r in requests:
            gold = self.models.gold[(r.prompt, hashlib.sha256(r.image).hexdigest())]
            answer = gold if (r.seed % 4) < self.skill else str(int(gold) + 1 + r.seed % 2)
            out.append(Completion(f"red: 1.\n\n# Answer\n\n{answer}", 5, "stop", [-0.5] * 5, [7, 8, 9, 10, 2]))
        return out


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items

    uri = str(tmp_path_factory.mktemp("mixed") / "store")
    ingest_items(Store(uri), synthetic_items(160, 1, "easy", 0.2, unlabeled_fraction=0.5), source="synthetic",
                 dataset="synthetic", split="train")
    return uri


@pytest.fixture
def loop_store(mixed_store, tmp_path):
    uri = str(tmp_path / "store")
    shutil.copytree(mixed_store, uri)
    s = Store(uri, create=False)
    queries = s.dataset("queries").to_table(columns=["query_id", "split", "image_sha256", "meta"]).to_pylist()
    held = {q["query_id"]: json.loads(q["meta"]).get("held_out_answer") for q in queries}
    gold = {}
    for q in select_queries(s):
        gold[(build_prompt(q["question"], q["choices"]), q["image_sha256"])] = q["answer"] or held[q["query_id"]]
    split_of_image = {q["image_sha256"]: q["split"] for q in queries}
    return s, gold, held, split_of_image


def _mix_parts(models: Models, trained: list) -> LoopParts:
    parts = _parts(models)

    def train(store, examples, **kw):
        trained.append((kw["iteration"], examples))
        return parts.train(store, examples, **kw)

    return LoopParts(lambda backend, policy: NumberEngine(models, policy), parts.load_prm, parts.score, train,
                     check_models=False)


def _explore(store):
    return store.dataset("rollouts").to_table(filter="stage = 'explore'").to_pylist()


def _vote_by_hand(rows):
    """Per query, the answer with the largest summed PRM score (ties: more votes, then the smaller answer)."""
    weight, count = {}, {}
    for r in rows:
        if r["pred_answer"] is not None:
            key = (r["query_id"], r["pred_answer"])
            weight[key] = weight.get(key, 0.0) + r["prm_score"]
            count[key] = count.get(key, 0) + 1
    best = {}
    for (q, a), w in sorted(weight.items(), key=lambda kv: (-kv[1], -count[kv[0]], kv[0][1])):
        best.setdefault(q, a)
    return best


def test_unlabelled_queries_join_after_the_start_with_weighted_vote_labels(loop_store):
    store, gold, held, split_of_image = loop_store
    models, trained = Models(gold), []
    parts = _mix_parts(models, trained)

    def node_lost(*a, **kw):  # a crash after iteration 3's labels and verdicts are stored
        if kw["iteration"] == 3:
            raise RuntimeError("node lost")
        return parts.train(*a, **kw)

    with pytest.raises(RuntimeError, match="node lost"):
        Evolve(store, _recipe(*MIX), parts=LoopParts(parts.load_engine, parts.load_prm, parts.score, node_lost,
                                                     check_models=False)).run_all()
    labels_before = _rows(store, "pseudo_labels")
    assert {r["iteration"] for r in labels_before} == {3}
    result = Evolve(store, _recipe(*MIX), parts=parts).run_all()
    assert [it["iteration"] for it in result.iterations] == [0, 1, 2, 3, 4]
    assert [r for r in _rows(store, "pseudo_labels") if r["iteration"] == 3] == labels_before  # nothing twice

    rows = _explore(store)
    unl = [r for r in rows if r["query_id"] in held and held[r["query_id"]] is not None]
    # nothing unlabelled is sampled or trained on before data.unlabeled_start (half of 4 iterations)
    assert {r["iteration"] for r in unl} == {3, 4}
    per_it = {it: {r["query_id"] for r in unl if r["iteration"] == it} for it in (3, 4)}
    labelled_per_it = {it: {r["query_id"] for r in rows if r["iteration"] == it} - per_it[it] for it in (3, 4)}
    assert all(len(per_it[it]) == len(labelled_per_it[it]) == 10 for it in (3, 4))  # ratio 0.5: as many as labelled
    assert not per_it[3] & per_it[4]  # the next slice of the pool
    for it, examples in trained:
        splits = {split_of_image[hashlib.sha256(e.image).hexdigest()] for e in examples}
        assert ("unlabeled" in splits) == (it >= 3), (it, splits)

    # gold verdicts stay null; every unlabelled sample was PRM-scored for the vote and judged against its label
    assert all(r["correct"] is None and r["prm_score"] is not None for r in unl)
    labels = {(r["iteration"], r["query_id"]): r for r in store.dataset("pseudo_labels").to_table().to_pylist()}
    assert set(labels) == {(r["iteration"], r["query_id"]) for r in unl}
    for it in (3, 4):
        by_hand = _vote_by_hand([r for r in unl if r["iteration"] == it])
        assert {q: labels[it, q]["label"] for q in per_it[it]} == by_hand
    for r in unl:
        assert r["pseudo_correct"] == (r["pred_answer"] == labels[r["iteration"], r["query_id"]]["label"])
    assert all(x["labeller"] == "weighted_vote" for x in labels.values())
    assert {x["label_correct"] for x in labels.values()} == {True, False}  # the vote errs on some queries
    assert all(x["label_correct"] == (x["label"] == held[q]) for (_, q), x in labels.items())
    assert all(r["pseudo_correct"] is None for r in rows if r not in unl)

    # dynamics: pseudo-label accuracy per iteration, in the iterations rows too
    metrics = {it["iteration"]: json.loads(it["metrics"]) for it in result.iterations}
    assert [metrics[i]["pseudo_label_acc"] is None for i in range(5)] == [True, True, True, False, False]
    for it in (3, 4):
        acc = [x["label_correct"] for (i, _), x in labels.items() if i == it]
        assert metrics[it]["pseudo_label_acc"] == pytest.approx(sum(acc) / len(acc))
        assert metrics[it]["n_unlabeled"] == 10

    # rerun: nothing to do, nothing written
    before = {t: _rows(store, t) for t in ("rollouts", "pseudo_labels", "iterations")}
    again = Models(gold)
    Evolve(store, _recipe(*MIX), parts=_mix_parts(again, [])).run_all()
    assert again.loads == [] and {t: _rows(store, t) for t in before} == before


def test_oracle_mode_labels_with_the_held_aside_answers(loop_store):
    store, gold, held, _ = loop_store
    models = Models(gold)
    Evolve(store, _recipe(*MIX, "data.pseudo_label='oracle'", "prm.path=''", "data.unlabeled_start=0.75",
                          "run.id='sky'"), parts=_mix_parts(models, [])).run_all()
    labels = store.dataset("pseudo_labels").to_table().to_pylist()
    assert {r["iteration"] for r in labels} == {4} and len(labels) == 10
    assert all(r["label"] == held[r["query_id"]] and r["labeller"] == "oracle" and r["label_correct"]
               for r in labels)
    unl = [r for r in _explore(store) if held.get(r["query_id"]) is not None]
    assert {r["iteration"] for r in unl} == {4} and all(r["prm_score"] is None for r in unl)  # no PRM
    assert all(r["pseudo_correct"] == (r["pred_answer"] == held[r["query_id"]]) for r in unl)


def test_a_store_from_before_pseudo_labels_is_upgraded_and_mixes_in(loop_store):
    store, gold, held, _ = loop_store
    store.db.drop_table("pseudo_labels")  # as an older release left it
    store.dataset("rollouts").drop_columns(["pseudo_correct"])
    old = Store(store.uri, create=False)
    assert "pseudo_labels" not in old.table_names() and "pseudo_correct" not in old.dataset("rollouts").schema.names
    Evolve(old, _recipe(*MIX, "data.iterations=2", "prm.path=''"), parts=_mix_parts(Models(gold), [])).run_all()
    labels = old.dataset("pseudo_labels").to_table().to_pylist()
    assert {r["iteration"] for r in labels} == {2} and all(r["labeller"] == "majority" for r in labels)
    judged = old.count("rollouts", "pseudo_correct IS NOT NULL")
    assert judged == 10 * 3  # every sample of the 10 unlabelled queries (all gave an answer)
