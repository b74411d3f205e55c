"""GRPO end to end on the embedded task: both packaged recipes under --smoke, and SIGKILL + rerun equal to a run
that never stopped."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from tests.kills import kill_points_match, table_rows

ENV = {**os.environ, "MSTAR_THREADS": "1"}  # one thread: the runs must match bit for bit


@pytest.fixture
def grpo_store(shapes_store, tmp_path):
    uri = tmp_path / "store"
    shutil.copytree(shapes_store, uri)
    return uri


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["grpo.toml", "grpo_dapo.toml"])
def test_packaged_recipes_run_under_smoke(recipe, grpo_store, bootstrapped_policy, cli):
    policy, _ = bootstrapped_policy
    t0 = time.perf_counter()
    r = cli("evolve", "--recipe", recipe, "--smoke", "--set", f"run.base_policy='{policy}'", "--store", grpo_store)
    assert r.rc == 0, r.err
    assert time.perf_counter() - t0 < 60
    r = cli("sql", "--store", grpo_store, "--format", "json",
            "select iteration as step, query_id, reward, advantage from rollouts where stage = 'grpo'")
    rows = json.loads(r.out)
    assert sorted({x["step"] for x in rows}) == [1, 2, 3]
    groups = defaultdict(list)
    for x in rows:
        groups[(x["step"], x["query_id"])].append(x)
    assert all(len(g) == 4 for g in groups.values())  # the smoke's G
    for g in groups.values():
        rewards, adv = [x["reward"] for x in g], [x["advantage"] for x in g]
        if len(set(rewards)) > 1:  # normalised within the group
            assert abs(statistics.fmean(adv)) < 1e-5 and abs(statistics.pstdev(adv) - 1) < 1e-2
        else:
            assert adv == [0.0] * 4
    dyn = json.loads(cli("sql", "--store", grpo_store, "--format", "json", "select * from grpo_dynamics").out)
    assert [d["step"] for d in dyn] == [1, 2, 3] and all(d["loss"] is not None for d in dyn)
    run = recipe.replace(".toml", "").replace("_", "-") + "-smoke"
    png = grpo_store.parent / "grpo.png"
    r = cli("dynamics", "--run", run, "--plot", png, "--store", grpo_store)
    assert r.rc == 0 and "GRPO" in r.out and png.read_bytes()[:4] == b"\x89PNG"


RUN = ["--set", "sample.prompt_variant='cot'", "--set", "grpo.steps=5", "--set", "grpo.save_every=2",
       "--set", "grpo.mu=2", "--set", "grpo.beta=0.04", "--set", "train.lr=1e-3", "--set", "train.batch_size=8"]
DROP = {"rollouts": {"created_at"}, "train_log": {"created_at", "seconds"}, "iterations": {"created_at"}}


def _evolve(store, policy):
    return [sys.executable, "-c", "from mstar_cli.main import main; main()", "evolve", "--recipe", "grpo.toml",
            "--smoke", "--set", f"run.base_policy='{policy}'", *RUN, "--store", str(store)]


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_matches_uninterrupted(shapes_store, bootstrapped_policy, tmp_path):
    policy, _ = bootstrapped_policy
    straight = tmp_path / "straight"
    shutil.copytree(shapes_store, straight)
    r = subprocess.run(_evolve(straight, policy), capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    want = {t: table_rows(straight, t, DROP[t]) for t in DROP}
    assert len(want["train_log"]) == 10  # 5 steps x mu 2
    assert {x["iteration"] for x in want["rollouts"] if x["stage"] == "grpo"} == {1, 2, 3, 4, 5}
    kill_points_match(lambda store: _evolve(store, policy), shapes_store, tmp_path, want, DROP, seed=3, points=2,
                      env=ENV)
