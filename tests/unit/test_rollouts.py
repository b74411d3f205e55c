"""The rollout path: plan -> requests -> completions -> rows, run by the local executor."""

import pytest

from mstar_data.exec.local import LocalExecutor
from mstar_data.ingest.synthetic import synthetic_items
from mstar_data.ingest.writer import ingest_items
from mstar_data.sampling.engine import Completion
from mstar_data.sampling.generate import GenerateConfig, plan_generate, run_generate
from mstar_data.sampling.rollouts import Planned, RolloutContext, row
from mstar_data.store import Store


class EchoEngine:
    """Answers '7' for every request and keeps what it was asked."""

    policy_tag = "echo"

    def __init__(self, fail_after: int | None = None):
        self.seen, self.fail_after = [], fail_after

    def generate(self, requests):
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise KeyboardInterrupt
        self.seen += requests
        return [Completion("# Answer\n\n7", 3, "stop", [-0.1, -0.2, -0.3], [5, 6, 2]) for _ in requests]

    def release(self):
        pass


@pytest.fixture
def store(store_uri):
    s = Store(store_uri)
    ingest_items(s, synthetic_items(30, 2, "easy", 0.0), source="synthetic", dataset="synthetic", split="train")
    return s


def test_row_judges_once_and_keeps_tokens():
    q = {"query_id": "q", "answer": "7", "answer_type": "integer", "choices": None, "precision": None, "unit": None}
    ctx = RolloutContext("r", 1, "mc", 0.7, 32)
    out = row(Planned("id", q, 2, 99, prefix="red: 3.\n\n", parent_rollout_id="p", prefix_steps=1), ctx,
              Completion("# Answer\n\n7", 3, "stop", [-0.5, -0.25, -1.0], [4, 5, 2]), "pol")
    assert out["response"] == "red: 3.\n\n# Answer\n\n7" and out["steps"] == ["red: 3.", "# Answer\n\n7"]
    assert (out["correct"], out["pred_answer"], out["seed"], out["sample_idx"]) == (True, "7", 99, 2)
    assert out["token_ids"] == [4, 5, 2] and out["token_logprobs"] == [-0.5, -0.25, -1.0]
    assert (out["parent_rollout_id"], out["prefix_steps"], out["policy"]) == ("p", 1, "pol")


def test_shards_partition_the_plan_and_together_write_the_whole(store):
    cfg = GenerateConfig(policy="x", split=None, n=2, run="r", batch_size=4)
    plan = plan_generate(store, cfg)
    assert plan.requested == 60 and plan.skipped == 0
    shards = [plan.shard(i, 3) for i in range(3)]
    ids = [p.rollout_id for s in shards for p in s.todo]
    assert sorted(ids) == sorted(p.rollout_id for p in plan.todo) and len(set(ids)) == 60
    ex = LocalExecutor(store, batch_size=4)
    assert ex.sample(shards[1], EchoEngine(), task="t").written == 20
    assert ex.sample(shards[1], EchoEngine(), task="t").written == 0  # a retried shard adds nothing
    again = plan_generate(store, cfg)
    assert again.skipped == 20 and len(again.todo) == 40
    stored = store.dataset("rollouts").to_table(columns=["token_ids", "correct"]).to_pylist()
    assert all(r["token_ids"] == [5, 6, 2] for r in stored)


def test_an_interrupt_keeps_what_was_finished(store):
    cfg = GenerateConfig(policy="x", split=None, n=2, run="r", batch_size=4, flush_rows=1000)
    engine = EchoEngine(fail_after=12)  # three batches, then Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        run_generate(store, cfg, engine=engine)
    assert store.count("rollouts") == 12  # flushed on the way out, though the buffer was not full
    rest = EchoEngine()
    r = run_generate(store, cfg, engine=rest)
    assert (r.skipped, r.written, len(rest.seen)) == (12, 48, 48)
    progress = []
    run_generate(store, cfg.model_copy(update={"run": "s"}), engine=EchoEngine(),
                 progress=lambda *a: progress.append(a))
    assert progress[0][1:3] == (0, 60) and progress[-1][1:3] == (60, 60)


def test_the_benchmark_variant_carries_the_datasets_own_hint():
    from mstar_data.sampling.rollouts import request

    q = {"query_id": "q", "question": "What is x?", "choices": None, "answer": "2.50", "answer_type": "float",
         "precision": 2,  # MathVista's `query`: its whole prompt, hint and question
         "hint": "Hint: answer with a floating-point number with two decimal places.\nQuestion: What is x?"}
    req = request(Planned("id", q, 0, 1), RolloutContext("r", 0, "eval", 0.0, 16, "benchmark"), None)
    assert "two decimal places" in req.prompt and "What is x?" in req.prompt
    plain = request(Planned("id", q, 0, 1), RolloutContext("r", 0, "eval", 0.0, 16, "cot"), None)
    assert "two decimal places" not in plain.prompt
