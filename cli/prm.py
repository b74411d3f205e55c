"""mstar prm perturb | label | train | score | eval"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar_cli.generate import STAGES, Backend, ExecutorOpt, _progress
from mstar_cli.options import (ForceOpt, StoreOpt, build_config, cell, check_fsdp, choice, console, open_store, plain_table,
                               summary, value)

app = typer.Typer(help="Process reward model: step labels (Monte-Carlo, judge model or task checker), training, "
                       "step scoring, evaluation.",
                  no_args_is_help=True)

Stage = choice("Stage", *STAGES, "perturb")
Aggregate = choice("Aggregate", "min", "mean", "last")
Label = choice("Label", "hard", "soft")
Labeller = choice("Labeller", "mc", "judge", "task")
PrmPrompt = choice("PrmPrompt", "question", "cot")
PrmOpt = Annotated[str, typer.Option("--prm", help="PRM model folder (from `mstar prm train`).")]
RunOpt = Annotated[str, typer.Option("--run", help="Run id.")]
AggOpt = Annotated[Aggregate, typer.Option(help="Response score from step scores: min, mean or last.")]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]
BatchOpt = Annotated[int, typer.Option(min=1, help="Examples per model call.")]


@app.command()
def perturb(run: RunOpt,
            source: Annotated[choice("Source", "reference", "rollouts"), typer.Option(
                help="reference: the queries' reference chains of thought; rollouts: the run's own responses at "
                     "--iteration/--stage.")] = "reference",
            per_source: Annotated[int, typer.Option(min=1, help="Perturbed responses per source chain.")] = 4,
            p_step: Annotated[float, typer.Option(min=0.0, max=1.0, help="Chance that a step holding a number gets "
                                                                         "one moved by 1..--max-delta.")] = 0.5,
            max_delta: Annotated[int, typer.Option(min=1, help="Largest change of a number.")] = 2,
            iteration: Annotated[int, typer.Option(min=0, help="Iteration of the rows (and source rollouts).")] = 0,
            stage: Annotated[Stage, typer.Option(help="rollouts: stage of the source rollouts.")] = "explore",
            split: Annotated[str, typer.Option(help="Only queries in this split.")] = "train",
            limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first M sources.")] = None,
            seed: SeedOpt = 0,
            flush_rows: Annotated[int, typer.Option(min=1, help="Write to the store every this many rows.")] = 1024,
            store: StoreOpt = None) -> None:
    """PRM training responses: known chains of thought with numbers changed (stage perturb); label them next.

    Example: mstar prm perturb --run r1 --per-source 8

    Example: mstar prm perturb --run r1 --source rollouts --stage explore && mstar prm label --run r1 --stage perturb --labeller task"""
    from mstar_data.inputs import check_split
    from mstar_data.prm.perturb import PerturbConfig, run_perturb

    cfg = build_config(PerturbConfig, run=run, source=value(source), per_source=per_source, p_step=p_step,
                       max_delta=max_delta, iteration=iteration, stage=value(stage), split=split, limit=limit,
                       seed=seed, flush_rows=flush_rows)
    s = open_store(store, create=False)
    check_split(s, split)
    with _progress() as progress:
        r = run_perturb(s, cfg, progress=progress)
    summary(f"prm perturb ({cfg.source}) run={run} iteration={iteration} -> {s.uri}", [
        ("source chains", r.sources), ("responses written", r.written), ("already stored (skipped)", r.skipped),
        ("seconds", f"{r.wall_s:.1f}"),
        ("next", f"mstar prm label --run {run} --iteration {iteration} --stage perturb --labeller task")])


@app.command()
def label(run: RunOpt,
          labeller: Annotated[Labeller, typer.Option(
              help="mc: Monte-Carlo continuations with --policy; judge: --judge-model asked whether each step is "
                   "correct; task: the task's own step checker (the truth, where the task has one).")] = "mc",
          policy: Annotated[Optional[str], typer.Option(help="mc: the policy that continues the step prefixes.")] = None,
          judge_model: Annotated[Optional[str], typer.Option(help="judge: the model that judges each step.")] = None,
          continuations: Annotated[int, typer.Option("--continuations", "--m", min=1,
                                                     help="mc: continuations per step prefix (M; --m also works).")] = 8,
          temperature: Annotated[Optional[float], typer.Option(
              min=0.0, help="Sampling temperature of the continuations (mc, default 1.0) or verdicts (judge, "
                            "default 0: greedy).")] = None,
          iteration: Annotated[int, typer.Option(min=0, help="Iteration of the rollouts to label.")] = 0,
          stage: Annotated[Stage, typer.Option(help="Stage of the rollouts to label.")] = "explore",
          split: Annotated[Optional[str], typer.Option(help="Only rollouts of queries in this split.")] = None,
          shard: Annotated[Optional[str], typer.Option(help="Shard i of n of the source rollouts, e.g. 0/4.")] = None,
          limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first M source rollouts.")] = None,
          seed: SeedOpt = 0,
          max_new_tokens: Annotated[Optional[int], typer.Option(
              min=1, help="Length cap of a continuation (mc, default 128) or a verdict (judge, default 8).")] = None,
          batch_size: BatchOpt = 64,
          backend: Annotated[Backend, typer.Option(help="hf or vllm (mc: lmdeploy cannot continue a prefix).")] = "hf",
          flush_rows: Annotated[int, typer.Option(min=1, help="Write to the store every this many rows (a killed "
                                                              "job keeps what it wrote).")] = 1024,
          executor: ExecutorOpt = "local", store: StoreOpt = None) -> None:
    """Step labels for PRM training, kept per labeller (resumable: a rerun labels only what is missing).

    Example: mstar prm label --run r1 --policy policies/base --continuations 8

    Example: mstar prm label --run r1 --labeller task

    Example: mstar prm label --run r1 --labeller judge --judge-model policies/judge --backend vllm"""
    from mstar_data.errors import MstarError
    from mstar_data.exec.shards import parse_shard
    from mstar_data.inputs import check_split
    from mstar_data.prm.label import LabelConfig, run_label

    try:
        shard_t = parse_shard(shard)
    except ValueError as e:
        raise MstarError(f"--shard: {e}") from e
    kind = value(labeller)
    if kind == "mc" and not policy:
        raise MstarError("--policy: the mc labeller continues step prefixes with a policy; give its folder "
                         "(or choose --labeller task or judge)")
    if kind == "judge" and not judge_model:
        raise MstarError("--judge-model: the judge labeller needs the model that judges the steps")
    judging = kind == "judge"
    cfg = build_config(LabelConfig, labeller=kind, policy=policy, judge_model=judge_model, run=run, m=continuations,
                       temperature=temperature if temperature is not None else 0.0 if judging else 1.0,
                       iteration=iteration, stage=value(stage), split=split, shard=shard_t, limit=limit, seed=seed,
                       max_new_tokens=max_new_tokens or (8 if judging else 128), batch_size=batch_size,
                       backend=value(backend), executor=value(executor), flush_rows=flush_rows)
    s = open_store(store, create=False)
    check_split(s, split)
    with _progress() as progress:
        r = run_label(s, cfg, progress=progress)
    counts = {"mc": [("mc rollouts written", r.rollouts_written), ("mc rollouts reused", r.rollouts_reused),
                     ("tokens", r.n_tokens)],
              "judge": [("verdicts asked", r.rollouts_written), ("tokens", r.n_tokens)], "task": []}[kind]
    summary(f"prm label ({kind}) run={run} iteration={iteration} stage={cfg.stage} -> {s.uri}", [
        ("responses", r.parents), ("step labels written", r.labels_written),
        ("already labelled (skipped)", r.labels_skipped), *counts, ("seconds", f"{r.wall_s:.1f}")])
    if r.parents == 0:
        raise MstarError(f"run '{run}' has no {cfg.stage} rollouts at iteration {iteration} to label: "
                         f"run `mstar generate --run {run}` first")


@app.command()
def train(policy: Annotated[str, typer.Option(help="Model the PRM starts from (the labelled policy).")],
          run: RunOpt,
          out: Annotated[str, typer.Option(help="Folder for the PRM checkpoint: new, empty, or a previous "
                                                "PRM checkpoint (--force to retrain it).")],
          labeller: Annotated[Labeller, typer.Option(help="Whose step labels it learns: mc, judge or task.")] = "mc",
          label: Annotated[Label, typer.Option(help="hard (any continuation correct) or soft (fraction).")] = "hard",
          split: Annotated[str, typer.Option(help="Queries whose labelled responses are trained on.")] = "train",
          lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW).")] = 5e-4,
          batch_size: Annotated[int, typer.Option(min=1, help="Examples per micro-batch.")] = 16,
          grad_accum: Annotated[int, typer.Option(min=1, help="Micro-batches per optimizer step.")] = 1,
          epochs: Annotated[float, typer.Option(min=0.0, help="Passes over the training set.")] = 3.0,
          max_steps: Annotated[Optional[int], typer.Option(min=1, help="Cap on optimizer steps.")] = None,
          warmup_steps: Annotated[int, typer.Option(min=0, help="Linear learning-rate warm-up steps.")] = 10,
          save_every: Annotated[int, typer.Option(min=1, help="Steps between resumable checkpoints.")] = 50,
          freeze_vision: Annotated[bool, typer.Option("--freeze-vision", help="Train only the language model; the "
                                                      "vision tower keeps the policy's weights.")] = False,
          prompt: Annotated[PrmPrompt, typer.Option(help="What the PRM reads before the steps: the question alone, "
                                                         "or the policy's prompt (question and instruction).")] = "question",
          nproc: Annotated[int, typer.Option(min=1, help="Data-parallel processes (torchrun; gloo on CPU, nccl with "
                                                         "one GPU each), each on its share of every batch.")] = 1,
          fsdp: Annotated[bool, typer.Option("--fsdp", help="With --nproc N: shard the PRM across the N processes "
                                                           "(FSDP2).")] = False,
          seed: SeedOpt = 0, force: ForceOpt = False, store: StoreOpt = None) -> None:
    """Train a PRM ('+'/'-' logits at step tags) on sql/prm_trainset.sql; checkpointed and resumable.
    --batch-size is the global micro-batch: --nproc N processes train as 1 would (docs/scaling.md).

    Example: mstar prm train --policy policies/base --run r1 --out policies/prm

    Example: mstar prm train --policy policies/base --run r1 --out policies/prm --labeller task --nproc 2"""
    from mstar_data.outputs import check_out_folder, retire_marker
    from mstar_data.prm.train import PrmTrainConfig, train_prm
    from mstar_data.train.checkpoint import META

    check_fsdp(fsdp, nproc)
    # Checked before any work; a crashed training resumes from `<out>.steps/` (the folder itself is empty).
    folder = check_out_folder(out, marker=META, kind="PRM checkpoint", force=force)
    cfg = build_config(PrmTrainConfig, policy=policy, run=run, out=str(folder), labeller=value(labeller), label=value(label),
                       split=split,
                       lr=lr, batch_size=batch_size, grad_accum=grad_accum, epochs=epochs, max_steps=max_steps,
                       warmup_steps=warmup_steps, save_every=save_every, seed=seed, freeze_vision=freeze_vision,
                       prompt=value(prompt))
    s = open_store(store, create=False)
    if force:
        retire_marker(folder, META)  # a finished checkpoint would otherwise be taken as already trained
    with _progress() as progress:
        r = train_prm(s, cfg, progress=progress, nproc=nproc, fsdp=fsdp)
    summary(f"prm train run={run} ({cfg.label} {cfg.labeller} labels)", [
        ("responses", r.n_examples), ("steps", r.steps),
        ("resumed from step", r.resumed_from if r.resumed_from is not None else "-"),
        ("mean loss", f"{r.mean_loss:.4f}" if r.mean_loss is not None else "-"),
        ("seconds", f"{r.seconds:.1f}"), ("checkpoint", r.checkpoint)])


@app.command()
def score(prm: PrmOpt, run: RunOpt,
          iteration: Annotated[Optional[int], typer.Option(min=0, help="Only this iteration.")] = None,
          stage: Annotated[Optional[Stage], typer.Option(help="Only this stage (default: all but mc).")] = None,
          aggregate: AggOpt = "min", batch_size: BatchOpt = 32,
          flush_rows: Annotated[int, typer.Option(min=1, help="Write the scores every this many rollouts (a "
                                                              "killed job keeps what it scored).")] = 2048,
          executor: ExecutorOpt = "local",
          ray_workers: Annotated[Optional[int], typer.Option(min=1, help="ray: actors, one PRM each (default: one "
                                                                         "per GPU, else per CPU).")] = None,
          ray_shard_size: Annotated[int, typer.Option(min=1, help="ray: rollouts per shard.")] = 256,
          store: StoreOpt = None) -> None:
    """Fill rollouts.step_scores and prm_score (merge_insert on rollout_id; a rerun writes nothing).

    Example: mstar prm score --prm policies/prm --run r1

    Example: mstar prm score --prm policies/prm --run r1 --executor ray --ray-workers 4"""
    from mstar_data.prm.score import ScoreConfig, run_score

    cfg = build_config(ScoreConfig, prm=prm, run=run, iteration=iteration, stage=value(stage),
                       aggregate=value(aggregate), batch_size=batch_size, flush_rows=flush_rows,
                       executor=value(executor), ray_workers=ray_workers, ray_shard_size=ray_shard_size)
    s = open_store(store, create=False)
    with _progress() as progress:
        r = run_score(s, cfg, progress=progress)
    summary(f"prm score run={run} -> {s.uri}", [
        ("rollouts selected", r.selected), ("scored by the PRM", r.scored),
        ("re-aggregated", r.rescored), ("unchanged", r.unchanged), ("seconds", f"{r.wall_s:.1f}")])


@app.command("eval")
def evaluate(prm: PrmOpt, run: RunOpt,
             stage: Annotated[Stage, typer.Option(help="Stage of the N-samples-per-query rollouts.")] = "eval",
             iteration: Annotated[int, typer.Option(min=0, help="Iteration of the N-sample rollouts.")] = 0,
             split: Annotated[str, typer.Option(help="Held-out queries for the step AUC.")] = "val",
             aggregate: AggOpt = "min", seed: Annotated[int, typer.Option(help="Seed of the random-2 baseline.")] = 0,
             labeller: Annotated[Optional[Labeller], typer.Option(
                 help="Whose held-out labels the step AUC is against (default: the labeller the PRM learnt).")] = None,
             store: StoreOpt = None) -> None:
    """Step AUC on held-out labels, and best-of-N / weighted vote / Reward-Pass@2 against majority and random-2.

    Example: mstar prm eval --prm policies/prm --run r1 --stage eval"""
    from mstar_data.prm.evaluate import EvalConfig, run_eval

    cfg = build_config(EvalConfig, prm=prm, run=run, stage=value(stage), iteration=iteration, split=split,
                       aggregate=value(aggregate), seed=seed, labeller=value(labeller))
    s = open_store(store, create=False)
    with _progress() as progress:
        row = run_eval(s, cfg, progress=progress)
    console.print(prm_eval_table(row))


def prm_eval_table(row: dict):
    def pct(v):
        return "-" if v is None else f"{v:.1%}"

    t = plain_table(f"PRM {row['prm']} on run {row['run_id']} ({row['aggregate']} over steps)")
    for col in ("metric", "value"):
        t.add_column(col)
    def auc(v):
        return "-" if v is None else f"{v:.3f}"

    rows = [(f"step AUC ({row.get('labeller') or 'mc'} labels)", auc(row["step_auc"])),
            ("held-out steps (good)", f"{row['n_steps']} ({row['n_good_steps']})"),
            ("step AUC against the truth (step checker)", auc(row.get("step_auc_truth"))),
            ("checked steps", "-" if not row.get("n_checked_steps") else str(row["n_checked_steps"])),
            ("queries x samples", f"{row['n_queries']} x {row['n_samples']}")]
    rows += [(name, pct(row[key])) for key, name in [
        ("best_of_n", "best-of-N"), ("weighted_vote", "PRM-weighted vote"), ("majority_vote", "majority vote"),
        ("reward_pass_at_2", "Reward-Pass@2 (PRM top 2)"), ("random_2", "random 2"),
        ("pass_at_n", "Pass@N (ceiling)"), ("sample_acc", "sample accuracy"),
        ("top2_faithful", "faithful share of PRM top-2 correct picks"),
        ("random2_faithful", "faithful share of 2 random correct picks")]]
    for name, v in rows:
        t.add_row(cell(name), cell(v))
    return t


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="prm")
