"""mstar prm label | train | score | eval"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar_cli.generate import _progress
from mstar_cli.options import StoreOpt, build_config, console, open_store, summary

app = typer.Typer(help="Process reward model: Monte-Carlo step labels, training, step scoring, evaluation.",
                  no_args_is_help=True)

PrmOpt = Annotated[str, typer.Option("--prm", help="PRM model folder (from `mstar prm train`).")]
RunOpt = Annotated[str, typer.Option("--run", help="Run id.")]
AggOpt = Annotated[str, typer.Option(help="Response score from step scores: min, mean or last.")]


@app.command()
def label(policy: Annotated[str, typer.Option(help="Policy that continues the step prefixes.")], run: RunOpt,
          m: Annotated[int, typer.Option(help="Continuations per step prefix.")] = 8,
          temperature: float = 1.0, iteration: int = 0,
          stage: Annotated[str, typer.Option(help="Stage of the rollouts to label.")] = "explore",
          split: Annotated[Optional[str], typer.Option(help="Only rollouts of queries in this split.")] = None,
          shard: Annotated[Optional[str], typer.Option(help="Shard i of n of the source rollouts.")] = None,
          limit: Annotated[Optional[int], typer.Option(help="Only the first M source rollouts.")] = None,
          seed: int = 0, max_new_tokens: int = 128, batch_size: int = 64,
          backend: Annotated[str, typer.Option(help="hf or vllm.")] = "hf", store: StoreOpt = None) -> None:
    """Monte-Carlo step labels: M continuations from every step prefix, stored as stage-mc rollouts (resumable)."""
    from mstar_data.errors import MstarError
    from mstar_data.prm.label import LabelConfig, run_label
    from mstar_data.exec.shards import parse_shard

    try:
        shard_t = parse_shard(shard)
    except ValueError as e:
        raise MstarError(str(e)) from e
    cfg = build_config(LabelConfig, policy=policy, run=run, m=m, temperature=temperature, iteration=iteration,
                       stage=stage, split=split, shard=shard_t, limit=limit, seed=seed,
                       max_new_tokens=max_new_tokens, batch_size=batch_size, backend=backend)
    s = open_store(store, create=False)
    with _progress() as progress:
        r = run_label(s, cfg, progress=progress)
    summary(f"prm label run={run} iteration={iteration} stage={stage} -> {s.uri}", [
        ("responses", r.parents), ("step labels written", r.labels_written),
        ("already labelled (skipped)", r.labels_skipped), ("mc rollouts written", r.rollouts_written),
        ("mc rollouts reused", r.rollouts_reused), ("tokens", r.n_tokens), ("seconds", f"{r.wall_s:.1f}")])


@app.command()
def train(policy: Annotated[str, typer.Option(help="Model the PRM starts from (the labelled policy).")],
          run: RunOpt, out: Annotated[str, typer.Option(help="Where the PRM checkpoint goes.")],
          label: Annotated[str, typer.Option(help="hard (any continuation correct) or soft (fraction).")] = "hard",
          split: str = "train", lr: float = 5e-4, batch_size: int = 16, grad_accum: int = 1, epochs: float = 3.0,
          max_steps: Optional[int] = None, warmup_steps: int = 10, save_every: int = 50, seed: int = 0,
          store: StoreOpt = None) -> None:
    """Train a PRM ('+'/'-' logits at step tags) on sql/prm_trainset.sql; checkpointed and resumable."""
    from mstar_data.prm.train import PrmTrainConfig, train_prm

    cfg = build_config(PrmTrainConfig, policy=policy, run=run, out=out, label=label, split=split, lr=lr,
                       batch_size=batch_size, grad_accum=grad_accum, epochs=epochs, max_steps=max_steps,
                       warmup_steps=warmup_steps, save_every=save_every, seed=seed)
    s = open_store(store, create=False)
    with _progress() as progress:
        r = train_prm(s, cfg, progress=progress)
    summary(f"prm train run={run} ({label} labels)", [
        ("responses", r.n_examples), ("steps", r.steps),
        ("resumed from step", r.resumed_from if r.resumed_from is not None else "-"),
        ("mean loss", f"{r.mean_loss:.4f}" if r.mean_loss is not None else "-"),
        ("seconds", f"{r.seconds:.1f}"), ("checkpoint", r.checkpoint)])


@app.command()
def score(prm: PrmOpt, run: RunOpt, iteration: Annotated[Optional[int], typer.Option(help="Only this iteration.")] = None,
          stage: Annotated[Optional[str], typer.Option(help="Only this stage (default: all but mc).")] = None,
          aggregate: AggOpt = "min", batch_size: int = 32, store: StoreOpt = None) -> None:
    """Fill rollouts.step_scores and prm_score (merge_insert on rollout_id; a rerun writes nothing)."""
    from mstar_data.prm.score import ScoreConfig, run_score

    cfg = build_config(ScoreConfig, prm=prm, run=run, iteration=iteration, stage=stage, aggregate=aggregate,
                       batch_size=batch_size)
    s = open_store(store, create=False)
    with _progress() as progress:
        r = run_score(s, cfg, progress=progress)
    summary(f"prm score run={run} -> {s.uri}", [
        ("rollouts selected", r.selected), ("scored by the PRM", r.scored),
        ("re-aggregated", r.rescored), ("unchanged", r.unchanged), ("seconds", f"{r.wall_s:.1f}")])


@app.command("eval")
def evaluate(prm: PrmOpt, run: RunOpt,
             stage: Annotated[str, typer.Option(help="Stage of the N-samples-per-query rollouts.")] = "eval",
             iteration: int = 0,
             split: Annotated[str, typer.Option(help="Held-out queries for the step AUC.")] = "val",
             aggregate: AggOpt = "min", seed: int = 0, store: StoreOpt = None) -> None:
    """Step AUC on held-out labels, and best-of-N / weighted vote / Reward-Pass@2 against majority and random-2."""
    from mstar_data.prm.evaluate import EvalConfig, run_eval

    cfg = build_config(EvalConfig, prm=prm, run=run, stage=stage, iteration=iteration, split=split,
                       aggregate=aggregate, seed=seed)
    s = open_store(store, create=False)
    with _progress() as progress:
        row = run_eval(s, cfg, progress=progress)
    console.print(prm_eval_table(row))


def prm_eval_table(row: dict):
    from rich.table import Table

    def pct(v):
        return "-" if v is None else f"{v:.1%}"

    t = Table(title=f"PRM {row['prm']} on run {row['run_id']} ({row['aggregate']} over steps)",
              title_justify="left")
    for col in ("metric", "value"):
        t.add_column(col)
    t.add_row("step AUC", "-" if row["step_auc"] is None else f"{row['step_auc']:.3f}")
    t.add_row("held-out steps (good)", f"{row['n_steps']} ({row['n_good_steps']})")
    t.add_row("queries x samples", f"{row['n_queries']} x {row['n_samples']}")
    for key, name in [("best_of_n", "best-of-N"), ("weighted_vote", "PRM-weighted vote"),
                      ("majority_vote", "majority vote"), ("reward_pass_at_2", "Reward-Pass@2 (PRM top 2)"),
                      ("random_2", "random 2"), ("pass_at_n", "Pass@N (ceiling)"), ("sample_acc", "sample accuracy")]:
        t.add_row(name, pct(row[key]))
    return t


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="prm")
