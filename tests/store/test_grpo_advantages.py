"""sql/grpo_advantages.sql on a hand-built step: groups are (run, step, query), whatever the batching."""

import statistics

import pytest

from mstar_data.keys import rollout_id
from mstar_data.sql_views import run_view
from mstar_data.store import Store

REWARDS = {"q1": [1.0, 0.0, 0.0, 1.0], "q2": [2.0, 2.0, 2.0, 2.0], "q3": [0.5, None, 1.5, 1.0]}


@pytest.fixture
def store(store_uri):
    s = Store(store_uri)
    rows = []
    for q, rewards in REWARDS.items():
        for k, r in enumerate(rewards):
            rows.append({"rollout_id": rollout_id("g", 1, "grpo", q, k), "run_id": "g", "iteration": 1,
                         "stage": "grpo", "query_id": q, "sample_idx": k, "reward": r})
    # another step and another run: never mixed in
    rows.append({"rollout_id": "other-step", "run_id": "g", "iteration": 2, "stage": "grpo", "query_id": "q1",
                 "sample_idx": 0, "reward": 100.0})
    rows.append({"rollout_id": "other-run", "run_id": "h", "iteration": 1, "stage": "grpo", "query_id": "q1",
                 "sample_idx": 0, "reward": -100.0})
    s.append("rollouts", rows)
    return s


def _adv(store, scale):
    rows = run_view(store, "grpo_advantages", run="g", step=1, scale=scale).to_pylist()
    return {(r["query_id"], r["sample_idx"]): r for r in rows}


def test_group_scale_gives_mean_zero_std_one_where_rewards_vary(store):
    a = _adv(store, "group")
    assert len(a) == 12
    q1 = [a[("q1", k)]["advantage"] for k in range(4)]
    assert abs(statistics.fmean(q1)) < 1e-9 and abs(statistics.pstdev(q1) - 1) < 1e-3
    assert q1[0] > 0 > q1[1]
    assert all(a[("q2", k)]["advantage"] == 0 and a[("q2", k)]["zero_std"] for k in range(4))
    # a reward that is not scorable gets 0 and stays out of its group's mean and std
    assert a[("q3", 1)]["advantage"] == 0 and a[("q3", 1)]["group_mean"] == pytest.approx(1.0)
    q3 = [a[("q3", k)]["advantage"] for k in (0, 2, 3)]
    assert abs(statistics.fmean(q3)) < 1e-9 and abs(statistics.pstdev(q3) - 1) < 1e-3


def test_batch_and_none_scales(store):
    rewards = [r for rs in REWARDS.values() for r in rs if r is not None]
    batch_std = statistics.pstdev(rewards)
    b, n = _adv(store, "batch"), _adv(store, "none")
    assert b[("q1", 0)]["advantage"] == pytest.approx(0.5 / (batch_std + 1e-4), rel=1e-6)
    assert n[("q1", 0)]["advantage"] == pytest.approx(0.5) and n[("q3", 2)]["advantage"] == pytest.approx(0.5)
    assert b[("q2", 0)]["advantage"] == 0 and n[("q2", 0)]["advantage"] == 0
