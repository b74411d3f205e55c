"""The final answer of a free-form response, found the way a careful reader finds it.

In order, the first that applies:
  1. an `<answer>…</answer>` tag (R1-style), read recursively (it may hold "\\boxed{3}" or "The answer is C");
  2. a "# Answer" header (the M-STAR CoT format), the paragraph after it;
  3. the last `\\boxed{…}` (nested braces allowed);
  4. the last answer phrase: "the answer is …", "Answer: …", "final answer …", "the correct option is …";
  5. for multiple choice, an option letter ("(B)", "B.", "B)", "option B", "B: text") or a choice's text, read
     from the concluding sentence rather than from wherever a letter last appears;
  6. a short final line, a leading yes/no, a single bold value, or the last number.
Text after `</think>` is the answer part; a made-up next turn ("\n\nQuestion: ...") is cut off first.
A span that says the question cannot be answered ("N/A", "cannot be determined") gives None: a refusal is
never right by chance.
"""

from __future__ import annotations

import re

from mstar_data.answers.choices import letter_and_text, match_choice, norm_text, paraphrased_choice
from mstar_data.answers.numbers import clean_minus
from mstar_data.answers.prose import bare_option, choice_from_text, fallback_span, list_span, without_option_lists
from mstar_data.answers.spans import FILLER, REFUSAL, SENTENCE_END, boxed, clean_span

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_ANSWER_OPEN = re.compile(r"<answer>(.*)$", re.S | re.I)
_HEADER = re.compile(r"^[ \t]*#{1,6}[ \t]*(?:final[ \t]+)?answer\b[ \t]*[:：]?[ \t]*(.*)$", re.I | re.M)
_PHRASE = re.compile(
    r"(?:\b(?:the\s+)?(?:final\s+|correct\s+|right\s+|best\s+|most\s+(?:likely|appropriate)\s+)?"
    r"(?:answer|ans)\b(?:\s+(?:to|for)\s+(?:the|this|your|that)\s+(?:question|problem))?"
    r"|\b(?:correct|right|best|final|closest|nearest)\s+(?:option|choice)(?:\s+letter)?\b|\boption\s+letter\b"
    r"|\b(?:I|we)\s+(?:would\s+|will\s+)?(?:choose|select|pick|go\s+with)\b"
    r"|答案|选项|(?:故|应|所以|因此)选(?!项))"
    r"\s*(?:(?:is|would\s+be|should\s+be|will\s+be|must\s+be|is\s+therefore|therefore\s+is|is\s+thus|=|为|是)"
    r"\s*(?:[:：]|-(?=\s))?|[:：]|\s-\s|(?<=choose)|(?<=select)|(?<=pick)|(?<=with)|(?<=选)"
    r"|(?<=选项)(?=\s*\(?[A-Z]\)?\s*(?:是|为)?\s*正确))",
    re.I)
_NOT_ANSWER = re.compile(r"^(?:as\s+follows|below|the\s+following|given\s+by|calculated|determined|found|shown|"
                         r"obtained|explained|based\s+on|in\s+the\s+(?:image|figure)|to\s+\w+)\b", re.I)
_SPECIAL_TOKENS = re.compile(r"</s>|<s>|<\|(?:im_end|im_start|endoftext|eot_id|end|assistant)\|>|<end_of_turn>|<eos>")
_CONDITIONAL = re.compile(r"\b(?:if|unless|otherwise|were\s+to|suppose|assuming)\b", re.I)
_NEW_TURN = re.compile(r"\n\s*(?:Question|Hint|Human|User|USER|Q|###\s*(?:Instruction|Human|User))\s*:")
_MAX_SPAN = 200
_FULLWIDTH = str.maketrans({"（": "(", "）": ")", "：": ":", "［": "[", "］": "]"})
# "(C) yes (D) no": a span that names two options commits to neither.
_TWO_OPTIONS = re.compile(r"\(([A-Z])\)[^()]*?\(((?!\1)[A-Z])\)")
_LEADING_YES_NO = re.compile(r"^(?:definitely\s+|clearly\s+)?(yes|no)\b(?!\s+(?:one|more|less|other|longer))", re.I)


def extract_answer(response: str | None, choices: list[str] | None = None, *,
                   answer_type: str | None = None) -> str | None:
    """The final answer in `response`; with `choices`, the choice text it names where it names one.

    `answer_type` (optional) refines the unmarked fallback: "list" reads a list where the response states one
    without an answer phrase ("the peak is between 2007 and 2008" -> "[2007, 2008]"), as MathVista's extractor
    does; "integer"/"float" skip the leading-Yes/No rule ("No, there are 3 left" -> "3").
    """
    if not response or not response.strip():
        return None
    text = clean_minus(_own_text(response))
    if not text.isascii():
        text = text.translate(_FULLWIDTH)
    choices = list(choices) if choices else None
    span = _explicit_span(text)
    if span is not None and choices and not _ANSWER_TAG.search(text) and boxed(text) == span:
        # "The correct answer is (B)." then a computed \boxed{50}: the stated option binds.
        stated = _phrase_span(text)
        if stated and letter_and_text(clean_span(stated), len(choices)) and not letter_and_text(span, len(choices)):
            span = stated
    if span is not None:
        return _finalize(span, choices)
    if choices:
        # A response that only repeats the options ("(C) yes\n(D) no") commits to none of them.
        text = without_option_lists(text, choices)
        if not text.strip():
            return None
    found = choice_from_text(text, choices) if choices else None
    if found is not None:
        return found
    span = list_span(text) if answer_type == "list" else None
    span = span or fallback_span(text, numeric=answer_type in ("integer", "float", "list"))
    return None if span is None else _finalize(span, choices)


