"""The one rollout path: a plan of rollouts to make -> engine requests -> completions -> rollout rows.

Every rollout the toolkit stores is made here, whatever asked for it (`mstar generate`, the loop's explore,
val and temperature-sweep stages, Monte-Carlo step labelling; later eval and GRPO):
- a `Planned` rollout knows its id, query, sample index, seed and (for MC continuations) the assistant prefix
  it continues; ids and seeds are pure functions of its position, so a rerun plans the same rollouts;
- `request()` turns it into a `SampleRequest` for any engine;
- `row()` turns the completion into the stored row: the response, its steps, ONE judge call (correctness and
  the extracted answer), the format check, where the task has a step checker whether each step is true
  (`steps_valid`), the sampled `token_ids` and `token_logprobs` as the engine gave
  them (which distribution each engine's log-probs come from: docs/sampling.md), and what an audit of its
  reproducibility needs: `engine`, `dtype`, `deterministic` and `batch_key`.
The executor (mstar_data/exec) decides batching, flushing and where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional

from mstar_data.answers import judge, mstar_format_ok, r1_format_ok
from mstar_data.prompts import build_prompt
from mstar_data.sampling.engine import Completion, SampleRequest
from mstar_data.steps import has_reflection, split_steps
from mstar_data.tasks.checkers import check_steps, query_checker


@dataclass(frozen=True)
class RolloutContext:
    """What every rollout of one job shares (the non-positional columns of its rows)."""

    run: str
    iteration: int
    stage: str
    temperature: float
    max_new_tokens: int
    prompt_variant: str = "cot"
    # More columns from the finished row and its query (GRPO: the rewards and their total).
    score: Optional[Callable[[dict, dict], dict]] = None


@dataclass
class Planned:
    rollout_id: str
    query: dict                      # the query row (mstar_data.inputs.QUERY_COLUMNS)
    sample_idx: int
    seed: int
    prefix: str = ""                 # an assistant-turn prefix to continue (MC step labelling)
    parent_rollout_id: str | None = None
    prefix_steps: int | None = None
    prompt: str | None = None        # the whole user text, when it is not the query's own (eval self-select)


@dataclass
class Plan:
    """The rollouts still to make, how many of the asked-for ones were already stored, and the slice of the
    rollouts table every one of their keys falls in (what a flush compares keys against)."""

    context: RolloutContext
    todo: list[Planned]
    skipped: int
    scope: str

    @property
    def requested(self) -> int:
        return len(self.todo) + self.skipped

    def shard(self, i: int, n: int) -> "Plan":
        """Shard i of n: every n-th rollout from i. The plan's order is deterministic, so a retried shard plans
        the same rollouts (and the store skips those already committed)."""
        return Plan(self.context, self.todo[i::n], 0, self.scope)


def query_prompt(q: dict, variant: str) -> str:
    """The user text a query is asked with under a prompt variant."""
    return build_prompt(q["question"], q["choices"], variant=variant, answer=q["answer"], hint=q.get("hint"),
                        answer_type=q.get("answer_type"), precision=q.get("precision"))


def request(p: Planned, ctx: RolloutContext, image: bytes | None) -> SampleRequest:
    prompt = p.prompt if p.prompt is not None else query_prompt(p.query, ctx.prompt_variant)
    return SampleRequest(p.rollout_id, prompt, image, ctx.temperature, p.seed, ctx.max_new_tokens, prefix=p.prefix)


def row(p: Planned, ctx: RolloutContext, c: Completion, policy_tag: str) -> dict:
    q = p.query
    text = p.prefix + c.text
    steps = split_steps(text)
    verdict = judge(text, q["answer"], answer_type=q["answer_type"], choices=q["choices"], precision=q["precision"],
                    unit=q["unit"])
    out = {
        "rollout_id": p.rollout_id, "run_id": ctx.run, "iteration": ctx.iteration, "stage": ctx.stage,
        "query_id": q["query_id"], "sample_idx": p.sample_idx, "temperature": ctx.temperature, "seed": p.seed,
        "policy": policy_tag, "prompt_variant": ctx.prompt_variant, "response": text, "steps": steps,
        "n_tokens": c.n_tokens, "finish_reason": c.finish_reason, "pred_answer": verdict.pred_answer,
        "correct": verdict.correct,
        "format_ok": r1_format_ok(text) if ctx.prompt_variant == "r1" else mstar_format_ok(text),
        "reflection": has_reflection(text), "parent_rollout_id": p.parent_rollout_id,
        "prefix_steps": p.prefix_steps, "token_ids": list(c.token_ids) or None,
        "token_logprobs": list(c.token_logprobs) or None, "created_at": datetime.now(timezone.utc),
        "steps_valid": check_steps(query_checker(q), q.get("question") or "", steps),  # None: the task has no checker
        # What reproducing it needs besides the seed (docs/sampling.md, "What reproduces where").
        "engine": c.engine, "dtype": c.dtype, "deterministic": c.deterministic, "batch_key": c.batch_key,
    }
    if ctx.score is not None:
        out.update(ctx.score(out, q))
    return out
