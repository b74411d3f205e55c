"""GRPO end to end on the embedded task: SIGKILL + rerun equal to a run that never stopped (both packaged recipes
under --smoke: tests/e2e/test_recipes_smoke.py)."""

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


RUN = ["--set", "sample.prompt_variant='cot'", "--set", "grpo.steps=5", "--set", "grpo.save_every=2",
       "--set", "grpo.mu=2", "--set", "grpo.mini_batches=2", "--set", "grpo.beta=0.04", "--set", "train.lr=1e-3",
       "--set", "train.batch_size=8"]
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
    assert len(want["train_log"]) == 20  # 5 steps x mu 2 x 2 mini-batches
    assert sorted(x["step"] for x in want["train_log"]) == list(range(1, 21))
    assert {x["iteration"] for x in want["rollouts"] if x["stage"] == "grpo"} == {1, 2, 3, 4, 5}
    kill_points_match(lambda store: _evolve(store, policy), shapes_store, tmp_path, want, DROP, seed=3, points=2,
                      env=ENV)
