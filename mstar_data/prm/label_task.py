"""`mstar prm label --labeller task`: step labels from the task's own step checker (mstar_data/tasks/checkers.py).

The labels are the truth of each step (the shapes task checks every "colour: n." and "a + b = c." claim
against the generated scene), so they stand in for a strong judge model or human step labels. Rollouts are
checked again from their text, so rollouts written before `steps_valid` existed can be labelled too. Every
source rollout is checked before anything is written: a query without a checker stops the job with nothing
written. A rerun writes only the labels that are missing.
"""

from __future__ import annotations

from mstar_data.errors import MstarError
from mstar_data.inputs import select_queries
from mstar_data.prm.label import LabelConfig, LabelResult, _finish, labelled_steps, start_job, verdict_label
from mstar_data.progress import report
from mstar_data.tasks.checkers import check_steps, query_checker


def run_task_label(store, cfg: LabelConfig, progress=None) -> LabelResult:
    t_start, started_at, result, parents = start_job(store, cfg)
    queries = {q["query_id"]: q for q in select_queries(store, query_ids=sorted({p["query_id"] for p in parents}))}
    done = {(r["rollout_id"], r["step_idx"]) for r in labelled_steps(store, cfg, {p["rollout_id"] for p in parents})}
    result.labels_skipped = len(done)
    labels = []
    for p in parents:
        q = queries[p["query_id"]]
        valid = check_steps(query_checker(q), q["question"], p["steps"])
        if valid is None:
            raise MstarError(f"rollout {p['rollout_id']}: query '{q['query_id']}' has no step checker (only tasks "
                             f"that can check their steps support --labeller task); use --labeller mc or judge")
        labels += [verdict_label(p["rollout_id"], j, ok, cfg.run, "task", asked=False)
                   for j, ok in enumerate(valid) if (p["rollout_id"], j) not in done]
    for start in range(0, len(labels), cfg.flush_rows):
        result.labels_written += store.append("step_labels", labels[start:start + cfg.flush_rows])
        report(progress, "prm label (task)", min(start + cfg.flush_rows, len(labels)), len(labels), "")
    return _finish(store, cfg, result, started_at, t_start)
