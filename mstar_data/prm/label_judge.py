"""`mstar prm label --labeller judge`: a model asked, step by step, whether each step is correct.

Any VLM behind a sampling engine can judge (`--judge-model`, `--backend hf|vllm|lmdeploy`; a larger model on
vLLM is the intended use). For step j it sees the image, the question and steps 1..j, and must answer the one
word Yes or No (prompts.step_judge_prompt / parse_step_verdict: anything else is not read as a verdict). Like
the mc labeller it runs in waves, one step of every live response per wave:
- Yes: the step is labelled good and the next step is asked about;
- No: the step is labelled bad, and the later steps bad without asking (n_rollouts 0), as after an mc step
  with no correct continuation;
- unreadable: the label is written with hard_label NULL and the judge's words in `verdict`; the response
  stops there and, not fully labelled, is not a PRM training example.
Every verdict is kept (`verdict`). Labels are appended after each wave, so a killed job keeps the finished
waves and a rerun asks only about the steps not yet labelled. Seeds are derived from (run, parent, step).
"""

from __future__ import annotations

import time

from mstar_data.errors import MstarError
from mstar_data.inputs import query_inputs
from mstar_data.keys import sample_seed
from mstar_data.prm.label import LabelConfig, LabelResult, _finish, start_job, verdict_label
from mstar_data.progress import report
from mstar_data.prompts import parse_step_verdict, step_judge_prompt
from mstar_data.sampling.engine import SampleRequest
from mstar_data.store.predicates import all_of, equals


def run_judge_label(store, cfg: LabelConfig, engine=None, progress=None) -> LabelResult:
    from mstar_data.sampling.engines import load_engine

    if engine is None and not cfg.judge_model:
        raise MstarError("--judge-model: the judge labeller needs the model that judges the steps")
    t_start, started_at, result, sources = start_job(store, cfg)
    parents = {p["rollout_id"]: p for p in sources}
    # Where each response stands: the next step to ask about, or finished (a No, an unread verdict, the end).
    labels_of: dict[str, dict[int, bool | None]] = {}
    for r in store.stored_keys("step_labels", ("hard_label",),
                               where=all_of(equals("labeller", "judge"), equals("run_id", cfg.run))).to_pylist():
        if r["rollout_id"] in parents:
            labels_of.setdefault(r["rollout_id"], {})[r["step_idx"]] = r["hard_label"]
    result.labels_skipped = sum(len(v) for v in labels_of.values())
    live: dict[str, int] = {}
    for rid, p in parents.items():
        done = labels_of.get(rid, {})
        j = len(done)
        if j < len(p["steps"]) and all(done.get(i) for i in range(j)):
            live[rid] = j
    inputs = query_inputs(store, {p["query_id"] for p in parents.values()})
    if engine is None and live:
        engine = load_engine(cfg.backend, cfg.judge_model)
    total = sum(len(parents[r]["steps"]) - j for r, j in live.items())
    done_n = 0
    while live:
        wave = sorted(live.items())
        requests = []
        for rid, j in wave:
            p, qi = parents[rid], inputs[parents[rid]["query_id"]]
            q = qi.query
            requests.append(SampleRequest(f"{rid}/{j}", step_judge_prompt(q["question"], q["choices"], p["steps"][:j + 1]),
                                          qi.image, cfg.temperature,
                                          sample_seed(cfg.seed, cfg.run, cfg.iteration, "judge", f"{rid}/{j}", 0),
                                          cfg.max_new_tokens))
        t0 = time.perf_counter()
        completions = []
        for start in range(0, len(requests), cfg.batch_size):
            completions += engine.generate(requests[start:start + cfg.batch_size])
        result.gen_s += time.perf_counter() - t0
        result.n_tokens += sum(c.n_tokens for c in completions)
        labels = []
        for (rid, j), c in zip(wave, completions):
            good = parse_step_verdict(c.text)
            labels.append(verdict_label(rid, j, good, cfg.run, "judge", verdict=c.text))
            n_steps = len(parents[rid]["steps"])
            if good is False:
                labels += [verdict_label(rid, s, False, cfg.run, "judge", asked=False) for s in range(j + 1, n_steps)]
            if good and j + 1 < n_steps:
                live[rid] = j + 1
            else:
                del live[rid]
        result.rollouts_written += len(completions)  # verdicts asked for (kept in step_labels.verdict)
        t0 = time.perf_counter()
        result.labels_written += store.append("step_labels", labels)
        result.store_s += time.perf_counter() - t0
        done_n += len(labels)
        report(progress, "prm label (judge)", done_n, total,
               f"{sum(parse_step_verdict(c.text) is None for c in completions)} unread")
    return _finish(store, cfg, result, started_at, t_start)
