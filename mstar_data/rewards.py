"""GRPO rewards: named functions of (response, query row) -> float | None, weighted into one total.

Built in:
- `accuracy`: 1.0 when the judge calls the answer right, else 0.0; None for a query without a gold answer.
  The judge reads the `<answer>` span first, so for the r1 prompt variant this is the judge on the answer
  span. It reuses the rollout row's verdict: one judge call per rollout.
- `format`: 1.0 when the response fully matches the prompt variant's format (r1: `<think>…</think>` then
  `<answer>…</answer>` and nothing else; cot: step paragraphs, then '# Answer' and the answer), else 0.0.
User functions are named by dotted path (`mypkg.rewards:length_penalty` or `mypkg.rewards.length_penalty`).
A None from any function means "not scorable": the rollout's total is None and its advantage is 0.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from mstar_data.errors import MstarError

RewardFn = Callable[[str, dict], "float | None"]


def load_reward(path: str) -> RewardFn:
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise MstarError(f"rewards.custom: '{path}' is not an importable function ({e})") from e
    if not callable(fn):
        raise MstarError(f"rewards.custom: '{path}' is not callable")
    return fn


@dataclass
class RewardSet:
    weights: dict[str, float]                 # name -> weight, built-ins first
    custom: dict[str, RewardFn]

    @classmethod
    def from_recipe(cls, section) -> "RewardSet":
        weights = {"accuracy": section.accuracy, "format": section.format, **section.custom}
        return cls(weights, {name: load_reward(name) for name in section.custom})

    def score(self, row: dict, query: dict) -> tuple[dict[str, float | None], float | None]:
        """(each reward, the weighted total) for a rollout row (already judged and format-checked)."""
        values: dict[str, float | None] = {
            "accuracy": None if row["correct"] is None else float(row["correct"]),
            "format": float(bool(row["format_ok"])),
        }
        for name, fn in self.custom.items():
            v = fn(row["response"], query)
            values[name] = None if v is None else float(v)
        if any(values[n] is None for n in self.weights):
            return values, None
        return values, sum(self.weights[n] * values[n] for n in self.weights)
