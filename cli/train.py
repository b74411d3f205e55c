"""mstar train"""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from typing import Annotated, Optional

import typer

from mstar_cli.generate import _progress
from mstar_cli.options import ArtifactsOpt, StoreOpt, build_config, check_fsdp, choice, open_store, summary, value

Method = choice("Method", "continuous", "iterative-rft", "rest-em")


def train(ctx: typer.Context,
          run: Annotated[str, typer.Option(help="Run id.")],
          iteration: Annotated[int, typer.Option(min=0, help="Iteration whose rollouts the view selects.")],
          policy_in: Annotated[str, typer.Option(help="Model to start from (continuous: its optimizer too).")],
          view: Annotated[str, typer.Option(help="Training-set view in sql/ (see `mstar sql --list`).")] = "trainset_top_k",
          param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="NAME=VALUE for the view. "
                                                                                   "Repeatable.")] = None,
          method: Annotated[Method, typer.Option(help="continuous (one run-long schedule), iterative-rft (fresh "
                                                      "optimizer each iteration) or rest-em (restart from "
                                                      "--base-policy).")] = "continuous",
          base_policy: Annotated[Optional[str], typer.Option(help="rest-em restarts from this model.")] = None,
          lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW).")] = 1e-3,
          batch_size: Annotated[int, typer.Option(min=1, help="Examples per micro-batch.")] = 16,
          grad_accum: Annotated[int, typer.Option(min=1, help="Micro-batches per optimizer step.")] = 1,
          epochs: Annotated[float, typer.Option(min=0.0, help="Passes over the iteration's training set.")] = 1.0,
          max_steps: Annotated[Optional[int], typer.Option(min=1, help="Cap on optimizer steps.")] = None,
          total_steps: Annotated[Optional[int], typer.Option(min=1, help="Schedule horizon (default: this "
                                                                         "iteration's steps).")] = None,
          warmup_steps: Annotated[int, typer.Option(min=0, help="Linear learning-rate warm-up steps.")] = 10,
          save_every: Annotated[int, typer.Option(min=1, help="Steps between resumable checkpoints.")] = 50,
          seed: Annotated[int, typer.Option(help="Seed of the batch order.")] = 0,
          nproc: Annotated[int, typer.Option(min=1, help="Data-parallel processes: re-runs this command under "
                                                         "torch.distributed.run (gloo on CPU, nccl with one GPU "
                                                         "each), each on its share of every batch.")] = 1,
          fsdp: Annotated[bool, typer.Option("--fsdp", help="Shard the weights, gradients and optimizer state "
                                                           "across the processes (FSDP2), for a model that does "
                                                           "not fit one device; the checkpoint is the same.")] = False,
          artifacts: ArtifactsOpt = None, store: StoreOpt = None) -> None:
    """SFT on a training-set view (prompt tokens masked); checkpointed, and resumable after a crash.

    --batch-size is the global micro-batch: N processes train as 1 would (docs/scaling.md). Under torchrun
    (`torchrun --nproc_per_node=N -m mstar_cli train ...`) leave --nproc out.

    Example: mstar train --run r1 --iteration 0 --policy-in policies/base --nproc 2 --fsdp"""
    check_fsdp(fsdp, nproc)
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        _launch_ranks(nproc, ctx)
    from mstar_data.artifacts import checkpoints_dir
    from mstar_data.errors import MstarError
    from mstar_data.inputs import check_run
    from mstar_data.select.trainset import pin_trainset, trainset_examples
    from mstar_data.sql_views import load_sql_files, parse_params
    from mstar_data.train.ranks import from_rank0, join_from_env
    from mstar_data.train.trainer import TrainConfig, train_iteration

    rank, _ = join_from_env()
    method = value(method)
    views = load_sql_files()
    if view not in views:
        raise MstarError(f"--view '{view}': no such view in sql/ (views: {', '.join(sorted(views))})")
    cfg = build_config(TrainConfig, method=method, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
                       epochs=epochs, max_steps=max_steps, total_steps=total_steps, warmup_steps=warmup_steps,
                       save_every=save_every, seed=seed)
    params = parse_params(param)
    s = open_store(store, create=False)
    check_run(s, run, iteration=iteration)
    # pinning writes a tag: rank 0 does it, and every rank reads that version
    version, tag = from_rank0(pin_trainset(s, run, iteration) if rank == 0 else None)
    examples = trainset_examples(s, view, run=run, iteration=iteration, version=version, params=params)
    if not examples:
        raise MstarError(f"view {view} selects no rows for run {run} iteration {iteration}")
    root = checkpoints_dir(s.uri, artifacts)
    with _progress() if rank == 0 else nullcontext() as progress:
        r = train_iteration(s, examples, run=run, iteration=iteration, policy_in=policy_in, base_policy=base_policy,
                            cfg=cfg, checkpoints=root, progress=progress, fsdp=fsdp,
                            extra_meta={"view": view, "params": params, "trainset_version": version, "trainset_tag": tag})
    if rank:
        return
    summary(f"train run={run} iteration={iteration} ({method})", [
        ("training examples", r.n_examples), ("rollouts version (tag)", f"{version} ({tag})"),
        ("steps", r.steps), ("global step", r.global_step),
        ("resumed from step", r.resumed_from if r.resumed_from is not None else "-"),
        ("mean loss", f"{r.mean_loss:.4f}" if r.mean_loss is not None else "-"),
        ("seconds", f"{r.seconds:.1f}"), ("checkpoint", r.checkpoint)])


def _launch_ranks(nproc: int, ctx: typer.Context) -> None:
    """Replace this process by torchrun running this same command (its parsed options) in `nproc` processes."""
    args = [ctx.info_name]
    for p in ctx.command.params:
        v = ctx.params.get(p.name)
        if isinstance(v, bool):  # a flag
            args += [p.opts[0]] if v else []
        elif p.name != "nproc" and v is not None:
            for x in v if isinstance(v, (list, tuple)) else [v]:
                args += [p.opts[0], str(value(x))]
    from mstar_data.train.ranks import rank_env, torchrun_command

    cmd = torchrun_command(nproc, "mstar_cli", *args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, rank_env(nproc))


def register(app: typer.Typer) -> None:
    app.command("train")(train)
