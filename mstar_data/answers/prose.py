"""Answers stated without a marker: an option named in the prose, a short final line, the last number."""

from __future__ import annotations

import re

from mstar_data.answers.choices import letter_of, match_choice, norm_text, paraphrased_choice
from mstar_data.answers.numbers import numbers_in, parse_number, word_numbers_in
from mstar_data.answers.spans import CODE_BLOCK, MARKDOWN, REFUSAL, clean_span, split_sentences

_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
# "(B)" or "option B" in running text; a bare capital letter is too often a point or a word ("A bird").
_LETTER_MENTION = re.compile(r"(?<![A-Za-z])\(([A-Z])\)(?![A-Za-z])"
                             r"|\b(?i:option|choice)\s*:?\s*\(?([A-Z])\)?(?![A-Za-z])")
_CONCLUSIVE = re.compile(r"\b(?:therefore|thus|hence|so|in\s+conclusion|overall|answer|correct|final|choose|select)\b",
                         re.I)
_HEDGE = re.compile(r"\b(?:if|would\s+be|incorrect|not|wrong|eliminate|rule\s+out)\b", re.I)
_BOLD = re.compile(r"\*\*([^*\n]{1,40})\*\*")
_YES_NO = re.compile(r"^\W*(yes|no)\b", re.I)
# An option as a list line: "(C) yes", "C. yes", "C) yes", "[C] yes"; a line that names two ("(A) 2, (B) 4").
_OPTION_LINE = re.compile(r"^\W{0,3}(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z])[.:)])\s*(.*)$")
_OPTION_MARK = re.compile(r"(?<![A-Za-z])\(([A-Za-z])\)(?![A-Za-z])")
_LIST_HEADER = re.compile(r"^\W*(?:choices|options|answer\s+choices)\s*:?\s*$", re.I)
# Numbers a sentence compares against or sets aside are not its answer: "2 bars smaller than 0",
# "3 more (7 in all)".
_REFERENCE = re.compile(r"\b(?:than|than\s+or\s+equal\s+to|over|under|below|above|exceeding|at\s+least|at\s+most)\s*$",
                        re.I)
_ONE_AS_PRONOUN = re.compile(r"(?:\b(?:the|this|that|each|which|any|every|no|a|another|smallest|largest|"
                             r"lowest|highest|only|with|least|most|[a-z]+est|[a-z]+er)\s+$|[,;]\s*$|^\s*$)", re.I)
_COPULA_END = re.compile(r"\b(?:is|are|was|were|be)\s+(?:the\s+|a\s+|an\s+)?$")
_NEGATION_WORD = re.compile(r"\b(?:not|no|never|neither|nor)\b|n't\b", re.I)
_NONE_LEFT = re.compile(r"\bthere\s+(?:are|is|were|was|will\s+be)\s+(no)\b", re.I)
_PLEASANTRY = re.compile(r"^\W*(?:i\s+)?(?:hope\s+(?:this|that|it)\s+helps|let\s+me\s+know|feel\s+free|good\s+luck|"
                         r"thanks?\b|thank\s+you|have\s+a\s+(?:nice|great|good)|is\s+there\s+anything|"
                         r"do\s+you\s+have\s+(?:any\s+)?other)", re.I)


def choice_from_text(text: str, choices: list[str]) -> str | None:
    """An option named without an answer phrase: a bare letter, a concluding mention, or a choice's text."""
    prose = CODE_BLOCK.sub(" ", text).strip() or text.strip()
    lines = [ln.strip() for ln in prose.splitlines() if ln.strip()]
    if not lines:
        return None
    if len(prose) <= 100:
        idx = match_choice(clean_span(prose), choices)
        if idx is not None:
            return choices[idx]
    for line in (lines[-1], lines[0]):
        idx = bare_option(MARKDOWN.sub("", line).strip().rstrip("."), choices)
        if idx is not None:
            return choices[idx]
    letter_lines = {i for ln in lines[1:-1] if (i := bare_option(MARKDOWN.sub("", ln).strip().rstrip("."), choices))
                    is not None and len(MARKDOWN.sub("", ln).strip(" .()")) == 1}
    if len(letter_lines) == 1:  # "Here is my response:\n\nC\n\nThe clams ...": a line that is only a letter
        return choices[letter_lines.pop()]
    idx = _letter_from_mentions(prose, choices)
    if idx is not None:
        return choices[idx]
    sentences = split_sentences(MARKDOWN.sub("", prose))
    m = _YES_NO.match(sentences[0]) if sentences else None
    normed = [norm_text(c) for c in choices]
    if m and m.group(1).lower() in normed:
        return choices[normed.index(m.group(1).lower())]
    for sentence in reversed(sentences[-3:]):
        if len(sentence) > 300 or REFUSAL.search(sentence) or _NEGATION_WORD.search(sentence):
            continue  # "... is not RFT U13B" names a choice to reject it
        idx = match_choice(sentence, choices, fuzzy=False)
        if idx is None:
            idx = _ending_choice(sentence, choices)
        if idx is not None:
            return choices[idx]
    return _paraphrased_in_conclusion(sentences, choices)


