"""The Trainer and its recipe on the tiny policy: the LR sequence and start point of each method (read back from
the train_log rows and checkpoints it writes), rank slicing, and the loss modules."""

import math
from pathlib import Path

import pytest

from mstar_data.prm.format import PRMExample
from mstar_data.prompts import build_prompt
from mstar_data.train import checkpoint as ckpt
from mstar_data.models.batches import PromptCache, SFTExample, sft_batch
from mstar_data.train.losses import prm_step, sft
from mstar_data.train.ranks import rank_slice
from mstar_data.train.schedule import HORIZON_KEY, lr_lambda
from mstar_data.train.trainer import TrainConfig, Trainer, train_iteration

LR, FLOOR = 1e-2, 0.1


class LogStore:
    """What the trainer needs of a store: somewhere to append train_log rows."""

    def __init__(self):
        self.rows: list[dict] = []

    def append(self, table, rows):
        assert table == "train_log"
        self.rows += rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from mstar_data.models.tiny import build_tiny_policy
    from mstar_data.tasks.shapes import make_example

    base = tmp_path_factory.mktemp("tiny") / "base"
    build_tiny_policy(base)
    shapes = [make_example(3, i) for i in range(8)]
    examples = [SFTExample(build_prompt(e.question), e.image_png, e.cot.split("\n\n")[0]) for e in shapes]
    return base, examples


def _cfg(method, **kw):
    return TrainConfig(method=method, lr=LR, min_lr_ratio=FLOOR, warmup_steps=2, batch_size=2, save_every=100, **kw)


def _train_two(tmp_path, base, examples, method, monkeypatch, sizes=(8, 6), iterations=3):
    """Two iterations of `method`, the second on a training set of a different size. Returns the log rows by
    iteration, what each setup started from, and the iteration checkpoints."""
    store, starts, real_setup = LogStore(), [], Trainer.setup

    def spy(self, source, cfg, **kw):
        meta = real_setup(self, source, cfg, **kw)
        steps = [s["step"].item() for s in self.optimizer.state.values()]
        starts.append({"source": Path(source), "state_from": kw.get("state_from"), "opt_steps": steps})
        return meta

    monkeypatch.setattr(Trainer, "setup", spy)
    policy, outs = str(base), []
    for it, n in enumerate(sizes, start=1):
        r = train_iteration(store, examples[:n], run="r", iteration=it, policy_in=policy, base_policy=str(base),
                            cfg=_cfg(method), checkpoints=tmp_path, iterations=iterations)
        policy = r.checkpoint
        outs.append(Path(r.checkpoint))
    by_it = {it: sorted((r for r in store.rows if r["iteration"] == it), key=lambda r: r["local_step"])
             for it in (1, 2)}
    return by_it, starts, outs


def _opt_step_count(checkpoint: Path) -> int:
    import torch

    state = torch.load(checkpoint / "trainer" / "optimizer.pt", weights_only=True)["state"]
    return int(next(iter(state.values()))["step"])


def test_continuous_is_one_schedule_over_the_run_fixed_by_iteration_one(tiny, tmp_path, monkeypatch):
    base, examples = tiny
    log, starts, outs = _train_two(tmp_path, base, examples, "continuous", monkeypatch)
    # iteration 1 has 8 examples / batch 2 = 4 steps; the run has 3 iterations: a horizon of 12 steps
    f = lr_lambda(_cfg("continuous"), 12)
    lrs = [r["lr"] for r in log[1] + log[2]]
    assert [r["step"] for r in log[1] + log[2]] == list(range(1, 8))   # 4 + 3 steps, counted on
    assert lrs == pytest.approx([LR * f(s) for s in range(7)], rel=1e-9)
    assert lrs[0] < lrs[1] == pytest.approx(LR)                                  # warm-up once ...
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))                        # ... then down, across iterations
    assert lrs[-1] > 0.5 * LR                                          # far from the floor: 5 steps of 12 to go
    assert [ckpt.read_meta(o)[HORIZON_KEY] for o in outs] == [12, 12]
    # iteration 2 starts from iteration 1's weights and optimizer state
    assert starts[1]["source"] == starts[1]["state_from"] == outs[0] and starts[1]["opt_steps"][0] == 4
    assert starts[0]["opt_steps"] == [] and _opt_step_count(outs[1]) == 7


@pytest.mark.parametrize("method", ["iterative-rft", "rest-em"])
def test_fresh_methods_warm_up_and_decay_within_each_iteration(tiny, tmp_path, monkeypatch, method):
    base, examples = tiny
    log, starts, outs = _train_two(tmp_path, base, examples, method, monkeypatch)
    for it, n_steps in ((1, 4), (2, 3)):
        f = lr_lambda(_cfg(method), n_steps)
        lrs = [r["lr"] for r in log[it]]
        assert lrs == pytest.approx([LR * f(s) for s in range(n_steps)], rel=1e-9)
        assert lrs[0] == pytest.approx(LR / 2) and lrs[1] == pytest.approx(LR)   # warm-up, every iteration
        assert lrs[-1] == pytest.approx(FLOOR * LR)                             # the floor on its last step
        assert ckpt.read_meta(outs[it - 1])[HORIZON_KEY] == n_steps
    assert all(s["state_from"] is None and s["opt_steps"] == [] for s in starts)  # a fresh optimizer each time
    assert _opt_step_count(outs[1]) == 3
    assert starts[1]["source"] == (base if method == "rest-em" else outs[0])


def test_explicit_total_steps_wins(tiny, tmp_path):
    base, examples = tiny
    store = LogStore()
    r = train_iteration(store, examples, run="r", iteration=1, policy_in=str(base), cfg=_cfg("iterative-rft",
                        total_steps=40), checkpoints=tmp_path)
    f = lr_lambda(_cfg("iterative-rft"), 40)
    assert [x["lr"] for x in store.rows] == pytest.approx([LR * f(s) for s in range(4)], rel=1e-9)
    assert ckpt.read_meta(Path(r.checkpoint))[HORIZON_KEY] == 40


