"""`mstar evolve --executor ray`: every sampling stage of the loop (val, temp-sweep, explore) on Ray actors, with
the rows of the local executor, actors kept while the policy stays and closed when it changes, a rerun that
writes nothing, and GRPO refused in one line.

The real-Ray test runs the demo.toml smoke (shrunk further: one iteration, 8 val queries) on the UNTRAINED tiny
policy, with random-K selection that takes wrong answers too, so the iteration trains and the measure after it
samples with a new policy folder (a new factory, new actors) without the 45 s bootstrap fixture."""

import json
import os
import shutil

import pytest

from mstar_data.exec.local import LocalExecutor
from mstar_data.loop.evolve import Evolve
from mstar_data.store import Store
from tests.unit.test_loop import Models, _parts, _recipe, _rows, loop_store  # noqa: F401 (a fixture)

ROW_COLUMNS = ["rollout_id", "run_id", "iteration", "stage", "query_id", "sample_idx", "seed", "temperature",
               "response", "correct", "policy"]
SHRINK = ["data.iterations=1", "data.val_limit=8", "select.view='trainset_random_k'", "select.correct_only=false",
          "train.max_steps=2"]


# -- the loop's use of an executor, without Ray (seconds) -------------------------------------------------------
class FakeRay:
    """What the loop relies on in RayExecutor: a factory (not an engine) per sample(), actors kept while the same
    factory object comes back, replaced when another comes, and close(). Samples with LocalExecutor."""

    name = "ray"

    def __init__(self, store, **kw):
        self.store, self.kw = store, kw
        self.engine = self.engine_for = None
        self.calls, self.starts, self.closes = [], [], 0

    def sample(self, plan, engine, *, task, on_rows=None):
        assert callable(engine) and not hasattr(engine, "generate"), "the executor gets a factory"
        import pickle

        pickle.dumps(engine.args)  # backend and policy travel to the actors
        self.calls.append((plan.context.stage, engine.args[1], len(plan.todo)))
        if plan.todo and self.engine_for is not engine:
            self.close()
            self.engine, self.engine_for = engine(), engine
            self.starts.append((plan.context.stage, engine.args[1]))
        return LocalExecutor(self.store, batch_size=self.kw["batch_size"]).sample(plan, self.engine or engine,
                                                                                  task=task, on_rows=on_rows)

    def close(self):
        if self.engine is not None:
            self.engine.release()
            self.closes += 1
        self.engine = self.engine_for = None


def test_every_sampling_stage_goes_through_the_executor_with_the_local_rows(loop_store, tmp_path, monkeypatch):
    store, gold = loop_store
    copy = str(tmp_path / "ray")
    shutil.copytree(store.uri, copy)
    remote = Store(copy, create=False)
    r = _recipe("run.memory_plan='keep-loaded'", "data.iterations=2")
    art = str(tmp_path / "artifacts")  # one root: the same policy paths (and tags) in both runs
    Evolve(store, r, artifacts=art, parts=_parts(Models(gold))).run_all()

    made = []
    import mstar_data.exec as exec_pkg

    def fake_make(name, s, **kw):
        assert name == "ray"
        made.append(FakeRay(s, **kw))
        return made[-1]

    monkeypatch.setattr(exec_pkg, "make_executor", fake_make)
    models = Models(gold)
    Evolve(remote, r, artifacts=art, parts=_parts(models), executor="ray", ray_workers=2).run_all()
    ex = made[0]
    for table in ("rollouts", "iterations"):
        assert _rows(remote, table, drop=("created_at", "timings", "trainset_version")) == \
               _rows(store, table, drop=("created_at", "timings", "trainset_version"))
    assert {stage for stage, _, _ in ex.calls} == {"val", "temp-sweep", "explore"}
    # keep-loaded: one start per policy (the temp sweep and explore reuse the base policy's actors); training
    # closes them, the next policy's first stage starts new ones, and the end closes the last
    assert [(stage, os.path.basename(p)) for stage, p in ex.starts] == [
        ("val", "base"), ("val", "it-0001"), ("val", "it-0002")]
    assert [os.path.basename(p) for stage, p, n in ex.calls if stage == "explore" and n] == ["base", "it-0001"]
    assert ex.engine is None and ex.closes == 3 and models.resident == 0
    jobs = [json.loads(j["args"]) for j in remote.dataset("jobs").to_table(columns=["args"]).to_pylist()]
    assert jobs and all(j["executor"] == "ray" and j["ray_workers"] == 2 for j in jobs)
    local_jobs = [json.loads(j["args"]) for j in store.dataset("jobs").to_table(columns=["args"]).to_pylist()]
    assert {j["executor"] for j in local_jobs} == {"local"}


