"""Teacher-forced log-probs of given completions (GRPO ratios, PRM inputs, re-scoring stored rollouts)."""

from __future__ import annotations

from mstar_data.models.batches import SFTExample, sft_batch


def token_logprobs(policy, examples: list[SFTExample], temperature: float = 1.0, *, cache=None,
                   mask_vision: bool = True, with_entropy: bool = False):
    """(log-probs [B, L], mask [B, L], entropy [B, L] or None) of each completion's tokens (its EOS included),
    padded to the longest completion in the batch; grad flows unless the caller disables it.

    Logits are divided by the temperature the rollouts were sampled at, and vision placeholder tokens are
    masked out of the distribution as they are when sampling, so the numbers match what the hf engine
    recorded.
    """
    import torch

    batch = sft_batch(policy, examples, cache)
    labels = batch.pop("labels")
    logits = policy.model(**batch, use_cache=False).logits[:, :-1].float() / temperature
    suppress = policy.suppress_ids() if mask_vision else []
    if suppress:
        logits[..., suppress] = float("-inf")
    targets = labels[:, 1:]
    first = int((targets != -100).float().argmax(1).min()) if targets.numel() else 0
    # only the completion region: the prompt is never scored, and slicing it off saves the softmax over it
    logits, targets = logits[:, first:], targets[:, first:]
    mask = targets != -100
    logp_all = torch.log_softmax(logits, -1)
    lp = logp_all.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            p = logp_all.exp()
            entropy = -(p * torch.where(p > 0, logp_all, torch.zeros_like(logp_all))).sum(-1)
    return lp, mask, entropy


def completion_logprobs(policy, examples: list[SFTExample], temperature: float = 1.0, *, with_grad: bool = False,
                        mask_vision: bool = True):
    """Per-token log-probs of each completion (its EOS included), as a list of 1-D tensors."""
    import torch

    ctx = torch.enable_grad() if with_grad else torch.no_grad()
    with ctx:
        lp, mask, _ = token_logprobs(policy, examples, temperature, mask_vision=mask_vision)
    return [lp[i][mask[i]] for i in range(lp.shape[0])]
