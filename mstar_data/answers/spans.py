"""Cleaning an answer span: markdown, LaTeX wrappers, boxes, trailing reasons; and spotting refusals."""

from __future__ import annotations

import re

BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
BOXED_BARE = re.compile(r"\\boxed\s+([^\s$]+)")
# A sentence ends at a newline, a full stop that is neither a decimal point nor "B." (an option letter), a
# semicolon, or a clause that gives a reason ("5, because ...").
SENTENCE_END = re.compile(r"\n|(?<!\b[A-Za-z])\.(?=\s|$)|;\s|,\s+(?:because|since|as|which|so|but|where|given)\b"
                          r"|\s+(?:because|since)\s|。|，(?!\d)")
FILLER = re.compile(r"^(?:[:：]\s*|[-–]\s+|therefore\b[,]?\s*|thus\b[,]?\s*|then\b\s*|clearly\b\s*|simply\b\s*|"
                    r"actually\b\s*|indeed\b\s*|that\s+(?=[\d(]))+", re.I)
REFUSAL = re.compile(
    r"\b(?:n/?a|cannot|can\s*not|can't|unable|impossible|not\s+(?:possible|able|enough|clear|sure|determinable|"
    r"visible|provided|given|specified|known|answerable|determined)|insufficient|undetermined|indeterminate|"
    r"unknown|unclear|i'?m\s+sorry|sorry|no\s+(?:answer|information|data|image|solution)|"
    r"(?:does|do)\s+not\s+(?:provide|show|contain|have\s+enough\s+(?:information|data|context|detail))|none|"
    r"(?:would\s+)?need\s+more\s+(?:information|context|data|details?)|"
    r"not\s+(?:in|among|one\s+of)\s+the\s+(?:options|choices|given)|"
    r"mistake\s+in\s+the\s+(?:problem|question|options))\b",
    re.I)
_ZH_VERDICT = re.compile(r"\s*(?:是|为)\s*(?:正确|对)的?(?:答案|选项)?\s*$")
MARKDOWN = re.compile(r"\*\*|__|`+")
TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|operatorname)\s*\{([^{}]*)\}")
CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.S)


def boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{…}` (nested braces allowed), else of a bare `\\boxed 5`."""
    starts = [m.end() for m in BOXED.finditer(text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start:i - 1].strip()
    m = None
    for m in BOXED_BARE.finditer(text):
        pass
    return m.group(1) if m else None


def clean_span(span: str) -> str:
    """The answer itself: "**$x = \\frac{1}{2}$**, since ..." -> "\\frac{1}{2}"."""
    s = MARKDOWN.sub("", span).strip()
    inner = boxed(s)
    if inner is not None and len(inner) >= len(s) - 12:
        s = inner
    for _ in range(2):
        s = TEXT_CMD.sub(r"\1", s)
    s = s.strip()
    if s.startswith("$") and s.endswith("$") and len(s) > 1:
        s = s.strip("$").strip()
    for a, b in (("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(a) and s.endswith(b):
            s = s[2:-2].strip()
    s = FILLER.sub("", s)
    end = SENTENCE_END.search(s)
    if end and end.start() > 0:
        s = s[:end.start()]
    for rel in ("\\approx", "≈", "="):
        if rel in s and not s.startswith(("(", "[")):
            rhs = s.rsplit(rel, 1)[1].strip()
            if rhs:
                s = rhs
            break
    s = _ZH_VERDICT.sub("", s)  # "B是正确答案": the letter, without "is the right answer"
    return s.strip().strip(".,;!:。，").strip().strip("\"'“”").strip()


def split_sentences(text: str) -> list[str]:
    return [p for p in re.split(r"(?<=[.!?])\s+|\n+", text) if p.strip()]