class Crashing:
    """The SFT loss that dies on its n-th call, as a kill mid-iteration would."""

    name = "sft"

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, *args):
        self.calls += 1
        if self.calls == self.n:
            raise RuntimeError("killed")
        return sft(*args)


def test_a_resumed_continuous_schedule_keeps_its_recorded_horizon(tiny, tmp_path):
    base, examples = tiny
    cfg = _cfg("continuous").model_copy(update={"save_every": 2})
    straight, cut = LogStore(), LogStore()
    train_iteration(straight, examples, run="r", iteration=1, policy_in=str(base), cfg=cfg,
                    checkpoints=tmp_path / "a", iterations=3)
    with pytest.raises(RuntimeError, match="killed"):
        train_iteration(cut, examples, run="r", iteration=1, policy_in=str(base), cfg=cfg,
                        checkpoints=tmp_path / "b", loss=Crashing(3), iterations=3)
    # resumed with another iteration count: the horizon comes from the step checkpoint, not from `iterations`
    r = train_iteration(cut, examples, run="r", iteration=1, policy_in=str(base), cfg=cfg,
                        checkpoints=tmp_path / "b", iterations=50)
    assert r.resumed_from == 2
    assert [(x["step"], x["lr"]) for x in cut.rows] == [(x["step"], x["lr"]) for x in straight.rows]
    assert ckpt.read_meta(Path(r.checkpoint))[HORIZON_KEY] == 12


def test_rank_slices_are_disjoint_and_cover_the_batch():
    batch = list(range(7))
    assert rank_slice(batch, 0, 1) == batch
    slices = [rank_slice(batch, r, 2) for r in range(2)]
    assert sorted(slices[0] + slices[1]) == batch and not set(slices[0]) & set(slices[1])
    assert [len(s) for s in slices] == [4, 3]
    assert [rank_slice(list(range(8)), r, 2) for r in range(2)] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    with pytest.raises(ValueError):
        rank_slice(batch, 2, 2)


def test_trainer_step_with_a_loaded_policy(tiny):
    """What the bootstrap does: a Policy in memory, warm-up then a constant LR, one micro-batch a step."""
    from mstar_data.models.loading import load_policy

    base, examples = tiny
    policy = load_policy(base, device="cpu", dtype="fp32")
    trainer = Trainer(sft)
    trainer.setup(policy, TrainConfig(lr=LR, warmup_steps=2, batch_size=2), horizon=None)
    before = next(policy.model.parameters()).detach().clone()
    steps = [trainer.step([examples[:2]]) for _ in range(4)]
    assert [s["lr"] for s in steps] == pytest.approx([LR / 2, LR, LR, LR])
    assert [s["step"] for s in steps] == [1, 2, 3, 4] and all(math.isfinite(s["loss"]) for s in steps)
    assert not next(policy.model.parameters()).detach().equal(before)
    trainer.close()
    assert trainer.model is None and trainer.optimizer is None


def test_sft_loss_is_finite_and_covers_only_the_completion(tiny):
    from mstar_data.models.loading import load_policy

    base, examples = tiny
    policy = load_policy(base, device="cpu", dtype="fp32")
    batch = examples[:3]
    loss, n_tokens = sft(policy, batch, PromptCache())
    tok = policy.tokenizer
    completion = sum(len(tok(e.completion + tok.eos_token, add_special_tokens=False)["input_ids"]) for e in batch)
    assert math.isfinite(loss.item()) and loss.item() > 0
    assert n_tokens == completion
    labels = sft_batch(policy, batch)["labels"]
    n_prompt = labels.shape[1] - max(len(tok(e.completion + tok.eos_token, add_special_tokens=False)["input_ids"])
                                     for e in batch)
    assert (labels[:, :n_prompt] == -100).all()


def test_prm_step_loss_is_the_two_way_step_cross_entropy(tiny):
    import torch

    from mstar_data.models.loading import load_policy
    from mstar_data.prm.format import step_logits

    base, examples = tiny
    policy = load_policy(base, device="cpu", dtype="fp32")
    prm = [PRMExample(e.prompt, e.image, ["red: 2.", "blue: 1.", "2 + 1 = 3."], [1.0, 0.5, 0.0]) for e in examples[:2]]
    loss, n_steps = prm_step(policy, prm, PromptCache())
    with torch.no_grad():
        logits = step_logits(policy, prm)
    y = torch.tensor([1.0, 0.5, 0.0] * 2)
    # P('+') of the two-way softmax is the sigmoid of the logit difference
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0] - logits[:, 1], y)
    assert n_steps == 6 and loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert prm_step.name == "prm_step" and sft.name == "sft"


def test_finishing_removes_only_our_step_checkpoints(tmp_path):
    """The .steps folder loses the checkpoints the trainer wrote; a user's file there is left alone."""
    import json

    from mstar_data.train import checkpoint as ckpt

    final = tmp_path / "it-0001"
    steps = ckpt.steps_dir(final)
    (steps / "step-000002").mkdir(parents=True)
    (steps / "step-000002" / ckpt.META).write_text(json.dumps({"local_step": 2}))
    (steps / "step-000004" / ".mstar-partial").mkdir(parents=True)  # a crash mid-save
    (steps / "notes.txt").write_text("mine")
    ckpt.remove_step_checkpoints(final)
    assert sorted(p.name for p in steps.iterdir()) == ["notes.txt"]
    (steps / "notes.txt").unlink()
    ckpt.remove_step_checkpoints(final)
    assert not steps.exists()
