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
    from transformers import AutoModelForImageTextToText

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
    processor = load_processor(path, config=model.config, trust_remote_code=trust_remote_code)
    processor.tokenizer.padding_side = "left"
    return Policy(model.to(device).eval(), processor, str(path), device)


# The image processor backend every policy loads with, torchvision installed or not: the PIL/numpy one gives
# the same pixels on every machine (transformers' default, `backend=None`, switches to the torchvision
# implementation whenever torchvision is importable, and its resize and rescale need not match PIL's exactly).
IMAGE_BACKEND = "pil"


def _saved_processor_class(path: Path) -> str | None:
    """The `processor_class` name the folder saved, from the files transformers writes it to."""
    import json

    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        f = path / name
        if f.is_file():
            try:
                cls = json.loads(f.read_text()).get("processor_class")
            except (ValueError, AttributeError):
                continue
            if cls:
                return cls
    return None


def _has_remote_processor(path: Path) -> bool:
    import json

    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json", "config.json"):
        f = path / name
        if f.is_file():
            try:
                if "AutoProcessor" in (json.loads(f.read_text()).get("auto_map") or {}):
                    return True
            except (ValueError, AttributeError, TypeError):
                continue
    return False


def load_processor(path: str | Path, *, config=None, trust_remote_code: bool = False):
    """The model's processor, built explicitly: image processor (PIL backend) + tokenizer + the processor class.

    `AutoProcessor.from_pretrained` is not trusted: before transformers 5.19 it ignores our registered
    image-only classes and returns the bare tokenizer, and with torchvision installed it picks another image
    backend. The class is, in order: our image-only processor for the model type (Qwen2-VL, Qwen2.5-VL,
    InternVL: the stock ones need torchvision for their video slot), the stock class the folder names, the
    stock class for the model type. Only a folder with remote code and `trust_remote_code` goes through
    AutoProcessor.
    """
    import transformers
    from transformers import AutoConfig, AutoTokenizer
    # From its module, not the top level: in transformers 5.17 without torchvision, `transformers.AutoImageProcessor`
    # is a placeholder that demands torchvision (the class itself needs only PIL).
    from transformers.models.auto.image_processing_auto import AutoImageProcessor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
    from transformers.processing_utils import ProcessorMixin

    from mstar_data.models.processors import IMAGE_ONLY_PROCESSORS, register_image_only_processors

    register_image_only_processors()
    path = Path(path)
    if config is None:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    saved = _saved_processor_class(path)
    cls = IMAGE_ONLY_PROCESSORS.get(getattr(config, "model_type", None))
    if cls is None and saved:
        named = getattr(transformers, saved, None)
        if isinstance(named, type) and issubclass(named, ProcessorMixin):
            cls = named
    if cls is None and type(config) in PROCESSOR_MAPPING:
        cls = PROCESSOR_MAPPING[type(config)]
    if cls is None or (trust_remote_code and _has_remote_processor(path)):
        if not trust_remote_code:
            raise MstarError(f"--policy {path}: no processor class for model type "
                             f"'{getattr(config, 'model_type', '?')}'" + (f" (the folder names '{saved}')" if saved else ""))
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
            raise MstarError(f"--policy {path}: AutoProcessor found no image processor for this model")
        return processor
    attributes = list(cls.get_attributes())
    if set(attributes) != {"image_processor", "tokenizer"}:
        raise MstarError(f"--policy {path}: {cls.__name__} needs {', '.join(attributes)}; "
                         "only image + text processors are supported")
    try:
        parts = {
            "image_processor": _image_processor(AutoImageProcessor, path, trust_remote_code),
            "tokenizer": AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code),
        }
        processor_dict, _ = cls.get_processor_dict(path)
        return cls.from_args_and_dict([parts[a] for a in attributes], processor_dict)
    except (OSError, ValueError, KeyError) as e:
        raise MstarError(f"--policy {path}: cannot load the processor ({str(e).splitlines()[0]})") from e


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


def _image_processor(auto_cls, path: Path, trust_remote_code: bool):
    try:
        return auto_cls.from_pretrained(path, backend=IMAGE_BACKEND, trust_remote_code=trust_remote_code)
    except (ImportError, ValueError) as first:
        # transformers 5.17 marks an image-processing file as needing torchvision when its text merely mentions
        # "TorchvisionBackend" (Idefics3's PIL processor does), and without torchvision its lazy loader then
        # refuses the PIL class. Importing the file itself works: find it from the saved processor type.
        import importlib
        import json

        from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

        saved = None
        for name in ("preprocessor_config.json", "processor_config.json"):
            if (path / name).is_file():
                d = json.loads((path / name).read_text())
                d = d.get("image_processor", d) if name == "processor_config.json" else d
                saved = saved or d.get("image_processor_type")
        if not saved:
            raise first
        base = saved.removesuffix("Pil").removesuffix("Fast")
        for model_type, names in IMAGE_PROCESSOR_MAPPING_NAMES.items():
            if not isinstance(names, dict) or base not in (names.get("torchvision"), names.get("pil")):
                continue
            module = model_type.replace("-", "_")
            try:
                cls = getattr(importlib.import_module(f"transformers.models.{module}.image_processing_pil_{module}"),
                              names.get("pil") or "", None)
            except ImportError:
                continue
            if cls is not None:
                return cls.from_pretrained(path)
        raise first