def _ending_choice(sentence: str, choices: list[str]) -> int | None:
    """The choice a sentence ends on after "is"/"are"/":" ("... when the loss is 1.80 is RFT U13B.")."""
    ns = " " + norm_text(sentence)
    ends = [i for i, c in enumerate(choices) if (nc := norm_text(c)) and ns.endswith(" " + nc)]
    if not ends:
        return None
    best = max(ends, key=lambda i: len(norm_text(choices[i])))
    head = ns[: len(ns) - len(norm_text(choices[best]))]
    return best if _COPULA_END.search(head) and not _NEGATION_WORD.search(head) else None


def _paraphrased_in_conclusion(sentences: list[str], choices: list[str]) -> str | None:
    """A choice restated in the first or last sentence ("... the lion population would also decrease"),
    when those two (and any "therefore" sentence) do not restate different choices."""
    if any(REFUSAL.search(s) for s in sentences):
        return None
    picked = {sentences[0], sentences[-1]} | {s for s in sentences if _CONCLUSIVE.search(s)}
    found = {paraphrased_choice(s, choices) for s in picked if len(s) <= 300}
    found.discard(None)
    return choices[found.pop()] if len(found) == 1 else None


def without_option_lists(text: str, choices: list[str]) -> str:
    """`text` less the option lists it echoes: two or more lines that are only options ("(A) yes\n(B) no"),
    their "Choices:" header, and lines naming two options with their texts ("(a) 2, (b) 4, or (d) 8")."""
    lines = text.split("\n")
    listed = {}
    for k, line in enumerate(lines):
        m = _OPTION_LINE.match(line.strip())
        if m and bare_option(MARKDOWN.sub("", line).strip().rstrip("."), choices) is not None:
            listed[k] = (m.group(1) or m.group(2) or m.group(3)).upper()
        elif len({x.upper() for x in _OPTION_MARK.findall(line)}) >= 2 and _names_its_options(line, choices):
            listed[k] = "*"
    if len(listed) < 2 and "*" not in listed.values():
        return text
    if len(set(listed.values())) < 2 and "*" not in listed.values():
        return text
    kept = [ln for k, ln in enumerate(lines) if k not in listed and not _LIST_HEADER.match(ln)]
    return "\n".join(kept)


def _names_its_options(line: str, choices: list[str]) -> bool:
    """Whether each "(X)" in `line` is followed by option X's own text."""
    marks = list(_OPTION_MARK.finditer(line))
    for m, nxt in zip(marks, marks[1:] + [None]):
        idx = ord(m.group(1).upper()) - 65
        after = line[m.end():nxt.start() if nxt else len(line)]
        after = re.sub(r"^\W+|[\s,;.?]*(?:or|and)?[\s,;.?]*$", "", after)
        if idx >= len(choices) or norm_text(after) != norm_text(choices[idx]):
            return False
    return True


def bare_option(line: str, choices: list[str]) -> int | None:
    """A line that is only an option: "C", "(C)", "C. 145°" (letter and its own text), or a choice's text."""
    if line in choices:
        return choices.index(line)
    idx = letter_of(line, len(choices), lenient_case=False)
    if idx is None:
        return None
    rest = re.sub(r"^\W*(?:option|choice)?\W*[A-Za-z]\W*", "", line, flags=re.I).strip()
    return idx if not rest or norm_text(rest) == norm_text(choices[idx]) else None


def _follows_text(after: str, choice: str) -> bool:
    return norm_text(after[:len(choice) + 4]).startswith(norm_text(choice)) if norm_text(choice) else False


def _letter_from_mentions(text: str, choices: list[str]) -> int | None:
    """The option letter a response settles on, among "(B)" / "option B" mentions.

    One letter mentioned: that one. Several ("It could be A or B ... so it is C"): the last concluding
    sentence that names exactly one letter and does not hedge, else the first paragraph if it names exactly
    one (answer-first styles), else none.
    """
    mentions = [(m.start(), ord((m.group(1) or m.group(2))) - 65) for m in _LETTER_MENTION.finditer(text)]
    n = len(choices)
    mentions = [(pos, i) for pos, i in mentions if i < n]
    if not mentions:
        return None
    distinct = {i for _, i in mentions}
    if len(distinct) == 1:
        # One letter, but "(C)" is also how a point or side is labelled ("one side (C) and ..."): it counts
        # in the first or last sentence, a concluding one, or followed by its option's text.
        sentences = split_sentences(text)
        idx = distinct.pop()
        for k, sentence in enumerate(sentences):
            for m in _LETTER_MENTION.finditer(sentence):
                if (k in (0, len(sentences) - 1) or _CONCLUSIVE.search(sentence)
                        or _follows_text(sentence[m.end():], choices[idx])):
                    return idx
        return None
    for sentence in reversed(split_sentences(text)):
        found = {ord(m.group(1) or m.group(2)) - 65 for m in _LETTER_MENTION.finditer(sentence)}
        found = {i for i in found if i < n}
        if len(found) == 1 and _CONCLUSIVE.search(sentence) and not _HEDGE.search(sentence):
            return found.pop()
    first = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    found = {ord(m.group(1) or m.group(2)) - 65 for m in _LETTER_MENTION.finditer(first)}
    found = {i for i in found if i < n}
    return found.pop() if len(found) == 1 else None


