"""The store's tables: one explicit pyarrow schema each, and the key that makes writes idempotent.

Column lists follow shared/DESIGN.md. Image bytes live in their own `images` table, keyed by sha256, so
each distinct image is stored once however many queries point at it (MathV360K reuses images across
many questions); `queries.image_sha256` is the link.
"""

from __future__ import annotations

import pyarrow as pa

BLOB = {"lance-encoding:blob": "true"}
_ts = pa.timestamp("us", tz="UTC")


def _f(name: str, typ: pa.DataType, nullable: bool = True, metadata: dict | None = None) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata=metadata)


QUERIES = pa.schema([
    _f("query_id", pa.string(), False),
    _f("dataset", pa.string(), False),
    _f("split", pa.string(), False),          # train / val / test / unlabeled
    _f("question", pa.string(), False),
    _f("choices", pa.list_(pa.string())),
    _f("answer", pa.string()),                # null = unlabelled
    _f("answer_type", pa.string(), False),    # multi_choice / integer / float / text / list
    _f("question_type", pa.string()),         # the source's own label, e.g. MathVista's free_form
    _f("precision", pa.int32()),
    _f("unit", pa.string()),
    _f("image_sha256", pa.string()),          # -> images.image_sha256
    _f("source_path", pa.string()),
    _f("reference_cot", pa.string()),
    _f("meta", pa.string()),                  # JSON
    _f("record_sha256", pa.string(), False),  # hash of the normalised record: same id + other content = error
    _f("ingested_at", _ts),
])

IMAGES = pa.schema([
    _f("image_sha256", pa.string(), False),
    _f("image", pa.large_binary(), metadata=BLOB),
    _f("format", pa.string()),
    _f("width", pa.int32()),
    _f("height", pa.int32()),
    _f("n_bytes", pa.int64()),
    _f("source_path", pa.string()),
])

ROLLOUTS = pa.schema([
    _f("rollout_id", pa.string(), False),
    _f("run_id", pa.string(), False),
    _f("iteration", pa.int32(), False),
    _f("stage", pa.string(), False),          # warmup / explore / val / temp-sweep / eval / mc
    _f("query_id", pa.string(), False),
    _f("sample_idx", pa.int32(), False),
    _f("temperature", pa.float32()),
    _f("seed", pa.int64()),
    _f("policy", pa.string()),
    _f("prompt_variant", pa.string()),
    _f("response", pa.string()),
    _f("steps", pa.list_(pa.string())),
    _f("n_tokens", pa.int32()),
    _f("finish_reason", pa.string()),
    _f("pred_answer", pa.string()),
    _f("correct", pa.bool_()),
    _f("format_ok", pa.bool_()),
    _f("reflection", pa.bool_()),             # re-checking words in the response (computed once, on write)
    _f("step_scores", pa.list_(pa.float32())),
    _f("prm_score", pa.float32()),
    _f("prm", pa.string()),                   # the PRM that scored it: folder@training id
    _f("parent_rollout_id", pa.string()),     # MC continuations: the rollout whose step prefix they extend
    _f("prefix_steps", pa.int32()),
    _f("created_at", _ts),
    # Added after the first release, so they come last (an older store gains them as nulls on open).
    _f("token_ids", pa.list_(pa.int32())),          # the sampled token ids (EOS included when it stopped)
    _f("token_logprobs", pa.list_(pa.float32())),   # the engine's log-prob of each (see docs/sampling.md)
    _f("rewards", pa.map_(pa.string(), pa.float32())),  # GRPO: one value per reward function (null: not scorable)
    _f("reward", pa.float32()),                     # GRPO: their weighted total
    _f("advantage", pa.float32()),                  # GRPO: from sql/grpo_advantages.sql, as trained on
    # Unlabelled queries (correct stays null): the judge's verdict against the iteration's pseudo-label
    # (pseudo_labels.label); selection reads coalesce(correct, pseudo_correct). docs/unlabeled.md.
    _f("pseudo_correct", pa.bool_()),
    # Tasks with a step checker (mstar_data/tasks/checkers.py): whether each step is true of the scene. The
    # faithful-reasoning metric of the dynamics view and the `task` PRM labeller read it. docs/prm.md.
    _f("steps_valid", pa.list_(pa.bool_())),
    # What reproducing a rollout needs besides its seed (docs/sampling.md, "What reproduces where"); null in
    # rows from before them, or where an engine does not say.
    _f("engine", pa.string()),                # hf / vllm / lmdeploy
    _f("dtype", pa.string()),                 # the weights' dtype: float32, bfloat16, ...
    _f("deterministic", pa.bool_()),          # sampled under --deterministic
    _f("batch_key", pa.string()),             # "<hash of the engine call's ordered rollout ids>/<position>"
])

