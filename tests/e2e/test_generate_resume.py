"""`mstar generate` killed with SIGKILL partway, then rerun: exactly the planned rollouts, nothing twice."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mstar_data.steps import split_steps
from mstar_data.store import Store


def _mstar(*args):
    return [sys.executable, "-c", "from mstar_cli.main import main; main()", *map(str, args)]


@pytest.mark.slow
def test_sigkill_then_rerun_gives_exactly_800_rollouts(shapes_store, bootstrapped_policy, tmp_path):
    store = str(tmp_path / "store")
    shutil.copytree(shapes_store, store)
    policy, _ = bootstrapped_policy
    args = ["generate", "--policy", policy, "--split", "train", "--n", "4", "--limit", "200", "--run", "kill",
            "--temperature", "1.0", "--max-new-tokens", "40", "--batch-size", "64", "--flush-rows", "64",
            "--store", store]
    env = {**os.environ, "MSTAR_DEBUG": "1"}
    proc = subprocess.Popen(_mstar(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 240
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        stored = Store(store, create=False).count("rollouts")
        if stored >= 64:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the first run finished before it could be killed: " + proc.stderr.read().decode()[-500:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = Store(store, create=False).count("rollouts")
    assert 0 < partial < 800

    done = subprocess.run(_mstar(*args), capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    s = Store(store, create=False)
    rows = s.dataset("rollouts").to_table(
        columns=["rollout_id", "query_id", "sample_idx", "correct", "steps", "response", "seed"]).to_pylist()
    assert len(rows) == 800
    assert len({r["rollout_id"] for r in rows}) == 800
    assert len({(r["query_id"], r["sample_idx"]) for r in rows}) == 800
    assert all(r["correct"] is not None for r in rows)  # every row judged
    assert all(r["steps"] == split_steps(r["response"]) and bool(r["steps"]) == bool(r["response"].strip())
               for r in rows)
    assert sum(bool(r["steps"]) for r in rows) > 400
    assert 0 < sum(r["correct"] for r in rows) < 800
    # The resumed job recorded that it skipped what the killed one had stored.
    jobs = s.dataset("jobs").to_table().to_pylist()
    assert [j["n_skipped"] for j in jobs if j["kind"] == "generate"] == [partial]
    # A third run finds nothing to do and writes nothing.
    v = s.version("rollouts")
    again = subprocess.run(_mstar(*args), capture_output=True, text=True, env=env)
    assert again.returncode == 0 and Store(store, create=False).version("rollouts") == v


def test_rollout_seed_reproduces_the_row(shapes_store, bootstrapped_policy, tmp_path):
    """Any single rollout can be regenerated from its row: same seed, same text, whatever batch it ran in."""
    from mstar_data.inputs import images_by_sha, select_queries
    from mstar_data.prompts import build_prompt
    from mstar_data.sampling.engine import SampleRequest
    from mstar_data.sampling.engines.hf import HFEngine
    from mstar_data.sampling.generate import GenerateConfig, run_generate

    store = str(tmp_path / "store")
    shutil.copytree(shapes_store, store)
    s = Store(store, create=False)
    policy, _ = bootstrapped_policy
    sampler = HFEngine(policy)
    r = run_generate(s, GenerateConfig(policy=policy, n=3, limit=4, run="seed", max_new_tokens=40, batch_size=12),
                     engine=sampler)
    assert r.written == 12
    row = s.dataset("rollouts").to_table(filter="sample_idx = 2").to_pylist()[1]
    q = select_queries(s, query_ids=[row["query_id"]])[0]
    img = images_by_sha(s, {q["image_sha256"]})[q["image_sha256"]]
    alone = sampler.generate([SampleRequest(row["rollout_id"], build_prompt(q["question"]), img, row["temperature"],
                                            row["seed"], 40)])[0]
    assert alone.text == row["response"]
