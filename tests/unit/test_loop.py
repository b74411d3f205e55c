"""The evolve loop with a scripted engine, PRM and trainer: every stage, the run record, the memory plan and
resume, in seconds (the real models are covered by tests/e2e/test_learning.py and test_evolve_kill.py)."""

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from mstar_data.errors import MstarError
from mstar_data.inputs import select_queries
from mstar_data.loop.evolve import Evolve, LoopParts
from mstar_data.loop.recipe import resolve_recipe
from mstar_data.prompts import build_prompt
from mstar_data.sampling.engine import Completion
from mstar_data.store import Store

SHRINK = ["data.iterations=3", "data.train_limit=40", "data.val_limit=12", "sample.n=3", "eval.n=2", "eval.k=2",
          "temperature.t_min=0.4", "temperature.t_max=1.0", "temperature.t_step=0.3", "temperature.n=2"]


class Models:
    """Counts what is resident, and records the resident count whenever a stage runs."""

    def __init__(self, gold: dict[str, str]):
        self.gold, self.resident, self.peak, self.loads = gold, 0, 0, []
        self.train_calls: list[dict] = []

    def load(self, kind: str, path: str):
        self.resident += 1
        self.peak = max(self.peak, self.resident)
        self.loads.append((kind, path))


class FakeEngine:
    name = "fake"

    def __init__(self, models: Models, policy: str):
        self.models, self.policy_tag, self.live = models, policy, True
        m = re.search(r"it-(\d+)", policy)
        self.skill = 1 + (int(m.group(1)) if m else 0)  # each trained iteration gets one more in 4 right
        models.load("engine", policy)

    def generate(self, requests):
        assert self.live, "a released engine was used"
        out = []
        for r in requests:
            right = (r.seed % 4) < self.skill
            answer = self.models.gold[(r.prompt, hashlib.sha256(r.image).hexdigest())] if right else "wrong"
            out.append(Completion(f"red: 1.\n\n# Answer\n\n{answer}", 5, "stop", [-0.5] * 5, [7, 8, 9, 10, 2]))
        return out

    def release(self):
        assert self.live
        self.live = False
        self.models.resident -= 1


class FakePrm:
    def __init__(self, models: Models, path: str):
        self.models = models
        models.load("prm", path)

    def release(self):
        self.models.resident -= 1


def fake_score(models: Models):
    def score(store, cfg, prm, progress):
        from mstar_data.prm.score import score_scope

        rows = store.dataset("rollouts").to_table(columns=["rollout_id"], filter=score_scope(cfg)).to_pylist()
        if rows:
            prm()  # loads it
            store.update("rollouts", pa.table({
                "rollout_id": [r["rollout_id"] for r in rows],
                "step_scores": [[0.5] for _ in rows],
                "prm_score": [float(int(r["rollout_id"][:4], 16) % 97) / 97 for r in rows],
                "prm": ["fake@1" for _ in rows]}))
    return score


def fake_train(models: Models):
    @dataclass
    class Trained:
        checkpoint: str

    def train(store, examples, *, run, iteration, policy_in, checkpoints, **kw):
        models.train_calls.append({"iteration": iteration, "policy_in": policy_in, "n": len(examples),
                                   "resident": models.resident, "iterations": kw["iterations"]})
        out = Path(checkpoints) / run / f"it-{iteration:04d}"
        out.mkdir(parents=True, exist_ok=True)
        (out / "checkpoint.json").write_text("{}")
        return Trained(str(out))
    return train


@pytest.fixture
def loop_store(shapes_store, tmp_path):
    uri = str(tmp_path / "store")
    shutil.copytree(shapes_store, uri)
    s = Store(uri, create=False)
    # the same question text is asked of many images: the image tells them apart
    gold = {(build_prompt(q["question"], q["choices"]), q["image_sha256"]): q["answer"] for q in select_queries(s)}
    return s, gold


def _parts(models: Models) -> LoopParts:
    return LoopParts(load_engine=lambda backend, policy: FakeEngine(models, policy),
                     load_prm=lambda path: FakePrm(models, path), score=fake_score(models), train=fake_train(models),
                     check_models=False)  # fake model paths: the preflight checks the views and data only


def _recipe(*extra, smoke=False, run_id=None):
    return resolve_recipe("demo.toml", ["run.base_policy='base'", "prm.path='fake-prm'", *SHRINK, *extra],
                          smoke=smoke, run_id=run_id)


def _rows(store, table, drop=("created_at", "timings")):
    rows = store.dataset(table).to_table().to_pylist()
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in rows), key=lambda r: json.dumps(r, default=str))