STEP_LABELS = pa.schema([
    _f("rollout_id", pa.string(), False),
    _f("step_idx", pa.int32(), False),
    _f("n_rollouts", pa.int32()),
    _f("n_correct", pa.int32()),
    _f("soft_label", pa.float32()),
    _f("hard_label", pa.bool_()),
    _f("run_id", pa.string()),
    _f("created_at", _ts),
    # Added later (an older store reads NULL, which means mc). Who labelled the step: mc (Monte-Carlo
    # continuations), judge (a model asked whether the step is correct; its words in `verdict`) or task (the
    # task's step checker). Each labeller keeps its own labels of the same step.
    _f("labeller", pa.string()),
    _f("verdict", pa.string()),
])

RUNS = pa.schema([
    _f("run_id", pa.string(), False),
    _f("recipe", pa.string()),                # the RESOLVED recipe as JSON: defaults, file, --set and --smoke applied
    _f("created_at", _ts),
    _f("versions", pa.string()),              # JSON: table versions and package versions at start
])

ITERATIONS = pa.schema([
    _f("run_id", pa.string(), False),
    _f("iteration", pa.int32(), False),
    _f("policy_in", pa.string()),
    _f("policy_out", pa.string()),
    _f("temperature", pa.float32()),
    _f("trainset_version", pa.int64()),       # rollouts table version the training set was read from
    _f("trainset_tag", pa.string()),          # the Lance tag naming that version
    _f("n_train", pa.int64()),
    _f("greedy_acc", pa.float64()),
    _f("pass_at_k", pa.float64()),
    _f("k", pa.int32()),
    _f("reward_pass_at_2", pa.float64()),
    _f("mean_len", pa.float64()),
    _f("metrics", pa.string()),               # JSON: everything else the dynamics view gives
    _f("timings", pa.string()),               # JSON: seconds per stage
    _f("created_at", _ts),
])

JOBS = pa.schema([                            # one row per worker invocation: what it did, how fast
    _f("job_id", pa.string(), False),
    _f("kind", pa.string(), False),           # generate / warmup / label / train / prm-score ...
    _f("run_id", pa.string()),
    _f("iteration", pa.int32()),
    _f("stage", pa.string()),
    _f("shard", pa.string()),
    _f("args", pa.string()),                  # JSON
    _f("started_at", _ts),
    _f("finished_at", _ts),
    _f("n_requested", pa.int64()),
    _f("n_skipped", pa.int64()),              # already stored when the job started (a resumed job)
    _f("n_written", pa.int64()),
    _f("n_tokens", pa.int64()),
    _f("wall_s", pa.float64()),
    _f("work_s", pa.float64()),               # model time (generation, training)
    _f("store_s", pa.float64()),              # time spent writing to the store
    _f("rows_per_s", pa.float64()),
    _f("tokens_per_s", pa.float64()),
    _f("status", pa.string()),                # finished / interrupted (null: written by an older release)
])

TRAIN_LOG = pa.schema([                       # one row per optimizer step
    _f("run_id", pa.string(), False),
    _f("iteration", pa.int32(), False),
    _f("step", pa.int64(), False),            # global step (continues across iterations for `continuous`)
    _f("local_step", pa.int64()),
    _f("loss", pa.float64()),
    _f("lr", pa.float64()),
    _f("n_tokens", pa.int64()),
    _f("seconds", pa.float64()),
    _f("created_at", _ts),
    # Added for GRPO (null for SFT): the share of tokens whose ratio was clipped, the k3 KL to the reference,
    # and the policy's mean token entropy over the completions it trained on.
    _f("clip_frac", pa.float64()),
    _f("kl", pa.float64()),
    _f("entropy", pa.float64()),
])

