"""mstar generate | warmup | bootstrap-policy"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar_cli.options import ForceOpt, StoreOpt, build_config, choice, open_store, say, shell_command, summary, value

# Kept here rather than imported so that `mstar --help` does not load the library; tests check they match.
STAGES = ("warmup", "explore", "val", "temp-sweep", "eval", "mc")
BACKENDS = ("hf", "lmdeploy", "vllm")
PROMPT_VARIANTS = ("cot", "warmup", "r1", "benchmark")
EXECUTORS = ("local", "ray")

PolicyOpt = Annotated[str, typer.Option("--policy", help="Policy model folder (Hugging Face layout).")]
SplitOpt = Annotated[str, typer.Option(help="Queries of this split (the store must hold it; see "
                                            "`mstar sql \"select * from dataset_summary\"`).")]
NOpt = Annotated[int, typer.Option(min=1, help="Responses per query.")]
RunOpt = Annotated[str, typer.Option(help="Run id the rollouts belong to.")]
ShardOpt = Annotated[Optional[str], typer.Option(help="Run as shard i of n, e.g. 0/4.")]
LimitOpt = Annotated[Optional[int], typer.Option(min=1, help="Only the first M queries (by id).")]
SeedOpt = Annotated[int, typer.Option(help="Base seed; each rollout's seed derives from it and the row's position.")]
TokensOpt = Annotated[int, typer.Option(min=1, help="Generation length cap, in tokens.")]
BatchOpt = Annotated[int, typer.Option(min=1, help="Requests per backend call.")]
Stage = choice("Stage", *STAGES)
Backend = choice("Backend", *BACKENDS)
PromptVariant = choice("PromptVariant", *PROMPT_VARIANTS)
Size = choice("Size", "tiny", "small")
BackendOpt = Annotated[Backend, typer.Option(help="Inference backend (lmdeploy and vllm need their extras).")]
Executor = choice("Executor", *EXECUTORS)
ExecutorOpt = Annotated[Executor, typer.Option(
    help="local (this machine) or ray (deterministic shards on Ray actors, one engine each, committed once "
         "each through a shard ledger; needs the ray extra; RAY_ADDRESS picks the cluster).")]
RayShardOpt = Annotated[int, typer.Option(min=1, help="--executor ray: rollouts per shard (one commit each).")]
RayWorkersOpt = Annotated[Optional[int], typer.Option(
    min=1, help="--executor ray: actors (default: one per GPU of the cluster, else one per CPU).")]


def _progress():
    from mstar_cli.progress import ProgressBars

    return ProgressBars()


def _generate(store, **opts):
    from mstar_data.errors import MstarError
    from mstar_data.exec.shards import parse_shard
    from mstar_data.sampling.generate import GenerateConfig, run_generate

    opts = {k: value(v) for k, v in opts.items()}
    try:
        opts["shard"] = parse_shard(opts.get("shard"))
    except ValueError as e:
        raise MstarError(f"--shard: {e}") from e
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
    say("read them with: " + shell_command("sql", "--store", s.uri, f"select * from dynamics where run_id = '{cfg.run}'"))
    if r.requested == 0:
        raise MstarError(f"the selection matched no queries (split {cfg.split}, shard {cfg.shard[0]}/{cfg.shard[1]}"
                         f"{'' if cfg.limit is None else f', limit {cfg.limit}'}): nothing was sampled")
    return r


def generate(policy: PolicyOpt, split: SplitOpt = "train", n: NOpt = 4,
             temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature (0 = greedy).")] = 1.0,
             run: RunOpt = "default",
             iteration: Annotated[int, typer.Option(min=0, help="Iteration tag of the rollouts.")] = 0,
             stage: Annotated[Stage, typer.Option(help="Stage tag of the rollouts.")] = "explore",
             backend: BackendOpt = "hf", shard: ShardOpt = None, limit: LimitOpt = None, seed: SeedOpt = 0,
             max_new_tokens: TokensOpt = 128, batch_size: BatchOpt = 32,
             prompt_variant: Annotated[PromptVariant, typer.Option(
                 help="cot (steps, then '# Answer'), warmup (gold answer in the prompt) or r1 "
                      "(<think>/<answer>).")] = "cot",
             flush_rows: Annotated[int, typer.Option(min=1, help="Write to the store every this many rollouts "
                                                                 "(and at least every 10 s).")] = 1024,
             executor: ExecutorOpt = "local", ray_shard_size: RayShardOpt = 256, ray_workers: RayWorkersOpt = None,
             deterministic: Annotated[bool, typer.Option(
                 "--deterministic", help="hf: fp32 weights and logits, and torch's deterministic settings "
                                         "(slower). What reproduces where: docs/sampling.md.")] = False,
             store: StoreOpt = None) -> None:
    """Sample N responses per query, judge them, split their steps, and store them as rollouts (resumable;
    Ctrl-C keeps what is finished).

    Example: mstar generate --policy policies/base --split train --n 8 --run r1 [--executor ray]"""
    _generate(store, policy=policy, split=split, n=n, temperature=temperature, run=run, iteration=iteration,
              stage=stage, backend=backend, shard=shard, limit=limit, seed=seed, max_new_tokens=max_new_tokens,
              batch_size=batch_size, prompt_variant=prompt_variant, flush_rows=flush_rows, executor=executor,
              ray_shard_size=ray_shard_size, ray_workers=ray_workers, deterministic=deterministic)


def warmup(policy: PolicyOpt, run: RunOpt = "default", split: SplitOpt = "train", n: NOpt = 4,
           temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature.")] = 0.7,
           backend: BackendOpt = "hf", shard: ShardOpt = None, limit: LimitOpt = None, seed: SeedOpt = 0,
           max_new_tokens: TokensOpt = 128, batch_size: BatchOpt = 32, store: StoreOpt = None) -> None:
    """M-STAR warm-up: prompt with the gold answer, keep the correct CoT responses (sql/warmup_filter.sql).

    Example: mstar warmup --policy policies/base --run r1"""
    from mstar_data.sql_views import run_view

    _generate(store, policy=policy, split=split, n=n, temperature=temperature, run=run, iteration=0,
              stage="warmup", backend=backend, shard=shard, limit=limit, seed=seed, max_new_tokens=max_new_tokens,
              batch_size=batch_size, prompt_variant="warmup")
    kept = run_view(open_store(store, create=False), "warmup_filter", run=run)
    summary("warm-up training set (sql/warmup_filter.sql)", [
        ("responses kept", kept.num_rows), ("queries covered", len(set(kept.column("query_id").to_pylist()))),
        ("read it with", f"mstar sql \"select * from warmup_filter\" --param run={run}")])


def bootstrap_policy(out: Annotated[str, typer.Option("--out", help="Folder for the Hugging Face model: new, "
                                                                    "empty, or a previous bootstrap-policy output "
                                                                    "(with --force).")],
                     target_acc: Annotated[float, typer.Option(
                         min=0.0, max=1.0, help="Stop once held-out greedy accuracy reaches this (0-1).")] = 0.3,
                     size: Annotated[Size, typer.Option(help="tiny (~1.2M parameters) or small (~4M).")] = "tiny",
                     max_steps: Annotated[int, typer.Option(min=1, help="Step budget.")] = 800,
                     max_seconds: Annotated[float, typer.Option(
                         min=0.0, help="Time budget, in seconds of training and evaluation.")] = 110.0,
                     seed: Annotated[int, typer.Option(help="Seed of the model's initialisation and batches.")] = 0,
                     force: ForceOpt = False, store: StoreOpt = None) -> None:
    """Build the tiny default VLM and SFT it on the seed CoT subset until held-out accuracy reaches the target.

    A stand-in for a pretrained base model plus warm-up (there is no model hub here). It only knows the
    embedded shapes task: on real data it writes noise, so use a real base model there.

    Example: mstar bootstrap-policy --out policies/base"""
    from mstar_data.models.bootstrap import BootstrapConfig, run_bootstrap

    cfg = build_config(BootstrapConfig, out=out, target_acc=target_acc, size=value(size), max_steps=max_steps,
                       max_seconds=max_seconds, seed=seed, force=force)
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
