"""SFT batches: [left pad][chat prompt with image tokens][completion + EOS][right pad].

Prompt and completion are tokenised separately, so the boundary is exact (no BPE merge across it), and the
labels are -100 on the prompt and the padding: we train only on what the model should write.

Encoding a prompt (PNG decode, image processor, chat template, tokenizer) costs about as much as a training
step of the tiny default model, so `PromptCache` keeps each (prompt, image) pair's unpadded encoding and
`sft_batch` only pads and concatenates: the batch is identical to encoding the prompts together.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass
class SFTExample:
    prompt: str
    image: bytes
    completion: str
    completion_ids: list[int] | None = None  # exact token ids (sampled rollouts); else `completion` + EOS


class PromptCache:
    """One example's processor output, unpadded, keyed by (prompt, image hash)."""

    def __init__(self):
        self._enc: dict[tuple[str, str], dict] = {}

    def get(self, policy, prompt: str, image: bytes) -> dict:
        from mstar_data.models.loading import encode_prompts

        key = (prompt, hashlib.sha256(image or b"").hexdigest())
        enc = self._enc.get(key)
        if enc is None:
            enc = {k: v.cpu() for k, v in encode_prompts(policy, [prompt], [image]).items()}
            self._enc[key] = enc
        return enc


def collate_prompts(policy, encs: list[dict]) -> dict:
    """Left-pad single-example encodings into one batch. Per-token tensors ([1, L], like input_ids) are padded;
    everything else (pixel_values, image_grid_thw, ...) is concatenated along its first dimension."""
    import torch

    n = [e["input_ids"].shape[1] for e in encs]
    width = max(n)
    pad_id = policy.tokenizer.pad_token_id
    batch = {}
    for key in encs[0]:
        values = [e[key] for e in encs]
        if all(v.dim() == 2 and v.shape[0] == 1 and v.shape[1] == k for v, k in zip(values, n)):
            out = torch.full((len(encs), width), pad_id if key == "input_ids" else 0, dtype=values[0].dtype)
            for row, (v, k) in enumerate(zip(values, n)):
                out[row, width - k:] = v[0]
            batch[key] = out
        else:
            batch[key] = torch.cat(values, 0)
    return {k: v.to(policy.device) for k, v in batch.items()}


def sft_batch(policy, examples: list[SFTExample], cache: PromptCache | None = None) -> dict:
    import torch

    from mstar_data.models.loading import encode_prompts

    tok = policy.tokenizer
    if cache is not None:
        enc = collate_prompts(policy, [cache.get(policy, e.prompt, e.image) for e in examples])
    else:
        enc = encode_prompts(policy, [e.prompt for e in examples], [e.image for e in examples])
    ids = [e.completion_ids if e.completion_ids is not None else
           tok(e.completion + tok.eos_token, add_special_tokens=False)["input_ids"] for e in examples]
    width = max(len(x) for x in ids)
    comp = {"input_ids": torch.tensor([x + [tok.pad_token_id] * (width - len(x)) for x in ids], device=policy.device),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=policy.device)}
    n_prompt = enc["input_ids"].shape[1]
    batch = {k: v for k, v in enc.items()}
    batch["input_ids"] = torch.cat([enc["input_ids"], comp["input_ids"]], 1)
    batch["attention_mask"] = torch.cat([enc["attention_mask"], comp["attention_mask"]], 1)
    for key, value in enc.items():  # per-token side inputs (Qwen2-VL's mm_token_type_ids): text for the completion
        if key not in ("input_ids", "attention_mask") and value.dim() == 2 and value.shape[1] == n_prompt:
            batch[key] = torch.cat([value, torch.zeros_like(comp["input_ids"], dtype=value.dtype)], 1)
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, n_prompt:] = comp["input_ids"].masked_fill(comp["attention_mask"] == 0, -100)
    batch["labels"] = labels
    return batch
