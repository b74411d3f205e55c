"""The `lmdeploy` engine (GPU, optional extra `mstar[lmdeploy]`), imported only when chosen.

lmdeploy's VLM pipeline takes (text, image) pairs and applies the model's chat template itself. Each
request gets its own GenerationConfig with its own random_seed. lmdeploy cannot continue a partial
assistant turn through this API, so Monte-Carlo step rollouts (requests with a prefix) need hf or vllm.
"""

from __future__ import annotations

from mstar_data.errors import MstarError
from mstar_data.sampling.engine import Completion, SampleRequest


def _import_lmdeploy():
    try:
        import lmdeploy
    except ImportError as e:
        raise MstarError("--backend lmdeploy needs lmdeploy: pip install 'mstar[lmdeploy]' (CUDA only)") from e
    return lmdeploy


class LMDeployEngine:
    name = "lmdeploy"

    def __init__(self, policy: str, *, engine: str = "pytorch", tp: int = 1, session_len: int = 4096,
                 cache_max_entry_count: float = 0.5):
        lmdeploy = _import_lmdeploy()
        self.policy_tag = str(policy)
        config_cls = lmdeploy.PytorchEngineConfig if engine == "pytorch" else lmdeploy.TurbomindEngineConfig
        self.pipe = lmdeploy.pipeline(str(policy), backend_config=config_cls(
            tp=tp, session_len=session_len, cache_max_entry_count=cache_max_entry_count), log_level="ERROR")
        self._GenerationConfig = lmdeploy.GenerationConfig

    def generate(self, requests: list[SampleRequest]) -> list[Completion]:
        from mstar_data.models.loading import pil_image

        if any(r.prefix for r in requests):
            raise MstarError("the lmdeploy backend cannot continue a partial response: use --backend hf or vllm")
        prompts = [(r.prompt, pil_image(r.image)) for r in requests]
        configs = [self._GenerationConfig(max_new_tokens=r.max_new_tokens, do_sample=r.temperature > 0,
                                          temperature=max(r.temperature, 1e-5), top_p=1.0, top_k=0,
                                          random_seed=r.seed, logprobs=1) for r in requests]
        responses = self.pipe(prompts, gen_config=configs)
        completions = []
        for resp in responses:
            ids = list(getattr(resp, "token_ids", None) or [])
            lps = [step[tid] for step, tid in zip(resp.logprobs, ids)] if getattr(resp, "logprobs", None) else []
            reason = "stop" if resp.finish_reason == "stop" else "length"
            completions.append(Completion(resp.text, resp.generate_token_len, reason, lps, ids))
        return completions

    def release(self) -> None:
        if self.pipe is not None and hasattr(self.pipe, "close"):
            self.pipe.close()
        self.pipe = None
        from mstar_data.sampling.engines import free_device_memory

        free_device_memory()
