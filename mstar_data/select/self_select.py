"""Self-select (R3V): the policy is shown K of its own candidate solutions, numbered in a seeded order, and
asked for the correct final answer.

One builder for both uses, so what the policy is trained on is what it is asked at test time:
- `mstar eval --select self-select` calls `select_example(question_prompt, candidates, seed=..., key=query_id)`
  and sends `.prompt` to the policy (a second generation call through the rollout path; the pick is a row);
- a training-set builder (R3V's self-select examples) passes `chosen` (the index of a correct candidate in the
  list it gives) and `answer` (that candidate's final answer), and trains on (`.prompt`, `.target`).

The order is a pure function of (seed, key, K): sha256 of each position, no global RNG (R3V's own code
shuffled unseeded), so a rerun shows the same numbering.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SELECT_INSTRUCTION = ("Several candidate solutions are given above. Judge which are correct, and end with "
                      "'# Answer' followed by the correct final answer.")
PROMPT_VARIANT = "self-select"  # rollouts.prompt_variant of the picks


def candidate_order(k: int, *, seed: int, key: str) -> list[int]:
    """A permutation of range(k): position j of the prompt shows candidate order[j]."""
    return sorted(range(k), key=lambda i: hashlib.sha256(f"{seed}\x1f{key}\x1f{i}".encode()).digest())


def select_prompt(question_prompt: str, candidates: list[str]) -> str:
    """The question, then 'Candidate 1:' .. 'Candidate K:' in the order given, then the instruction."""
    numbered = "\n\n".join(f"Candidate {i}:\n{c.strip()}" for i, c in enumerate(candidates, 1))
    return f"{question_prompt}\n\n{numbered}\n\n{SELECT_INSTRUCTION}"


def select_target(pick: int, answer: str) -> str:
    """What self-select is trained to write: the chosen candidate's number and its final answer."""
    return f"Candidate {pick} is correct.\n\n# Answer {answer}"


@dataclass(frozen=True)
class SelectExample:
    prompt: str
    order: tuple[int, ...]        # order[j]: the index (in the caller's list) of the candidate shown as j + 1
    pick: int | None = None       # the number the chosen candidate is shown under (1-based), with `chosen`
    target: str | None = None     # select_target(pick, answer), with `chosen` and `answer`


def select_example(question_prompt: str, candidates: list[str], *, seed: int, key: str,
                   chosen: int | None = None, answer: str | None = None) -> SelectExample:
    """The self-select prompt over `candidates` shuffled by (seed, key); with `chosen` and `answer`, also the
    training target (the chosen candidate's shown number and its final answer)."""
    if len(candidates) < 2:
        raise ValueError(f"self-select {key}: needs at least 2 candidates, got {len(candidates)}")
    order = candidate_order(len(candidates), seed=seed, key=key)
    prompt = select_prompt(question_prompt, [candidates[i] for i in order])
    if chosen is None:
        return SelectExample(prompt, tuple(order))
    if not 0 <= chosen < len(candidates):
        raise ValueError(f"self-select {key}: chosen index {chosen} is not one of the {len(candidates)} candidates")
    pick = order.index(chosen) + 1
    return SelectExample(prompt, tuple(order), pick, None if answer is None else select_target(pick, answer))
