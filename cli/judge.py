"""mstar judge FILE: judge external responses (MathVista output JSON or JSONL) and print accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar_cli.options import ForceOpt, cell, console, plain_table, say


def judge(file: Annotated[Path, typer.Argument(help="MathVista output JSON (pid -> record with `response`), a JSON "
                                                    "list, or JSONL of records with `response` and `answer`.")],
          out: Annotated[Optional[Path], typer.Option(
              "--out", "-o", help="Write every record with `pred_answer` and `correct` added, as JSONL. "
                                  "Without it only the accuracy table is printed.")] = None,
          skip_bad: Annotated[bool, typer.Option(
              "--skip-bad", help="Skip malformed records (and count them) instead of stopping at the first.")] = False,
          force: ForceOpt = False) -> None:
    """Extract each response's final answer, check it against the gold answer, and print accuracy.

    Example: mstar judge output.json --out judged.jsonl"""
    import os

    from mstar_data.answers.judge_file import judge_file
    from mstar_data.errors import MstarError
    from mstar_data.outputs import check_out_file

    if out is None:
        _print_summary(judge_file(file, None, skip_bad=skip_bad))
        return
    if out.is_dir():
        raise MstarError(f"--out {out}: is a folder; give a file path")
    # Judged into a file of our own beside --out: a bad input record is reported first, and --out is only
    # replaced (after the check) when it is an earlier judged file and --force is given.
    staged = out.with_name(f".{out.name}.judging")
    try:
        summary = judge_file(file, staged, skip_bad=skip_bad)
        check_out_file(out, kind="judged JSONL file", force=force, same_kind=_is_judged_jsonl)
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    summary.out = out
    _print_summary(summary)


def _is_judged_jsonl(path: Path) -> bool:
    """An earlier `judge --out`: JSONL whose first record carries `pred_answer` and `correct`."""
    import json

    try:
        with path.open(encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and {"pred_answer", "correct"} <= first.keys()


def _print_summary(s) -> None:
    t = plain_table(f"judged {s.source}")
    for col, justify in (("group", "left"), ("value", "left"), ("correct", "right"), ("total", "right"),
                         ("accuracy", "right")):
        t.add_column(col, justify=justify)
    def row(*values, **kw):  # field values come from the user's file: printed literally
        t.add_row(*(cell(v) for v in values), **kw)

    row("overall", "", f"{s.overall.correct:,}", f"{s.overall.n:,}", f"{s.overall.accuracy:.2%}", style="bold")
    for group, tallies in (("question_type", s.by_question_type), ("answer_type", s.by_answer_type)):
        for value, tally in sorted(tallies.items(), key=lambda kv: str(kv[0])):
            row(group, value, f"{tally.correct:,}", f"{tally.n:,}", f"{tally.accuracy:.2%}")
    row("no answer", "", "", f"{s.no_answer:,}", "")
    if s.agreement.n:
        row("agrees with true_false", "", f"{s.agreement.correct:,}", f"{s.agreement.n:,}",
            f"{s.agreement.accuracy:.2%}")
    if s.skipped:
        row("skipped (malformed)", "", "", f"{len(s.skipped):,}", "")
    console.print(t)
    for line in s.skipped[:5]:
        say(f"skipped: {line}")
    if len(s.skipped) > 5:
        say(f"... and {len(s.skipped) - 5} more skipped")
    if s.out is not None:
        say(f"wrote {s.overall.n:,} records to {s.out}")


def register(app: typer.Typer) -> None:
    app.command("judge")(judge)
