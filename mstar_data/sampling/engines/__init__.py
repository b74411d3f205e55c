"""The engines behind mstar_data.sampling.engine.Engine, each imported only when chosen (torch, lmdeploy and
vllm are heavy, and the last two are optional extras that need a GPU)."""

from __future__ import annotations


ENGINES = ("hf", "lmdeploy", "vllm")


def load_engine(backend: str, policy: str, **kwargs):
    if backend == "hf":
        from mstar_data.sampling.engines.hf import HFEngine

        return HFEngine(policy, **kwargs)
    if backend == "lmdeploy":
        from mstar_data.sampling.engines.lmdeploy import LMDeployEngine

        return LMDeployEngine(policy, **kwargs)
    if backend == "vllm":
        from mstar_data.sampling.engines.vllm import VLLMEngine

        return VLLMEngine(policy, **kwargs)
    raise ValueError(f"--backend '{backend}': expected one of {', '.join(ENGINES)}")


def free_device_memory() -> None:
    """What every engine's release() ends with: collect the dropped model, then hand cached CUDA blocks back."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