def test_loop_runs_every_stage_with_one_model_resident(loop_store):
    store, gold = loop_store
    models = Models(gold)
    r = _recipe("run.memory_plan='one-model'")
    result = Evolve(store, r, parts=_parts(models)).run_all()
    assert [it["iteration"] for it in result.iterations] == [0, 1, 2, 3]
    # the trainer saw each iteration's selection, chained from the previous checkpoint, with nothing resident
    assert [(c["iteration"], Path(c["policy_in"]).name, c["resident"]) for c in models.train_calls] == [
        (1, "base", 0), (2, "it-0001", 0), (3, "it-0002", 0)]
    assert all(c["n"] > 0 and c["iterations"] == 3 for c in models.train_calls)
    assert models.peak == 1 and models.resident == 0  # everything released at the end too
    # the scripted skill rises with each checkpoint, and the loop measured the checkpoint it trained
    accs = [it["greedy_acc"] for it in result.iterations]
    assert accs[-1] > accs[0]
    # every stage wrote its rollouts: explore n per interval query, val greedy + eval.n per val query
    counts = {(x["stage"], x["iteration"]): x["n"] for x in
              store.dataset("rollouts").to_table(columns=["stage", "iteration"]).group_by(["stage", "iteration"])
              .aggregate([("stage", "count")]).rename_columns(["stage", "iteration", "n"]).to_pylist()}
    assert counts[("explore", 1)] == 10 * 3 and counts[("val", 2)] == 12 * (1 + 2)
    assert counts[("temp-sweep", 1)] == 12 * 2 * 3 and ("temp-sweep", 2) not in counts  # search every 2
    # token ids and log-probs are kept on every row
    t = store.dataset("rollouts").to_table(columns=["token_ids", "token_logprobs"]).to_pylist()
    assert all(x["token_ids"] == [7, 8, 9, 10, 2] and len(x["token_logprobs"]) == 5 for x in t)
    # the run record is the resolved recipe
    rec = json.loads(store.dataset("runs").to_table().to_pylist()[0]["recipe"])
    assert rec["data"]["train_limit"] == 40 and rec["run"]["memory_plan"] == "one-model" and rec["eval"]["n"] == 2


def test_keep_loaded_reuses_the_engine_and_still_releases_it_before_training(loop_store):
    store, gold = loop_store
    one, keep = Models(gold), Models(gold)
    Evolve(store, _recipe("run.memory_plan='one-model'", "run.id='a'"), parts=_parts(one)).run_all()
    Evolve(store, _recipe("run.memory_plan='keep-loaded'", "run.id='b'"), parts=_parts(keep)).run_all()
    assert keep.peak == 2 and all(c["resident"] <= 1 for c in keep.train_calls)  # the PRM may stay, the engine not
    assert len([k for k in keep.loads if k[0] == "engine"]) < len([k for k in one.loads if k[0] == "engine"])


def test_rerun_writes_nothing_and_a_changed_recipe_is_refused(loop_store):
    store, gold = loop_store
    models = Models(gold)
    Evolve(store, _recipe(), parts=_parts(models)).run_all()
    before = {t: _rows(store, t) for t in ("rollouts", "iterations", "runs")}
    again = Models(gold)
    Evolve(store, _recipe(), parts=_parts(again)).run_all()
    assert again.loads == [] and again.train_calls == []
    assert {t: _rows(store, t) for t in ("rollouts", "iterations", "runs")} == before
    with pytest.raises(MstarError, match=r"run 'demo' was recorded with a different recipe \(differs in "
                                         r"sample.n, train.lr\)"):
        Evolve(store, _recipe("sample.n=5", "train.lr=0.1"), parts=_parts(Models(gold))).run_all()


def test_smoke_runs_under_its_own_id(loop_store):
    assert _recipe(smoke=True).run.id == "demo-smoke"
    assert _recipe("run.id='mine'", smoke=True).run.id == "mine"
    assert _recipe(smoke=True, run_id="x").run.id == "x"
    assert _recipe().run.id == "demo"


def test_a_partly_recorded_iteration_resumes_without_duplicates(loop_store):
    """A crash mid-iteration (here: the trainer fails) leaves explore rows; the rerun keeps them and goes on."""
    store, gold = loop_store
    models = Models(gold)
    parts = _parts(models)
    real_train = parts.train

    def failing(*a, **kw):
        if kw["iteration"] == 2:
            raise RuntimeError("node lost")
        return real_train(*a, **kw)

    with pytest.raises(RuntimeError, match="node lost"):
        Evolve(store, _recipe(), parts=LoopParts(parts.load_engine, parts.load_prm, parts.score, failing,
                                                   check_models=False)).run_all()
    assert models.resident == 0  # released on the way out
    explore_2 = store.count("rollouts", "stage = 'explore' AND iteration = 2")
    assert explore_2 == 30
    Evolve(store, _recipe(), parts=_parts(models)).run_all()
    assert store.count("rollouts", "stage = 'explore' AND iteration = 2") == 30
    ids = store.dataset("rollouts").to_table(columns=["rollout_id"]).column("rollout_id").to_pylist()
    assert len(ids) == len(set(ids))
    assert sorted(r["iteration"] for r in store.dataset("iterations").to_table().to_pylist()) == [0, 1, 2, 3]
