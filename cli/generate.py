"""mstar generate | warmup | bootstrap-policy"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar_cli.options import StoreOpt, build_config, open_store, summary

PolicyOpt = Annotated[str, typer.Option("--policy", help="Policy model folder (Hugging Face layout).")]
ShardOpt = Annotated[Optional[str], typer.Option(help="Run as shard i of n, e.g. 0/4.")]
LimitOpt = Annotated[Optional[int], typer.Option(help="Only the first M queries (by id).")]


def _progress():
    from mstar_cli.progress import ProgressBars

    return ProgressBars()


def _generate(store, **opts) -> None:
    from mstar_data.errors import MstarError
    from mstar_data.exec.shards import parse_shard
    from mstar_data.sampling.generate import STAGES, GenerateConfig, run_generate

    try:
        opts["shard"] = parse_shard(opts.get("shard"))
    except ValueError as e:
        raise MstarError(str(e)) from e
    if opts["stage"] not in STAGES:
        raise MstarError(f"--stage '{opts['stage']}': expected one of {', '.join(STAGES)}")
    cfg = build_config(GenerateConfig, **opts)
    s = open_store(store, create=False)
    with _progress() as progress:
        r = run_generate(s, cfg, progress=progress)
    summary(f"generate run={cfg.run} iteration={cfg.iteration} stage={cfg.stage} -> {s.uri}", [
        ("rollouts requested", r.requested), ("already stored (skipped)", r.skipped), ("written", r.written),
        ("accuracy (judged)", f"{r.accuracy:.1%} of {r.judged}" if r.accuracy is not None else "n/a"),
        ("tokens", r.n_tokens),
        ("rollouts/s", f"{(r.requested - r.skipped) / r.wall_s:.1f}" if r.wall_s else "n/a"),
        ("tokens/s", f"{r.n_tokens / r.wall_s:.0f}" if r.wall_s else "n/a"),
        ("store write share", f"{r.store_s / r.wall_s:.1%}" if r.wall_s else "n/a"),
        ("job", r.job_id)])


def generate(policy: PolicyOpt, split: str = "train", n: int = 4, temperature: float = 1.0,
             run: str = "default", iteration: int = 0, stage: str = "explore",
             backend: Annotated[str, typer.Option(help="hf, lmdeploy or vllm.")] = "hf",
             shard: ShardOpt = None, limit: LimitOpt = None, seed: int = 0, max_new_tokens: int = 128,
             batch_size: int = 32,
             prompt_variant: Annotated[str, typer.Option(help="cot, warmup or r1.")] = "cot",
             flush_rows: Annotated[int, typer.Option(help="Write to the store every this many rollouts "
                                                          "(and at least every 10 s).")] = 1024,
             store: StoreOpt = None) -> None:
    """Sample N responses per query, judge them, split their steps, and store them as rollouts (resumable)."""
    _generate(store, policy=policy, split=split, n=n, temperature=temperature, run=run, iteration=iteration,
              stage=stage, backend=backend, shard=shard, limit=limit, seed=seed, max_new_tokens=max_new_tokens,
              batch_size=batch_size, prompt_variant=prompt_variant, flush_rows=flush_rows)


def warmup(policy: PolicyOpt, run: str = "default", split: str = "train", n: int = 4, temperature: float = 0.7,
           backend: str = "hf", shard: ShardOpt = None, limit: LimitOpt = None, seed: int = 0,
           max_new_tokens: int = 128, batch_size: int = 32, store: StoreOpt = None) -> None:
    """M-STAR warm-up: prompt with the gold answer, keep the correct CoT responses (sql/warmup_filter.sql)."""
    from mstar_data.sql_views import run_view

    _generate(store, policy=policy, split=split, n=n, temperature=temperature, run=run, iteration=0,
              stage="warmup", backend=backend, shard=shard, limit=limit, seed=seed, max_new_tokens=max_new_tokens,
              batch_size=batch_size, prompt_variant="warmup")
    kept = run_view(open_store(store, create=False), "warmup_filter", run=run)
    summary("warm-up training set (sql/warmup_filter.sql)", [
        ("responses kept", kept.num_rows), ("queries covered", len(set(kept.column("query_id").to_pylist()))),
        ("read it with", f"mstar sql \"select * from warmup_filter\" --param run={run}")])


def bootstrap_policy(out: Annotated[str, typer.Option("--out", help="Folder for the Hugging Face model.")],
                     target_acc: float = 0.3, size: str = "tiny", max_steps: int = 800, max_seconds: float = 110.0,
                     seed: int = 0, store: StoreOpt = None) -> None:
    """Build the tiny default VLM and SFT it on the seed CoT subset until held-out accuracy reaches the target.

    A stand-in for a pretrained base model plus warm-up (there is no model hub here)."""
    from mstar_data.models.bootstrap import BootstrapConfig, run_bootstrap

    cfg = BootstrapConfig(out=out, target_acc=target_acc, size=size, max_steps=max_steps, max_seconds=max_seconds,
                          seed=seed)
    with _progress() as progress:
        r = run_bootstrap(open_store(store, create=False), cfg, progress=progress)
    summary(f"bootstrap-policy -> {r.out}", [
        ("seed CoT examples", r.n_train), ("steps", r.steps),
        ("held-out greedy accuracy", f"{r.accuracy:.1%} of {r.n_eval}"),
        ("best constant answer scores", f"{r.constant_acc:.1%}"),
        ("target reached", "yes" if r.reached_target else f"no (target {cfg.target_acc:.0%})"),
        ("seconds", f"{r.seconds:.1f}")])


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("warmup")(warmup)
    app.command("bootstrap-policy")(bootstrap_policy)
