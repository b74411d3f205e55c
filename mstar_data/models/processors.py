"""Processors that work without torchvision.

In transformers 5.x every video processor needs torchvision, and Qwen2-VL's, Qwen2.5-VL's and InternVL's
processors type-check their video slot even when it is None. ProcessorMixin reads its sub-processors off the
__init__ signature, so a subclass whose __init__ has no `video_processor` argument is an image-only
processor. Registering it with AutoProcessor lets `AutoProcessor.from_pretrained(dir)` find it again from
the `processor_class` name saved in the folder (without the registration it silently returns the tokenizer).

The registration only takes effect from transformers 5.19: before that `AutoProcessor.register` silently skips
a config class that comes from transformers itself, and AutoProcessor returns the bare tokenizer. So
`mstar_data.models.loading.load_processor` does not rely on it: it builds the processor from
`IMAGE_ONLY_PROCESSORS` explicitly.
"""

from __future__ import annotations

from transformers import (AutoProcessor, InternVLConfig, InternVLProcessor, Qwen2_5_VLConfig, Qwen2_5_VLProcessor,
                          Qwen2VLConfig, Qwen2VLProcessor)


class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


class InternVLImageOnlyProcessor(InternVLProcessor):
    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None,
                 **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=image_seq_length,
                         chat_template=chat_template, **kwargs)


# model_type -> the image-only processor that `load_processor` builds for it, whatever processor class the
# folder names (a stock Hub folder says "Qwen2VLProcessor", ours say "Qwen2VLImageOnlyProcessor").
IMAGE_ONLY_PROCESSORS = {"qwen2_vl": Qwen2VLImageOnlyProcessor, "qwen2_5_vl": Qwen2_5_VLImageOnlyProcessor,
                         "internvl": InternVLImageOnlyProcessor}

_REGISTERED = False


def register_image_only_processors() -> None:
    """Also quiets transformers' per-load progress bars: workers show their own."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    AutoProcessor.register(Qwen2VLConfig, Qwen2VLImageOnlyProcessor, exist_ok=True)
    AutoProcessor.register(Qwen2_5_VLConfig, Qwen2_5_VLImageOnlyProcessor, exist_ok=True)
    AutoProcessor.register(InternVLConfig, InternVLImageOnlyProcessor, exist_ok=True)
    _REGISTERED = True
