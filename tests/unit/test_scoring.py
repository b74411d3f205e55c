import torch

from mstar_data.models.scoring import completion_logprobs
from mstar_data.models.batches import SFTExample, sft_batch
from mstar_data.sampling.engine import SampleRequest
from mstar_data.sampling.engines.hf import HFEngine
from tests.datasets import image_bytes


def test_teacher_forced_logprobs_match_what_the_sampler_recorded(tmp_path):
    from mstar_data.models.tiny import build_tiny_policy

    build_tiny_policy(tmp_path / "p")
    sampler = HFEngine(str(tmp_path / "p"), device="cpu")
    reqs = [SampleRequest(f"r{i}", "How many red shapes?", image_bytes(i, (64, 64)), (0.7, 1.0, 1.3, 1.0)[i],
                          11 + i, 10) for i in range(4)]
    outs = sampler.generate(reqs)
    for temp in (0.7, 1.0, 1.3):
        idx = [i for i, r in enumerate(reqs) if r.temperature == temp]
        exs = [SFTExample(reqs[i].prompt, reqs[i].image, outs[i].text, outs[i].token_ids) for i in idx]
        lps = completion_logprobs(sampler.policy, exs, temperature=temp)
        for i, lp in zip(idx, lps):
            assert len(lp) == outs[i].n_tokens
            assert torch.allclose(lp, torch.tensor(outs[i].token_logprobs), atol=1e-4)


def test_logprobs_agree_with_the_masked_sft_loss(tmp_path):
    from mstar_data.models.tiny import build_tiny_policy

    build_tiny_policy(tmp_path / "p")
    pol = HFEngine(str(tmp_path / "p"), device="cpu").policy
    exs = [SFTExample("Count.", image_bytes(1, (64, 64)), "red: 2.\n\n# Answer\n\n2"),
           SFTExample("Count them.", image_bytes(2, (64, 64)), "# Answer\n\n7")]
    lps = completion_logprobs(pol, exs, mask_vision=False)
    with torch.no_grad():
        loss = pol.model(**sft_batch(pol, exs), use_cache=False).loss
    # Over the full vocabulary, the HF loss is exactly minus the mean completion-token log-prob.
    assert torch.allclose(-torch.cat(lps).mean(), loss, atol=1e-3)
