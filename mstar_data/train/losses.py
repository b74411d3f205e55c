"""Training objectives as modules: `loss(policy, examples, cache) -> (loss, n_tokens)`.

A loss gets one rank's slice of one micro-batch and builds its own model inputs from the examples, so the
Trainer knows nothing about what an example holds. `sft` reads prompt, image and completion; `prm_step`
reads steps and their labels; `grpo` reads its examples' token ids, old and reference log-probs and
advantages, with its clipping epsilons held by the loss object.
`n_tokens` is what the loss averages over (completion tokens, scored steps), for the train log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mstar_data.models.batches import SFTExample


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


@dataclass
class GRPOExample(SFTExample):
    """A sampled rollout to train on: its exact token ids, its advantage, and per-token log-probs of the
    policy that sampled it (`old`, None: on-policy, the current ones detached) and of the reference (`ref`)."""

    advantage: float = 0.0
    old_logprobs: list[float] | None = None
    ref_logprobs: list[float] | None = None
    truncated: bool = False


class GRPOLoss:
    """Clipped importance-ratio policy gradient with an optional k3 KL to a frozen reference.

    per token:  -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A) + beta (exp(ref - lp) - (ref - lp) - 1),
    r = exp(lp - old). The aggregation divides by counts of the WHOLE global batch (set by `begin_step`), so
    the result does not depend on how the batch is cut into micro-batches or ranks: token_mean by its tokens,
    seq_mean_token_mean by its sequences (each sequence's mean over its own tokens), dr_grpo by sequences x
    max_new_tokens. The Trainer then neither averages over micro-batches nor over ranks (`global_norm`).
    """

    name = "grpo"
    global_norm = True

    def __init__(self, *, epsilon_low: float = 0.2, epsilon_high: float = 0.2, beta: float = 0.0,
                 aggregation: str = "token_mean", temperature: float = 1.0, max_new_tokens: int = 512,
                 mask_truncated: bool = False):
        self.eps_low, self.eps_high, self.beta, self.aggregation = epsilon_low, epsilon_high, beta, aggregation
        self.temperature, self.max_new_tokens, self.mask_truncated = temperature, max_new_tokens, mask_truncated
        self.n_tokens = self.n_seqs = 1
        self.stats: dict[str, float] = {}

    def kept(self, e: GRPOExample) -> bool:
        return not (self.mask_truncated and e.truncated)

    def begin_step(self, examples: list[GRPOExample]) -> None:
        kept = [e for e in examples if self.kept(e)]
        self.n_seqs = max(1, len(kept))
        self.n_tokens = max(1, sum(len(e.completion_ids) for e in kept))
        self.stats = {"clipped": 0.0, "kl": 0.0, "entropy": 0.0, "tokens": 0.0}

    def __call__(self, policy, examples: list, cache=None):
        import torch

        from mstar_data.models.scoring import token_logprobs

        lp, mask, entropy = token_logprobs(policy, examples, self.temperature, cache=cache, with_entropy=True)
        keep = torch.tensor([self.kept(e) for e in examples], device=lp.device).unsqueeze(1)
        mask = mask & keep

        def per_token(values):  # lists of per-token floats -> [B, L] aligned with the mask
            out = torch.zeros_like(lp)
            for i, v in enumerate(values):
                out[i, :len(v)] = torch.tensor(v, dtype=lp.dtype, device=lp.device)
            return out

        old = lp.detach() if examples[0].old_logprobs is None else per_token([e.old_logprobs for e in examples])
        adv = torch.tensor([e.advantage for e in examples], dtype=lp.dtype, device=lp.device).unsqueeze(1)
        ratio = torch.exp(lp - old)
        clipped_ratio = ratio.clamp(1 - self.eps_low, 1 + self.eps_high)
        tok = -torch.minimum(ratio * adv, clipped_ratio * adv)
        if self.beta:
            d = per_token([e.ref_logprobs for e in examples]) - lp
            kl = torch.exp(d) - d - 1
            tok = tok + self.beta * kl
            self.stats["kl"] += float((kl.detach() * mask).sum())
        tok = tok * mask
        if self.aggregation == "seq_mean_token_mean":
            loss = (tok.sum(1) / mask.sum(1).clamp(min=1)).sum() / self.n_seqs
        elif self.aggregation == "dr_grpo":
            loss = tok.sum() / (self.n_seqs * self.max_new_tokens)
        else:
            loss = tok.sum() / self.n_tokens
        with torch.no_grad():
            was_clipped = ((ratio < 1 - self.eps_low) & (adv < 0)) | ((ratio > 1 + self.eps_high) & (adv > 0))
            self.stats["clipped"] += float((was_clipped & mask).sum())
            self.stats["entropy"] += float((entropy * mask).sum())
            self.stats["tokens"] += float(mask.sum())
        return loss, int(mask.sum())

    def step_stats(self) -> dict[str, float | None]:
        n = max(self.stats.get("tokens", 0.0), 1.0)
        return {"clip_frac": self.stats.get("clipped", 0.0) / n, "entropy": self.stats.get("entropy", 0.0) / n,
                "kl": self.stats.get("kl", 0.0) / n if self.beta else None}


sft = SFTLoss()
prm_step = PRMStepLoss()
LOSSES: dict[str, Loss] = {loss.name: loss for loss in (sft, prm_step)}
