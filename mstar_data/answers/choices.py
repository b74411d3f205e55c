"""Which choice of a multiple-choice question an answer names: an option letter, the choice text, or a value.

MathVista's scorer maps a letter to its choice and anything else to the nearest choice by edit distance, so an
unreadable answer still lands on some choice and is right by chance (1 in 4 for four choices). We map only
what names one choice unambiguously, and leave the rest unmatched (= wrong).
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from functools import lru_cache

from mstar_data.answers.numbers import parse_number

# "B", "(B)", "B.", "B)", "[B]", "{B}", "**B**", "Option B", "choice (B)", "B: text", "(B) text", "B. text".
_LETTER_ONLY = re.compile(r"^(?:(?:the\s+)?(?:correct\s+)?(?:option|choice|answer|letter)\s*(?:is\s*)?[:\-]?\s*)?"
                          r"[(\[{]?\s*([A-Za-z])\s*[)\]}]?[.:)]?$", re.I)
_LETTER_TEXT = re.compile(r"^(?:(?:the\s+)?(?:correct\s+)?(?:option|choice)\s*(?:is\s*)?[:\-]?\s*)?"
                          r"(?:\(\s*([A-Za-z])\s*\)|\[([A-Za-z])\]|([A-Z])\s*[.:)](?!\d))\s*(.+)$", re.S)
_OPTION_WORD = re.compile(r"^(?:the\s+)?(?:correct\s+)?(?:option|choice)\s*[:\-]?\s*\(?([A-Za-z])\)?\b(.*)$",
                          re.I | re.S)
# "C (5)", "A (Yes)": a bare capital followed by its text in brackets, as GPT-4 states its choice.
_LETTER_PAREN = re.compile(r"^([A-Z])\s*\((.+)\)$", re.S)
_OPTION_MARK = re.compile(r"(?<![A-Za-z])\(([A-Za-z])\)(?![A-Za-z])")
_NUMBER_TOKEN = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
_WORD_HYPHEN = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")
_PUNCT = re.compile(r"[\s\"'`*_.,;:!?()\[\]{}$\\]+")


def letters(n: int) -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:n]


@lru_cache(maxsize=65536)
def norm_text(text: str) -> str:
    """Case, whitespace and punctuation folded away: 'Quarter past.' == 'quarter  past'."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("\\text", "").replace("\\mathrm", "").replace("\\%", "%").replace("^\\circ", "°")
    text = _WORD_HYPHEN.sub(" ", text)  # "dark-blue" == "dark blue", but "-3" stays negative
    return _PUNCT.sub(" ", text).strip()


def letter_of(answer: str, n_choices: int, *, lenient_case: bool = True) -> int | None:
    """The option index a letter form names ("C", "(C)", "C.", "option C", "(C) 145°"), else None."""
    found = letter_and_text(answer, n_choices, lenient_case=lenient_case)
    return found[0] if found else None


def letter_and_text(answer: str, n_choices: int, *, lenient_case: bool = True) -> tuple[int, str, str] | None:
    """(index, the text after the letter, the letter as written) for a letter form in range, else None."""
    s = answer.strip().strip("*`").strip()
    m = _LETTER_ONLY.match(s)
    if m:
        ch, rest, written = m.group(1), "", m.group(0)
        if ch.islower() and not lenient_case:
            return None
    else:
        m = _LETTER_TEXT.match(s) or _LETTER_PAREN.match(s) or _OPTION_WORD.match(s)
        if not m:
            return None
        ch, rest = next(g for g in m.groups()[:-1] if g), m.groups()[-1]
        written = s[:m.start(len(m.groups()))]
    idx = ord(ch.upper()) - ord("A")
    return (idx, rest.strip(), written.strip()) if 0 <= idx < n_choices else None


def _names_exactly(text: str, choices: list[str]) -> int | None:
    """The one choice `text` is, up to case and punctuation or by value ("0.8" for "4/5"), else None."""
    t = text.strip().rstrip(".").strip()
    if not t:
        return None
    nt = norm_text(t)
    hits = [i for i, c in enumerate(choices) if norm_text(c) == nt]
    if not hits:
        n = parse_number(t)
        vt = n.value if n is not None else None
        if vt is not None:
            tol = 1e-6 * max(1.0, abs(vt))
            hits = [i for i, c in enumerate(choices) if (vc := _value(c)) is not None and abs(vc - vt) <= tol]
    return hits[0] if len(hits) == 1 else None


def _letter_choice(a: str, choices: list[str]) -> int | None:
    """The choice a letter form names, checked against the text written after it.

    The letter binds ("(D) 140°" is D even when D is 20°), except where the text is itself another choice:
    "(B) 2.2" with B = 2 and C = 2.2 names two options and commits to neither (a prompt that listed the
    choices in another order gives exactly this), and "A: no" is an answer prefix, not option A.
    """
    found = letter_and_text(a, len(choices))
    if found is None:
        return None
    idx, rest, written = found
    if not rest:
        return idx
    if any(ord(x.upper()) - 65 != idx for x in _OPTION_MARK.findall(rest)):
        return -1  # "(a) 2, (b) 4, or (d) 8": a list of options, not a choice
    other = _names_exactly(rest, choices)
    if other is None or other == idx:
        return idx
    return other if written == "A:" else -1


def _value(text: str) -> float | None:
    n = parse_number(text)
    if n is not None:
        return n.value
    if "\\" in text or "√" in text or "π" in text:
        from mstar_data.answers.latex import latex_value

        return latex_value(text)
    return None


