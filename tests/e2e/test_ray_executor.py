"""`--executor ray`: the same rows as the local executor, actors that die mid-shard, reruns that add nothing,
and a driver that dies between writing fragments and committing them (one local Ray cluster per module)."""

import os
import shutil

import pytest

ray = pytest.importorskip("ray")

from mstar_data.exec.ledger import TABLE as LEDGER  # noqa: E402
from mstar_data.exec.ray_executor import FAULT_ENV, RayExecutor, make_shards  # noqa: E402
from mstar_data.sampling.generate import GenerateConfig, plan_generate, run_generate  # noqa: E402
from mstar_data.store import Store  # noqa: E402
from tests.moto_s3 import moto_s3  # noqa: E402

N_QUERIES, N = 16, 2
SHARD = 8


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with 2 CPUs (the actors take half a CPU each), no dashboard, no usage report."""
    before = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024,
             configure_logging=False)
    yield
    ray.shutdown()
    if before is None:
        os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
    else:
        os.environ["RAY_USAGE_STATS_ENABLED"] = before


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 16-query store and the untrained tiny policy (enough to make deterministic, varied text)."""
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.models.tiny import build_tiny_policy

    root = tmp_path_factory.mktemp("ray")
    store = str(root / "store")
    items = synthetic_items(40, 3, "easy", 0.0)[:N_QUERIES]
    ingest_items(Store(store), items, source="synthetic", dataset="synthetic", split="train", workers=1)
    build_tiny_policy(root / "policy")
    return store, str(root / "policy")


def _copy(small, tmp_path, name="store"):
    dst = str(tmp_path / name)
    shutil.copytree(small[0], dst)
    return Store(dst, create=False)


def _cfg(policy, **kw):
    return GenerateConfig(policy=policy, split=None, n=N, run="ray", max_new_tokens=12, batch_size=4,
                          temperature=1.0, ray_shard_size=SHARD, ray_workers=2, **kw)


def _rows(s):
    return sorted(s.dataset("rollouts").to_table(
        columns=["rollout_id", "query_id", "sample_idx", "seed", "response", "correct"]).to_pylist(),
        key=lambda r: r["rollout_id"])


@pytest.fixture(scope="module")
def shared(ray_cluster, small):
    """One executor (two actors, one engine each) for the module: each test points it at its own store copy."""
    from functools import partial

    from mstar_data.sampling.engines import load_engine

    ex = RayExecutor(None, batch_size=4, shard_size=SHARD, workers=2)
    yield ex, partial(load_engine, "hf", small[1])
    ex.close()


def _on(shared, store):
    ex, factory = shared
    ex.store, ex.before_commit, ex.after_commit = store, None, None
    return ex, factory


