"""How often `judge` agrees with the official verdicts a file carries, and the disagreements to read.

    .venv/bin/python bench/judge_agreement.py FILE [--out DIR] [--by model]

FILE is anything `mstar judge` reads (MathVista output JSON, a JSON list, JSONL) whose records hold the official
verdict in `true_false`. Prints agreement overall, by question_type and by answer_type (and by any other record
field named with --by), with the confusion counts: `ours+ off-` is a response we call right and the official
pipeline wrong, `ours- off+` the reverse. Writes to --out (default: a new temporary folder outside the repo):

  disagreements.jsonl   one line per disagreement: id, the kind of disagreement, our extracted answer, the
                        gold answer, choices, the response; ordered by a seeded hash of the id, so reading the
                        first N is a random sample of N
  disagreements.md      the same, laid out for reading by eye
  summary.json          the figures printed

Official verdicts are noisy (docs/judging.md, "Agreement with official verdicts"): a disagreement is a case to
read, not an error of ours until read.
"""

from __future__ import annotations

import argparse
import json
import hashlib
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstar_data.answers import judge  # noqa: E402
from mstar_data.answers.judge_file import effective_type, problem_of, read_records  # noqa: E402
from mstar_data.errors import InputError  # noqa: E402


class Agreement:
    """Counts of (ours, official) verdict pairs."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[bool, bool], int] = defaultdict(int)

    def add(self, ours: bool, official: bool) -> None:
        self.pairs[(ours, official)] += 1

    @property
    def n(self) -> int:
        return sum(self.pairs.values())

    @property
    def agree(self) -> int:
        return self.pairs[(True, True)] + self.pairs[(False, False)]

    def as_dict(self) -> dict:
        return {"n": self.n, "agree": self.agree, "agreement": round(self.agree / self.n, 4) if self.n else None,
                "ours_right_official_wrong": self.pairs[(True, False)],
                "ours_wrong_official_right": self.pairs[(False, True)]}


def measure(path: Path, by: list[str]) -> tuple[dict[str, dict[str, Agreement]], list[dict]]:
    """Agreement tables keyed by grouping ("overall", "question_type", ...) and the disagreeing records."""
    tables: dict[str, dict[str, Agreement]] = defaultdict(lambda: defaultdict(Agreement))
    disagreements = []
    for label, rec in read_records(path):
        if isinstance(rec, InputError) or not isinstance(rec.get("true_false"), bool):
            continue
        p = problem_of(rec, str(path), label)
        j = judge(p.response, p.answer, answer_type=effective_type(p), choices=p.choices, precision=p.precision,
                  unit=p.unit)
        ours, official = bool(j.correct), rec["true_false"]
        keys = {"overall": "all", "question_type": p.question_type or "?", "answer_type": p.answer_type or "?"}
        keys.update({name: str(rec.get(name)) for name in by})
        for group, key in keys.items():
            tables[group][key].add(ours, official)
        if ours != official:
            disagreements.append({
                "id": rec.get("id") or rec.get("pid") or label,
                "kind": "ours+ off-" if ours else "ours- off+",
                "pred_answer": j.pred_answer, "answer": p.answer, "choices": p.choices,
                "question_type": p.question_type, "answer_type": p.answer_type, "precision": p.precision,
                "question": rec.get("question"), "response": p.response,
            })
    return tables, disagreements


def write_out(out: Path, summary: dict, disagreements: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    with (out / "disagreements.jsonl").open("w", encoding="utf-8") as fh:
        for d in disagreements:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    with (out / "disagreements.md").open("w", encoding="utf-8") as fh:
        for i, d in enumerate(disagreements, 1):
            fh.write(f"## {i}. {d['id']}  [{d['kind']}]  gold={d['answer']!r}  ours={d['pred_answer']!r}\n\n")
            if d["choices"]:
                fh.write("choices: " + " | ".join(f"({chr(65 + k)}) {c}" for k, c in enumerate(d["choices"])) + "\n\n")
            fh.write(f"question: {(d['question'] or '')[-300:]}\n\n```\n{d['response']}\n```\n\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="folder for the disagreements (default: a temp folder)")
    ap.add_argument("--by", action="append", default=[], help="another record field to group by (e.g. model)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the order the disagreements are written in")
    args = ap.parse_args()
    tables, disagreements = measure(args.file, args.by)
    if not tables:
        sys.exit(f"{args.file}: no records with an official verdict (true_false)")
    # A seeded hash of the id orders them: the first N are a random sample, and a record keeps its place when
    # a judge change removes others, so a hand-check done on one run still applies to the next.
    disagreements.sort(key=lambda d: hashlib.sha1(f"{args.seed}:{d['id']}".encode()).hexdigest())
    out = args.out or Path(tempfile.mkdtemp(prefix="judge-agreement-"))
    summary = {group: {key: a.as_dict() for key, a in sorted(t.items())} for group, t in tables.items()}
    write_out(out, summary, disagreements)
    print(f"{'group':<34}{'n':>7}{'agree':>9}{'ours+ off-':>12}{'ours- off+':>12}")
    for group, t in summary.items():
        for key, a in t.items():
            name = "overall" if group == "overall" else f"{group}={key}"
            print(f"{name:<34}{a['n']:>7}{a['agreement']:>9.1%}{a['ours_right_official_wrong']:>12}"
                  f"{a['ours_wrong_official_right']:>12}")
    print(f"{len(disagreements)} disagreements written to {out}")
    print(json.dumps(summary["overall"]["all"]))


if __name__ == "__main__":
    main()
