"""`mstar evolve --executor ray`: every sampling stage of the loop (val, temp-sweep, explore) on Ray actors, with
the rows of the local executor, actors kept while the policy stays and closed when it changes, a rerun that
writes nothing, and GRPO sampling on the actors with the trainer's weights pushed before every step.

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


GRPO_RUN = ["sample.prompt_variant='cot'", "grpo.steps=3", "grpo.mu=2", "grpo.beta=0.04", "train.lr=1e-3",
            "train.batch_size=8", "grpo.val_every=0"]
GRPO_COLUMNS = ["rollout_id", "iteration", "stage", "query_id", "sample_idx", "seed", "response", "correct",
                "reward", "rewards", "policy", "token_logprobs"]


@pytest.mark.slow  # two GRPO smokes of 3 steps, one with Ray actors: ~60 s
def test_grpo_on_ray_samples_with_the_pushed_weights(ray_cluster, bootstrapped_policy, shapes_store, cli, tmp_path):
    """Each step's groups are sampled on 2 actors that load the trainer's weights before the step: the rows (with
    their log-probs) and the losses equal a local run's, whose engine shares the trainer's module."""
    policy, _ = bootstrapped_policy
    stores = {}
    ray_opts = ["--executor", "ray", "--ray-workers", "2", "--ray-shard-size", "16"]
    for name, extra in (("local", []), ("ray", ray_opts)):
        store = str(tmp_path / name)
        shutil.copytree(shapes_store, store)
        sets = [a for x in [f"run.base_policy='{policy}'", *GRPO_RUN] for a in ("--set", x)]
        r = cli("evolve", "--recipe", "grpo.toml", "--smoke", *sets, *extra, "--store", store)
        assert r.rc == 0, r.err
        stores[name] = store
    want = _table(stores["local"], "rollouts", GRPO_COLUMNS)
    got = _table(stores["ray"], "rollouts", GRPO_COLUMNS)
    sampled = [x for x in want if x["stage"] == "grpo"]
    assert {x["iteration"] for x in sampled} == {1, 2, 3} and len({x["policy"] for x in sampled}) == 3
    assert len(got) == len(want)
    for a, b in zip(got, want):  # the same text; log-probs within float noise of a second copy of the model
        assert {k: v for k, v in a.items() if k != "token_logprobs"} == \
               {k: v for k, v in b.items() if k != "token_logprobs"}
        assert max((abs(x - y) for x, y in zip(a["token_logprobs"] or [], b["token_logprobs"] or [])), default=0) < 1e-4
    losses = {n: [x["loss"] for x in _table(stores[n], "train_log", ["step", "loss"])] for n in stores}
    assert len(losses["ray"]) == 6 and losses["ray"] == pytest.approx(losses["local"], abs=1e-5)
    ledger = _table(stores["ray"], "shard_ledger", ["scope", "n_rows"])
    assert sum(x["n_rows"] for x in ledger) == len(sampled)  # the grpo stage went through the actors; val stayed
