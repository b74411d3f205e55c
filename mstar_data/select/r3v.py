"""R3V's reflection examples (Cheng et al., "Vision-Language Models Can Self-Improve Reasoning via Reflection").

sql/trainset_r3v.sql decides WHICH rollouts make each example (seeded, pooled over iterations); this module
decides the WORDS: the self-refine prompt shows a wrong rationale and asks for a judgement and a refinement;
the self-select prompt (select/self_select.py, which `mstar eval --select self-select` asks with too, so what
the policy is trained on is what it is asked) numbers three candidates and asks for the correct final answer.
"""

from __future__ import annotations

from mstar_data.select.self_select import select_prompt, select_target  # noqa: F401 (one wording for both)

REFINE_INSTRUCTION = "Judge the correctness of the model's prediction and refine it."
KINDS = ("cot", "refine", "select")


def refine_prompt(question_prompt: str, wrong: str) -> str:
    return f"{question_prompt}\n\nModel's prediction:\n{wrong.strip()}\n\n{REFINE_INSTRUCTION}"


def example_text(row: dict, question_prompt: str) -> tuple[str, str]:
    """(prompt, target) for one row of sql/trainset_r3v.sql."""
    kind = row["kind"]
    if kind == "cot":
        return question_prompt, row["response"]
    if kind == "refine":
        return refine_prompt(question_prompt, row["context"][0]), row["response"]
    if kind == "select":
        return select_prompt(question_prompt, row["context"]), select_target(row["pick"], row["answer"])
    raise ValueError(f"trainset_r3v row {row.get('query_id')}: unknown kind '{kind}' (kinds: {', '.join(KINDS)})")
