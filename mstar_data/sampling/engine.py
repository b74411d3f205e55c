"""The engine interface. Every engine (hf, lmdeploy, vllm) turns sample requests into completions.

A request is one rollout: one prompt, one image, one temperature and one seed. Engines that batch do so
internally; each request keeps its own seed, so its noise does not depend on its batch (whether its text
does depends on the numerics: docs/sampling.md, "What reproduces where"). An engine
holds a model on its device until `release()`: the loop releases the sampling engine before it trains and
the PRM after it scores, so on one GPU at most one model is resident at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class SampleRequest:
    key: str                 # the rollout_id
    prompt: str              # the user text; the engine applies the chat template and image placeholder
    image: bytes | None
    temperature: float
    seed: int
    max_new_tokens: int
    prefix: str = ""         # an assistant-turn prefix to continue from (PRM Monte-Carlo rollouts)


@dataclass
class Completion:
    text: str
    n_tokens: int
    finish_reason: str       # "stop" or "length"
    token_logprobs: list[float] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)  # the sampled ids (EOS included when it stopped)
    # For auditing reproducibility (docs/sampling.md); None where an engine does not say.
    engine: str | None = None        # hf / vllm / lmdeploy
    dtype: str | None = None         # the weights' dtype: float32, bfloat16, ...
    deterministic: bool | None = None  # sampled under --deterministic
    batch_key: str | None = None     # "<hash of the engine call's ordered request keys>/<position in it>"


class Engine(Protocol):
    name: str
    policy_tag: str

    def generate(self, requests: list[SampleRequest]) -> list[Completion]: ...

    def release(self) -> None:
        """Free the model and its device memory; the engine is not used again."""
