"""Unlabelled prompts with pseudo-labels in `mstar evolve` (M-STAR's prompt variation, Table 3).

    iteration k of N, once k-1 >= floor(data.unlabeled_start * N):
        the next slice of data.unlabeled_split joins the labelled interval, sized so that unlabelled queries are
        data.unlabeled_ratio of the explored ones; one explore job samples both   -> rollouts (correct: null)
        [the PRM scores every unlabelled sample: the weighted vote weighs them all]
        the rollouts version is pinned (tag <run>.it000k.votes) and each query labelled through
            sql/pseudo_labels_weighted_vote.sql  (PRM-weighted; a majority vote without scores), or
            sql/pseudo_labels_oracle.sql         (the true answer held aside: the skyline)
                                                                                  -> pseudo_labels
        each unlabelled rollout is judged against its query's label              -> rollouts.pseudo_correct
    and the training-set views then read coalesce(correct, pseudo_correct).

The true answer of an unlabelled query, where the store holds one aside (queries.meta.held_out_answer, written by
`mstar ingest synthetic --unlabeled-fraction`), is read by the oracle view and to record whether a label is
right (pseudo_labels.label_correct); in weighted_vote mode nothing the policy trains on depends on it.
Every step first looks for what it wrote, so a rerun after a crash adds no label and judges no rollout twice.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pyarrow as pa

from mstar_data.answers import is_correct, judge
from mstar_data.errors import MstarError
from mstar_data.inputs import HELD_OUT_KEY
from mstar_data.select.trainset import tag_name
from mstar_data.sql_views import run_view
from mstar_data.store.predicates import all_of, equals, queries_where, run_scope, unlabelled_to_judge

STAGE = "explore"
_COLUMNS = ["query_id", "answer", "answer_type", "choices", "precision", "unit", "meta"]


def first_iteration(start: float, iterations: int) -> int:
    """The first iteration (1-based) that samples unlabelled queries: the one during which the run passes
    `start` (exact when start * iterations is whole, e.g. 0.75 of 8 -> 7; 0.75 of 2 -> 2). N + 1: never."""
    return math.floor(start * iterations + 1e-9) + 1


def held_out_answer(meta: str | None) -> str | None:
    try:
        value = json.loads(meta).get(HELD_OUT_KEY) if meta else None
    except (ValueError, AttributeError):
        return None
    return None if value is None else str(value)


def pin_votes(store, run: str, iteration: int) -> int:
    """The rollouts version an iteration's pseudo-labels are read from: tagged on first use, reused after."""
    tag = f"{tag_name(run, iteration)}.votes"
    ds = store.dataset("rollouts")
    tags = ds.tags.list()
    if tag in tags:
        return tags[tag]["version"]
    ds.tags.create(tag, ds.version)
    return ds.version


