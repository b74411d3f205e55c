"""`mstar evolve --recipe grpo.toml`: online GRPO (R1-Zero style) with every rollout, reward and advantage a row.

    step 0        greedy accuracy of the base policy on val                     -> rollouts (grpo-val), iterations
    step s        B queries (a deterministic draw by seed and step)
                  G completions each with the current policy, judged, rewards   -> rollouts (stage grpo, iteration s)
                  [dynamic sampling: drop groups whose rewards do not vary, draw more queries, up to max_tries]
                  advantages from sql/grpo_advantages.sql on the rows just written -> rollouts.advantage
                  mu optimizer steps over the batch (grpo loss)                 -> train_log (loss, lr, clip, KL, entropy)
                  every save_every steps: a checkpoint (weights, optimizer, scheduler, RNG, step)
    end           greedy accuracy on val                                        -> iterations

A rerun after a crash restores the last checkpoint and replays the steps after it from their stored rollouts
(each is what the restored policy would sample again: rollouts are seeded by position), so the rows, losses
and learning rates equal those of a run that never stopped, and nothing is written twice.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import pyarrow as pa

from mstar_data.errors import MstarError
from mstar_data.exec.local import LocalExecutor
from mstar_data.inputs import images_by_sha, select_queries
from mstar_data.keys import rollout_id, sample_seed
from mstar_data.loop.grpo_recipe import GrpoRecipe
from mstar_data.loop.runs import LoopResult, record_run
from mstar_data.progress import report
from mstar_data.prompts import build_prompt
from mstar_data.rewards import RewardSet
from mstar_data.sampling.rollouts import Plan, Planned, RolloutContext
from mstar_data.sql_views import run_view
from mstar_data.store.predicates import equals, run_scope, queries_where
from mstar_data.train import checkpoint as ckpt

STAGE, VAL_STAGE = "grpo", "grpo-val"
ADVANTAGE_SCHEMA = pa.schema([("rollout_id", pa.string()), ("advantage", pa.float32())])
REWARD_SCHEMA = pa.schema([("rollout_id", pa.string()), ("reward", pa.float32())])
# With --executor ray, GRPO's rollouts are sampled on Ray actors (one engine each, loaded from the base policy):
# before each step's sampling the trainer's weights go to the object store once and every actor loads them
# before its next shard (RayExecutor.set_weights), so the rows equal local sampling's. Val (greedy) stays local.


def reward_columns(rewards: RewardSet, row: dict, query: dict) -> dict:
    """The rollout row's reward columns: each reward and their weighted total (picklable for Ray actors)."""
    values, total = rewards.score(row, query)
    return {"rewards": values, "reward": total}


@dataclass
class GrpoResult(LoopResult):
    steps: list[dict] = field(default_factory=list)        # sql/grpo_dynamics.sql rows


def step_checkpoint(root: Path, run: str, step: int) -> Path:
    return root / run / "grpo" / f"step-{step:06d}"


def latest_checkpoint(root: Path, run: str) -> tuple[int, Path | None]:
    d = root / run / "grpo"
    done = sorted(p for p in d.glob("step-*") if ckpt.is_complete(p)) if d.is_dir() else []
    return (int(done[-1].name.split("-")[1]), done[-1]) if done else (0, None)


