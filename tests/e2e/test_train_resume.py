"""Kill -9 mid-training, rerun: the step, LR and loss sequence equals that of a run that never stopped."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mstar_data.inputs import select_queries
from mstar_data.keys import rollout_id
from mstar_data.store import Store


def _mstar(*args):
    return [sys.executable, "-c", "from mstar_cli.main import main; main()", *map(str, args)]


@pytest.fixture(scope="module")
def train_store(shapes_store, tmp_path_factory):
    """The shapes store plus one iteration of 'rollouts' made from the reference CoTs (a known training set)."""
    from mstar_data.models.tiny import build_tiny_policy

    root = tmp_path_factory.mktemp("train")
    store = root / "store"
    shutil.copytree(shapes_store, store)
    s = Store(str(store), create=False)
    seed_set = select_queries(s, split="train", where="reference_cot IS NOT NULL")
    s.append("rollouts", [{"rollout_id": rollout_id("t", 0, "explore", q["query_id"], 0), "run_id": "t",
                           "iteration": 0, "stage": "explore", "query_id": q["query_id"], "sample_idx": 0,
                           "response": q["reference_cot"], "correct": True, "format_ok": True} for q in seed_set])
    build_tiny_policy(root / "policy")
    return store, root / "policy"


def _train_args(store, policy):
    return ["train", "--run", "t", "--iteration", "0", "--policy-in", policy, "--view", "trainset_all_correct",
            "--batch-size", "8", "--epochs", "20", "--max-steps", "60", "--total-steps", "60", "--warmup-steps", "5",
            "--save-every", "5", "--store", store]


def _log(store):
    rows = Store(str(store), create=False).dataset("train_log").to_table().to_pylist()
    return sorted((r["step"], r["local_step"], r["lr"], r["loss"]) for r in rows)


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_matches_uninterrupted(train_store, tmp_path):
    store, policy = train_store
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    shutil.copytree(store, straight)
    shutil.copytree(store, killed)
    r = subprocess.run(_mstar(*_train_args(straight, policy)), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]

    proc = subprocess.Popen(_mstar(*_train_args(killed, policy)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    steps = killed / "checkpoints" / "t" / "it-0000.steps"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(steps.glob("step-0000[1-9]0/checkpoint.json")):
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / "t" / "it-0000" / "checkpoint.json").exists()
    before = _log(killed)
    assert 0 < len(before) < 60
    r = subprocess.run(_mstar(*_train_args(killed, policy)), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from step" in r.stdout

    a, b = _log(straight), _log(killed)
    assert [x[:3] for x in a] == [x[:3] for x in b]                 # same steps and LRs, each step once
    assert [x[0] for x in a] == list(range(1, 61))
    assert all(abs(x[3] - y[3]) < 1e-5 for x, y in zip(a, b))     # same losses: same batches, same state
    assert not steps.exists()                                      # step checkpoints are cleared at the end


def test_lr_schedule_warmup_then_cosine_to_floor():
    from mstar_data.train.schedule import lr_lambda, steps_for
    from mstar_data.train.trainer import TrainConfig, batch_order

    f = lr_lambda(TrainConfig(warmup_steps=4, total_steps=20, min_lr_ratio=0.1))
    assert [round(f(s), 3) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(20) == pytest.approx(0.1) and f(100) == pytest.approx(0.1) and 0.1 < f(12) < 1.0
    assert lr_lambda(TrainConfig(warmup_steps=0, total_steps=None))(1000) == 1.0
    assert steps_for(84, TrainConfig(batch_size=16, epochs=2)) == 11
    assert steps_for(84, TrainConfig(batch_size=16, epochs=2, max_steps=5)) == 5
    order = batch_order(10, 7, 4, seed=1, iteration=2)
    assert order == batch_order(10, 7, 4, seed=1, iteration=2) != batch_order(10, 7, 4, seed=1, iteration=3)
    assert all(len(b) == 4 for b in order) and sorted(sum(order, [])[:10]) == list(range(10))


def test_methods_start_where_they_should(train_store, tmp_path):
    """continuous carries optimizer state; iterative-rft starts fresh from the last weights; rest-em from base."""
    from mstar_data.train.schedule import start_point
    from mstar_data.train.trainer import TrainConfig

    _, policy = train_store
    root = tmp_path / "ck"
    prev = root / "t" / "it-0000"
    shutil.copytree(policy, prev)
    (prev / "trainer").mkdir()
    (prev / "trainer" / "optimizer.pt").write_bytes(b"")
    w, s = start_point(TrainConfig(method="continuous"), root / "t" / "it-0001", str(prev), str(policy))
    assert (w, s) == (prev, prev)
    w, s = start_point(TrainConfig(method="iterative-rft"), root / "t" / "it-0001", str(prev), str(policy))
    assert (w, s) == (prev, None)
    w, s = start_point(TrainConfig(method="rest-em"), root / "t" / "it-0001", str(prev), str(policy))
    assert (w, s) == (Path(policy), None)
