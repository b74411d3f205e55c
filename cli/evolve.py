"""mstar evolve | dynamics | demo"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar_cli.generate import ExecutorOpt, RayShardOpt, RayWorkersOpt, _progress
from mstar_cli.options import (ArtifactsOpt, StoreOpt, cell, check_fsdp, console, open_store, plain_table, say, shell_command,
                               summary, value)

SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe key: section.key=value.")]


def evolve(recipe: Annotated[str, typer.Option(help="Recipe TOML (a path, or a packaged name: mstar.toml).")],
           set: SetOpt = None,
           smoke: Annotated[bool, typer.Option(help="Shrink the recipe to a <60 s CPU check, run under its own id "
                                                    "(<id>-smoke unless the id is given).")] = False,
           run_id: Annotated[Optional[str], typer.Option("--run-id", help="Run id (overrides run.id).")] = None,
           print_config: Annotated[bool, typer.Option("--print-config", help="Print the resolved recipe (every "
                                                      "default, --set and --smoke applied) as JSON and exit.")] = False,
           artifacts: ArtifactsOpt = None,
           executor: ExecutorOpt = "local", ray_shard_size: RayShardOpt = 256, ray_workers: RayWorkersOpt = None,
           nproc: Annotated[int, typer.Option(min=1, help="Train each iteration in this many data-parallel "
                                                          "processes (torchrun; gloo on CPU, nccl with one GPU "
                                                          "each). Not part of the recipe.")] = 1,
           fsdp: Annotated[bool, typer.Option("--fsdp", help="With --nproc N: shard the weights, gradients and "
                                                            "optimizer state across the N processes (FSDP2), for "
                                                            "a model that does not fit one device.")] = False,
           store: StoreOpt = None) -> None:
    """Run the self-evolving loop of a recipe. Rerunning after a crash continues from the last finished step;
    rerunning a run id with a different resolved recipe is refused. Before the first step it runs the checks
    of `mstar validate` (views, data, model folders, backend), then holds the run id's lease: a second process
    on the same run id is refused. Relative paths in the recipe resolve against the artifacts root.
    --executor ray runs every sampling stage (explore, val, temperature sweep) on Ray actors, with the same rows
    as local; it is not part of the recipe, so a run may resume under either. A GRPO recipe samples each step's
    groups on the actors, after pushing them the trainer's weights (its greedy val stays local).
    --nproc N trains each iteration in N torchrun processes on the same global batch (docs/scaling.md); the
    loop itself stays one process; --fsdp shards the model across them. GRPO recipes train in one process."""
    from mstar_data.loop.evolve import Evolve
    from mstar_data.loop.grpo import Grpo, is_grpo
    from mstar_data.loop.recipe import recipe_json, resolve_recipe
    from mstar_data.loop.validate import check_views_exist

    r = resolve_recipe(recipe, list(set or []), smoke=smoke, run_id=run_id)
    if print_config:
        typer.echo(recipe_json(r))
        return
    check_views_exist(r)  # before opening the store (seconds of imports): the loop checks all the rest
    executor = value(executor)
    if is_grpo(r) and nproc > 1:
        from mstar_data.errors import MstarError

        raise MstarError("--nproc: a GRPO run keeps one trainer alive between its steps and trains in one process; "
                         "leave --nproc out (or run `mstar train --nproc N` on a selection view)")
    check_fsdp(fsdp, nproc)
    s = open_store(store, create=False)  # the loop checks the recipe (mstar validate's checks) before any step
    if is_grpo(r):
        with _progress() as progress:
            result = Grpo(s, r, artifacts=artifacts, progress=progress, log=progress.log, executor=executor,
                          ray_shard_size=ray_shard_size, ray_workers=ray_workers).run_all()
        _print_grpo_steps(result.steps, f"run {result.run} (GRPO)")
        summary(f"evolve {result.run}", [("val greedy accuracy, start -> end",
                                           f"{result.start_acc:.1%} -> {result.final_acc:.1%}"),
                                          ("seconds", f"{result.seconds:.1f}")])
        return
    with _progress() as progress:
        result = Evolve(s, r, artifacts=artifacts, progress=progress, log=progress.log, executor=executor,
                        ray_shard_size=ray_shard_size, ray_workers=ray_workers, nproc=nproc, fsdp=fsdp).run_all()
    _print_dynamics(result.iterations, f"run {result.run}")
    summary(f"evolve {result.run}", [("greedy accuracy, start -> end",
                                       f"{result.start_acc:.1%} -> {result.final_acc:.1%}"),
                                      ("seconds", f"{result.seconds:.1f}")])


def _print_dynamics(rows: list[dict], title: str) -> None:
    import json

    t = plain_table(title)
    # a run that mixed in unlabelled queries also shows its pseudo-label accuracy (docs/unlabeled.md)
    metrics = [json.loads(r["metrics"] or "{}") for r in rows]
    # Shown where the run has them: the faithful rate where the task has a step checker (docs/prm.md), the
    # pseudo-label accuracy where it mixed in unlabelled queries (docs/unlabeled.md).
    extra = [(name, key) for name, key in (("faithful", "faithful_rate"), ("steps true", "step_valid_rate"),
                                           ("pseudo acc", "pseudo_label_acc"))
             if any(m.get(key) is not None for m in metrics)]
    cols = ("iteration", "T", "greedy", "Pass@K", "Reward-Pass@2", "train set", "seconds")
    for col in cols + tuple(name for name, _ in extra):
        t.add_column(col, justify="right")
    pct = lambda v: "-" if v is None else f"{v:.1%}"
    for r, m in zip(rows, metrics):
        secs = sum(json.loads(r["timings"] or "{}").values())
        values = (r["iteration"], f"{r['temperature']:.2f}", pct(r["greedy_acc"]),
                  f"{pct(r['pass_at_k'])} (K={r['k']})", pct(r["reward_pass_at_2"]), r["n_train"] or 0, f"{secs:.1f}")
        t.add_row(*(cell(v) for v in values + tuple(pct(m.get(key)) for _, key in extra)))
    console.print(t)


def _print_grpo_steps(rows: list[dict], title: str) -> None:
    t = plain_table(title)
    cols = [("step", "step", "{}"), ("R", "reward_mean", "{:.2f}"), ("acc", "accuracy", "{:.0%}"),
            ("fmt", "format", "{:.0%}"), ("0-std", "frac_zero_std", "{:.0%}"), ("len", "mean_len", "{:.0f}"),
            ("aha", "reflection", "{:.0%}"), ("loss", "loss", "{:.3f}"), ("clip", "clip_frac", "{:.2f}"),
            ("KL", "kl", "{:.3f}"), ("H", "entropy", "{:.2f}")]
    for name, _, _ in cols:
        t.add_column(name, justify="right")
    for r in rows:
        t.add_row(*("-" if r.get(key) is None else fmt.format(r[key]) for _, key, fmt in cols))
    console.print(t)


def dynamics(run: Annotated[str, typer.Option(help="Run id.")],
             plot: Annotated[Optional[Path], typer.Option(help="Write the curves to this PNG.")] = None,
             store: StoreOpt = None) -> None:
    """Per-iteration dynamics of a run: T, greedy accuracy, Pass@K, Reward-Pass@2, training-set size, time.
    For a GRPO run, per step: rewards, zero-variance groups, length, reflection rate, loss, clip, KL, entropy."""
    from mstar_data.errors import MstarError
    from mstar_data.loop.dynamics_plot import plot_dynamics
    from mstar_data.sql_views import run_view
    from mstar_data.store.predicates import equals

    s = open_store(store, create=False)
    steps = [r for r in run_view(s, "grpo_dynamics").to_pylist() if r["run_id"] == run]
    if steps:  # a GRPO run: its per-step table and curves
        from mstar_data.loop.grpo_plot import plot_grpo

        _print_grpo_steps(steps, f"run {run} (GRPO)")
        if plot:
            console.print(f"wrote {plot_grpo(steps, plot, f'run {run} (GRPO)')}", markup=False, highlight=False)
        return
    rows = sorted(s.dataset("iterations").to_table(filter=equals("run_id", run)).to_pylist(),
                  key=lambda r: r["iteration"])
    if not rows:
        raise MstarError(f"run '{run}' has no iterations in {s.uri}")
    _print_dynamics(rows, f"run {run}")
    if plot:
        console.print(f"wrote {plot_dynamics(rows, plot, f'run {run}')}")


def demo(store: StoreOpt = None, artifacts: ArtifactsOpt = None,
         n: Annotated[int, typer.Option(help="Examples of the embedded task to generate (70% train).")] = 2400,
         iterations: Annotated[int, typer.Option(help="Self-evolving iterations.")] = 4,
         prm: Annotated[bool, typer.Option("--prm/--no-prm", help="Train a PRM on the task's step-checker labels "
                                                                 "and use it for top-2 selection and the T "
                                                                 "search.")] = True) -> None:
    """The whole M-STAR recipe on the embedded default (tiny VLM, shapes task, local store, CPU)."""
    from mstar_data.loop.demo import run_demo

    s = open_store(store)
    with _progress() as progress:
        out = run_demo(s, n=n, iterations=iterations, prm=prm, artifacts=artifacts, progress=progress,
                       log=progress.log)
    if out.prm:
        from mstar_cli.prm import prm_eval_table

        console.print(prm_eval_table(out.prm.evaluation))
    _print_dynamics(out.result.iterations, f"demo run {out.result.run}")
    faithful = [out.result.metric("faithful_rate", at) for at in (0, -1)]
    summary("demo", [("held-out greedy accuracy before", f"{out.result.start_acc:.1%}"),
                     ("held-out greedy accuracy after", f"{out.result.final_acc:.1%}"),
                     ("faithful rate before -> after (correct samples whose every step is true)",
                      " -> ".join("-" if f is None else f"{f:.1%}" for f in faithful)),
                     ("dynamics plot", out.plot), ("seconds", f"{out.seconds:.0f}")])
    say("\nQueries worth trying on the store (they run as printed, in any shell):")
    from mstar_data.store import is_remote

    where = s.uri if is_remote(s.uri) else str(Path(s.uri).resolve())  # s3://... is already absolute
    for q in out.queries:
        say(f"  {shell_command('sql', '--store', where, q)}")


def register(app: typer.Typer) -> None:
    app.command("evolve", epilog="Example: mstar evolve --recipe mstar.toml --smoke")(evolve)
    app.command("dynamics", epilog="Example: mstar dynamics --run demo --plot dynamics.png")(dynamics)
    app.command("demo", epilog="Example: mstar demo --store demo-store")(demo)
