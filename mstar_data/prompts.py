"""Prompt text for each stage. The chat template and the image placeholder are the model family's job
(models/chat.py); this module only decides the words.

Variants (stored in `rollouts.prompt_variant`):
- `cot`: the question and its options, and an instruction to reason in steps and end with '# Answer'.
- `warmup`: the same plus the gold answer, so the base model writes a rationale that reaches it (M-STAR
  warm-up); responses still have to be checked, since a model can ignore the hint.
- `r1`: the R1-Zero format, <think>...</think><answer>...</answer>.
- `benchmark`: the dataset's own instruction when it has one (MathVista's `query`: "Hint: Please answer the
  question requiring a floating-point number with two decimal places ..."), so answers come in the format the
  benchmark scores; else the question with a format line from its answer type and precision. Either way it
  ends with the '# Answer' instruction, so steps still split and the answer is still extracted.
- `question` (not for sampling): the question and its options alone, which is what a PRM reads before the
  steps it scores (prm/format.py); the instruction to the policy would only add tokens.
"""

from __future__ import annotations

COT_INSTRUCTION = ("Solve it step by step. Put a blank line between steps, and end with '# Answer' "
                   "followed by the answer.")
R1_INSTRUCTION = "Think inside <think></think>, then give the final answer inside <answer></answer>."
VARIANTS = ("cot", "warmup", "r1")  # the tiny model's tokenizer corpus cycles through these: keep them fixed
BENCHMARK = "benchmark"
ALL_VARIANTS = VARIANTS + (BENCHMARK,)


def _options(question: str, choices: list[str] | None) -> str:
    if not choices or "(A)" in question or "A." in question.split("\n")[-1]:
        return ""
    return "\nChoices:\n" + "\n".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(choices))


def answer_format(answer_type: str | None, precision: int | None) -> str:
    """The answer format a benchmark asks for, from the query's answer type and precision."""
    if answer_type == "multi_choice":
        return "Answer with the option's letter."
    if answer_type == "integer":
        return "The answer is an integer."
    if answer_type == "float" and precision is not None:
        return (f"The answer is a number with {precision} decimal place{'' if precision == 1 else 's'}."
                if precision else "The answer is an integer.")
    if answer_type == "list":
        return "The answer is a Python list."
    return ""


def build_prompt(question: str, choices: list[str] | None = None, *, variant: str = "cot",
                 answer: str | None = None, hint: str | None = None, answer_type: str | None = None,
                 precision: int | None = None) -> str:
    """`hint`, `answer_type` and `precision` are read by the benchmark variant only."""
    body = question.strip() + _options(question, choices)
    if variant == "question":
        return body
    if variant == "cot":
        return f"{body}\n{COT_INSTRUCTION}"
    if variant == "warmup":
        if answer is None:
            raise ValueError("the warmup prompt needs the gold answer")
        return f"{body}\nThe answer is {answer}. {COT_INSTRUCTION}"
    if variant == "r1":
        return f"{body}\n{R1_INSTRUCTION}"
    if variant == BENCHMARK:
        if hint:
            return f"{hint.strip()}\n{COT_INSTRUCTION}"
        fmt = answer_format(answer_type, precision)
        return f"{body}\n{fmt + ' ' if fmt else ''}{COT_INSTRUCTION}"
    raise ValueError(f"unknown prompt variant '{variant}' (variants: {', '.join(ALL_VARIANTS)})")


# `mstar prm label --labeller judge`: a model is asked whether one step of a solution is correct, seeing the
# image, the question and the steps so far. Its answer must be the one word Yes or No (parse_step_verdict).
STEP_JUDGE_INSTRUCTION = ("Is step {k} correct? Check it against the image and the steps before it. "
                          "Answer with one word: Yes or No.")


def step_judge_prompt(question: str, choices: list[str] | None, steps: list[str]) -> str:
    """The judge's prompt for the last of `steps`."""
    body = question.strip() + _options(question, choices)
    shown = "\n\n".join(f"Step {i}: {s.strip()}" for i, s in enumerate(steps, 1))
    return (f"{body}\n\nA solution, one step per paragraph:\n\n{shown}\n\n"
            f"{STEP_JUDGE_INSTRUCTION.format(k=len(steps))}")


def parse_step_verdict(text: str) -> bool | None:
    """Yes -> True, No -> False (one word, any case, an optional full stop); anything else -> None (unread)."""
    import re

    m = re.fullmatch(r"\s*(yes|no)\s*\.?\s*", text or "", flags=re.IGNORECASE)
    return None if m is None else m.group(1).lower() == "yes"
