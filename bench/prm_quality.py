"""PRM quality per step labeller on the embedded task: label the policy's responses, train a PRM, measure it.

    python bench/prm_quality.py --store /tmp/prmq                          # mc and task, seeds 0,1,2
    python bench/prm_quality.py --store /tmp/prmq --labellers task --seeds 0 --train-queries 400

For each labeller and seed it runs the demo's PRM pipeline (prm/pipeline.build_prm: sample the policy on train
and val queries, label the steps, train, evaluate) as run `prmq-<labeller>-s<seed>`, and prints what
`prm_evals` holds for it:
- step AUC against the labeller's own held-out labels, and against the truth (rollouts.steps_valid, the shapes
  task's step checker);
- Reward-Pass@2 against random-2 on the same samples;
- the faithful share (every step true) of the PRM's top-2 correct picks against 2 random correct picks, the
  choice M-STAR's selection makes.
The policy is the store's bootstrap policy (built as `mstar demo` builds it if missing) or --policy. The judge
labeller needs a judge model the embedded task does not have, so it is not measured here (it is tested with
a scripted engine: tests/e2e/test_prm_labellers.py). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIELDS = ("step_auc", "step_auc_truth", "reward_pass_at_2", "random_2", "top2_faithful", "random2_faithful")
KINDS = ("count", "sum", "answer", "other")


def step_kind(step: str) -> str:
    from mstar_data.tasks.shapes import _ANSWER, _CLAIM, _SUM

    s = " ".join(step.split()).lower()
    return "count" if _CLAIM.match(s) else "sum" if _SUM.match(s) else "answer" if _ANSWER.match(s) else "other"


def auc(pairs: list[tuple[bool, float]]) -> float | None:
    pos = sorted(s for y, s in pairs if y)
    neg = [s for y, s in pairs if not y]
    if not pos or not neg:
        return None
    import bisect

    wins = sum(len(pos) - bisect.bisect_right(pos, n) + 0.5 * (bisect.bisect_right(pos, n) - bisect.bisect_left(pos, n))
               for n in neg)
    return wins / (len(pos) * len(neg))


def auc_by_kind(store, run: str) -> dict:
    """Step AUC against the truth per kind of step (a count claim, a sum, the answer, anything else), with each
    kind's share of true steps: which claims the PRM can check."""
    rows = store.dataset("rollouts").to_table(
        columns=["steps", "steps_valid", "step_scores"],
        filter=f"run_id = '{run}' AND stage = 'eval' AND step_scores IS NOT NULL").to_pylist()
    by: dict[str, list] = {k: [] for k in KINDS}
    for r in rows:
        for step, ok, score in zip(r["steps"], r["steps_valid"] or [], r["step_scores"]):
            by[step_kind(step)].append((ok, score))
    return {k: {"n": len(v), "true": round(sum(y for y, _ in v) / len(v), 3) if v else None,
                "auc": None if auc(v) is None else round(auc(v), 3)} for k, v in by.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--policy", default=None, help="Policy to label and PRM init (default: the bootstrap policy).")
    ap.add_argument("--labellers", default="mc,task")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--train-queries", type=int, default=160)
    ap.add_argument("--eval-queries", type=int, default=90)
    ap.add_argument("--n-train", type=int, default=2)
    ap.add_argument("--n-eval", type=int, default=8)
    ap.add_argument("--m", type=int, default=4, help="mc: continuations per step prefix.")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--perturb", default=None, choices=("reference", "rollouts"),
                    help="Add perturbed chains of thought (prm/perturb.py) from this source to the training data.")
    ap.add_argument("--per-source", type=int, default=8, help="--perturb: perturbed responses per source chain.")
    ap.add_argument("--freeze-vision", action="store_true", help="Train the PRM's language model only.")
    ap.add_argument("--prompt", default="question", choices=("question", "cot"),
                    help="What the PRM reads before the steps: the question alone, or the policy's prompt.")
    ap.add_argument("--steps", type=int, default=None, help="Cap on the PRM's training steps.")
    args = ap.parse_args()
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.inputs import select_queries
    from mstar_data.models.bootstrap import BootstrapConfig, run_bootstrap
    from mstar_data.prm.pipeline import build_prm
    from mstar_data.store import Store

    store = Store(args.store)
    ingest_items(store, synthetic_items(2400, 1, "easy", 0.2), source="synthetic", dataset="synthetic",
                 split="train")
    policy = args.policy or str(Path(args.store) / "policies" / "base")
    if not args.policy and not (Path(policy) / "mstar_policy.json").is_file():
        run_bootstrap(store, BootstrapConfig(out=policy))
    train_ids = [q["query_id"] for q in select_queries(store, split="train", limit=args.train_queries)]
    eval_ids = [q["query_id"] for q in select_queries(store, split="val", limit=args.eval_queries)]
    results = []
    for labeller in args.labellers.split(","):
        for seed in map(int, args.seeds.split(",")):
            run = f"prmq-{labeller}{'-' + args.perturb if args.perturb else ''}-s{seed}"
            t0 = time.perf_counter()
            built = build_prm(store, policy=policy, run=run, out=str(Path(args.store) / "policies" / f"prm-{run}"),
                              train_ids=train_ids, eval_ids=eval_ids, n_train=args.n_train, n_eval=args.n_eval,
                              m=args.m, temperature=args.temperature, seed=seed, labeller=labeller,
                              perturb={"source": args.perturb, "per_source": args.per_source} if args.perturb else None,
                              train={"lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
                                     "warmup_steps": 50 if args.perturb else 5, "save_every": 1000,
                                     "freeze_vision": args.freeze_vision, "prompt": args.prompt,
                                     "max_steps": args.steps})
            e = built.evaluation
            results.append({"labeller": labeller, "seed": seed, **{k: e.get(k) for k in FIELDS},
                            "n_steps": e["n_checked_steps"], "by_kind": auc_by_kind(store, run),
                            **{k: round(v, 1) for k, v in built.timings.items()},
                            "seconds": round(time.perf_counter() - t0, 1)})
            print(json.dumps(results[-1]), flush=True)
    print(f"\n{'labeller':<9}" + "".join(f"{k:>22}" for k in FIELDS))
    for labeller in dict.fromkeys(r["labeller"] for r in results):
        rows = [r for r in results if r["labeller"] == labeller]
        cells = []
        for k in FIELDS:
            vals = [r[k] for r in rows if r[k] is not None]
            sd = statistics.pstdev(vals) if len(vals) > 1 else 0.0
            cells.append("-" if not vals else f"{statistics.mean(vals):.3f} ± {sd:.3f}")
        print(f"{labeller:<9}" + "".join(f"{c:>22}" for c in cells))
    print(f"\nstep AUC against the truth by kind of step (share of true steps), mean over seeds")
    for labeller in dict.fromkeys(r["labeller"] for r in results):
        rows = [r["by_kind"] for r in results if r["labeller"] == labeller]
        cells = []
        for k in KINDS:
            aucs = [b[k]["auc"] for b in rows if b[k]["auc"] is not None]
            true = [b[k]["true"] for b in rows if b[k]["true"] is not None]
            cells.append(f"{k} {statistics.mean(aucs):.3f} ({statistics.mean(true):.0%} true, n={rows[0][k]['n']})"
                         if aucs else f"{k} -")
        print(f"{labeller:<9}" + "   ".join(cells))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
