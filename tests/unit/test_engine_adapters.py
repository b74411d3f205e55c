"""The lmdeploy and vLLM adapters, against fake engines with the libraries' documented call shapes."""

import sys
import types
from dataclasses import dataclass

import pytest

from mstar_data.errors import MstarError
from mstar_data.exec.shards import parse_shard
from mstar_data.sampling.engine import SampleRequest
from mstar_data.sampling.engines import load_engine
from tests.datasets import image_bytes


@pytest.fixture(scope="module")
def tiny_policy_dir(tmp_path_factory):
    from mstar_data.models.tiny import build_tiny_policy

    out = tmp_path_factory.mktemp("tiny") / "policy"
    build_tiny_policy(out)
    return str(out)


def _requests(n=3, prefix=""):
    return [SampleRequest(f"r{i}", f"How many? {i}", image_bytes(i), (0.7, 0.8, 0.9)[i], 100 + i, 16, prefix)
            for i in range(n)]


def test_vllm_adapter_calls_llm_and_sampling_params(monkeypatch, tiny_policy_dir):
    calls = {}

    @dataclass
    class Logprob:
        logprob: float

    class SamplingParams:
        def __init__(self, *, temperature, max_tokens, seed, top_p, top_k, logprobs):
            self.__dict__.update(locals())

    class LLM:
        def __init__(self, model, **kw):
            calls["init"] = (model, kw)

        def generate(self, prompts, sampling_params, use_tqdm):
            calls["generate"] = (prompts, sampling_params)
            outs = []
            for i, _ in enumerate(prompts):
                ids = [5 + i, 6, 7]
                o = types.SimpleNamespace(text=f"# Answer\n\n{i}", token_ids=ids, finish_reason="stop" if i else "length",
                                          logprobs=[{t: Logprob(-0.5)} for t in ids])
                outs.append(types.SimpleNamespace(outputs=[o]))
            return outs

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    sampler = load_engine("vllm", tiny_policy_dir)
    assert calls["init"][0] == tiny_policy_dir and calls["init"][1]["limit_mm_per_prompt"] == {"image": 1}
    assert calls["init"][1]["trust_remote_code"] is False
    out = sampler.generate(_requests(prefix="red: 2.\n\n"))
    prompts, params = calls["generate"]
    assert all(p["prompt"].count("<|image_pad|>") == 1 and p["prompt"].endswith("assistant\nred: 2.\n\n")
               for p in prompts)
    assert all(p["multi_modal_data"]["image"].mode == "RGB" for p in prompts)
    assert [(p.seed, p.temperature, p.max_tokens) for p in params] == [(100, 0.7, 16), (101, 0.8, 16), (102, 0.9, 16)]
    assert [(c.text, c.n_tokens, c.finish_reason) for c in out] == [
        ("# Answer\n\n0", 3, "length"), ("# Answer\n\n1", 3, "stop"), ("# Answer\n\n2", 3, "stop")]
    assert out[0].token_logprobs == [-0.5, -0.5, -0.5]


def test_lmdeploy_adapter_calls_pipeline_and_generation_config(monkeypatch):
    calls = {}

    class GenerationConfig:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class PytorchEngineConfig:
        def __init__(self, **kw):
            self.kw = kw

    def pipeline(model_path, backend_config, log_level):
        calls["pipeline"] = (model_path, backend_config.kw)

        def run(prompts, gen_config):
            calls["run"] = (prompts, gen_config)
            return [types.SimpleNamespace(text=f"ans {i}", generate_token_len=4, finish_reason="stop",
                                          token_ids=[1, 2, 3, 4], logprobs=[{t: -1.0} for t in (1, 2, 3, 4)])
                    for i in range(len(prompts))]
        return run

    fake = types.SimpleNamespace(pipeline=pipeline, GenerationConfig=GenerationConfig,
                                 PytorchEngineConfig=PytorchEngineConfig, TurbomindEngineConfig=PytorchEngineConfig)
    monkeypatch.setitem(sys.modules, "lmdeploy", fake)
    sampler = load_engine("lmdeploy", "/models/policy")
    assert calls["pipeline"][0] == "/models/policy"
    out = sampler.generate(_requests())
    prompts, configs = calls["run"]
    assert [p[0] for p in prompts] == ["How many? 0", "How many? 1", "How many? 2"]
    assert [(c.random_seed, c.temperature, c.max_new_tokens, c.do_sample) for c in configs] == [
        (100, 0.7, 16, True), (101, 0.8, 16, True), (102, 0.9, 16, True)]
    assert [(c.text, c.n_tokens, c.token_logprobs) for c in out][0] == ("ans 0", 4, [-1.0] * 4)
    with pytest.raises(MstarError, match="cannot continue a partial response"):
        sampler.generate(_requests(prefix="red: 1."))


def test_missing_engines_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    monkeypatch.setitem(sys.modules, "lmdeploy", None)
    with pytest.raises(MstarError, match=r"pip install 'mstar\[vllm\]'"):
        load_engine("vllm", "/x")
    with pytest.raises(MstarError, match=r"pip install 'mstar\[lmdeploy\]'"):
        load_engine("lmdeploy", "/x")
    with pytest.raises(ValueError, match="--backend 'tgi'"):
        load_engine("tgi", "/x")


def test_parse_shard():
    assert parse_shard(None) == (0, 1) and parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "x/2", "1", "-1/2", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_vllm_engine_takes_new_weights_in_place_and_releases(monkeypatch, tiny_policy_dir):
    """Online RL pushes the trainer's weights into the engine through the driver worker's model.load_weights
    (the colocated path), then drops cached prefixes computed with the old weights."""
    import torch

    got = {}

    class Model:
        def load_weights(self, weights):
            got["weights"] = [(n, t.clone()) for n, t in weights]

    class LLM:
        def __init__(self, model, **kw):
            runner = types.SimpleNamespace(model=Model())
            self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(
                driver_worker=types.SimpleNamespace(model_runner=runner)))

        def reset_prefix_cache(self):
            got["reset"] = True

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=object))
    engine = load_engine("vllm", tiny_policy_dir)
    params = [("model.layers.0.w", torch.nn.Parameter(torch.ones(2))), ("lm_head.weight", torch.nn.Parameter(torch.zeros(3)))]
    engine.update_weights(iter(params))
    assert [n for n, _ in got["weights"]] == ["model.layers.0.w", "lm_head.weight"] and got["reset"]
    assert not any(t.requires_grad for _, t in got["weights"])  # plain tensors, not parameters with grad
    engine.release()
    assert engine.llm is None
