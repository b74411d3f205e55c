"""PRM quality on the embedded task: MC-label the policy's responses, train a PRM, and measure it.

    python bench/prm_quality.py --store /tmp/prmq                     # labeller = a fresh bootstrap policy
    python bench/prm_quality.py --store /tmp/prmq --policy CKPT --run strong   # e.g. an evolved policy

Prints the `prm_evals` row (step AUC on held-out MC labels; best-of-N, PRM-weighted vote and Reward-Pass@2
against majority vote and random-2, measured on the same samples) and, because the shapes task knows its
counts, how well the MC labels and the PRM agree with each step's ground truth (a step is right when every
count, sum and answer up to it is). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEP_COUNT = re.compile(r"(red|green|blue): (\d+)\.")
STEP_SUM = re.compile(r"(\d+) \+ (\d+) = (\d+)\.")
STEP_ANSWER = re.compile(r"# Answer\s+(\S+)")


def step_truth(steps: list[str], meta: str, question: str, answer: str) -> list[bool]:
    """Per step: is every step up to here right (a count of an asked colour, the sum, the answer)?"""
    counts = json.loads(meta)["counts"]
    asked = re.findall(r"red|green|blue", question)
    ok, out = True, []
    for s in steps:
        s = s.strip()
        if m := STEP_COUNT.fullmatch(s):
            good = m.group(1) in asked and counts[m.group(1)] == int(m.group(2))
        elif m := STEP_SUM.fullmatch(s):
            good = int(m.group(1)) + int(m.group(2)) == int(m.group(3)) == int(answer)
        elif m := STEP_ANSWER.fullmatch(s):
            good = m.group(1) == answer
        else:
            good = False
        ok = ok and good
        out.append(ok)
    return out


def auc(labels: list[bool], scores: list[float]) -> float | None:
    pos = [s for y, s in zip(labels, scores) if y]
    neg = [s for y, s in zip(labels, scores) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--policy", default=None, help="Labeller and PRM init (default: the store's bootstrap policy).")
    ap.add_argument("--run", default="prmq")
    ap.add_argument("--train-queries", type=int, default=200)
    ap.add_argument("--eval-queries", type=int, default=90)
    ap.add_argument("--n-train", type=int, default=4)
    ap.add_argument("--n-eval", type=int, default=8)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--epochs", type=float, default=4)
    args = ap.parse_args()
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.inputs import select_queries
    from mstar_data.prm.pipeline import build_prm
    from mstar_data.sql_views import run_read_only, sql_literal
    from mstar_data.store import Store
    from mstar_data.models.bootstrap import BootstrapConfig, run_bootstrap

    store = Store(args.store)
    ingest_items(store, synthetic_items(2400, 1, "easy", 0.2), source="synthetic", dataset="synthetic",
                 split="train")
    policy = args.policy or str(Path(args.store) / "policies" / "base")
    if not args.policy and not (Path(policy) / "mstar_policy.json").is_file():
        run_bootstrap(store, BootstrapConfig(out=policy))
    t0 = time.perf_counter()
    built = build_prm(store, policy=policy, run=args.run, out=str(Path(args.store) / "policies" / f"prm-{args.run}"),
                      train_ids=[q["query_id"] for q in select_queries(store, split="train", limit=args.train_queries)],
                      eval_ids=[q["query_id"] for q in select_queries(store, split="val", limit=args.eval_queries)],
                      n_train=args.n_train, n_eval=args.n_eval, m=args.m, temperature=args.temperature,
                      train={"lr": args.lr, "epochs": args.epochs, "warmup_steps": 5, "save_every": 1000})
    rows = run_read_only(store, f"""
        select r.rollout_id, r.steps, r.step_scores, q.meta, q.question, q.answer, list(l.hard_label order by l.step_idx) as hard
        from rollouts r join step_labels l using (rollout_id) join queries q using (query_id)
        where r.run_id = {sql_literal(args.run)} and r.stage = 'eval' group by all""").to_pylist()
    truth, hard, prm = [], [], []
    for r in rows:
        truth += step_truth(r["steps"], r["meta"], r["question"], r["answer"])
        hard += r["hard"]
        prm += r["step_scores"]
    e = built.evaluation
    result = {"run": args.run, "policy": policy, "step_auc": e["step_auc"], "n_steps": e["n_steps"],
              "good_share": e["n_good_steps"] / max(e["n_steps"], 1), "best_of_n": e["best_of_n"],
              "weighted_vote": e["weighted_vote"], "majority_vote": e["majority_vote"],
              "reward_pass_at_2": e["reward_pass_at_2"], "random_2": e["random_2"], "pass_at_n": e["pass_at_n"],
              "sample_acc": e["sample_acc"], "truth_share": sum(truth) / max(len(truth), 1),
              "labels_vs_truth_auc": auc(truth, [float(h) for h in hard]), "prm_vs_truth_auc": auc(truth, prm),
              **{k: round(v, 1) for k, v in built.timings.items()}, "seconds": round(time.perf_counter() - t0, 1)}
    for k, v in result.items():
        print(f"{k:>20}: {round(v, 3) if isinstance(v, float) else v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
