"""`mstar evolve --nproc 2 --fsdp`: each iteration trains in 2 torchrun processes (train/launch.py), the model
sharded across them (train/fsdp.py), and the run equals the one-process run: the same iteration-1 training set
gives the same per-step losses, every iteration trains and measures, and a rerun of the finished run changes
nothing. (tests/e2e/test_torchrun.py checks replicated and sharded training step by step.)"""

import os
import shutil
import subprocess

import pytest

from tests.kills import mstar, table_rows

ENV = {**os.environ, "MSTAR_THREADS": "1"}
DROP = {"created_at", "seconds"}


def _evolve(store, policy, *extra):
    return mstar("evolve", "--recipe", "demo.toml", "--smoke", "--set", f"run.base_policy='{policy}'",
                 "--set", "train.max_steps=6", "--set", "train.save_every=2", "--store", store, *extra)


@pytest.mark.slow
def test_evolve_nproc_2_fsdp_trains_like_one_process(shapes_store, bootstrapped_policy, tmp_path):
    policy, _ = bootstrapped_policy
    logs = {}
    for n in (1, 2):
        store = tmp_path / f"n{n}"
        shutil.copytree(shapes_store, store)
        extra = ["--nproc", n] + (["--fsdp"] if n == 2 else [])
        r = subprocess.run(_evolve(store, policy, *extra), capture_output=True, text=True, env=ENV)
        assert r.returncode == 0, r.stderr[-3000:]
        assert ("training in 2 processes (torchrun, FSDP)" in r.stdout + r.stderr) == (n == 2)
        logs[n] = table_rows(store, "train_log", DROP)
        its = table_rows(store, "iterations", {"created_at", "timings", "trainset_version"})
        assert [i["iteration"] for i in sorted(its, key=lambda i: i["iteration"])] == [0, 1, 2]
    one = {(x["iteration"], x["step"]): x for x in logs[1]}
    two = {(x["iteration"], x["step"]): x for x in logs[2]}
    it1 = sorted(k for k in one if k[0] == 1)
    assert it1 and it1 == sorted(k for k in two if k[0] == 1)
    for k in it1:  # the same examples, batches and LRs; gloo's all-reduce only reorders float sums
        assert abs(one[k]["loss"] - two[k]["loss"]) < 1e-5 and one[k]["lr"] == two[k]["lr"]
    assert any(k[0] == 2 for k in two)  # iteration 2 trained in 2 processes too

    store = tmp_path / "n2"
    before = {t: table_rows(store, t, DROP) for t in ("train_log", "iterations")}
    r = subprocess.run(_evolve(store, policy, "--nproc", 2, "--fsdp"), capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {t: table_rows(store, t, DROP) for t in before} == before


def test_grpo_evolve_refuses_nproc(cli, tmp_path):
    r = cli("evolve", "--recipe", "grpo.toml", "--nproc", "2", "--store", tmp_path / "s")
    assert r.rc == 1 and "--nproc" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("command", [["evolve", "--recipe", "demo.toml"],
                                     ["train", "--run", "r", "--iteration", "0", "--policy-in", "p"]])
def test_fsdp_without_processes_to_shard_across_is_refused(cli, tmp_path, command):
    r = cli(*command, "--fsdp", "--store", tmp_path / "s")
    assert r.rc == 1 and "--fsdp" in r.err and "--nproc 2" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
