"""Damaged checkpoints: a weights or trainer-state file cut short, a metadata file lost or garbled.

Loading such a folder as a policy fails with one line that names the folder and the file; resuming a
training whose newest step checkpoint is damaged skips it (with a warning, setting it aside) and goes on from
the previous complete one, and the resumed training has the same steps, LRs and losses as one never stopped.
"""

import logging
import shutil
from pathlib import Path

import pytest

from mstar_data.errors import MstarError
from mstar_data.train import checkpoint as ckpt
from mstar_data.train.trainer import TrainConfig, Trainer, train_iteration

STEPS, SAVE_EVERY, CRASH_AFTER = 8, 2, 6   # step checkpoints 2, 4, 6 exist when step 7 crashes


class LogStore:
    """What the trainer needs of a store: somewhere to append train_log rows."""

    def __init__(self):
        self.rows: list[dict] = []

    def append(self, table, rows):
        assert table == "train_log"
        self.rows += rows


def _cfg():
    return TrainConfig(method="iterative-rft", lr=1e-2, min_lr_ratio=0.1, warmup_steps=2, batch_size=2, epochs=2,
                       save_every=SAVE_EVERY)


def _log(store):
    return sorted((r["step"], r["local_step"], r["lr"], r["loss"]) for r in store.rows)


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny policy and training set; the log of a training that never stopped; and the checkpoints of the
    same training crashed in step 7 (step checkpoints 2, 4 and 6 on disk, no final folder)."""
    from mstar_data.models.batches import SFTExample
    from mstar_data.models.tiny import build_tiny_policy
    from mstar_data.prompts import build_prompt
    from mstar_data.tasks.shapes import make_example

    root = tmp_path_factory.mktemp("ckfaults")
    build_tiny_policy(root / "base")
    shapes = [make_example(3, i) for i in range(8)]
    examples = [SFTExample(build_prompt(e.question), e.image_png, e.cot.split("\n\n")[0]) for e in shapes]

    straight = LogStore()
    r = train_iteration(straight, examples, run="r", iteration=1, policy_in=str(root / "base"), cfg=_cfg(),
                        checkpoints=root / "straight")
    assert r.steps == STEPS

    crashed, real_step = LogStore(), Trainer.step

    def step(self, micro):
        if self.global_step == CRASH_AFTER:
            raise Crash("killed in step 7")
        return real_step(self, micro)

    mp = pytest.MonkeyPatch()
    mp.setattr(Trainer, "step", step)
    with pytest.raises(Crash):
        train_iteration(crashed, examples, run="r", iteration=1, policy_in=str(root / "base"), cfg=_cfg(),
                        checkpoints=root / "crashed")
    mp.undo()
    final = ckpt.iteration_dir(root / "crashed", "r", 1)
    assert sorted(p.name for p in ckpt.steps_dir(final).iterdir()) == ["step-000002", "step-000004", "step-000006"]
    assert not final.exists()
    return root, examples, _log(straight), _log(crashed)


def _truncate(f: Path) -> None:
    data = f.read_bytes()
    f.write_bytes(data[:len(data) // 2])


DAMAGE = {
    "truncated-weights": (lambda p: _truncate(p / "model.safetensors"), "model.safetensors"),
    "missing-meta": (lambda p: (p / ckpt.META).unlink(), ckpt.META),
    "corrupt-meta": (lambda p: (p / ckpt.META).write_text('{"local_step": 6, "glob'), ckpt.META),
    "truncated-optimizer": (lambda p: _truncate(p / "trainer" / "optimizer.pt"), "trainer/optimizer.pt"),
    # a crash inside publish_folder: the files moved into place, the metadata file still in the staging folder
    "crash-while-publishing": (lambda p: _unpublish_meta(p), ckpt.META),
}


def _unpublish_meta(p: Path) -> None:
    from mstar_data.outputs import STAGING

    (p / STAGING).mkdir()
    (p / ckpt.META).rename(p / STAGING / ckpt.META)


@pytest.mark.parametrize("damage", DAMAGE)
def test_resume_skips_a_damaged_latest_step_checkpoint(trained, tmp_path, damage, caplog):
    root, examples, straight, crashed = trained
    shutil.copytree(root / "crashed", tmp_path / "ck")
    final = ckpt.iteration_dir(tmp_path / "ck", "r", 1)
    latest = ckpt.steps_dir(final) / "step-000006"
    hurt, file = DAMAGE[damage]
    hurt(latest)

    resumed = LogStore()
    with caplog.at_level(logging.WARNING, logger="mstar.checkpoint"):
        r = train_iteration(resumed, examples, run="r", iteration=1, policy_in=str(root / "base"), cfg=_cfg(),
                            checkpoints=tmp_path / "ck")
    # one warning line naming the damaged folder and file; training went on from step 4
    warnings = [m for m in caplog.messages if "step-000006" in m]
    assert len(warnings) == 1 and "\n" not in warnings[0] and file in warnings[0], caplog.messages
    assert r.resumed_from == 4 and r.global_step == STEPS
    after = _log(resumed)
    assert [x[0] for x in after] == [5, 6, 7, 8]
    # the crashed run logged steps 1-6 before its checkpoints; with the resumed run's rows (steps 6 is
    # logged again: the store's keys keep one), every step has the LR and loss of the run never stopped
    by_step = {x[0]: x for x in crashed} | {x[0]: x for x in after}
    assert sorted(by_step) == list(range(1, STEPS + 1))
    assert [by_step[s][:3] for s in sorted(by_step)] == [x[:3] for x in straight]
    assert all(abs(by_step[x[0]][3] - x[3]) < 1e-5 for x in straight)
    for x in crashed:   # the rows the crashed run kept agree with what the resumed run recomputed
        if x[0] in (5, 6):
            assert abs(x[3] - by_step[x[0]][3]) < 1e-5
    # the damaged checkpoint is kept aside for inspection; the good step checkpoints are cleared as usual
    assert ckpt.is_complete(final)
    assert sorted(p.name for p in ckpt.steps_dir(final).iterdir()) == ["broken-step-000006"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_loading_a_damaged_checkpoint_names_the_folder_and_the_file(trained, tmp_path, damage):
    from mstar_data.models.loading import load_policy

    root, *_ = trained
    step = tmp_path / "step-000006"
    shutil.copytree(ckpt.steps_dir(ckpt.iteration_dir(root / "crashed", "r", 1)) / "step-000006", step)
    hurt, file = DAMAGE[damage]
    hurt(step)
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.check(step, trainer=True)
    msg = str(e.value)
    assert "\n" not in msg and str(step) in msg and file in msg, msg
    if damage != "truncated-optimizer":   # a policy needs no optimizer state: that one still loads as a policy
        with pytest.raises(MstarError) as e:
            load_policy(step, device="cpu")
        msg = str(e.value)
        assert "\n" not in msg and str(step) in msg and file in msg, msg
    else:
        assert load_policy(step, device="cpu").model is not None


def test_a_damaged_model_folder_and_a_missing_shard(trained, tmp_path):
    """A plain model folder (no checkpoint.json) with its weights cut short, and a sharded one missing a
    shard: one line each, naming the folder and the file."""
    import json

    from mstar_data.models.loading import load_policy

    root, *_ = trained
    base = tmp_path / "base"
    shutil.copytree(root / "base", base)
    ckpt.check(base)                 # sound
    _truncate(base / "model.safetensors")
    with pytest.raises(MstarError, match=r"model folder .*base: model\.safetensors is truncated \(\d+ of \d+ bytes\)"):
        load_policy(base, device="cpu")
    (base / "model.safetensors").unlink()
    (base / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(ckpt.CheckpointError, match=r"model-00001-of-00002\.safetensors is missing"):
        ckpt.check(base)
