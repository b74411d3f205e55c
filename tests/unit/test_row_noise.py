"""The hf engine's per-row noise: a counter hash of (seed, position, vocab index), batch-invariant and uniform."""

import math

import pytest
import torch

from mstar_data.sampling.engines.hf import RowSeededSampler, hashed_uniforms, mix64, mix64_int, seed_tensor

SEEDS = [0, 1, 2, 12345, 2**62 + 17, 2**63 - 1, 7 << 32]
M64 = 2**64 - 1


def _uniforms(seeds, pos, vocab):
    return hashed_uniforms(seed_tensor(seeds), pos, vocab)


def _mix64_ref(x: int) -> int:
    """splitmix64's finaliser written the plain way on Python ints (arbitrary precision: no overflow)."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & M64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & M64
    return x ^ (x >> 31)


def test_mix64_on_int64_tensors_equals_the_plain_reference():
    xs = [0, 1, 2, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1] + \
        [int(x) & M64 for x in torch.randint(-2**63, 2**63 - 1, (2000,), generator=torch.Generator().manual_seed(0))]
    signed = torch.tensor([x - 2**64 if x >= 2**63 else x for x in xs], dtype=torch.int64)
    assert [int(v) & M64 for v in mix64(signed).tolist()] == [_mix64_ref(x) for x in xs]
    assert [mix64_int(x) for x in xs] == [_mix64_ref(x) for x in xs]
    assert _mix64_ref(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF  # splitmix64's first output from seed 0


def test_tensor_hash_matches_the_python_int_reference():
    """The wrapping int64 tensor ops give exactly the 64-bit hash computed on Python ints (no overflow or sign
    trouble: any device with int64 arithmetic gives the same noise). Odd vocabularies too."""
    golden = 0x9E3779B97F4A7C15
    for vocab in (300, 301):
        u = _uniforms(SEEDS, 5, vocab)
        half = (vocab + 1) // 2
        p = _mix64_ref((5 * golden + 0x632BE59BD9B4E019) & M64)
        for r, s in enumerate(SEEDS):
            key = _mix64_ref((s & M64) ^ p)
            for v in (0, 1, 2, 131, half - 1, half, half + 1, vocab - 1):
                c = v if v < half else v - half
                h = _mix64_ref((key + c * golden) & M64)
                bits = h >> 41 if v < half else (h >> 9) & (2**23 - 1)
                assert u[r, v].item() == (bits + 0.5) / 2**23


def test_a_rows_noise_depends_only_on_its_seed_and_position():
    batch = _uniforms(SEEDS, 3, 1000)
    for r, s in enumerate(SEEDS):
        assert torch.equal(_uniforms([s], 3, 1000)[0], batch[r])
    assert not torch.equal(_uniforms([1], 3, 1000), _uniforms([1], 4, 1000))
    assert not torch.equal(batch[0], batch[1])
    assert len({tuple(x[:8].tolist()) for x in batch}) == len(SEEDS)


def test_uniforms_are_uniform():
    """1e6 values from 1000 rows x 1000 tokens over consecutive seeds (the hardest case for a weak hash)."""
    u = _uniforms(list(range(1000)), 0, 1000).flatten().double()
    assert u.min() > 0 and u.max() < 1
    n = u.numel()
    assert abs(u.mean().item() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(u.var().item() - 1 / 12) < 1e-3
    s, _ = u.sort()
    ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
    ks = (ecdf - s).abs().max().item()
    assert ks < 1.95 / math.sqrt(n)  # p ~ 0.001
    # Neighbouring positions are uncorrelated, and so are neighbouring tokens and the two halves of one hash.
    u2 = _uniforms(list(range(1000)), 1, 1000).flatten().double()
    assert abs(torch.corrcoef(torch.stack([u, u2]))[0, 1].item()) < 5 / math.sqrt(n)
    x = u.view(1000, 1000)
    for a, b in ((x[:, :-1], x[:, 1:]), (x[:, :500], x[:, 500:])):  # neighbours; the two halves of one hash
        assert abs(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()) < 5 / math.sqrt(n)


def test_sampled_tokens_follow_softmax():
    """Gumbel-max with the hashed noise: token frequencies match softmax(logits / T) (chi-square, 7 dof)."""
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, 0.3])
    for temp in (1.0, 0.7):
        rows, steps = 2000, 10
        sampler = RowSeededSampler(list(range(10_000, 10_000 + rows)), [temp] * rows)
        counts = torch.zeros(8)
        for _ in range(steps):
            counts += torch.bincount(sampler(None, logits.expand(rows, 8).clone()).argmax(-1), minlength=8)
        expected = torch.softmax(logits / temp, -1) * rows * steps
        chi2 = (((counts - expected) ** 2) / expected).sum().item()
        assert chi2 < 29.9, (temp, chi2, counts)  # p = 1e-4 at 7 dof
        lp = torch.tensor(sampler.logprobs)
        assert lp.shape == (rows, steps) and torch.all(lp <= 0)


def test_greedy_rows_take_the_argmax_and_log_probs_come_back_once():
    logits = torch.tensor([[0.0, 3.0, 1.0], [0.0, 3.0, 1.0]])
    sampler = RowSeededSampler([5, 6], [0.0, 1.0])
    out = sampler(None, logits.clone())
    assert out[0].tolist() == logits[0].tolist() and out.argmax(-1)[0].item() == 1
    sampler(None, logits.clone())
    lp = sampler.logprobs
    assert len(lp) == 2 and len(lp[0]) == 2 and lp[0][0] == pytest.approx(torch.log_softmax(logits[0], -1)[1].item())
