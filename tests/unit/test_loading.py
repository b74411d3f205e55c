"""load_processor builds the processor itself, so loading does not depend on the transformers version's
AutoProcessor registry or on whether torchvision is installed (issue 15: transformers 5.17 returned the bare
tokenizer)."""

import json
import shutil

import pytest

from mstar_data.errors import MstarError
from mstar_data.models.loading import IMAGE_BACKEND, load_processor
from tests.datasets import image_bytes
from tests.model_families import build_family


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    return build_family("qwen2_vl", tmp_path_factory.mktemp("loading") / "qwen2_vl")


@pytest.fixture
def folder(qwen_folder, tmp_path):
    return shutil.copytree(qwen_folder, tmp_path / "m")


def _check(proc):
    from mstar_data.models.loading import pil_image

    assert type(proc).__name__ == "Qwen2VLImageOnlyProcessor"
    assert type(proc.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    enc = proc(images=[pil_image(image_bytes(1, (64, 64)))], text=["<|vision_start|><|image_pad|><|vision_end|>hi"],
               return_tensors="pt")
    assert enc["pixel_values"].shape[0] > 0 and int(enc["image_grid_thw"].prod()) == enc["pixel_values"].shape[0]


def test_loads_without_the_auto_processor_registry(folder, monkeypatch):
    # transformers < 5.20 ignores AutoProcessor.register for a config class of its own: simulate it.
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    monkeypatch.setattr(PROCESSOR_MAPPING, "_extra_content", {})
    _check(load_processor(folder))


def test_a_folder_naming_the_stock_processor_loads_image_only(folder):
    # A Hub download names Qwen2VLProcessor, whose video slot needs torchvision.
    cfg = json.loads((folder / "processor_config.json").read_text())
    cfg["processor_class"] = "Qwen2VLProcessor"
    (folder / "processor_config.json").write_text(json.dumps(cfg))
    _check(load_processor(folder))


def test_the_pil_backend_is_used_even_when_torchvision_is_available(folder, monkeypatch):
    import transformers.models.auto.image_processing_auto as ipa

    assert IMAGE_BACKEND == "pil"
    monkeypatch.setattr(ipa, "is_torchvision_available", lambda: True)
    _check(load_processor(folder))


def test_a_pil_class_the_lazy_loader_refuses_is_imported_from_its_file(folder, monkeypatch):
    # transformers 5.17 without torchvision refuses Idefics3's PIL image processor through AutoImageProcessor.
    from transformers.models.auto.image_processing_auto import AutoImageProcessor

    def refuse(*a, **k):
        raise ImportError("requires the Torchvision library")

    monkeypatch.setattr(AutoImageProcessor, "from_pretrained", refuse)
    _check(load_processor(folder))


def test_an_unknown_processor_is_one_line(folder):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "not_a_model"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises((MstarError, ValueError)):
        load_processor(folder)
