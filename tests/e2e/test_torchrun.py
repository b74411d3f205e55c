"""Data-parallel training under torchrun (2 processes, gloo on CPU) equals 1 process at the same global batch:
the same per-step losses, gradient norms and final weights for the SFT and the PRM step loss (normalised by
the global micro-batch's token or step count) and for GRPO (by the global batch's), replicated (DDP-style) and
sharded (FSDP2, `fully_shard`), whose checkpoints hold the same weights and optimizer state as one process's.
Only rank 0 writes rows and checkpoints, and a 2-process training whose worker is killed resumes from its step
checkpoint.

This file is also the script that torchrun launches: `python tests/e2e/test_torchrun.py BASE OUT [...]`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STEPS, SAVE_EVERY, KILL_AT_CALL = 5, 2, 7   # grad_accum 2: loss call 7 is step 4, after the step-2 checkpoint
LOSSES = ("sft", "prm_step", "grpo")


class RankStore:
    """What the trainer needs of a store, recording which rank appended: rows go to `<table>-rank<r>.jsonl`."""

    def __init__(self, folder: Path, rank: int):
        self.folder, self.rank = folder, rank

    def append(self, table, rows):
        with open(self.folder / f"{table}-rank{self.rank}.jsonl", "a") as f:
            f.writelines(json.dumps(r, default=str) + "\n" for r in rows)


class KilledAt:
    """A loss whose rank-1 process is SIGKILLed on its n-th call, as a kill -9 of one worker would do."""

    def __init__(self, loss, n: int):
        self.loss, self.n, self.calls, self.name = loss, n, 0, loss.name

    def __call__(self, *args):
        import signal

        from mstar_data.train.ranks import rank_and_world

        self.calls += 1
        if self.calls == self.n and rank_and_world()[0] == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.loss(*args)


def _examples() -> dict[str, list]:
    """12 examples of uneven size (1 to 5 completion steps), so that ranks and micro-batches hold uneven
    token counts and a mean of per-rank means would differ from the global mean."""
    from mstar_data.models.batches import SFTExample
    from mstar_data.prm.format import PRMExample
    from mstar_data.prompts import build_prompt
    from mstar_data.tasks.shapes import make_example

    sft, prm = [], []
    for i in range(12):
        e = make_example(3, i)
        steps = e.cot.split("\n\n")[:1 + i % 5]
        sft.append(SFTExample(build_prompt(e.question), e.image_png, "\n\n".join(steps)))
        prm.append(PRMExample(build_prompt(e.question), e.image_png, steps, [(i + j) % 3 / 2 for j in range(len(steps))]))
    return {"sft": sft, "prm_step": prm}


def train_losses(base: Path, out: Path, only: str | None = None, kill_at: int | None = None,
                 fsdp: bool = False) -> None:
    """What every rank runs (and the 1-process reference): 5 steps of each loss from `base` into out/<loss>.
    Rank 0 also records each step's gradient norm (the loss and the AdamW weights hardly see a gradient
    that is right but for a constant factor)."""
    from mstar_data.train.losses import prm_step, sft
    from mstar_data.train.ranks import join_from_env
    from mstar_data.train.trainer import TrainConfig, Trainer, train_iteration

    rank, _ = join_from_env()
    store = RankStore(out, rank)
    step = Trainer.step

    def recorded(self, micro_batches):
        s = step(self, micro_batches)
        if self.is_main:
            store.append("grad_norm", [{"run_id": self.loss.name, "step": s["step"], "grad_norm": s["grad_norm"]}])
        return s

    Trainer.step = recorded  # restored below: the 1-process reference runs inside pytest
    cfg = TrainConfig(lr=1e-4, warmup_steps=1, batch_size=3, grad_accum=2, epochs=3, max_steps=STEPS,
                      save_every=SAVE_EVERY)
    examples = _examples()
    try:
        for loss in (sft, prm_step):
            if only in (None, loss.name):
                train_iteration(store, examples[loss.name], run=loss.name, iteration=1, policy_in=str(base),
                                cfg=cfg, out=out / loss.name, loss=KilledAt(loss, kill_at) if kill_at else loss,
                                fsdp=fsdp)
        if only in (None, "grpo"):
            _train_grpo(base, out, store, cfg, fsdp)
    finally:
        Trainer.step = step


def _train_grpo(base: Path, out: Path, store, cfg, fsdp: bool = False) -> None:
    """GRPO as loop/grpo.py runs it: the loss is told the whole global batch, then the Trainer steps on it."""
    import random

    from mstar_data.tasks.shapes import make_example
    from mstar_data.train.losses import GRPOExample, GRPOLoss
    from mstar_data.train.trainer import Trainer

    loss = GRPOLoss(max_new_tokens=16)
    trainer = Trainer(loss, fsdp=fsdp)
    trainer.setup(base, cfg, horizon=None, seed=0)
    rng, image = random.Random(0), make_example(0, 0).image_png
    examples = [GRPOExample(f"How many shapes? ({i // 4})", image, "", advantage=rng.uniform(-1, 1),
                            completion_ids=[rng.randrange(10, 300) for _ in range(rng.randrange(3, 9))])
                for i in range(6)]
    for _ in range(STEPS):
        loss.begin_step(examples)
        s = trainer.step([examples[:3], examples[3:]])
        trainer.append_log(store, [{"run_id": "grpo", **{k: s[k] for k in ("step", "loss", "n_tokens")}}])
    trainer.save(out / "grpo", {})


def _torchrun(base: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MSTAR_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           __file__, str(base), str(out), *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _log(out: Path) -> dict[str, list[tuple]]:
    """(step, loss, n_tokens, grad_norm) of rank 0's rows, by loss (the run id). A step recomputed after the
    kill has its gradient norm twice: the last one counts."""
    def rows(table):
        return [json.loads(x) for x in (out / f"{table}-rank0.jsonl").read_text().splitlines()]

    norms = {(r["run_id"], r["step"]): r["grad_norm"] for r in rows("grad_norm")}
    return {name: sorted((r["step"], r["loss"], r["n_tokens"], norms[name, r["step"]]) for r in rows("train_log")
                         if r["run_id"] == name) for name in LOSSES}


def _weights(checkpoint: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(checkpoint / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["replicated", "fsdp"])
def test_two_processes_train_as_one_and_resume_after_a_kill(tmp_path, monkeypatch, sharding):
    from mstar_data.models.tiny import build_tiny_policy
    from mstar_data.train import checkpoint as ckpt

    base, one, two = tmp_path / "base", tmp_path / "one", tmp_path / "two"
    build_tiny_policy(base)
    one.mkdir()
    two.mkdir()
    flags = ["--fsdp"] if sharding == "fsdp" else []
    # 2 processes: SFT killed at step 4 (a worker SIGKILLed; torchrun stops the other), then rerun to the end
    r = _torchrun(base, two, "--only", "sft", "--kill-at", str(KILL_AT_CALL), *flags)
    assert r.returncode != 0, r.stderr[-3000:]
    assert ckpt.latest_step(two / "sft") == two / "sft.steps" / "step-000002"
    assert not ckpt.is_complete(two / "sft")
    r = _torchrun(base, two, *flags)
    assert r.returncode == 0, r.stderr[-3000:]
    monkeypatch.setenv("MSTAR_THREADS", "1")  # one thread, as each rank has
    train_losses(base, one)  # 1 process, the same global batches

    # rank 1 wrote no rows and no files; the step checkpoints are gone
    assert sorted(p.name for p in two.iterdir()) == sorted([*LOSSES, "grad_norm-rank0.jsonl", "train_log-rank0.jsonl"])
    a, b = _log(one), _log(two)
    for name in LOSSES:
        assert [x[0] for x in b[name]] == list(range(1, STEPS + 1))  # each step once, across the kill
        assert [x[2] for x in a[name]] == [x[2] for x in b[name]]    # the same tokens (steps) per step
        assert max(abs(x[1] - y[1]) for x, y in zip(a[name], b[name])) < 1e-5
        assert [x[3] for x in a[name]] == pytest.approx([x[3] for x in b[name]], rel=1e-5)
        w1, w2 = _weights(one / name), _weights(two / name)
        assert w1.keys() == w2.keys()
        assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-5
        assert ckpt.is_complete(two / name)
        # the checkpoint does not depend on sharding: the same config and the optimizer state of one process
        assert json.loads((one / name / "config.json").read_text()) == json.loads((two / name / "config.json").read_text())
        o1, o2 = _optimizer(one / name), _optimizer(two / name)
        assert o1["param_groups"] == o2["param_groups"]
        assert o1["state"].keys() == o2["state"].keys()
        for i, st in o1["state"].items():
            assert st.keys() == o2["state"][i].keys()
            assert all((st[k] - o2["state"][i][k]).abs().max().item() < 1e-5 for k in st)


def _optimizer(checkpoint: Path) -> dict:
    import torch

    return torch.load(checkpoint / "trainer" / "optimizer.pt", weights_only=True)


def test_mstar_train_nproc_relaunches_under_torchrun_and_rank_0_alone_writes(tmp_path):
    """`mstar train --nproc 2` on a real store: one train_log row per step, one summary, a complete checkpoint."""
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.inputs import select_queries
    from mstar_data.keys import rollout_id
    from mstar_data.models.tiny import build_tiny_policy
    from mstar_data.store import Store
    from mstar_data.train import checkpoint as ckpt

    store = tmp_path / "store"
    s = Store(str(store))
    ingest_items(s, synthetic_items(40, 1, "easy", 0.5), source="synthetic", dataset="synthetic", split="train")
    s.append("rollouts", [{"rollout_id": rollout_id("t", 0, "explore", q["query_id"], 0), "run_id": "t",
                           "iteration": 0, "stage": "explore", "query_id": q["query_id"], "sample_idx": 0,
                           "response": q["reference_cot"], "correct": True, "format_ok": True}
                          for q in select_queries(s, split="train", where="reference_cot IS NOT NULL")])
    build_tiny_policy(tmp_path / "policy")
    r = subprocess.run([sys.executable, "-m", "mstar_cli", "train", "--run", "t", "--iteration", "0", "--policy-in",
                        str(tmp_path / "policy"), "--view", "trainset_all_correct", "--batch-size", "3",
                        "--max-steps", "3", "--save-every", "2", "--nproc", "2", "--store", str(store)],
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("train run=t iteration=0") == 1          # rank 0 alone prints the summary
    rows = Store(str(store), create=False).dataset("train_log").to_table().to_pylist()
    assert sorted(x["step"] for x in rows) == [1, 2, 3]             # ... and writes each step's row once
    assert ckpt.is_complete(store / "checkpoints" / "t" / "it-0000")


def test_a_command_that_does_not_join_the_process_group_refuses_to_train_under_torchrun(monkeypatch):
    from mstar_data.errors import MstarError
    from mstar_data.train.trainer import Trainer

    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it, with no process group joined
    with pytest.raises(MstarError, match="does not join its process group"):
        Trainer()


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("base", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--only")
    p.add_argument("--kill-at", type=int)
    p.add_argument("--fsdp", action="store_true")
    a = p.parse_args()
    train_losses(a.base, a.out, a.only, a.kill_at, a.fsdp)
