"""Every supported family loads by local path and samples with an image through the hf backend."""

import json

import pytest
import torch

from mstar_data.errors import MstarError
from mstar_data.models.loading import load_policy
from mstar_data.models.batches import SFTExample, sft_batch
from mstar_data.sampling.engine import SampleRequest
from mstar_data.sampling.engines.hf import HFEngine
from tests.datasets import image_bytes
from tests.model_families import build_family

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "llava_siglip_qwen2", "llava_clip_llama", "idefics3", "internvl"]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_loads_samples_and_trains(family, tmp_path):
    path = build_family(family, tmp_path / family)
    files = {p.name for p in path.iterdir()}
    assert "model.safetensors" in files and not files & {"pytorch_model.bin", "model.pt"}
    sampler = HFEngine(str(path), device="cpu")
    pol = sampler.policy
    assert type(pol.processor).__name__.endswith("Processor") and pol.processor.image_processor is not None
    reqs = [SampleRequest(f"r{i}", f"How many shapes? {i}", image_bytes(i, (64, 64)), 1.0, 7 + i, 6) for i in range(3)]
    out = sampler.generate(reqs)
    assert len(out) == 3 and all(1 <= c.n_tokens <= 6 and len(c.token_logprobs) == c.n_tokens for c in out)
    assert all(c.finish_reason in ("stop", "length") for c in out)
    # Per-row seeds: a request alone gives the same text as inside the batch.
    assert sampler.generate(reqs[1:2])[0].text == out[1].text
    # Never emits an image placeholder (it would break re-scoring the response later).
    assert all(t not in c.text for c in out for t in ("<image>", "<|image_pad|>", "<IMG_CONTEXT>"))
    # One SFT step through the same processor: the loss is finite and only the completion is supervised.
    batch = sft_batch(pol, [SFTExample("How many?", image_bytes(1, (64, 64)), "# Answer\n\n3")] * 2)
    n_completion = len(pol.tokenizer("# Answer\n\n3" + pol.tokenizer.eos_token, add_special_tokens=False)["input_ids"])
    assert int((batch["labels"][0] != -100).sum()) == n_completion
    pol.model.train()
    loss = pol.model(**batch, use_cache=False).loss
    loss.backward()
    assert torch.isfinite(loss)


def test_loading_refuses_pickled_weights_and_non_model_folders(tmp_path):
    with pytest.raises(MstarError, match="not a model folder"):
        load_policy(tmp_path)
    path = build_family("qwen2_vl", tmp_path / "m")
    from safetensors.torch import load_file

    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    with pytest.raises(MstarError, match="cannot load the model"):
        load_policy(path, device="cpu")


def test_remote_code_is_off_unless_asked(tmp_path):
    path = build_family("qwen2_vl", tmp_path / "m")
    cfg = json.loads((path / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForImageTextToText": "evil.Model"}
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "evil.py").write_text("raise SystemExit('remote code ran')\n")
    pol = load_policy(path, device="cpu")  # the auto_map is ignored: the stock class loads
    assert type(pol.model).__name__ == "Qwen2VLForConditionalGeneration"