PRM_EVALS = pa.schema([                       # one row per PRM evaluation (`mstar prm eval`)
    _f("prm", pa.string(), False),            # the PRM: folder@training id (as in rollouts.prm)
    _f("run_id", pa.string(), False),         # the run whose rollouts and labels it was measured on
    _f("iteration", pa.int32(), False),
    _f("stage", pa.string(), False),          # the N-samples-per-query rollouts reranked
    _f("split", pa.string(), False),          # the held-out queries whose step labels give the AUC
    _f("aggregate", pa.string(), False),      # min / mean / last
    _f("n_steps", pa.int64()),                # held-out labelled steps
    _f("n_good_steps", pa.int64()),
    _f("step_auc", pa.float64()),
    _f("n_queries", pa.int64()),
    _f("n_samples", pa.int64()),              # samples per query
    _f("best_of_n", pa.float64()),
    _f("weighted_vote", pa.float64()),
    _f("majority_vote", pa.float64()),
    _f("reward_pass_at_2", pa.float64()),
    _f("random_2", pa.float64()),
    _f("pass_at_n", pa.float64()),
    _f("sample_acc", pa.float64()),
    _f("created_at", _ts),
    # Added later: what the PRM was trained on, and how it does against the truth where the task has a step
    # checker (rollouts.steps_valid): step AUC against true step validity, and the faithful share of its top-2
    # correct picks against 2 random correct picks.
    _f("labeller", pa.string()),
    _f("step_auc_truth", pa.float64()),
    _f("n_checked_steps", pa.int64()),
    _f("top2_faithful", pa.float64()),
    _f("random2_faithful", pa.float64()),
])

EVALS = pa.schema([                           # `mstar eval`: one row per (evaluation, method, K, slice)
    _f("eval_id", pa.string(), False),        # hash of what was evaluated: run, iteration, policy, queries, n, T, seed, PRM
    _f("run_id", pa.string(), False),         # the run whose stage-eval rollouts hold the samples
    _f("iteration", pa.int32(), False),
    _f("policy", pa.string()),
    _f("source", pa.string()),                # the split (split:test) or benchmark file the queries came from
    _f("method", pa.string(), False),         # greedy / majority / weighted-vote / prm-best-of-n / self-select
    _f("k", pa.int32(), False),               # samples the method chose among (1 for greedy)
    _f("group_by", pa.string(), False),       # 'all', or the field of a breakdown: question_type, metadata.task ...
    _f("group_value", pa.string(), False),
    _f("n_queries", pa.int64()),
    _f("n_correct", pa.int64()),
    _f("accuracy", pa.float64()),             # null: the method was skipped (see note)
    _f("note", pa.string()),                  # why a method was skipped
    _f("n_samples", pa.int32()),              # samples per query (N)
    _f("temperature", pa.float32()),
    _f("seed", pa.int64()),
    _f("prm", pa.string()),                   # the PRM that scored the samples (folder@training id)
    _f("created_at", _ts),
])

PSEUDO_LABELS = pa.schema([                   # one row per unlabelled query sampled in an iteration (docs/unlabeled.md)
    _f("run_id", pa.string(), False),
    _f("iteration", pa.int32(), False),
    _f("query_id", pa.string(), False),
    _f("label", pa.string()),                 # the pseudo-label (null: no sample gave an answer)
    _f("labeller", pa.string(), False),       # weighted_vote (PRM-weighted) / majority (no PRM scores) / oracle
    _f("vote_share", pa.float64()),           # the label's share of the (PRM-weighted) votes
    _f("n_votes", pa.int64()),                # samples whose answer is the label
    _f("n_samples", pa.int64()),              # samples that gave an answer
    _f("n_scored", pa.int64()),               # of those, samples with a PRM score
    _f("label_correct", pa.bool_()),          # the label against the held-aside true answer (null: none held)
    _f("rollouts_version", pa.int64()),       # the pinned rollouts version the vote was read from
    _f("created_at", _ts),
])

