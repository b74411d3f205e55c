"""The `vllm` engine (GPU, optional extra `mstar[vllm]`), imported only when chosen.

vLLM takes the chat-formatted prompt text with the family's image placeholder and expands it itself, so we
build the text with the model's own processor (the same template the hf backend uses). Each request carries
its own SamplingParams with its own seed, so rollouts reproduce per row as with the hf backend.
"""

from __future__ import annotations

from mstar_data.errors import MstarError
from mstar_data.sampling.engine import Completion, SampleRequest


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise MstarError("--backend vllm needs vLLM: pip install 'mstar[vllm]' (GPU only)") from e
    return vllm


class VLLMEngine:
    name = "vllm"

    def __init__(self, policy: str, *, trust_remote_code: bool = False, dtype: str = "bfloat16",
                 gpu_memory_utilization: float = 0.85, max_model_len: int = 4096, **engine_kwargs):
        from mstar_data.models.loading import load_processor

        vllm = _import_vllm()
        self.policy_tag = str(policy)
        # Built explicitly, as load_policy does: AutoProcessor returns the bare tokenizer for our folders on
        # transformers < 5.19 (docs/dependencies.md).
        self.processor = load_processor(policy, trust_remote_code=trust_remote_code)
        self.llm = vllm.LLM(model=str(policy), trust_remote_code=trust_remote_code, dtype=dtype,
                            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                            limit_mm_per_prompt={"image": 1}, **engine_kwargs)
        self._SamplingParams = vllm.SamplingParams

    def generate(self, requests: list[SampleRequest]) -> list[Completion]:
        from mstar_data.models.loading import chat_prompts, pil_image

        texts = chat_prompts(self.processor, [r.prompt for r in requests], [r.prefix for r in requests])
        prompts = [{"prompt": t, "multi_modal_data": {"image": pil_image(r.image)}} for t, r in zip(texts, requests)]
        params = [self._SamplingParams(temperature=r.temperature, max_tokens=r.max_new_tokens, seed=r.seed,
                                       top_p=1.0, top_k=-1, logprobs=0) for r in requests]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        completions = []
        for out in outputs:
            o = out.outputs[0]
            ids = list(o.token_ids)
            lps = [step[tid].logprob for step, tid in zip(o.logprobs or [], ids)] if o.logprobs else []
            completions.append(Completion(o.text, len(ids), "stop" if o.finish_reason == "stop" else "length", lps, ids))
        return completions

    def update_weights(self, named_parameters) -> None:
        """Load the trainer's new weights into the engine in place (online RL). This is the colocated path TRL
        uses: the model inside vLLM's driver worker takes (name, tensor) pairs through its own
        `load_weights`, which maps Hugging Face names onto vLLM's fused layers."""
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        model.load_weights(weights=((name, p.data) for name, p in named_parameters))
        if hasattr(self.llm, "reset_prefix_cache"):  # cached prompt KV was computed with the old weights
            self.llm.reset_prefix_cache()

    def release(self) -> None:
        # vLLM frees its KV cache and weights when the LLM object goes; its worker processes end with it.
        self.llm = None
        from mstar_data.sampling.engines import free_device_memory

        free_device_memory()
