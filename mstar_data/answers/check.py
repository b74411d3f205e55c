"""Is an extracted answer right? MathVista's semantics, made strict where its scorer rewards wrong answers.

MathVista normalises the prediction by answer type and then compares strings with the gold answer:
  multi_choice -> the choice text (letter -> choice; anything else -> nearest choice by edit distance)
  integer      -> str(int(float(x)))        float -> str(round(float(x), precision))
  list         -> str(x)                    text  -> unchanged
We keep the comparisons (rounding to `precision` decimals, choice text vs letter) and drop the two places where
that scorer is right by accident: an unreadable multiple-choice answer is wrong (not "nearest choice"), and an
integer answer must be an integer ("3.7" is not 3, where int() would truncate it).
"""

from __future__ import annotations

import math
import re

from mstar_data.answers.choices import gold_index, match_choice, norm_text
from mstar_data.answers.numbers import Number, numbers_in, parse_number

ANSWER_TYPES = ("multi_choice", "integer", "float", "text", "list")
_ALIASES = {
    "multi_choice": "multi_choice", "multiple_choice": "multi_choice", "multichoice": "multi_choice",
    "mc": "multi_choice", "choice": "multi_choice", "mcq": "multi_choice",
    "integer": "integer", "int": "integer",
    "float": "float", "number": "float", "numeric": "float", "decimal": "float", "real": "float",
    "text": "text", "str": "text", "string": "text", "free_form": "text", "open": "text",
    "list": "list", "array": "list",
}
_LATEXISH = re.compile(r"[\\^{}]|sqrt|√|π|\bpi\b|/|\d\s*[-+*]|[-+*]\s*\d")
_ALGEBRA = re.compile(r"^[\s\d+\-*/^().=a-zA-Z]*[-+*/^=][\s\d+\-*/^().=a-zA-Z]*$")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")
_YES_NO = re.compile(r"^\W*(yes|no|true|false)\b", re.I)


def resolve_type(answer_type: str | None, gold: str, choices: list[str] | None) -> str:
    """One of ANSWER_TYPES: the given type when it fits the gold answer, else one inferred from it."""
    t = _ALIASES.get(str(answer_type or "").strip().lower().replace("-", "_").replace(" ", "_"), "")
    if choices and t != "list" and gold_index(gold, choices) is not None:
        return "multi_choice"
    if t == "multi_choice":
        t = ""
    g = gold.strip()
    if t in ("integer", "float") and parse_number(g, allow_unit=False) is None:
        t = "text"  # a LaTeX or worded gold answer: compare it as an expression
    if t:
        return t
    n = parse_number(g, allow_unit=False)
    if n is not None:
        return "integer" if n.value == int(n.value) and n.decimals == 0 and not n.percent else "float"
    if g.startswith("[") and g.endswith("]"):
        return "list"
    return "text"


def is_correct(pred: str | None, gold: str, *, answer_type: str | None = None, choices: list[str] | None = None,
               precision: int | None = None, unit: str | None = None) -> bool:
    """Whether `pred` (an extracted answer; None = no answer) matches `gold`. Never raises on odd input."""
    if pred is None or gold is None:
        return False
    pred, gold = str(pred).strip(), str(gold).strip()
    if not pred or not gold:
        return False
    choices = [str(c) for c in choices] if choices else None
    atype = resolve_type(answer_type, gold, choices)
    precision = _int_or_none(precision)
    if atype == "multi_choice":
        gi = gold_index(gold, choices)
        return gi is not None and match_choice(pred, choices) == gi
    if atype in ("integer", "float"):
        return _numbers_equal(_pred_number(pred), parse_number(gold), atype, precision)
    if atype == "list":
        return _lists_equal(pred, gold, precision)
    return _texts_equal(pred, gold, unit)


def _int_or_none(value) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(float(value))
    except (TypeError, ValueError):
        return None


