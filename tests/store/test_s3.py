"""An object-store URI works like a folder: against a local moto S3 server, configured by AWS_* variables.

Every command that reads or writes the store takes `--store s3://bucket/prefix`, with the models it writes
under `--artifacts DIR` (docs/s3.md). The tables go to the bucket and nothing else does; the models go to the
artifacts folder and nothing lands in the working directory (no `s3:/...` folder made from the URI).
"""

import json
import multiprocessing as mp
import os

import pytest

from mstar_data.schema import TABLES
from mstar_data.store import Store
from tests.moto_s3 import moto_s3

BUCKET = "mstar-test"


@pytest.fixture
def s3_env(monkeypatch):
    with moto_s3(monkeypatch, BUCKET):
        yield f"s3://{BUCKET}/store"


def _bucket_keys(endpoint: str | None = None) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint or os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


@pytest.mark.slow
def test_ingest_and_sql_on_s3(s3_env, cli):
    r = cli("ingest", "synthetic", "--n", "30", "--store", s3_env)
    assert r.rc == 0, r.err
    assert cli("ingest", "synthetic", "--n", "30", "--store", s3_env).rc == 0
    s = Store(s3_env, create=False)
    assert s.count("queries") == 30 and s.count("images") == 30
    assert s.version("queries") == 2  # the rerun wrote nothing
    r = cli("sql", "select count(*) as n from queries where split = 'train'", "--format", "json", "--store", s3_env)
    assert r.rc == 0 and r.out.strip() == '[{"n": 22}]'


def test_a_remote_store_needs_an_artifacts_folder(s3_env, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("ingest", "synthetic", "--n", "20", "--store", s3_env).rc == 0
    r = cli("evolve", "--recipe", "demo.toml", "--smoke", "--set", "run.base_policy='policies/base'", "--store", s3_env)
    assert r.rc == 1 and f"store {s3_env} is remote: pass --artifacts DIR (or set MSTAR_ARTIFACTS)" in r.err
    assert os.listdir(tmp_path) == []  # nothing made from the URI (no ./s3:/...)


def test_the_aws_variables_reach_the_store(s3_env, monkeypatch):
    """AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL (as in the AWS SDKs), and AWS_ALLOW_HTTP is passed on."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    s = Store(s3_env)
    assert s.storage_options["aws_endpoint"] == endpoint and s.storage_options["allow_http"] == "true"
    assert sorted(s.table_names()) == sorted(TABLES) and any(k.startswith("store/queries.lance/")
                                                           for k in _bucket_keys(endpoint))


@pytest.mark.slow
def test_every_stage_of_a_run_on_s3(s3_env, cli, bootstrapped_policy, tmp_path, monkeypatch):
    """ingest -> generate -> evolve (smoke) -> sql -> export cot -> dynamics, all on s3://, with the models
    under a relative --artifacts folder."""
    policy, _ = bootstrapped_policy
    monkeypatch.chdir(tmp_path)
    store = s3_env

    r = cli("ingest", "synthetic", "--n", "200", "--store", store)
    assert r.rc == 0, r.err
    r = cli("generate", "--policy", policy, "--split", "val", "--n", "2", "--limit", "4", "--run", "g",
            "--store", store)
    assert r.rc == 0, r.err
    assert f"--store {store} " in r.out  # the hint names the store as given: a URI, not a local path
    assert Store(store, create=False).count("rollouts", "run_id = 'g'") == 8

    r = cli("evolve", "--recipe", "demo.toml", "--smoke", "--run-id", "s3run", "--set", f"run.base_policy='{policy}'",
            "--set", "data.iterations=1", "--set", "data.interval=1.0", "--store", store, "--artifacts", "art")
    assert r.rc == 0, r.err
    s = Store(store, create=False)
    its = sorted(s.dataset("iterations").to_table(filter="run_id = 's3run'").to_pylist(), key=lambda x: x["iteration"])
    assert [i["iteration"] for i in its] == [0, 1] and its[1]["n_train"] > 0
    ckpt = tmp_path / "art" / "checkpoints" / "s3run" / "it-0001"
    assert its[1]["policy_out"] == str(ckpt)  # absolute, though --artifacts was relative
    assert (ckpt / "model.safetensors").is_file()

    r = cli("sql", "select iteration, n_train from iterations where run_id = 's3run' order by iteration",
            "--format", "json", "--store", store)
    assert r.rc == 0, r.err
    assert json.loads(r.out) == [{"iteration": i["iteration"], "n_train": i["n_train"]} for i in its]

    r = cli("export", "cot", "--run", "s3run", "--out", "exp", "--store", store)
    assert r.rc == 0, r.err
    rows = json.loads((tmp_path / "exp" / "data.json").read_text())
    assert len(rows) == its[1]["n_train"] and {x["iteration"] for x in rows} == {1}
    assert all((tmp_path / "exp" / img).is_file() for x in rows for img in x["images"])
    assert f"`{store}`" in (tmp_path / "exp" / "README.md").read_text()  # the card names the store

    r = cli("dynamics", "--run", "s3run", "--plot", "dyn.png", "--store", store)
    assert r.rc == 0, r.err
    assert "run s3run" in r.out and (tmp_path / "dyn.png").stat().st_size > 0

    # the tables are all that went to the bucket; the models, export and plot are all that went to the folder
    keys = _bucket_keys()
    assert keys and all(k.startswith("store/") and k.split("/")[1].endswith(".lance") for k in keys)
    assert sorted(os.listdir(tmp_path)) == ["art", "dyn.png", "exp"]


COMPACT_AFTER = 6  # the writers compact often, so that their compactions race too


def _append_disjoint(uri: str, env: dict, writer: int, batches: int, barrier) -> None:
    """One writer process: open the store (both may create it), then append its own rows batch by batch."""
    os.environ.update(env)
    from mstar_data.store import Store

    barrier.wait()
    s = Store(uri)  # a new store: both writers create its tables at once
    s.compact_after = COMPACT_AFTER
    for b in range(batches):
        rows = [{"query_id": f"w{writer}/{b}-{j}", "dataset": f"w{writer}", "split": "train", "question": "q",
                 "answer_type": "integer", "record_sha256": f"{writer}-{b}-{j}"} for j in range(2)]
        assert s.append("queries", rows, conflict_column="record_sha256") == 2


def test_two_writers_append_to_one_table_on_s3(s3_env):
    """Two processes open a new store and append disjoint rows to one table at once: every row lands, once.
    Lance commits each append with a conditional PUT of the next manifest (moto, like S3, enforces
    If-None-Match), and a writer that loses the race rebases its append on the winner's. Past a few fragments
    every append also compacts, so both writers compact at once and one compaction loses its commit
    (Store.maybe_compact takes that in its stride: its append is committed already)."""
    batches = 12
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    ctx = mp.get_context("spawn")  # lancedb's runtime does not survive a fork
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_append_disjoint, args=(s3_env, env, w, batches, barrier)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0]
    s = Store(s3_env, create=False)
    got = s.dataset("queries").to_table(columns=["query_id"]).column("query_id").to_pylist()
    want = {f"w{w}/{b}-{j}" for w in range(2) for b in range(batches) for j in range(2)}
    assert len(got) == len(want) and set(got) == want  # nothing lost, nothing twice
    assert s.version("queries") >= 1 + 2 * batches  # one commit per append, plus the create and compactions
    assert len(s.dataset("queries").get_fragments()) <= COMPACT_AFTER + 2  # and the compactions happened
    assert sorted(s.table_names()) == sorted(TABLES)
