"""Loading any Hugging Face VLM by local path, and turning (prompt, image) pairs into model inputs.

Weights load from safetensors only (`use_safetensors=True`: a folder with only pickled weights is refused),
and `trust_remote_code` is off unless asked for.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from mstar_data.errors import MstarError

# Tokens a policy must never emit: a sampled image placeholder breaks re-scoring the response later.
_VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<image>",
                  "<IMG_CONTEXT>", "<img>", "</img>", "<fake_token_around_image>", "<global-img>")


@dataclass
class Policy:
    model: object
    processor: object
    path: str
    device: str

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    def suppress_ids(self) -> list[int]:
        tok = self.tokenizer
        vocab = tok.get_vocab()
        ids = [vocab[t] for t in _VISION_TOKENS if t in vocab]
        ids += [i for i in (getattr(self.model.config, "image_token_id", None),
                            getattr(self.model.config, "image_token_index", None)) if isinstance(i, int)]
        return sorted(set(ids))


# Parameter-name parts of the vision encoders of the families we load (Qwen2-VL `visual`, LLaVA
# `vision_tower`, Idefics3 / SmolVLM `vision_model`, InternVL `vision_tower` / `vision_model`).
_VISION_PARTS = ("visual.", "vision_tower.", "vision_model.", "vision_encoder.", "image_encoder.")


def vision_parameters(model) -> list:
    """The vision encoder's parameters (what `freeze_vision` freezes); empty for a text-only model."""
    return [p for name, p in model.named_parameters() if any(part in name for part in _VISION_PARTS)]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_policy(path: str | Path, *, device: str | None = None, dtype: str | None = None,
                trust_remote_code: bool = False) -> Policy:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mstar_data.models.processors import register_image_only_processors

    from mstar_data.models.threads import configure_threads

    configure_threads()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise MstarError(f"--policy {path}: not a model folder (no config.json)")
    from mstar_data.train.checkpoint import check

    check(path)  # a damaged checkpoint or model folder: one line naming the folder and the file
    register_image_only_processors()
    device = device or default_device()
    # bf16 on GPU, fp32 on CPU unless asked otherwise.
    torch_dtype = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
                   "fp32": torch.float32, "float32": torch.float32}.get(dtype or ("bf16" if device.startswith("cuda") else "fp32"))
    try:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype, use_safetensors=True,
                                                            trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise MstarError(f"--policy {path}: cannot load the model ({str(e).splitlines()[0]})") from e
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok = getattr(processor, "tokenizer", None)
    if tok is None:
        raise MstarError(f"--policy {path}: AutoProcessor found no image processor for this model")
    tok.padding_side = "left"
    return Policy(model.to(device).eval(), processor, str(path), device)


def pil_image(data: bytes):
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    if im.mode in ("RGBA", "LA", "P"):  # composite transparency onto white, as the stock processors do
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert("RGB")


def chat_prompts(processor, prompts: list[str], prefixes: list[str] | None = None) -> list[str]:
    """Each user prompt with one image, in the model's own chat template, ready for the assistant turn."""
    texts = []
    for i, p in enumerate(prompts):
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}]
        text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        texts.append(text + (prefixes[i] if prefixes else ""))
    return texts


def encode_prompts(policy: Policy, prompts: list[str], images: list[bytes], prefixes: list[str] | None = None):
    """Left-padded model inputs for a batch of (prompt, image) pairs."""
    proc = policy.processor
    policy.tokenizer.padding_side = "left"
    enc = proc(images=[pil_image(b) for b in images], text=chat_prompts(proc, prompts, prefixes),
               return_tensors="pt", padding=True)
    return enc.to(policy.device)
