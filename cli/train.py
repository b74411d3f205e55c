"""mstar train"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar_cli.generate import _progress
from mstar_cli.options import ArtifactsOpt, StoreOpt, build_config, open_store, summary


def train(run: Annotated[str, typer.Option(help="Run id.")],
          iteration: Annotated[int, typer.Option(help="Iteration whose rollouts the view selects.")],
          policy_in: Annotated[str, typer.Option(help="Model to start from (continuous: its optimizer too).")],
          view: Annotated[str, typer.Option(help="Training-set view in sql/.")] = "trainset_top_k",
          param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="NAME=VALUE for the view.")] = None,
          method: Annotated[str, typer.Option(help="continuous, iterative-rft or rest-em.")] = "continuous",
          base_policy: Annotated[Optional[str], typer.Option(help="rest-em restarts from this model.")] = None,
          lr: float = 1e-3, batch_size: int = 16, grad_accum: int = 1, epochs: float = 1.0,
          max_steps: Optional[int] = None, total_steps: Optional[int] = None, warmup_steps: int = 10,
          save_every: int = 50, seed: int = 0,
          artifacts: ArtifactsOpt = None, store: StoreOpt = None) -> None:
    """SFT on a training-set view (prompt tokens masked); checkpointed, and resumable after a crash."""
    from mstar_data.artifacts import checkpoints_dir
    from mstar_data.errors import MstarError
    from mstar_data.sql_views import parse_params
    from mstar_data.train.trainer import TrainConfig, train_iteration
    from mstar_data.select.trainset import pin_trainset, trainset_examples

    cfg = build_config(TrainConfig, method=method, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
                       epochs=epochs, max_steps=max_steps, total_steps=total_steps, warmup_steps=warmup_steps,
                       save_every=save_every, seed=seed)
    params = parse_params(param)
    s = open_store(store, create=False)
    version, tag = pin_trainset(s, run, iteration)
    examples = trainset_examples(s, view, run=run, iteration=iteration, version=version, params=params)
    if not examples:
        raise MstarError(f"view {view} selects no rows for run {run} iteration {iteration}")
    root = checkpoints_dir(s.uri, artifacts)
    with _progress() as progress:
        r = train_iteration(s, examples, run=run, iteration=iteration, policy_in=policy_in, base_policy=base_policy,
                            cfg=cfg, checkpoints=root, progress=progress,
                            extra_meta={"view": view, "params": params, "trainset_version": version, "trainset_tag": tag})
    summary(f"train run={run} iteration={iteration} ({method})", [
        ("training examples", r.n_examples), ("rollouts version (tag)", f"{version} ({tag})"),
        ("steps", r.steps), ("global step", r.global_step),
        ("resumed from step", r.resumed_from if r.resumed_from is not None else "-"),
        ("mean loss", f"{r.mean_loss:.4f}" if r.mean_loss is not None else "-"),
        ("seconds", f"{r.seconds:.1f}"), ("checkpoint", r.checkpoint)])


def register(app: typer.Typer) -> None:
    app.command("train")(train)