class UnlabeledMix:
    """The unlabelled side of one run: which queries each iteration adds, and their labels and verdicts."""

    def __init__(self, store, recipe):
        self.store, self.r = store, recipe
        d = recipe.data
        self.run, self.split, self.ratio = recipe.run.id, d.unlabeled_split, d.unlabeled_ratio
        self.mode = d.pseudo_label
        self.first = first_iteration(d.unlabeled_start, d.iterations)
        self.queries: dict[str, dict] = {}
        if self.ratio > 0:
            self._load()

    @property
    def active(self) -> bool:
        return bool(self.queries) and self.first <= self.r.data.iterations

    def _load(self) -> None:
        """Read and check the pool before the run writes anything: bad input is refused whole."""
        d = self.r.data
        if self.split in (d.train_split, d.val_split):
            raise MstarError(f"recipe data.unlabeled_split '{self.split}': is also the train or val split; "
                             f"unlabelled queries need a split of their own")
        rows = self.store.dataset("queries").to_table(
            columns=_COLUMNS, filter=all_of(equals("split", self.split), queries_where(dataset=d.dataset))
        ).sort_by("query_id").to_pylist()
        if not rows:
            raise MstarError(f"recipe data.unlabeled_split '{self.split}': no queries in {self.store.uri} "
                             f"(data.unlabeled_ratio = {self.ratio} draws from it; `mstar ingest synthetic "
                             f"--unlabeled-fraction 0.5` holds out half of train)")
        for q in rows:
            if q["answer"] is not None:
                raise MstarError(f"queries '{q['query_id']}' field 'answer': set, but data.unlabeled_split "
                                 f"'{self.split}' must hold queries without answers (keep a true answer aside in "
                                 f"meta.{HELD_OUT_KEY})")
            q["held"] = held_out_answer(q.pop("meta"))
            if self.mode == "oracle" and q["held"] is None:
                raise MstarError(f"queries '{q['query_id']}' field 'meta.{HELD_OUT_KEY}': missing; data.pseudo_label "
                                 f"= 'oracle' needs the true answer of every unlabelled query held aside "
                                 f"(`mstar ingest synthetic --unlabeled-fraction`)")
        self.queries = {q["query_id"]: q for q in rows}

    def describe(self) -> str:
        n = self.r.data.iterations
        when = "never" if self.first > n else f"from iteration {self.first} of {n} (after {(self.first - 1) / n:.0%})"
        return (f"unlabelled queries ({len(self.queries)} in split '{self.split}', {self.ratio:.0%} of each "
                f"iteration's queries, {self.mode} labels) join {when}")

    def sample(self, iteration: int, n_labelled: int) -> list[str]:
        """The unlabelled queries iteration `iteration` explores beside `n_labelled` labelled ones: none before
        the start, then consecutive slices of the pool (by id, wrapping around), like the labelled interval."""
        if not self.active or iteration < self.first:
            return []
        pool = list(self.queries)
        n = min(len(pool), max(1, round(n_labelled * self.ratio / (1 - self.ratio))))
        offset = (iteration - self.first) * n
        return [pool[(offset + i) % len(pool)] for i in range(n)]

    # -- labels and verdicts ------------------------------------------------------------------------
    def stored_labels(self, iteration: int) -> dict[str, dict]:
        rows = self.store.dataset("pseudo_labels").to_table(
            filter=all_of(equals("run_id", self.run), f"iteration = {int(iteration)}")).to_pylist()
        return {r["query_id"]: r for r in rows}

    def label(self, iteration: int, query_ids: list[str]) -> dict[str, dict]:
        """One pseudo_labels row per query, read through the view at the pinned rollouts version (a rerun
        finds them stored and writes nothing)."""
        stored = self.stored_labels(iteration)
        if set(query_ids) <= stored.keys():
            return stored
        version = pin_votes(self.store, self.run, iteration)
        votes = {r["query_id"]: r for r in run_view(
            self.store, f"pseudo_labels_{self.mode}", versions={"rollouts": version}, run=self.run,
            iteration=iteration, stage=STAGE, split=self.split).to_pylist()}
        now = datetime.now(timezone.utc)
        rows = []
        for qid in sorted(set(query_ids)):
            q, v = self.queries[qid], votes.get(qid, {})
            label = v.get("pseudo_answer")
            # weighted_vote where the samples carry PRM scores; a query with no answer at all takes the run's
            weighted = v.get("n_scored") or (label is None and self.r.prm.path)
            labeller = "oracle" if self.mode == "oracle" else "weighted_vote" if weighted else "majority"
            right = None if label is None or q["held"] is None else is_correct(
                label, q["held"], answer_type=q["answer_type"], choices=q["choices"], precision=q["precision"],
                unit=q["unit"])
            rows.append({"run_id": self.run, "iteration": iteration, "query_id": qid, "label": label,
                         "labeller": labeller, "vote_share": v.get("vote_share"), "n_votes": v.get("n_votes", 0),
                         "n_samples": v.get("n_samples", 0), "n_scored": v.get("n_scored", 0),
                         "label_correct": right, "rollouts_version": version, "created_at": now})
        self.store.append("pseudo_labels", rows, conflict_column="label",
                          source=f"pseudo-labels of run {self.run} iteration {iteration}")
        return self.stored_labels(iteration)

    def judge(self, iteration: int, labels: dict[str, dict]) -> int:
        """Judge each unlabelled rollout not judged yet against its query's label -> rollouts.pseudo_correct.
        A query without a label (no sample gave an answer) leaves its rollouts without a verdict."""
        rows = self.store.dataset("rollouts").to_table(
            columns=["rollout_id", "query_id", "response"],
            filter=unlabelled_to_judge(self.run, iteration, STAGE)).to_pylist()
        ids, verdicts = [], []
        for r in rows:
            label = (labels.get(r["query_id"]) or {}).get("label")
            if label is None:
                continue
            q = self.queries[r["query_id"]]
            ids.append(r["rollout_id"])
            verdicts.append(judge(r["response"], label, answer_type=q["answer_type"], choices=q["choices"],
                                  precision=q["precision"], unit=q["unit"]).correct)
        if ids:
            self.store.update("rollouts", pa.table({"rollout_id": pa.array(ids, pa.string()),
                                                    "pseudo_correct": pa.array(verdicts, pa.bool_())}))
        return len(ids)

    def pseudo_label(self, iteration: int, query_ids: list[str]) -> dict:
        """Label this iteration's unlabelled queries and judge their rollouts; returns what the log shows."""
        labels = self.label(iteration, query_ids)
        self.judge(iteration, labels)
        mine = [labels[q] for q in query_ids if q in labels]
        checked = [x["label_correct"] for x in mine if x["label_correct"] is not None]
        n_right = self.store.count("rollouts", all_of(run_scope(self.run, iteration, STAGE), "pseudo_correct = true"))
        return {"queries": len(mine), "labelled": sum(x["label"] is not None for x in mine),
                "labeller": ",".join(sorted({x["labeller"] for x in mine})),
                "label_acc": sum(checked) / len(checked) if checked else None, "pseudo_correct": n_right}
