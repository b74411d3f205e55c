"""Teacher-forced log-probs of given completions (GRPO ratios, PRM inputs, re-scoring stored rollouts)."""

from __future__ import annotations

from mstar_data.models.batches import SFTExample, sft_batch


def completion_logprobs(policy, examples: list[SFTExample], temperature: float = 1.0, *, with_grad: bool = False,
                        mask_vision: bool = True):
    """Per-token log-probs of each completion (its EOS included), as a list of 1-D tensors.

    Prompt tokens are never scored. Vision placeholder tokens are masked out of the distribution, as they
    are when sampling, so the numbers match what the sampler recorded.
    """
    import torch

    batch = sft_batch(policy, examples)
    labels = batch.pop("labels")
    ctx = torch.enable_grad() if with_grad else torch.no_grad()
    with ctx:
        logits = policy.model(**batch, use_cache=False).logits[:, :-1].float() / temperature
        suppress = policy.suppress_ids() if mask_vision else []
        if suppress:
            logits[..., suppress] = float("-inf")
        targets = labels[:, 1:]
        mask = targets != -100
        lp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return [lp[i][mask[i]] for i in range(lp.shape[0])]