def test_grpo_with_ray_is_refused_in_one_line(cli, tmp_path):
    r = cli("evolve", "--recipe", "grpo.toml", "--smoke", "--set", "run.base_policy='p'", "--executor", "ray",
            "--store", str(tmp_path / "none"))
    assert r.rc == 1 and len(r.err.strip().splitlines()) == 1
    assert "--executor ray: a GRPO recipe samples only with --executor local" in r.err
    assert not (tmp_path / "none").exists()
    from mstar_data.errors import MstarError
    from mstar_data.loop.grpo import Grpo
    from mstar_data.loop.recipe import resolve_recipe

    with pytest.raises(MstarError, match="a GRPO recipe samples only with --executor local"):  # the library too,
        Grpo(None, resolve_recipe("grpo.toml", ["run.base_policy='p'"], smoke=True), executor="ray")  # first


# -- the real thing: a local Ray instance ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with 2 CPUs, as tests/e2e/test_ray_executor.py; one thread per process (the actors
    inherit it), as the local run has, so both sum floats in the same order."""
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED", "MSTAR_THREADS")}
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", MSTAR_THREADS="1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024,
             configure_logging=False)
    yield
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from mstar_data.models.tiny import build_tiny_policy

    out = tmp_path_factory.mktemp("tiny") / "policy"
    build_tiny_policy(out)
    return str(out)


def _smoke(cli, store, policy, *extra):
    sets = [a for s in [f"run.base_policy='{policy}'", *SHRINK] for a in ("--set", s)]
    return cli("evolve", "--recipe", "demo.toml", "--smoke", *sets, "--artifacts", str(store) + "-artifacts",
               *extra, "--store", store)


def _table(store, name, columns=None):
    """The rows, sorted, with each store's own checkpoint folder (policy tags and paths) cut to its name."""
    rows = Store(store, create=False).dataset(name).to_table(columns=columns).to_pylist()
    for r in rows:
        for k in ("policy", "policy_out"):
            if isinstance(r.get(k), str) and r[k].startswith(str(store) + "-artifacts"):
                r[k] = os.path.basename(r[k])
    return sorted(rows, key=lambda r: (r.get("iteration", 0), str(sorted(r.items()))))


@pytest.mark.slow  # two smokes and a rerun, with Ray actors loading engines: ~80 s on a shared 2-core machine
def test_evolve_smoke_on_ray_gives_the_local_rows_and_a_rerun_writes_nothing(ray_cluster, tiny_policy, shapes_store,
                                                                             cli, tmp_path, monkeypatch):
    from mstar_data.exec.ray_executor import RayExecutor

    local, remote = str(tmp_path / "local"), str(tmp_path / "ray")
    shutil.copytree(shapes_store, local)
    shutil.copytree(shapes_store, remote)
    r = _smoke(cli, local, tiny_policy)
    assert r.rc == 0, r.err
    started, start = [], RayExecutor._start

    def counted(self, ray, factory, n):
        actors = start(self, ray, factory, n)
        started.append((factory.args[1], [a._actor_id.hex() for a in actors]))
        return actors

    monkeypatch.setattr(RayExecutor, "_start", counted)
    r = _smoke(cli, remote, tiny_policy, "--executor", "ray", "--ray-workers", "2", "--ray-shard-size", "8")
    assert r.rc == 0, r.err
    # Per policy: one actor for the greedy val job (8 rollouts, one shard), a second added for the sampled val
    # (two shards), both kept through the temp sweep and explore; training closes them (4 actors in all).
    per_policy = {}
    for policy, ids in started:
        per_policy.setdefault(os.path.basename(policy), set()).update(ids)
    assert {p: len(ids) for p, ids in per_policy.items()} == {os.path.basename(tiny_policy): 2, "it-0001": 2}
    assert not per_policy[os.path.basename(tiny_policy)] & per_policy["it-0001"]
    want = _table(local, "rollouts", ROW_COLUMNS)
    assert {x["stage"] for x in want} == {"val", "temp-sweep", "explore"}
    assert _table(remote, "rollouts", ROW_COLUMNS) == want  # ids, seeds, responses, verdicts, policy tags
    its = _table(remote, "iterations", ["iteration", "policy_out", "n_train", "greedy_acc", "pass_at_k"])
    assert [i["iteration"] for i in its] == [0, 1] and its[1]["n_train"] > 0  # it trained: a second policy
    assert its[1]["policy_out"] == "it-0001" and its == _table(local, "iterations", list(its[0]))
    assert {x["policy"] for x in want} == {tiny_policy, "it-0001"}
    ledger = _table(remote, "shard_ledger", ["scope", "n_rows", "outcome"])
    assert sum(x["n_rows"] for x in ledger) == len(want) and {x["outcome"] for x in ledger} == {"committed"}

    s = Store(remote, create=False)
    before = {i.name: i.version for i in s.info() if i.name != "leases"}  # the lease logs its claim and release
    r = _smoke(cli, remote, tiny_policy, "--executor", "ray", "--ray-workers", "2")
    assert r.rc == 0, r.err
    assert {i.name: i.version for i in Store(remote, create=False).info() if i.name != "leases"} == before