def match_choice(answer: str | None, choices: list[str], *, fuzzy: bool = True) -> int | None:
    """Index of the choice `answer` names, or None when it names none (or several) of them.

    In order: the exact choice text; an option letter (the letter wins over text that follows it, as in
    MathVista); the text up to case, spacing and punctuation; the same number ("145" for "145°",
    "0.5" for "\\frac{1}{2}"); one choice contained in the answer as whole words; and, with `fuzzy`, a single
    clearly closest spelling (similarity >= 0.85).
    """
    if answer is None or not choices:
        return None
    a = answer.strip()
    if not a:
        return None
    if a in choices and not (len(a) == 1 and a.isalpha() and choices.index(a) != ord(a.upper()) - 65):
        return choices.index(a)
    idx = _letter_choice(a, choices)
    if idx is not None:
        return None if idx < 0 else idx
    na = norm_text(a)
    if not na:
        return None
    normed = [norm_text(c) for c in choices]
    hits = [i for i, c in enumerate(normed) if c == na]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        return None
    va = _value(a)
    if va is not None:
        tol = 1e-6 * max(1.0, abs(va))
        hits = [i for i, c in enumerate(choices) if (vc := _value(c)) is not None and abs(vc - va) <= tol]
        if len(hits) == 1:
            return hits[0]
        if hits or any(_value(c) is not None for c in choices):
            return None  # a number among numeric choices matches by value or not at all
    words = f" {na} "
    if va is None and len(set(_NUMBER_TOKEN.findall(a))) > 1 and any(_value(c) is not None for c in choices):
        return None  # "7 + 9 + 12 = 28" names no one of the numeric choices 7, 9, 12, 15
    contained = [i for i, c in enumerate(normed) if len(c) >= 2 and f" {c} " in words]
    if contained and len(na.split()) <= 12:
        best = max(contained, key=lambda i: len(normed[i]))
        if all(normed[i] in normed[best] for i in contained):
            return best
        return None
    if len(na) >= 3:
        inside = [i for i, c in enumerate(normed) if f" {na} " in f" {c} "]
        if len(inside) == 1:
            return inside[0]
    if fuzzy:
        scores = sorted(((SequenceMatcher(None, na, c).ratio(), i) for i, c in enumerate(normed)), reverse=True)
        if scores[0][0] >= 0.85 and (len(scores) == 1 or scores[0][0] - scores[1][0] >= 0.1):
            return scores[0][1]
    return None


def gold_index(gold: str, choices: list[str]) -> int | None:
    """Index of the gold choice: its text (as stored in `queries`), or a letter such as "C" or "(C)"."""
    g = gold.strip()
    if g in choices:
        return choices.index(g)
    ng = norm_text(g)
    hits = [i for i, c in enumerate(choices) if norm_text(c) == ng]
    if len(hits) == 1:
        return hits[0]
    idx = letter_of(g, len(choices), lenient_case=False)
    if idx is not None:
        return idx
    return match_choice(g, choices, fuzzy=False)


_STOP = frozenset("a an the of to in on at by for with and or be is are was were will would it its their this that "
                  "also as all some more most".split())
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|cannot|unlikely)\b|n't\b", re.I)
_PREMISE = re.compile(r"^\s*(?:(?:based\s+on|according\s+to|in)\s[^,]*,\s*)?"
                      r"(?:(?:if|when|as|since|because|assuming|once|after)\b[^,]*,\s*)?", re.I)
_WORD = re.compile(r"[a-z]+")
_REASON = re.compile(r",\s+(?:as|because|since|which|so\s+that|due\s+to)\b|\s+because\s", re.I)


def _stem(word: str) -> str:
    # Enough to let "decreases", "decreased", "decreasing" and "decrease" meet, and "grasshoppers" meet
    # "grasshopper"; not a linguist's stemmer.
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=65536)
def _content(text: str) -> frozenset[str]:
    """A choice's content words; a closing letter stays ("Solution A" is not just "solution")."""
    words = _WORD.findall(norm_text(text))
    return frozenset(_stem(w) for k, w in enumerate(words)
                     if w not in _STOP or (len(w) == 1 and k == len(words) - 1 and k > 0))


def paraphrased_choice(sentence: str, choices: list[str]) -> int | None:
    """The one word choice whose content words all occur in `sentence`, in any order and word form.

    "the lion population would also decrease" names "Population will decrease". A leading premise ("If the
    gum trees die, ...") restates the question and is skipped. Nothing is read from a question, a negated
    sentence, or a sentence that names two choices (unless one choice's words contain the other's), and
    yes/no, letters and numbers are left to the other rules.
    """
    s = sentence.strip()
    if s.endswith("?"):
        return None
    s = _REASON.split(s, maxsplit=1)[0]  # "..., as the eggs would not hatch": the reason is not the claim
    if not s or _NEGATION.search(s):
        return None
    words = {_stem(w) for w in _WORD.findall(norm_text(_PREMISE.sub("", s)))}
    if not words:
        return None
    hits = []
    for i, c in enumerate(choices):
        need = _content(c)
        if not need or any(ch.isdigit() for ch in c) or need <= {"yes", "no", "true", "false"} or len(c) < 2:
            continue
        if need <= words and not _before_number(norm_text(c).split()[-1], s):
            hits.append(i)
    if not hits:
        return None
    best = max(hits, key=lambda i: len(_content(choices[i])))
    return best if all(_content(choices[i]) <= _content(choices[best]) for i in hits) else None


def _before_number(word: str, sentence: str) -> bool:
    """Whether `word` leads into a number ("which is equal to 3"): a value stated, not a choice named."""
    return re.search(rf"\b{re.escape(word)}\w*\s+[-+$]?\d", sentence, re.I) is not None
