"""Training objectives as modules: `loss(policy, examples, cache) -> (loss, n_tokens)`.

A loss gets one rank's slice of one micro-batch and builds its own model inputs from the examples, so the
Trainer knows nothing about what an example holds. `sft` reads prompt, image and completion; `prm_step`
reads steps and their labels; a `grpo` loss would read its examples' old and reference log-probs and
advantages the same way, with its clipping epsilons held by the loss object, and the Trainer would not change.
`n_tokens` is what the loss averages over (completion tokens, scored steps), for the train log.
"""

from __future__ import annotations

from typing import Protocol


class Loss(Protocol):
    name: str

    def __call__(self, policy, examples: list, cache) -> tuple[object, int]: ...


class SFTLoss:
    """Next-token cross-entropy on the completion tokens (the prompt and the padding are masked)."""

    name = "sft"

    def __call__(self, policy, examples: list, cache=None):
        from mstar_data.models.batches import sft_batch

        batch = sft_batch(policy, examples, cache)
        return policy.model(**batch, use_cache=False).loss, int((batch["labels"] != -100).sum())


class PRMStepLoss:
    """Cross-entropy of P('+') at each step tag against the step's label, hard (0/1) or soft (MC fraction)."""

    name = "prm_step"

    def __call__(self, policy, examples: list, cache=None):
        import torch

        from mstar_data.prm.format import step_logits

        logits = step_logits(policy, examples, cache)
        target = torch.tensor([y for e in examples for y in e.labels], device=logits.device, dtype=logits.dtype)
        logp = torch.log_softmax(logits, -1)
        loss = -(target * logp[:, 0] + (1 - target) * logp[:, 1]).mean()
        return loss, int(target.numel())


sft = SFTLoss()
prm_step = PRMStepLoss()
LOSSES: dict[str, Loss] = {loss.name: loss for loss in (sft, prm_step)}
