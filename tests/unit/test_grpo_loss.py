"""The grpo loss through the Trainer: batching does not change the step, clipping and KL behave, and
freeze_vision really freezes."""

import random

import pytest
import torch

from mstar_data.models.loading import load_policy, vision_parameters
from mstar_data.models.tiny import build_tiny_policy
from mstar_data.tasks.shapes import make_example
from mstar_data.models.scoring import token_logprobs
from mstar_data.train.losses import GRPOExample, GRPOLoss
from mstar_data.train.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("grpo") / "p"
    build_tiny_policy(d)
    return d


def _examples(policy_dir, n_queries=2, group=4, seed=0):
    tok = load_policy(policy_dir).tokenizer
    rng = random.Random(seed)
    out = []
    for q in range(n_queries):
        rewards = [rng.random() for _ in range(group)]
        mean = sum(rewards) / group
        std = (sum((r - mean) ** 2 for r in rewards) / group) ** 0.5
        for r in rewards:
            ids = [rng.randrange(10, 300) for _ in range(rng.randrange(3, 9))] + [tok.eos_token_id]
            out.append(GRPOExample(f"How many shapes? ({q})", make_example(0, 0).image_png, "", completion_ids=ids,
                                   advantage=(r - mean) / (std + 1e-4)))
    return out


def _step(policy_dir, examples, micro, *, sgd=False, **loss_kw):
    loss = GRPOLoss(**loss_kw)
    t = Trainer(loss)
    t.setup(policy_dir, TrainConfig(lr=1e-2, warmup_steps=0), horizon=None, seed=0)
    if sgd:  # the update is then the (clipped) gradient itself: Adam's first step is ~sign(g) and would
        # amplify float-summation noise in near-zero gradients
        t.optimizer = torch.optim.SGD(t.model.parameters(), lr=1.0)
    loss.begin_step(examples)
    s = t.step([examples[i:i + micro] for i in range(0, len(examples), micro)])
    return t, s, loss


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean", "dr_grpo"])
def test_the_step_does_not_depend_on_the_micro_batch_size(policy_dir, aggregation):
    ex = _examples(policy_dir)
    results = [_step(policy_dir, ex, micro, sgd=True, aggregation=aggregation, max_new_tokens=16)
               for micro in (1, 2, 4)]
    params = [dict(t.model.named_parameters()) for t, _, _ in results]
    for other, (_, s, _) in zip(params[1:], results[1:]):
        assert s["loss"] == pytest.approx(results[0][1]["loss"], abs=1e-6)
        for name, p in params[0].items():
            assert torch.allclose(p, other[name], rtol=1e-4, atol=1e-7), name
    # and the step moved the weights
    fresh = dict(load_policy(policy_dir).model.named_parameters())
    assert any(not torch.equal(fresh[n], p) for n, p in params[0].items())


def test_ratios_outside_the_clip_range_give_no_gradient(policy_dir):
    ex = _examples(policy_dir, n_queries=1)
    pol = load_policy(policy_dir)
    with torch.no_grad():
        lp, mask, _ = token_logprobs(pol, ex)
    for i, e in enumerate(ex):  # the sampling policy was far less likely: ratio e^2 on every token
        e.old_logprobs = (lp[i][mask[i]] - 2.0).tolist()
        e.advantage = 1.0
    t, s, loss = _step(policy_dir, ex, 4, epsilon_low=0.2, epsilon_high=0.28)
    assert loss.step_stats()["clip_frac"] == pytest.approx(1.0)
    fresh = dict(load_policy(policy_dir).model.named_parameters())
    assert all(torch.equal(fresh[n], p) for n, p in t.model.named_parameters())  # clipped: nothing to learn


def test_kl_to_an_identical_reference_is_zero(policy_dir):
    ex = _examples(policy_dir, n_queries=1)
    pol = load_policy(policy_dir)
    with torch.no_grad():
        lp, mask, _ = token_logprobs(pol, ex)
    for i, e in enumerate(ex):
        e.ref_logprobs = lp[i][mask[i]].tolist()
    _, _, loss = _step(policy_dir, ex, 4, beta=0.04)
    stats = loss.step_stats()
    assert stats["kl"] == pytest.approx(0.0, abs=1e-6) and stats["entropy"] > 0


def test_freeze_vision_keeps_the_vision_tower_bit_identical(policy_dir):
    ex = _examples(policy_dir)
    loss = GRPOLoss()
    t = Trainer(loss)
    t.setup(policy_dir, TrainConfig(lr=1e-2, warmup_steps=0), horizon=None, seed=0, freeze_vision=True)
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    vision = {id(p) for p in vision_parameters(t.model)}
    assert vision
    for _ in range(3):
        loss.begin_step(ex)
        t.step([ex[:4], ex[4:]])
    for n, p in t.model.named_parameters():
        if id(p) in vision:
            assert torch.equal(before[n], p), n
    changed = [n for n, p in t.model.named_parameters() if id(p) not in vision and not torch.equal(before[n], p)]
    assert len(changed) > 10
