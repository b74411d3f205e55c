"""mstar eval"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar_cli.generate import Backend, ExecutorOpt, _progress
from mstar_cli.options import StoreOpt, build_config, cell, choice, console, open_store, plain_table, say, value

BenchmarkFormat = choice("BenchmarkFormat", "auto", "mathvista", "mathv360k", "jsonl", "parquet")
Aggregate = choice("Aggregate", "min", "mean", "last")
Variant = choice("EvalPromptVariant", "cot", "benchmark")


def evaluate(
        policy: Annotated[Optional[str], typer.Option(help="Policy model folder. Default: the latest policy of the "
                                                           "latest run (or of --run).")] = None,
        split: Annotated[str, typer.Option(help="Queries of this split.")] = "test",
        benchmark: Annotated[Optional[str], typer.Option(help="A test-set file in any format `mstar ingest` reads; "
                                                              "ingested into split test first.")] = None,
        benchmark_format: Annotated[BenchmarkFormat, typer.Option(help="Format of --benchmark.")] = "auto",
        preset: Annotated[str, typer.Option(help="Field mapping of a jsonl/parquet --benchmark.")] = "default",
        images: Annotated[Optional[str], typer.Option(help="Image root of --benchmark (default: its folder).")] = None,
        dataset: Annotated[Optional[str], typer.Option(help="Dataset name of --benchmark's queries (default: the "
                                                            "file's stem).")] = None,
        select: Annotated[str, typer.Option(help="Comma-separated: greedy, majority, weighted-vote, prm-best-of-n, "
                                                 "self-select.")] = "greedy,majority,weighted-vote,prm-best-of-n,self-select",
        n: Annotated[int, typer.Option(min=1, help="Samples per query (N).")] = 8,
        select_k: Annotated[str, typer.Option(help="Self-select candidates K, or LO..HI for the scaling curve "
                                                   "(PNG at --plot).")] = "3",
        temperature: Annotated[float, typer.Option(min=0.0, help="Temperature of the N samples.")] = 0.7,
        prm: Annotated[Optional[str], typer.Option(help="PRM folder (weighted-vote, prm-best-of-n).")] = None,
        aggregate: Annotated[Aggregate, typer.Option(help="PRM response score from step scores.")] = "min",
        run: Annotated[Optional[str], typer.Option(help="With --policy: the run the samples are stored under "
                                                        "(default eval). Without: the run whose latest policy is "
                                                        "evaluated.")] = None,
        seed: Annotated[int, typer.Option(help="Base seed of the samples and of the candidates' order.")] = 0,
        limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first M queries (by id).")] = None,
        max_new_tokens: Annotated[int, typer.Option(min=1, help="Generation length cap, in tokens.")] = 512,
        batch_size: Annotated[int, typer.Option(min=1, help="Requests per backend call.")] = 32,
        backend: Annotated[Backend, typer.Option(help="Inference backend.")] = "hf",
        prompt_variant: Annotated[Variant, typer.Option(help="cot, or benchmark (the dataset's own "
                                                             "instruction).")] = "cot",
        plot: Annotated[Optional[str], typer.Option(help="PNG of the self-select curve (with a K range). Default "
                                                         "self-select-scaling.png.")] = None,
        breakdown: Annotated[bool, typer.Option(help="Print the accuracy per question_type, answer_type and "
                                                     "metadata field.")] = True,
        executor: ExecutorOpt = "local", store: StoreOpt = None) -> None:
    """Sample a policy once and compare test-time selection methods on the same samples (stored in `evals`).

    Example: mstar eval --split test --n 8 --select-k 2..6 --prm policies/prm"""
    from mstar_data.eval.policy import EvalConfig, parse_k, parse_methods, run_policy_eval

    cfg = build_config(EvalConfig, policy=policy, run=run, split=split, benchmark=benchmark,
                       benchmark_format=value(benchmark_format), preset=preset, images=images, dataset=dataset,
                       select=parse_methods(select), n=n, select_k=parse_k(select_k), temperature=temperature,
                       prm=prm, aggregate=value(aggregate), seed=seed, limit=limit, max_new_tokens=max_new_tokens,
                       batch_size=batch_size, backend=value(backend), prompt_variant=value(prompt_variant), plot=plot,
                       executor=value(executor))
    s = open_store(store, create=False)
    with _progress() as progress:
        r = run_policy_eval(s, cfg, progress=progress)
    print_eval(r, breakdown=breakdown)


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def print_eval(r, *, breakdown: bool = True) -> None:
    t = plain_table(f"eval {r.eval_id}: {r.policy} on {r.source}, {r.n_queries} queries "
                    f"(run {r.run}, iteration {r.iteration})")
    for col in ("method", "K", "accuracy", "correct", "note"):
        t.add_column(col)
    for row in r.summary():
        t.add_row(*(cell(v) for v in (row["method"], row["k"], _pct(row["accuracy"]),
                                       "-" if row["n_correct"] is None else f"{row['n_correct']}/{row['n_queries']}",
                                       row["note"] or "")))
    console.print(t)
    curve = r.curve()
    if len(curve) > 1:
        c = plain_table("self-select against majority vote over the same K samples")
        for col in ("K", "self-select", "majority"):
            c.add_column(col)
        for k, sel, maj in curve:
            c.add_row(cell(k), cell(_pct(sel)), cell(_pct(maj)))
        console.print(c)
    rows = r.breakdown()
    if breakdown and rows:
        methods = list(dict.fromkeys(x["method"] for x in rows))
        b = plain_table("accuracy by slice")
        for col in ("field", "value", "queries", *methods):
            b.add_column(col)
        slices = list(dict.fromkeys((x["group_by"], x["group_value"]) for x in rows))
        acc = {(x["group_by"], x["group_value"], x["method"]): x for x in rows}
        for f, v in slices:
            n = next(acc[(f, v, m)]["n_queries"] for m in methods if (f, v, m) in acc)
            b.add_row(cell(f), cell(v), cell(n), *(cell(_pct(acc[(f, v, m)]["accuracy"]) if (f, v, m) in acc
                                                        else "-") for m in methods))
        console.print(b)
    say(f"{r.sampled} rollouts sampled, {r.written} evals rows written, {r.seconds:.1f} s"
        + (f"; curve: {r.plot}" if r.plot else ""))


def register(app: typer.Typer) -> None:
    app.command("eval", epilog="Example: mstar eval --policy policies/it-4 --split test --n 8")(evaluate)