def _own_text(response: str) -> str:
    """The model's own answer: after `</think>` when there is one, and before any new turn it hallucinates.

    Weak models run on past their answer into a made-up next prompt ("The answer is (C) 5.\n\nQuestion: ...
    Choices: (A) 3 ..."); an answer phrase in that tail is not theirs.
    """
    response = _SPECIAL_TOKENS.sub("", response)
    head, sep, tail = response.rpartition("</think>")
    text = tail if sep and tail.strip() else response.replace("<think>", "").replace("</think>", "")
    turn = _NEW_TURN.search(text)
    if turn and text[:turn.start()].strip():
        text = text[:turn.start()]
    return text


def _explicit_span(text: str) -> str | None:
    """The text an explicit marker (tag, header, box, phrase) calls the answer; '' when it marks an empty one."""
    tags = _ANSWER_TAG.findall(text)
    if tags or _ANSWER_OPEN.search(text):
        inner = tags[-1] if tags else _ANSWER_OPEN.search(text).group(1)
        inner = inner.strip()
        if not inner:
            return ""
        nested = _explicit_span(inner)
        return nested if nested else inner
    headers = list(_HEADER.finditer(text))
    if headers:
        h = headers[-1]
        rest = (h.group(1) + text[h.end():]).strip()
        first = re.split(r"\n\s*\n", rest, maxsplit=1)[0].strip()
        if not first:
            return ""
        nested = boxed(first) or _phrase_span(first)
        return nested if nested else first
    return boxed(text) or _phrase_span(text)


def _phrase_span(text: str) -> str | None:
    """The answer after the last answer phrase whose span reads as an answer.

    A phrase inside a conditional ("If it asked for the area, the answer would be (B)") gives way to an
    earlier unconditional one.
    """
    conditional = []
    for m in reversed(list(_PHRASE.finditer(text))):
        span = _span_after(text, m.end())
        if span is None:
            continue
        start = max(text.rfind(". ", 0, m.start()), text.rfind("\n", 0, m.start()))
        if _CONDITIONAL.search(text[start + 1:m.start()]):
            conditional.append(span)
            continue
        return span
    if len({norm_text(c) for c in conditional}) > 1:
        return ""  # "If ..., the answer is (A). If ..., the answer is (B).": a hedge, not an answer
    return conditional[0] if conditional else None


def _span_after(text: str, pos: int) -> str | None:
    """The answer a phrase ending at `pos` introduces, or None when what follows is not an answer."""
    rest = text[pos:]
    line = rest.lstrip(" \t*_")
    head, _, after = line.partition("\n")
    if not head.strip(" *_:") or (head.rstrip(" *_").endswith(":") and len(head) < 80):
        # "The answer is:\n\n(C) 120", "the answer is a list with these elements:\n```\n[2010, 2012]\n```"
        line = after.replace("```python", "").replace("```", "").lstrip()
    end = SENTENCE_END.search(line)
    span = FILLER.sub("", (line[:end.start()] if end else line).strip(" \t*_"))
    inner = boxed(span)
    if inner:
        return inner
    span = span.strip(" .*_\"'")
    if not any(ch.isalnum() for ch in span) or (_NOT_ANSWER.match(span) and not REFUSAL.search(span)):
        return None
    return span


def _finalize(span: str, choices: list[str] | None) -> str | None:
    s = clean_span(span)
    if _TWO_OPTIONS.search(s) and not (choices and s in choices):
        return None
    refused = not s or bool(REFUSAL.search(s)) or s.casefold() in ("none", "n/a", "na", "null", "unknown")
    if choices:
        # A refusal may still name a choice exactly ("(D) None of the above"), but never by resemblance.
        if refused:
            idx = bare_option(s, choices)
            if idx is None:
                hits = [i for i, c in enumerate(choices) if norm_text(c) == norm_text(s)]
                idx = hits[0] if len(hits) == 1 else None
        else:
            idx = match_choice(s, choices)
            if idx is None:
                idx = _yes_no_choice(s, choices)
            if idx is None and len(s.split()) >= 3 and letter_and_text(s, len(choices)) is None:
                idx = paraphrased_choice(s, choices)
        if idx is not None:
            return choices[idx]
    return None if refused else s[:_MAX_SPAN]


def _yes_no_choice(span: str, choices: list[str]) -> int | None:
    """ "no, there are not fewer trucks ...": the leading Yes/No of a span, where Yes/No is a choice."""
    m = _LEADING_YES_NO.match(span)
    if not m:
        return None
    normed = [norm_text(c) for c in choices]
    word = m.group(1).lower()
    return normed.index(word) if word in normed else None