class Grpo:
    def __init__(self, store, recipe: GrpoRecipe, *, artifacts: str | None = None, progress=None,
                 log=lambda msg: None, executor: str = "local", ray_workers: int | None = None,
                 ray_shard_size: int | None = None):
        from mstar_data.artifacts import checkpoints_dir
        from mstar_data.exec import make_executor
        from mstar_data.loop.validate import with_resolved_paths

        # None: sample here, with the trainer's own module; a RayExecutor (made now, so a missing Ray fails in
        # one line before any step): sample on its actors, pushing the weights before each step.
        self._ray = None if executor == "local" else make_executor(
            executor, store, batch_size=recipe.sample.batch_size, shard_size=ray_shard_size, workers=ray_workers,
            progress=progress)
        self._factory = None

        self.store, self.progress, self.log = store, progress, log
        # The run record keeps the recipe as given; the loop uses its base policy resolved (a relative one
        # against the artifacts root).
        self.given, self.artifacts = recipe, artifacts
        self.r = with_resolved_paths(recipe, store.uri, artifacts)
        self.run = recipe.run.id
        self.root = checkpoints_dir(store.uri, artifacts)
        self.lease = None
        where = queries_where(dataset=recipe.data.dataset)
        self.train = [q for q in select_queries(store, split=recipe.data.train_split, where=where,
                                                limit=recipe.data.train_limit) if q["answer"] is not None]
        self.val = select_queries(store, split=recipe.data.val_split, where=where, limit=recipe.data.val_limit)
        if len(self.train) < recipe.sample.batch_queries:
            raise MstarError(f"recipe data.train_split '{recipe.data.train_split}': {len(self.train)} labelled "
                             f"queries in {store.uri}, fewer than sample.batch_queries = "
                             f"{recipe.sample.batch_queries}")
        self.rewards = RewardSet.from_recipe(recipe.rewards)
        self.queries = {q["query_id"]: q for q in self.train + self.val}
        self.images = images_by_sha(store, {q["image_sha256"] for q in self.queries.values()})
        self.trainer = self.engine = self.reference = None

    # -- which queries ----------------------------------------------------------------------------
    def draw(self, step: int, attempt: int) -> list[dict]:
        """The B queries of draw `attempt` at `step`: consecutive slices of seeded permutations of the train
        queries, one permutation per pass over them. A pure function of (seed, step, attempt)."""
        b, n = self.r.sample.batch_queries, len(self.train)
        slot = (step - 1) * self.r.grpo.max_tries + attempt
        out = []
        for k in range(slot * b, slot * b + b):
            epoch, pos = divmod(k, n)
            order = list(range(n))
            random.Random(f"{self.r.run.seed}:{epoch}").shuffle(order)
            out.append(self.train[order[pos]])
        return out

    # -- models -----------------------------------------------------------------------------------
    def setup(self) -> int:
        """Load the policy (the last checkpoint, or the base), its optimizer and schedule, the reference and
        the engine. Returns the last finished step."""
        from mstar_data.train.losses import GRPOLoss
        from mstar_data.train.trainer import Trainer

        r, g = self.r, self.r.grpo
        done, path = latest_checkpoint(self.root, self.run)
        self.loss = GRPOLoss(epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high, beta=g.beta,
                             aggregation=g.aggregation, temperature=r.sample.temperature,
                             max_new_tokens=r.sample.max_new_tokens, mask_truncated=g.mask_truncated)
        self.trainer = Trainer(self.loss)
        horizon = r.train.total_steps or g.steps * g.mu * g.mini_batches
        self.trainer.setup(path or r.run.base_policy, r.train, horizon=horizon, state_from=path,
                           seed=r.run.seed * 7919, freeze_vision=g.freeze_vision)
        if g.beta:
            from mstar_data.models.loading import load_policy

            self.reference = load_policy(r.run.base_policy, device=str(self.trainer.policy.device), dtype="fp32")
            self.reference.model.eval()
        if r.sample.backend == "hf":
            from mstar_data.sampling.engines.hf import HFEngine

            # The engine samples with the very model being trained: no copy, nothing to push.
            self.engine = HFEngine(str(path or r.run.base_policy), policy_obj=self.trainer.policy)
        else:
            from mstar_data.sampling.engines import load_engine

            self.engine = load_engine(r.sample.backend, str(path or r.run.base_policy))
        return done

    def close(self) -> None:
        if self._ray is not None:
            self._ray.close()
        if self.engine is not None and getattr(self.engine, "policy", None) is not self.trainer.policy:
            self.engine.release()
        if self.trainer is not None:
            self.trainer.close()
        self.engine = self.reference = None

    # -- one step ---------------------------------------------------------------------------------
    def context(self, step: int, stage: str = STAGE, temperature: float | None = None) -> RolloutContext:
        s = self.r.sample
        return RolloutContext(self.run, step, stage, s.temperature if temperature is None else temperature,
                              s.max_new_tokens, s.prompt_variant,
                              score=partial(reward_columns, self.rewards) if stage == STAGE else None)

    def sample(self, step: int, queries: list[dict]) -> None:
        s = self.r.sample
        ctx = self.context(step)
        scope = run_scope(self.run, step, STAGE)
        stored = set(self.store.stored_keys("rollouts", where=scope).column("rollout_id").to_pylist())
        todo = []
        for q in queries:
            for k in range(s.group_size):
                rid = rollout_id(self.run, step, STAGE, q["query_id"], k)
                if rid not in stored:
                    todo.append(Planned(rid, q, k, sample_seed(self.r.run.seed, self.run, step, STAGE,
                                                               q["query_id"], k)))
        plan = Plan(ctx, todo, len(queries) * s.group_size - len(todo), scope)
        if self._ray is not None:
            if not todo:
                return
            if self._factory is None:  # one object for the run: the executor keeps its actors between steps
                from mstar_data.sampling.engines import load_engine

                self._factory = partial(load_engine, s.backend, str(self.r.run.base_policy))
            self._ray.set_weights({n: t.detach().to("cpu", copy=True) for n, t in
                                   self.trainer.model.named_parameters()}, self.policy_tag(step - 1))
            self._ray.sample(plan, self._factory, task=f"grpo sample step {step}")
            return
        self.model_mode(train=False)
        self.engine.policy_tag = self.policy_tag(step - 1)
        ex = LocalExecutor(self.store, batch_size=s.batch_size, progress=self.progress)
        ex.sample(plan, self.engine, task=f"grpo sample step {step}")

    def shuffle_rewards(self, step: int) -> None:
        """The control: the step's totals, recomputed from the stored per-function rewards, permuted among its
        rollouts (seeded by step), so the policy is rewarded at random with the same reward distribution."""
        rows = sorted(self.store.dataset("rollouts").to_table(
            columns=["rollout_id", "rewards"], filter=run_scope(self.run, step, STAGE)).to_pylist(),
            key=lambda r: r["rollout_id"])
        w = self.rewards.weights
        totals = []
        for r in rows:
            values = dict(r["rewards"] or [])
            totals.append(None if any(values.get(n) is None for n in w) else sum(w[n] * values[n] for n in w))
        random.Random(f"shuffle:{self.r.run.seed}:{step}").shuffle(totals)
        self.store.update("rollouts", pa.table({"rollout_id": [r["rollout_id"] for r in rows], "reward": totals},
                                               schema=REWARD_SCHEMA))

    def advantages(self, step: int) -> list[dict]:
        g = self.r.grpo
        rows = run_view(self.store, "grpo_advantages", run=self.run, step=step, scale=g.scale).to_pylist()
        self.store.update("rollouts", pa.table({"rollout_id": [r["rollout_id"] for r in rows],
                                                "advantage": [r["advantage"] for r in rows]}, schema=ADVANTAGE_SCHEMA))
        return rows

    def batch(self, step: int) -> list[dict]:
        """Sample the step's groups (with dynamic sampling, more draws until B groups whose rewards vary),
        write their advantages, and return the advantage rows of the groups trained on, in draw order."""
        g, b = self.r.grpo, self.r.sample.batch_queries
        tries = g.max_tries if g.dynamic_sampling else 1
        drawn: list[str] = []
        for attempt in range(tries):
            queries = self.draw(step, attempt)
            drawn += [q["query_id"] for q in queries]
            self.sample(step, queries)
            if self.r.rewards.shuffle:
                self.shuffle_rewards(step)
            rows = self.advantages(step)
            varied = {r["query_id"] for r in rows if not r["zero_std"]}
            if not g.dynamic_sampling or len(varied) >= b:
                break
        if g.dynamic_sampling:
            keep = [q for q in drawn if q in varied][:b]
        else:
            keep = drawn
        order = {q: i for i, q in enumerate(keep)}
        return sorted((r for r in rows if r["query_id"] in order), key=lambda r: (order[r["query_id"]],
                                                                                  r["sample_idx"]))

    def examples(self, step: int, adv_rows: list[dict]) -> list:
        from mstar_data.train.losses import GRPOExample

        stored = {r["rollout_id"]: r for r in self.store.dataset("rollouts").to_table(
            columns=["rollout_id", "query_id", "token_ids", "finish_reason"],
            filter=run_scope(self.run, step, STAGE)).to_pylist()}
        out = []
        for a in adv_rows:
            row, q = stored[a["rollout_id"]], self.queries[a["query_id"]]
            prompt = build_prompt(q["question"], q["choices"], variant=self.r.sample.prompt_variant, answer=q["answer"])
            out.append(GRPOExample(prompt, self.images.get(q["image_sha256"]), "", completion_ids=row["token_ids"],
                                   advantage=float(a["advantage"]), truncated=row["finish_reason"] == "length"))
        return out

    def logprobs(self, policy, examples: list) -> list[list[float]]:
        import torch

        from mstar_data.models.scoring import token_logprobs

        out = []
        with torch.no_grad():
            for i in range(0, len(examples), self.r.train.batch_size):
                chunk = examples[i:i + self.r.train.batch_size]
                lp, mask, _ = token_logprobs(policy, chunk, self.r.sample.temperature)
                out += [lp[j][mask[j]].tolist() for j in range(len(chunk))]
        return out

    def policy_tag(self, step: int) -> str:
        """What `rollouts.policy` says: the run's policy after `step` optimizer steps' worth of GRPO steps
        (whether it was loaded from a checkpoint or trained in this process)."""
        return f"{self.run}@step{step}"

    def model_mode(self, *, train: bool) -> None:
        self.trainer.model.train(train)

    def mini_batches(self, examples: list) -> list[list]:
        """The generation batch cut into `grpo.mini_batches` slices of whole groups, in draw order (a group's
        G rollouts are adjacent in `examples`)."""
        g, size = self.r.grpo, self.r.sample.group_size
        n_groups = len(examples) // size
        per = -(-n_groups // min(g.mini_batches, max(n_groups, 1)))  # groups per mini-batch, rounded up
        return [examples[i:i + per * size] for i in range(0, len(examples), per * size)]

    def optimise(self, step: int, examples: list) -> list[dict]:
        """mu passes over the generation batch, each `mini_batches` optimizer steps; the train_log rows."""
        g, bs = self.r.grpo, self.r.train.batch_size
        self.model_mode(train=False)
        if g.mu > 1 or g.mini_batches > 1:  # the sampling policy's log-probs, once per generation batch
            for e, lp in zip(examples, self.logprobs(self.trainer.policy, examples)):
                e.old_logprobs = lp
        if g.beta:
            for e, lp in zip(examples, self.logprobs(self.reference, examples)):
                e.ref_logprobs = lp
        rows = []
        for _ in range(g.mu):
            for mb in self.mini_batches(examples):
                self.loss.begin_step(mb)
                s = self.trainer.step([mb[i:i + bs] for i in range(0, len(mb), bs)])
                stats = self.loss.step_stats()
                rows.append({"run_id": self.run, "iteration": step, "step": s["step"], "local_step": s["step"],
                             "loss": s["loss"], "lr": s["lr"], "n_tokens": s["n_tokens"], "seconds": s["seconds"],
                             "created_at": datetime.now(timezone.utc), **stats})
        return rows

    # -- val --------------------------------------------------------------------------------------
    def measure(self, step: int) -> dict:
        """Greedy accuracy on val with the current policy (stage grpo-val, iteration = step)."""
        ctx = self.context(step, VAL_STAGE, temperature=0.0)
        scope = run_scope(self.run, step, VAL_STAGE)
        stored = {r["rollout_id"]: r["correct"] for r in
                  self.store.stored_keys("rollouts", ("correct",), where=scope).to_pylist()}
        todo = [Planned(rid, q, 0, 0) for q in self.val
                if (rid := rollout_id(self.run, step, VAL_STAGE, q["query_id"], 0)) not in stored]
        if todo:
            self.model_mode(train=False)
            self.engine.policy_tag = self.policy_tag(step)
            LocalExecutor(self.store, batch_size=self.r.sample.batch_size, progress=self.progress).sample(
                Plan(ctx, todo, len(self.val) - len(todo), scope), self.engine, task=f"grpo val step {step}")
        rows = self.store.dataset("rollouts").to_table(columns=["correct"], filter=scope).to_pylist()
        acc = sum(bool(r["correct"]) for r in rows) / max(len(rows), 1)
        row = {"run_id": self.run, "iteration": step, "policy_in": self.r.run.base_policy,
               "policy_out": self.policy_tag(step), "temperature": 0.0, "n_train": None, "greedy_acc": acc,
               "metrics": None, "timings": None, "created_at": datetime.now(timezone.utc)}
        self.store.append("iterations", [row])
        return row

    # -- the recipe -------------------------------------------------------------------------------
    def run_all(self) -> GrpoResult:
        from mstar_data.loop.validate import preflight
        from mstar_data.store.lease import RunLease

        # Every check of `mstar validate` first, then the run id's lease: one process per run.
        preflight(self.store, self.given, artifacts=self.artifacts)
        with RunLease(self.store, self.run) as self.lease:
            return self._run_all()

    def _run_all(self) -> GrpoResult:
        t0 = time.perf_counter()
        record_run(self.store, self.given)
        g = self.r.grpo
        try:
            done = self.setup()
            if done == 0:
                self.measure(0)
            if done:
                self.log(f"resuming after step {done} ({step_checkpoint(self.root, self.run, done)})")
            for step in range(done + 1, g.steps + 1):
                self.lease.check()  # stop if another process took the run over while this one stalled
                adv = self.batch(step)
                rows = self.optimise(step, self.examples(step, adv))
                # The log rows go in before the checkpoint that covers them: after a crash the steps since the
                # last checkpoint are replayed identically and their rows are skipped by key.
                self.trainer.append_log(self.store, rows)
                if self.r.sample.backend != "hf":
                    self.engine.update_weights(self.trainer.model.named_parameters())
                last = step == g.steps
                # Measured before the checkpoint: a crash in between replays this step, and the measurement
                # with it, from the previous checkpoint.
                if (g.val_every and step % g.val_every == 0) or last:
                    self.measure(step)
                if step % g.save_every == 0 or last:
                    self.trainer.save(step_checkpoint(self.root, self.run, step), {"grpo_step": step,
                                                                                   "run": self.run})
                m = rows[-1]
                report(self.progress, "grpo steps", step, g.steps, f"loss {m['loss']:.4f}")
        finally:
            self.close()
        dyn = run_view(self.store, "grpo_dynamics").to_pylist()
        its = sorted(self.store.dataset("iterations").to_table(filter=equals("run_id", self.run)).to_pylist(),
                     key=lambda r: r["iteration"])
        return GrpoResult(self.run, its, time.perf_counter() - t0, [d for d in dyn if d["run_id"] == self.run])


def is_grpo(recipe) -> bool:
    return getattr(recipe.run, "method", "mstar") == "grpo"

