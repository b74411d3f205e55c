"""How the PRM reads a response: '+'/'-' token logits at the step separators (Math-Shepherd style).

The PRM is an ordinary VLM of the policy's family. The response is fed as its steps, each followed by the
step separator (a blank line, as the policy writes them), and the PRM's score for a step is P('+') of the
two-way softmax over the '+' and '-' token logits at that separator's last token:

    [chat prompt + image] red: 2.\n\n|blue: 3.\n\n|2 + 3 = 5.\n\n|# Answer\n\n5\n\n|     (| = a score)

Why token logits and not a scalar head: the PRM stays a stock `AutoModelForImageTextToText` checkpoint (the
same loader, checkpoint format and families as the policy, servable by any engine that returns logprobs);
it starts from the policy's trained LM head, so only two rows of it matter; and it is the layout
Math-Shepherd and TRL's PRMTrainer use (a step tag, then '+'/'-'), so data and PRMs move between us and
them. A scalar head would need a custom model class per family and custom loading code.

The separator is the tag: Math-Shepherd's special " ки" tag scored no better on the embedded task (held-out
step AUC 0.66 both ways) and costs five byte tokens per step in a small vocabulary. Steps and separators are
tokenised piece by piece, so the scored positions are exact (no BPE merge across a boundary).
"""

from __future__ import annotations

from dataclasses import dataclass

STEP_TAG = "\n\n"  # follows every step, the last one included; its last token is where the step is scored
POSITIVE, NEGATIVE = "+", "-"


@dataclass
class PRMExample:
    prompt: str
    image: bytes
    steps: list[str]
    labels: list[float] | None = None  # per step, in [0, 1]: hard labels are 0/1, soft ones the MC fraction


def single_token(tok, text: str) -> int:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        from mstar_data.errors import MstarError

        raise MstarError(f"the PRM needs '{text}' to be one token; this tokenizer makes it {len(ids)}")
    return ids[0]


def step_token_ids(tok, steps: list[str]) -> tuple[list[int], list[int]]:
    """(completion ids, index of each step's tag-end token within them)."""
    tag = tok(STEP_TAG, add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    positions: list[int] = []
    for step_ids in tok(steps, add_special_tokens=False)["input_ids"] if steps else []:  # one batched call
        ids += step_ids + tag
        positions.append(len(ids) - 1)
    return ids, positions


def step_logits(policy, examples: list[PRMExample], cache=None):
    """[sum of steps, 2] logits ('+', '-') at every step tag of every example, in order."""
    import torch

    from mstar_data.models.batches import SFTExample, sft_batch
    from mstar_data.train.fsdp import is_sharded

    tok = policy.tokenizer
    built = [step_token_ids(tok, e.steps) for e in examples]
    batch = sft_batch(policy, [SFTExample(e.prompt, e.image, "", ids) for e, (ids, _) in zip(examples, built)], cache)
    n_prompt = batch["input_ids"].shape[1] - max(len(ids) for ids, _ in built)
    batch.pop("labels")
    rows = torch.tensor([r for r, (_, pos) in enumerate(built) for _ in pos], device=policy.device)
    cols = torch.tensor([n_prompt + p for _, pos in built for p in pos], device=policy.device)
    model = policy.model
    head = model.get_output_embeddings()
    pick = torch.tensor([single_token(tok, POSITIVE), single_token(tok, NEGATIVE)], device=policy.device)
    if is_sharded(model):  # one forward through the root, which gathers the weights of each unit (FSDP)
        keep = torch.unique(cols)
        logits = model(**batch, use_cache=False, logits_to_keep=keep).logits
        return logits[rows, torch.searchsorted(keep, cols)][:, pick].float()
    body = getattr(model, "model", None)
    if body is not None:  # the decoder's hidden states, and the LM head on the tag positions only
        hidden = body(**batch, use_cache=False).last_hidden_state[rows, cols]
        logits = hidden @ head.weight[pick].T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[pick]
        return logits.float()
    return model(**batch, use_cache=False).logits[rows, cols][:, pick].float()


def step_scores(policy, examples: list[PRMExample], cache=None) -> list[list[float]]:
    """P('+') per step, per example."""
    import torch

    with torch.no_grad():
        p = torch.softmax(step_logits(policy, examples, cache), -1)[:, 0].tolist()
    out, i = [], 0
    for e in examples:
        out.append(p[i:i + len(e.steps)])
        i += len(e.steps)
    return out


AGGREGATES = ("min", "mean", "last")


def aggregate(scores: list[float], how: str = "min") -> float | None:
    """A response's score from its step scores: the weakest step (default), the mean, or the last."""
    if not scores:
        return None
    if how == "min":
        return min(scores)
    if how == "mean":
        return sum(scores) / len(scores)
    if how == "last":
        return scores[-1]
    raise ValueError(f"aggregate '{how}': expected one of {', '.join(AGGREGATES)}")