def _pred_number(pred: str) -> Number | None:
    """The number an extracted answer states: plain, LaTeX, or the single number of a short phrase."""
    n = parse_number(pred)
    if n is not None:
        return n
    if _LATEXISH.search(pred) and len(pred) <= 40 and "\n" not in pred:
        from mstar_data.answers.latex import latex_value

        value = latex_value(pred)
        if value is not None:
            return Number(value, decimals=6)
    nums = numbers_in(pred)
    if nums and len({t for _, _, t in nums}) == 1 and len(pred) <= 60:
        # "Total: 1,000 apples", "x = 5 cm": one number in a short answer is the answer.
        _, end, token = nums[0]
        tail = pred[end:].lstrip()
        return parse_number(token + ("%" if tail.startswith(("%", "\\%", "percent")) else ""))
    if len(pred) > 40 or "\n" in pred:
        # A whole response passed as the prediction: read its final answer first.
        from mstar_data.answers.extract import extract_answer

        inner = extract_answer(pred)
        if inner is not None and inner != pred:
            return _pred_number(inner)
    return None


def _numbers_equal(p: Number | None, g: Number | None, atype: str, precision: int | None) -> bool:
    if p is None or g is None:
        return False
    for gv in g.candidates():
        for pv in p.candidates():
            if atype == "integer" and gv == int(gv):
                # "0.99999…9" (more decimals than a float holds) rounds to 1 in binary but is not an integer.
                if p.decimals > 12:
                    continue
                if abs(pv - round(pv)) <= 1e-9 * max(1.0, abs(pv)) and round(pv) == int(gv):
                    return True
            elif _floats_equal(pv, gv, precision if precision is not None else (g.decimals or None)):
                return True
    return False


def _floats_equal(p: float, g: float, decimals: int | None) -> bool:
    if decimals is not None:
        # MathVista rounds the prediction to `precision` decimals and compares with the gold answer.
        return abs(round(p, decimals) - round(g, decimals)) < 0.5 * 10.0 ** -(decimals + 3)
    return math.isclose(p, g, rel_tol=1e-6, abs_tol=1e-9)


def _split_list(text: str) -> list[str]:
    s = text.strip().strip("$").strip()
    if s[:1] in "[({" and s[-1:] in "])}":
        s = s[1:-1]
    s = re.sub(r"\s+and\s+", ",", s)
    sep = ";" if ";" in s else ","
    return [part.strip().strip("'\"") for part in s.split(sep) if part.strip()]


def _lists_equal(pred: str, gold: str, precision: int | None) -> bool:
    g, p = _split_list(gold), _split_list(pred)
    if g and all(parse_number(x) is not None for x in g) and any(parse_number(x) is None for x in p):
        p = [t for _, _, t in numbers_in(pred)]  # "between 2007 and 2008" states the list [2007, 2008]
    if not g or len(g) != len(p):
        return False
    for gi, pi in zip(g, p):
        gn, pn = parse_number(gi), parse_number(pi)
        if gn is not None and pn is not None:
            if not _numbers_equal(pn, gn, "float", precision):
                return False
        elif not _texts_equal(pi, gi, None):
            return False
    return True


def _strip_unit(text: str, unit: str | None) -> str:
    if unit and text.casefold().endswith(unit.strip().casefold()) and len(text) > len(unit.strip()):
        return text[: -len(unit.strip())].strip()
    return text


def _texts_equal(pred: str, gold: str, unit: str | None) -> bool:
    ng, np_ = norm_text(_strip_unit(gold, unit)), norm_text(_strip_unit(pred, unit))
    if ng == np_ or _ARTICLE.sub("", ng) == _ARTICLE.sub("", np_):
        return bool(ng)
    yn = _YES_NO.match(gold)
    if yn and norm_text(gold) == yn.group(1).lower():
        m = _YES_NO.match(pred)
        return bool(m) and m.group(1).lower() == yn.group(1).lower()
    gn, pn = parse_number(gold), parse_number(pred)
    if gn is not None and pn is not None:
        return _numbers_equal(pn, gn, "float", None)
    if _is_math(gold) and len(pred) <= 120:
        from mstar_data.answers.latex import latex_equal

        return latex_equal(gold, pred)
    return False


def _is_math(text: str) -> bool:
    """A gold answer worth a symbolic comparison: LaTeX, numbers with operators, or "x^2 + 1"-style algebra.

    Words are not: to sympy "top-dog" and "top-god" are the same product of letters.
    """
    if _LATEXISH.search(text):
        return True
    return bool(_ALGEBRA.match(text)) and all(len(w) == 1 for w in re.findall(r"[A-Za-z]+", text))