def fallback_span(text: str, *, numeric: bool = False) -> str | None:
    """No marker: a bare short answer, a leading yes/no (unless `numeric`), else the last number of the text."""
    prose = CODE_BLOCK.sub(" ", text).strip()
    if not prose:  # only code: its printed output may be the last line of the block
        prose = text.replace("```", "").strip()
    lines = [ln.strip() for ln in prose.splitlines() if ln.strip()]
    while len(lines) > 1 and _PLEASANTRY.match(MARKDOWN.sub("", lines[-1])):
        lines.pop()
    prose = "\n".join(lines)
    if not lines:
        return None
    last = MARKDOWN.sub("", lines[-1]).strip()
    sentences = split_sentences(MARKDOWN.sub("", prose))
    if sentences and REFUSAL.search(sentences[-1]) and not numbers_in(sentences[-1]):
        return None
    m = _YES_NO.match(sentences[0]) if sentences and not numeric else None
    if m:
        return m.group(1).capitalize()
    if len(last.split()) <= (6 if len(lines) == 1 else 4) and not last.endswith(":"):
        nums = numbers_in(last)
        if not nums or parse_number(clean_span(last)) is not None:
            return last  # "quarter past", "12 cm", "Yes"
        if len({t for _, _, t in nums}) == 1:
            return _number_at(last, nums[-1])
    bold = _bold_number(text)
    if bold is not None:
        return bold
    for sentence in reversed(sentences):
        nums = sorted(numbers_in(sentence) + [(m.start(1), m.end(1), "0") for m in _NONE_LEFT.finditer(sentence)])
        words = word_numbers_in(sentence)
        if nums or words:
            if REFUSAL.search(sentence):
                return None  # "... is 1.8, which is not in the options": the response gives up
            final = _stated_number(sentence, nums, words)
            if final is None:
                return None  # the concluding numbers are all references: no stated answer
            maths = [m for m in _MATH.finditer(sentence) if m.end() >= final[1] and "\\" in m.group(0)]
            if maths:  # "... is $\frac{1}{2}$": the expression, not its last digit
                return next(g for g in maths[-1].groups() if g is not None)
            return _number_at(sentence, final)
    return None


def _stated_number(sentence: str, nums: list, words: list) -> tuple[int, int, str] | None:
    """The last number a sentence states as its own, or None when every number in it is a reference.

    Skipped: a number compared against ("2 bars smaller than 0" -> 2), one in brackets when there is one
    outside ("3 more (7 in all)" -> 3), and the right side of a ratio ("3:1" is given whole). Digits win over
    number words ("26 years, with one person older" -> 26), and "one" as a pronoun ("the smallest one") is no
    number at all.
    """
    def own(t):
        return not _REFERENCE.search(sentence[:t[0]])

    def outside(t):
        before = sentence[:t[0]]
        return before.count("(") <= before.count(")")

    words = [t for t in words if t[2].lower() != "one" or not _ONE_AS_PRONOUN.search(sentence[:t[0]])]
    found = [t for t in nums if own(t)] or [t for t in words if own(t)]
    found = [t for t in found if outside(t)] or found
    colon = re.search(r"(?<!\d)\s*:\s+|,\s+with\s", sentence)
    if colon:  # "2 objects left: 1 cube and 1 sphere", "13 years, with one aged 13 and one 26": not the parts
        before = [t for t in found if t[0] < colon.start()]
        if before and len([t for t in found if t[0] > colon.start()]) >= 2:
            found = before
    if not found:
        return None
    start, end, token = found[-1]
    ratio = re.search(r"(\d+(?:\.\d+)?)\s*:\s*$", sentence[:start])
    if ratio:
        return ratio.start(1), end, sentence[ratio.start(1):end]
    return found[-1]


def _bold_number(text: str) -> str | None:
    """The value a response sets in bold ("... is **1578**. The others score 1563 and 1548."), if only one."""
    values = {}
    for m in _BOLD.finditer(text):
        n = parse_number(m.group(1))
        if n is not None:
            values.setdefault((n.value, n.percent), m.group(1).strip())
    return next(iter(values.values())) if len(values) == 1 else None


def list_span(text: str) -> str | None:
    """The last bracketed list, else the numbers of the last sentence that holds two or more."""
    brackets = re.findall(r"\[[^\[\]\n]{1,200}\]", text)
    if brackets:
        return brackets[-1]
    for sentence in reversed(split_sentences(MARKDOWN.sub("", CODE_BLOCK.sub(" ", text)))):
        nums = numbers_in(sentence)
        if len(nums) >= 2:
            return "[" + ", ".join(t for _, _, t in nums) + "]"
        if nums:
            return None
    return None


def _number_at(text: str, found: tuple[int, int, str]) -> str:
    """A number token found in running text, with its percent sign if one follows."""
    start, end, token = found
    return token + ("%" if re.match(r"\s*(?:\\?%|percent\b)", text[end:end + 12]) else "")