# The run leases (store/lease.py): an append-only log of claim / heartbeat / release events, one process per
# run id. Written by store/lease.py alone, never through Store.append (no compaction: the log's commit order
# decides who holds a run). `mstar sql "select * from leases"` shows who held what.
LEASES = pa.schema([
    _f("run_id", pa.string(), False),
    _f("holder", pa.string(), False),         # a random id per process and run
    _f("event", pa.string(), False),          # claim / heartbeat / release
    _f("host", pa.string()),
    _f("pid", pa.int64()),
    _f("at", pa.float64(), False),            # the writer's clock, seconds since the epoch
    _f("ttl_s", pa.float64()),                # the holder's expiry: no heartbeat for this long frees the run
    _f("by", pa.string()),                    # who wrote a release (another holder when its pid was gone)
    _f("note", pa.string()),
])

# The Ray executor's shard-commit ledger (mstar_data/exec/ledger.py): one row per shard of a job whose rows were
# committed (or found already committed), so a retried or duplicated shard adds nothing twice.
SHARD_LEDGER = pa.schema([
    _f("scope", pa.string(), False),          # the job's slice of the table (a Lance filter: run, iteration, stage)
    _f("shard_id", pa.string(), False),       # hash of (scope, shard index, the shard's rollout ids)
    _f("table_name", pa.string(), False),     # the table the shard's rows went to (rollouts)
    _f("shard_index", pa.int32()),
    _f("n_rows", pa.int64()),                 # rows the commit added (0: found already committed)
    _f("table_version", pa.int64()),          # the table's version after the commit
    _f("outcome", pa.string()),               # committed / found (committed by an earlier try, ledger row lost)
    _f("committed_at", _ts),
])

TABLES: dict[str, pa.Schema] = {
    "queries": QUERIES,
    "images": IMAGES,
    "rollouts": ROLLOUTS,
    "step_labels": STEP_LABELS,
    "runs": RUNS,
    "iterations": ITERATIONS,
    "jobs": JOBS,
    "train_log": TRAIN_LOG,
    "prm_evals": PRM_EVALS,
    "pseudo_labels": PSEUDO_LABELS,
    "evals": EVALS,
    "leases": LEASES,
    "shard_ledger": SHARD_LEDGER,
}

KEYS: dict[str, tuple[str, ...]] = {
    "queries": ("query_id",),
    "images": ("image_sha256",),
    "rollouts": ("rollout_id",),
    "step_labels": ("rollout_id", "step_idx", "labeller"),
    "runs": ("run_id",),
    "iterations": ("run_id", "iteration"),
    "jobs": ("job_id",),
    "train_log": ("run_id", "iteration", "step"),
    "prm_evals": ("prm", "run_id", "iteration", "stage", "split", "aggregate"),
    "pseudo_labels": ("run_id", "iteration", "query_id"),
    "evals": ("eval_id", "method", "k", "group_by", "group_value"),
    "leases": ("run_id", "holder", "event", "at"),
    "shard_ledger": ("scope", "shard_id"),
}

# What a key column added after the first release means where an older row reads NULL (store/tables.py).
KEY_NULLS: dict[str, str] = {"labeller": "mc"}


def blob_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if f.metadata and f.metadata.get(b"lance-encoding:blob") == b"true"]


def conform(table: pa.Table, name: str) -> pa.Table:
    """Order and cast `table` to the named schema; missing nullable columns become nulls."""
    schema = TABLES[name]
    cols = []
    for field in schema:
        if field.name in table.column_names:
            cols.append(table.column(field.name).cast(field.type))
        elif field.nullable:
            cols.append(pa.nulls(table.num_rows, field.type))
        else:
            raise ValueError(f"{name}: column '{field.name}' is required")
    return pa.Table.from_arrays(cols, schema=schema)
