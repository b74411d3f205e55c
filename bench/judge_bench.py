"""How fast `judge` is on typical responses, against two baselines measured in the same run.

    .venv/bin/python bench/judge_bench.py [--n 20000] [--seed 0]

Workload: a seeded mix of the response styles VLMs produce on MathVista-type questions (bare letters and
numbers, GPT-style solutions ending "Therefore, the answer is (C) 120", M-STAR "# Answer" CoT, R1
<think>/<answer>, \\boxed LaTeX, units, percentages, refusals), about 300-1,500 characters each, every one
distinct so that caches only help where real data would let them (repeated gold answers and choices).

Baselines: "last-token" is the naive scorer many seed repos use (the last letter or number in the text, compared
as a string); "math-verify" is `verify(parse(gold), parse(response))` on a subsample (it is ~100x slower, so it
is timed on fewer items and reported per response). The last line is a JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstar_data.answers import judge  # noqa: E402

FILLER = ("We look at the figure carefully. The bars show values for each year, and we compare them one by one. "
          "The left axis is labelled in units of ten, and the legend names the two series. ")


def make_case(rng: random.Random, i: int) -> dict:
    """One response, its gold answer, and whether it is right by construction (`expect`)."""
    kind = rng.choice(["letter", "gpt_mc", "gpt_num", "mstar", "r1", "boxed", "unit", "percent", "refusal", "yesno",
                       "float"])
    a, b = rng.randint(2, 90), rng.randint(2, 90)
    total = a + b
    choices = [str(total + d) for d in rng.sample([-20, -10, 0, 10, 20], 4)]
    if str(total) not in choices:
        choices[rng.randrange(4)] = str(total)
    letter = "ABCD"[choices.index(str(total))]
    wrong = rng.random() < 0.4
    said = total + wrong  # the number a numeric response states
    steps = "\n\n".join(f"Step {k}: {FILLER}We add {a} and {b} (case {i})." for k in range(1, rng.randint(2, 6)))

    def case(response: str, expect: bool, **problem) -> dict:
        return {"response": response, "expect": expect, "gold": str(total), "answer_type": "integer", **problem}

    mc = {"answer_type": "multi_choice", "choices": choices}
    if kind == "letter":
        pick = rng.choice("ABCD") if wrong else letter
        return case(pick, pick == letter, **mc)
    if kind == "gpt_mc":
        pick = "ABCD"[(choices.index(str(total)) + wrong) % 4]
        return case(f"{steps}\n\nOptions (A) and (B) look close, but {a} + {b} = {total}.\n\n"
                    f"Therefore, the answer is ({pick}) {choices['ABCD'.index(pick)]}.", not wrong, **mc)
    if kind == "gpt_num":
        return case(f"{steps}\n\nSo the total is {a} + {b} = {said}.\n\nThe answer is {said}.", not wrong)
    if kind == "mstar":
        return case(f"{steps}\n\n{a} + {b} = {total}.\n\n# Answer\n\n{total + 2 * wrong}", not wrong)
    if kind == "r1":
        return case(f"<think>{steps}</think>\n<answer>{total - wrong}</answer>", not wrong)
    if kind == "boxed":
        return case(f"{steps}\n\nHence $x = \\boxed{{{said}}}$.", not wrong)
    if kind == "unit":
        return case(f"{steps}\n\nThe length of AC is {said} cm.", not wrong, unit="cm")
    if kind == "percent":
        return case(f"{steps}\n\nTherefore, the share is {said}%.", not wrong)
    if kind == "refusal":
        return case(f"{FILLER}I'm sorry, but I cannot determine the answer from this image.", False)
    if kind == "yesno":
        ans = rng.choice(["Yes", "No"])
        return {**case(f"{ans}, the bar for {2000 + a} is {'higher' if ans == 'Yes' else 'lower'}. {FILLER}",
                       ans == "Yes", answer_type="multi_choice", choices=["Yes", "No"]), "gold": "Yes"}
    value = f"{round(a / b, 2):.2f}1"  # one more decimal than the gold, rounding back onto it
    return {**case(f"{steps}\n\nDividing, {a} / {b} = {value}.\n\nThe answer is {value}.", not wrong,
                   answer_type="float", precision=2), "gold": str(round(a / b + 0.02 * wrong, 2))}


_LAST = re.compile(r"-?\d+(?:\.\d+)?|\b[A-D]\b")


def last_token_judge(case: dict) -> bool:
    tokens = _LAST.findall(case["response"])
    if not tokens:
        return False
    tok = tokens[-1]
    if case.get("choices") and tok in "ABCD":
        return case["choices"]["ABCD".index(tok)] == case["gold"]
    return tok == case["gold"]


def rate(fn, cases: list[dict]) -> float:
    start = time.perf_counter()
    for c in cases:
        fn(c)
    return len(cases) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--mv-n", type=int, default=300, help="responses timed with math-verify alone")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cases = [make_case(rng, i) for i in range(args.n)]
    mean_chars = sum(len(c["response"]) for c in cases) / len(cases)

    def run_judge(c):
        return judge(c["response"], c["gold"], answer_type=c["answer_type"], choices=c.get("choices"),
                     precision=c.get("precision"), unit=c.get("unit"))

    run_judge(cases[0])  # imports
    ours = rate(run_judge, cases)
    naive = rate(last_token_judge, cases)

    from math_verify import parse, verify

    def run_mv(c):
        return verify(parse(c["gold"]), parse(c["response"]))

    mv = rate(run_mv, cases[: args.mv_n])
    # A harder mix: the unit-test corpus (LaTeX through math-verify, refusals, lists), caches cleared.
    corpus_path = Path(__file__).resolve().parents[1] / "tests" / "unit" / "answer_corpus.jsonl"
    corpus = [json.loads(line) for line in corpus_path.read_text().splitlines() if line.strip()]
    from mstar_data.answers import latex

    for fn in (latex.parse_math, latex.latex_value, latex.latex_equal):
        fn.cache_clear()
    corpus_rate = rate(lambda c: judge(c["response"], c["gold"], answer_type=c["answer_type"], choices=c["choices"],
                                       precision=c["precision"], unit=c["unit"]), corpus)
    ours_acc = sum(run_judge(c).correct == c["expect"] for c in cases) / len(cases)
    naive_acc = sum(last_token_judge(c) == c["expect"] for c in cases) / len(cases)
    mv_acc = sum(run_mv(c) == c["expect"] for c in cases[: args.mv_n]) / min(len(cases), args.mv_n)
    print(f"responses: {len(cases):,} (mean {mean_chars:.0f} chars); verdict right by construction:")
    print(f"judge:        {ours:10,.0f} responses/s   {ours_acc:6.1%}")
    print(f"last-token:   {naive:10,.0f} responses/s   {naive_acc:6.1%}   (judge is {naive / ours:.1f}x slower)")
    print(f"math-verify:  {mv:10,.0f} responses/s   {mv_acc:6.1%}   (judge is {ours / mv:.1f}x faster)")
    print(f"judge on the {len(corpus)}-case test corpus (LaTeX-heavy, cold caches): {corpus_rate:,.0f} responses/s")
    print(json.dumps({"n": len(cases), "mean_chars": round(mean_chars), "judge_per_s": round(ours),
                      "last_token_per_s": round(naive), "math_verify_per_s": round(mv),
                      "judge_vs_math_verify": round(ours / mv, 1), "last_token_vs_judge": round(naive / ours, 1),
                      "judge_right": round(ours_acc, 4), "last_token_right": round(naive_acc, 4),
                      "math_verify_right": round(mv_acc, 4), "corpus_per_s": round(corpus_rate),
                      "target_per_s": 5000, "meets_target": ours >= 5000}))


if __name__ == "__main__":
    main()
