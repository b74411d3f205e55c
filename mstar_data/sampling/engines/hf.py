"""The `hf` engine: transformers generate() on CPU or GPU, with one seed per row.

We sample with the Gumbel-max trick inside a logits processor and let generate() run greedy: argmax of
(logits / T + Gumbel noise) is a sample from softmax(logits / T). Each row draws its noise from its own
torch.Generator, so a rollout's text depends only on its own seed, not on which batch it ran in. The
processor also records the sampled tokens' log-probs (under the temperature-scaled distribution).
"""

from __future__ import annotations


from mstar_data.sampling.engine import Completion, SampleRequest


class RowSeededSampler:
    """A transformers LogitsProcessor (duck-typed): per-row seeds and temperatures; T = 0 is greedy."""

    def __init__(self, seeds: list[int], temperatures: list[float]):
        import torch

        self.gens = [torch.Generator().manual_seed(int(s) % (2**63)) for s in seeds]
        self.temps = torch.tensor([max(float(t), 0.0) for t in temperatures])
        self.logprobs: list[list[float]] = [[] for _ in seeds]

    def __call__(self, input_ids, scores):
        import torch

        scores = scores.float()
        greedy = self.temps <= 0
        temps = torch.where(greedy, torch.ones_like(self.temps), self.temps).to(scores.device).unsqueeze(1)
        scaled = scores / temps
        u = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.gens]).to(scores.device)
        gumbel = -torch.log(-torch.log(u.clamp_(1e-20, 1.0)))
        gumbel[greedy.to(scores.device)] = 0.0
        perturbed = scaled + gumbel
        chosen = perturbed.argmax(-1)
        lp = torch.log_softmax(scaled, -1).gather(1, chosen.unsqueeze(1)).squeeze(1).tolist()
        for row, v in enumerate(lp):
            self.logprobs[row].append(v)
        return perturbed


class HFEngine:
    name = "hf"

    def __init__(self, policy: str, *, device: str | None = None, dtype: str | None = None,
                 trust_remote_code: bool = False, policy_obj=None):
        from mstar_data.models.loading import load_policy

        self.policy = policy_obj or load_policy(policy, device=device, dtype=dtype,
                                                trust_remote_code=trust_remote_code)
        self.policy_tag = str(policy)
        self.suppress = self.policy.suppress_ids()

    def generate(self, requests: list[SampleRequest]) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList

        from mstar_data.models.loading import encode_prompts

        if not requests:
            return []
        pol = self.policy
        tok = pol.tokenizer
        enc = encode_prompts(pol, [r.prompt for r in requests], [r.image for r in requests],
                             [r.prefix for r in requests] if any(r.prefix for r in requests) else None)
        sampler = RowSeededSampler([r.seed for r in requests], [r.temperature for r in requests])
        max_new = max(r.max_new_tokens for r in requests)
        with torch.no_grad():
            out = pol.model.generate(**enc, do_sample=False, max_new_tokens=max_new,
                                     logits_processor=LogitsProcessorList([sampler]),
                                     suppress_tokens=self.suppress or None, pad_token_id=tok.pad_token_id,
                                     eos_token_id=tok.eos_token_id)
        gen = out[:, enc["input_ids"].shape[1]:].cpu()
        eos = tok.eos_token_id
        completions = []
        for i, r in enumerate(requests):
            ids = gen[i].tolist()[: r.max_new_tokens]
            if eos in ids:
                n, reason = ids.index(eos) + 1, "stop"
            else:
                n, reason = len(ids), "length"
            text = tok.decode(ids[:n], skip_special_tokens=True)
            completions.append(Completion(text, n, reason, sampler.logprobs[i][:n], ids[:n]))
        return completions

    def release(self) -> None:
        self.policy = None
        from mstar_data.sampling.engines import free_device_memory

        free_device_memory()