def test_ray_gives_the_local_rows_and_a_rerun_adds_nothing(shared, small, tmp_path):
    local, remote = _copy(small, tmp_path, "local"), _copy(small, tmp_path, "ray")
    cfg = _cfg(small[1])
    first_plan = plan_generate(local, cfg)  # the plan both executors run
    n_rows = len(first_plan.todo)
    assert 0 < n_rows <= N_QUERIES * N
    assert run_generate(local, cfg).written == n_rows
    ex, factory = _on(shared, remote)
    r = run_generate(remote, cfg, engine=factory, executor=ex)
    assert r.written == n_rows and r.requested == n_rows
    assert _rows(remote) == _rows(local)  # same ids, seeds, texts and verdicts
    ledger = remote.dataset(LEDGER).to_table().to_pylist()
    assert len(ledger) == len(make_shards(first_plan, SHARD)) == -(-n_rows // SHARD)
    assert sum(x["n_rows"] for x in ledger) == n_rows and {x["outcome"] for x in ledger} == {"committed"}

    # A rerun of the job plans nothing; the same plan run again is dropped shard by shard from the ledger.
    v = remote.version("rollouts")
    again = run_generate(remote, cfg.model_copy(update={"executor": "ray"}))  # the CLI's path
    assert again.written == 0 and again.skipped == n_rows and remote.version("rollouts") == v
    seen = []
    ex = RayExecutor(remote, batch_size=4, shard_size=SHARD)
    stats = ex.sample(first_plan, lambda: pytest.fail("no actor may start"), task="t", on_rows=seen.extend)
    assert stats.written == 0 and remote.version("rollouts") == v
    assert remote.count(LEDGER) == len(ledger)
    assert sorted(r["rollout_id"] for r in seen) == [r["rollout_id"] for r in _rows(remote)]


@pytest.mark.slow  # an actor restart: it loads its engine again
def test_an_actor_killed_mid_shard_is_retried_and_nothing_is_written_twice(shared, small, tmp_path, monkeypatch):
    s = _copy(small, tmp_path)
    cfg = _cfg(small[1])
    ex, factory = _on(shared, s)
    marker = tmp_path / "died"
    monkeypatch.setenv(FAULT_ENV, f"1:4:{marker}")  # shard 1 dies after its first batch of 4, first try only
    r = run_generate(s, cfg, engine=factory, executor=ex)
    assert marker.exists()
    rows = _rows(s)
    assert r.written == len(rows) == r.requested and len({x["rollout_id"] for x in rows}) == len(rows)
    assert s.count(LEDGER) == -(-len(rows) // SHARD)
    assert run_generate(s, cfg, engine=factory, executor=ex).written == 0


def test_fragments_written_but_never_committed_leave_no_duplicates(shared, small, tmp_path):
    s = _copy(small, tmp_path)
    cfg = _cfg(small[1])
    plan = plan_generate(s, cfg)
    total = len(plan.todo)
    ex, factory = _on(shared, s)

    def driver_dies(result):
        if result.index == 1:
            raise RuntimeError("driver died before the commit")

    ex.before_commit = driver_dies
    with pytest.raises(RuntimeError):
        ex.sample(plan, factory, task="t")
    partial_rows = s.count("rollouts")
    assert partial_rows < total and s.count(LEDGER) * SHARD == partial_rows

    # Commit, then the driver dies before the ledger row: the same plan again finds the rows, adds none.
    def ledger_lost(result):
        raise RuntimeError("driver died before the ledger row")

    ex.before_commit, ex.after_commit = None, ledger_lost
    with pytest.raises(RuntimeError):
        ex.sample(plan, factory, task="t")
    committed = s.count("rollouts")
    assert committed > partial_rows
    ex.after_commit = None
    stats = ex.sample(plan, factory, task="t")
    rows = _rows(s)
    assert len(rows) == total == len({x["rollout_id"] for x in rows})
    ledger = s.dataset(LEDGER).to_table().to_pylist()
    assert len(ledger) == len(make_shards(plan, SHARD)) and "found" in {x["outcome"] for x in ledger}
    assert stats.written == total - committed

    # And a rerun of the job plans nothing.
    assert run_generate(s, cfg, engine=factory, executor=ex).written == 0


def test_a_shard_another_writer_partly_stored_is_redone_for_the_rest(shared, small, tmp_path):
    from mstar_data.exec.local import LocalExecutor
    from mstar_data.sampling.rollouts import Plan

    s = _copy(small, tmp_path)
    cfg = _cfg(small[1])
    plan = plan_generate(s, cfg)
    ex, factory = _on(shared, s)
    first = sorted(plan.todo, key=lambda p: p.rollout_id)[:3]  # part of shard 0, written by a local job
    assert LocalExecutor(s).sample(Plan(plan.context, first, 0, plan.scope), factory, task="t").written == 3
    seen = []
    stats = ex.sample(plan, factory, task="t", on_rows=seen.extend)
    rows = _rows(s)
    assert stats.written == len(plan.todo) - 3 and len(rows) == len(plan.todo) == len({x["rollout_id"] for x in rows})
    assert sorted(x["rollout_id"] for x in seen) == [x["rollout_id"] for x in rows]  # each counted once


@pytest.fixture
def s3_store(monkeypatch):
    """A moto S3 server in this process, reached by the actors with the driver's storage options only (their
    processes started before these AWS_* variables were set)."""
    with moto_s3(monkeypatch, "mstar-ray"):
        yield "s3://mstar-ray/store"


def test_an_s3_store_is_written_by_the_actors_and_committed_once(shared, small, s3_store):
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items

    s = Store(s3_store)
    ingest_items(s, synthetic_items(40, 3, "easy", 0.0)[:N_QUERIES], source="synthetic", dataset="synthetic",
                 split="train", workers=1)
    cfg = _cfg(small[1])
    ex, factory = _on(shared, s)
    r = run_generate(s, cfg, engine=factory, executor=ex)
    rows = _rows(s)
    assert r.written == len(rows) == r.requested > 0 and len({x["rollout_id"] for x in rows}) == len(rows)
    assert s.count(LEDGER) == -(-len(rows) // SHARD)
    assert run_generate(s, cfg, engine=factory, executor=ex).written == 0


def test_a_loaded_engine_is_refused_in_one_line(small, tmp_path):
    from mstar_data.errors import MstarError

    s = _copy(small, tmp_path)
    cfg = _cfg(small[1])

    class Live:
        def generate(self, requests):
            return []

    with pytest.raises(MstarError, match="backend and a policy path"):
        run_generate(s, cfg.model_copy(update={"executor": "ray"}), engine=Live())
    assert s.count("rollouts") == 0


def test_without_ray_the_executor_fails_in_one_line(small, tmp_path, monkeypatch):
    import sys

    from mstar_data.errors import MstarError

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MstarError, match=r"^--executor ray needs Ray: pip install 'mstar\[ray\]'$"):
        run_generate(_copy(small, tmp_path), _cfg(small[1], executor="ray"))


def test_mc_labelling_on_ray_gives_the_local_labels(shared, tmp_path):
    """`prm label --executor ray`: wave after wave on the same actors, the same labels and continuations."""
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.keys import rollout_id
    from mstar_data.prm.label import LabelConfig, run_label
    from mstar_data.sampling.engine import Completion

    class Scripted:  # defined here so that Ray ships it by value: continues 'good' steps with the gold answer
        policy_tag = "scripted"

        def __init__(self, gold):
            self.gold = gold

        def generate(self, requests):
            out = []
            for r in requests:
                gold = next(g for key, g in self.gold.items() if f"[{key}]" in r.prefix)
                good = r.prefix.strip().split("\n\n")[-1].startswith("good")
                out.append(Completion(f"# Answer\n\n{gold if good else '999'}", 3, "stop"))
            return out

    def make(name):
        s = Store(str(tmp_path / name))
        ingest_items(s, synthetic_items(20, 3, "easy", 0.0), source="synthetic", dataset="synthetic", split="train",
                     workers=1)
        qs = s.dataset("queries").to_table(filter="split = 'train'").to_pylist()[:3]
        rows = []
        for q, plan in zip(qs, [["good", "good", "bad", "good", "final"], ["good", "good", "final"], ["bad", "x"]]):
            steps = [f"{p} [{q['query_id']}] step {i}" for i, p in enumerate(plan)]
            rows.append({"rollout_id": rollout_id("r", 0, "explore", q["query_id"], 0), "run_id": "r",
                         "iteration": 0, "stage": "explore", "query_id": q["query_id"], "sample_idx": 0,
                         "response": "\n\n".join(steps), "steps": steps, "correct": True, "format_ok": True})
        s.append("rollouts", rows)
        return s, {q["query_id"]: q["answer"] for q in qs}

    (local, gold), (remote, _) = make("local"), make("ray")
    cfg = LabelConfig(run="r", policy="scripted", m=2, max_new_tokens=8, batch_size=4)
    from functools import partial

    factory = partial(Scripted, gold)
    a = run_label(local, cfg, engine=factory())
    ex, _ = _on(shared, remote)
    b = run_label(remote, cfg.model_copy(update={"executor": "ray"}), engine=factory, executor=ex)
    assert (b.labels_written, b.rollouts_written) == (a.labels_written, a.rollouts_written) and a.rollouts_written > 0

    def labels(s):
        return sorted((r["rollout_id"], r["step_idx"], r["n_rollouts"], r["n_correct"])
                      for r in s.dataset("step_labels").to_table().to_pylist())

    assert labels(remote) == labels(local)
    assert sorted(x["rollout_id"] for x in _rows(remote)) == sorted(x["rollout_id"] for x in _rows(local))


def test_prm_score_on_ray_equals_local_through_a_dead_actor(ray_cluster, small, tmp_path, monkeypatch):
    """`prm score --executor ray`: PRM replicas on 2 actors give the local scores; an actor that dies mid-shard is
    restarted and its shard retried; a rerun scores nothing."""
    from mstar_data.exec.ray_score import FAULT_ENV as SCORE_FAULT
    from mstar_data.prm.label import LabelConfig, run_label
    from mstar_data.prm.score import ScoreConfig, run_score
    from mstar_data.prm.train import PrmTrainConfig, train_prm

    s = _copy(small, tmp_path, "prm")
    run_generate(s, GenerateConfig(policy=small[1], split=None, n=4, run="ray", max_new_tokens=12, batch_size=16,
                                   temperature=1.0))
    run_label(s, LabelConfig(labeller="task", run="ray"))
    prm = str(tmp_path / "prm-model")
    train_prm(s, PrmTrainConfig(policy=small[1], run="ray", out=prm, labeller="task", max_steps=2, batch_size=8,
                                warmup_steps=0, save_every=100))
    local, remote = _copy((s.uri.removeprefix("file://"),), tmp_path, "local"), _copy(
        (s.uri.removeprefix("file://"),), tmp_path, "remote")
    cfg = ScoreConfig(prm=prm, run="ray", batch_size=4)
    a = run_score(local, cfg)
    monkeypatch.setenv(SCORE_FAULT, f"1:{tmp_path / 'killed-once'}")
    b = run_score(remote, cfg.model_copy(update={"executor": "ray", "ray_workers": 2, "ray_shard_size": 16}))
    assert (tmp_path / "killed-once").exists()  # shard 1's actor did die
    assert a.scored == b.scored == 64

    def scores(store):
        return {r["rollout_id"]: (r["step_scores"], r["prm_score"], r["prm"]) for r in store.dataset("rollouts")
                .to_table(columns=["rollout_id", "step_scores", "prm_score", "prm"]).to_pylist()}

    want, got = scores(local), scores(remote)
    assert want.keys() == got.keys() and all(v[0] is not None for v in got.values())
    for k in want:
        assert want[k][2] == got[k][2] and want[k][0] == pytest.approx(got[k][0], abs=1e-6)
    again = run_score(remote, cfg.model_copy(update={"executor": "ray", "ray_workers": 2}))
    assert again.scored == 0 and again.unchanged == 64
