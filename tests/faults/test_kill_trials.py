"""SIGKILL at seeded random points of five commands, then a rerun: the store ends exactly as after a run that
never stopped.

Commands: `mstar generate`, `mstar prm label` (mc labeller), `mstar prm score`, `mstar train` and
`mstar evolve --smoke` (demo recipe). Each has one uninterrupted baseline run (module-scoped, shared by its
trials). A trial copies the command's starting store, starts the command, SIGKILLs it once the store's
progress (rows of the command's own tables, never wall time) reaches a target drawn from a seeded RNG
(`random.Random("<command>/<trial>")`), reruns it to the end, and then checks:

- the killed run was really killed (it had not finished on its own);
- every compared table holds exactly the baseline's rows (same count, same keys, same values; timings aside);
  for train and evolve that includes train_log, the training schedule: every (step, lr, loss) as in the
  baseline;
- no key (mstar_data.schema.KEYS) is stored twice in any table the command writes.

By default (`make test`) one trial runs for prm label and prm score; generate, train and evolve run theirs
only with MSTAR_FAULT_TRIALS set, because `make test` already kills and reruns each of them once
(tests/e2e/test_generate_resume.py, test_train_resume.py, test_evolve_kill.py) and every trial here costs
three model-loading processes. `MSTAR_FAULT_TRIALS=5 pytest tests/faults` runs five of each command (any N
works; trial i always draws the same kill point). Sizes are the smallest that still give each command
several commit points to be killed between; every process runs with MSTAR_THREADS=1 so that reruns match bit
for bit.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from mstar_data.store import Store
from tests.kills import duplicate_keys, kill_when, mstar, run_progress, table_rows

TRIALS = int(os.environ.get("MSTAR_FAULT_TRIALS", "1"))
ENV = {**os.environ, "MSTAR_THREADS": "1"}  # one thread: a different count reorders float sums
FLUSH_ROWS = 4  # --flush-rows of prm label and prm score: several commits for this test's few rows


@dataclass
class Baseline:
    """A command, the store it starts from, and what its uninterrupted run left in the compared tables."""
    name: str
    cmd: Callable[[Path], list[str]]
    start: Path                        # the store the command starts from (copied for every trial)
    progress: Callable[[Path], int]    # how far a run has come, from the store
    drop: dict[str, set[str]]          # compared tables -> columns left out (timings, write times)
    want: dict[str, list[dict]]        # the baseline's rows of those tables
    done: int                          # progress the baseline made
    straight: Path                     # the baseline's store

    def trial(self, root: Path, trial: int) -> dict[str, int]:
        """Kill at the trial's seeded point, rerun, compare; the rows each table held after the kill."""
        rng = random.Random(f"{self.name}/{trial}")
        # Up to 85% of the way: past that the last commit can be the command's final one, and a kill after it
        # would find the process already gone.
        offset = rng.randint(1, max(1, int(self.done * 0.85)))
        for attempt in range(3):
            store = root / f"{self.name}-{trial}-{attempt}"
            shutil.copytree(self.start, store)
            begin = self.progress(store)
            target = begin + offset
            rc = kill_when(self.cmd(store), store, target, ENV, timeout=240, progress=self.progress)
            assert rc == -signal.SIGKILL, f"{self.name} trial {trial}: ended (rc {rc}) before reaching {target}"
            at = self.progress(store)
            if at - begin < self.done:
                break
            # The last commits came faster than the store is polled (a few small ones at the end): the kill found
            # everything written, which tests nothing. Aim earlier.
            offset = max(1, offset // 2)
        assert at - begin < self.done, f"{self.name} trial {trial}: killed after its last commit (nothing to redo)"
        killed = {t: Store(str(store), create=False).count(t) for t in self.drop}
        r = subprocess.run(self.cmd(store), capture_output=True, text=True, env=ENV)
        assert r.returncode == 0, r.stderr[-3000:]
        for table, drop in self.drop.items():
            assert duplicate_keys(store, table) == [], f"{self.name} trial {trial}: {table} has keys twice"
            got = table_rows(store, table, drop)
            assert len(got) == len(self.want[table]), f"{self.name} trial {trial}: {table} row count"
            assert got == self.want[table], f"{self.name} trial {trial}: {table} rows differ from the baseline"
        print(f"{self.name} trial {trial}: attempt {attempt}, killed at progress {at - begin} (target {offset}) of "
              f"{self.done}; rows then {killed}, after the rerun {({t: len(v) for t, v in self.want.items()})}")
        return killed


def _baseline(name, cmd, start: Path, root: Path, progress, drop) -> Baseline:
    straight = root / f"{name}-straight"
    shutil.copytree(start, straight)
    r = subprocess.run(cmd(straight), capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    want = {t: table_rows(straight, t, d) for t, d in drop.items()}
    for t in drop:
        assert duplicate_keys(straight, t) == []
    return Baseline(name, cmd, start, progress, drop, want, progress(straight) - progress(start), straight)


def _count(table: str, where: str | None = None):
    def progress(store) -> int:
        try:
            return Store(str(store), create=False).count(table, where)
        except Exception:  # a table being created or compacted as we look
            return 0
    return progress


# -- generate -----------------------------------------------------------------------------------------------
# 12 queries x 2 samples = 24 rollouts, flushed every 4: six commits to be killed between.
def _generate(policy):
    return lambda store: mstar("generate", "--policy", policy, "--split", "train", "--n", "2", "--limit", "12",
                               "--run", "k", "--temperature", "1.0", "--max-new-tokens", "24", "--batch-size", "4",
                               "--flush-rows", "4", "--store", store)


@pytest.fixture(scope="module")
def generate(shapes_store, bootstrapped_policy, tmp_path_factory):
    policy, _ = bootstrapped_policy
    root = tmp_path_factory.mktemp("kill-generate")
    return _baseline("generate", _generate(policy), Path(shapes_store), root, _count("rollouts"),
                     {"rollouts": {"created_at"}})


# -- prm label (mc) -----------------------------------------------------------------------------------------
# The generate baseline's 24 rollouts, 2 continuations per step prefix, committed every 4, and one commit of
# step labels per wave (a wave is the next step of every live response).
def _prm_label(policy):
    return lambda store: mstar("prm", "label", "--run", "k", "--policy", policy, "--continuations", "2",
                               "--temperature", "1.0", "--max-new-tokens", "16", "--batch-size", "4",
                               "--flush-rows", FLUSH_ROWS, "--store", store)


def _label_progress(store) -> int:
    """Continuations stored, plus 30 per commit of step labels. A wave's labels land in one commit, most of them
    in the first wave: counted by rows, nearly every kill point would fall after it; counted 1 or 10 per commit,
    nearly none would (the first wave's continuations are most of the rest)."""
    try:
        return _count("rollouts", "stage = 'mc'")(store) + 30 * Store(str(store), create=False).version("step_labels")
    except Exception:  # a table being created or compacted as we look
        return 0


@pytest.fixture(scope="module")
def prm_label(generate, bootstrapped_policy, tmp_path_factory):
    policy, _ = bootstrapped_policy
    root = tmp_path_factory.mktemp("kill-label")
    return _baseline("prm-label", _prm_label(policy), generate.straight, root, _label_progress,
                     {"rollouts": {"created_at"}, "step_labels": {"created_at"}})


# -- prm score ----------------------------------------------------------------------------------------------
# A 2-step PRM trained on the label baseline's step labels scores the 24 explore rollouts, 2 per model call,
# flushed every 4 (a merge_insert each).
def _prm_score(prm):
    return lambda store: mstar("prm", "score", "--prm", prm, "--run", "k", "--stage", "explore", "--batch-size", "2",
                               "--flush-rows", FLUSH_ROWS, "--store", store)


@pytest.fixture(scope="module")
def prm_score(prm_label, bootstrapped_policy, tmp_path_factory):
    from mstar_data.prm.train import PrmTrainConfig, train_prm

    policy, _ = bootstrapped_policy
    root = tmp_path_factory.mktemp("kill-score")
    start = root / "start"
    shutil.copytree(prm_label.straight, start)
    prm = root / "prm"
    train_prm(Store(str(start), create=False),
              PrmTrainConfig(policy=policy, run="k", out=str(prm), max_steps=2, batch_size=8, save_every=100,
                             warmup_steps=1, lr=2e-3))
    return _baseline("prm-score", _prm_score(str(prm)), start, root,
                     _count("rollouts", "prm_score IS NOT NULL"), {"rollouts": {"created_at"}})


# -- train --------------------------------------------------------------------------------------------------
# 12 steps of batch 8 on reference CoTs, a step checkpoint (and its train_log rows) every 2 steps.
def _train(policy):
    return lambda store: mstar("train", "--run", "t", "--iteration", "0", "--policy-in", policy, "--view",
                               "trainset_all_correct", "--batch-size", "8", "--epochs", "20", "--max-steps", "12",
                               "--total-steps", "12", "--warmup-steps", "3", "--save-every", "2", "--store", store)


@pytest.fixture(scope="module")
def train(shapes_store, bootstrapped_policy, tmp_path_factory):
    from mstar_data.inputs import select_queries
    from mstar_data.keys import rollout_id

    policy, _ = bootstrapped_policy
    root = tmp_path_factory.mktemp("kill-train")
    start = root / "start"
    shutil.copytree(shapes_store, start)
    s = Store(str(start), create=False)
    seed_set = select_queries(s, split="train", where="reference_cot IS NOT NULL", limit=48)
    s.append("rollouts", [{"rollout_id": rollout_id("t", 0, "explore", q["query_id"], 0), "run_id": "t",
                           "iteration": 0, "stage": "explore", "query_id": q["query_id"], "sample_idx": 0,
                           "response": q["reference_cot"], "correct": True, "format_ok": True} for q in seed_set])
    return _baseline("train", _train(policy), start, root, _count("train_log"),
                     {"train_log": {"created_at", "seconds"}})


# -- evolve --smoke -----------------------------------------------------------------------------------------
# The demo recipe under --smoke (3 iterations), batches of 4 and at most 6 training steps per iteration (a few
# steps each on the smoke run's small training sets), a step checkpoint every 2.
def _evolve(policy):
    return lambda store: mstar("evolve", "--recipe", "demo.toml", "--smoke", "--set", f"run.base_policy='{policy}'",
                               "--set", "train.batch_size=4", "--set", "train.save_every=2", "--set",
                               "train.max_steps=6", "--store", store)


@pytest.fixture(scope="module")
def evolve(shapes_store, bootstrapped_policy, tmp_path_factory):
    policy, _ = bootstrapped_policy
    root = tmp_path_factory.mktemp("kill-evolve")
    return _baseline("evolve", _evolve(policy), Path(shapes_store), root, run_progress,
                     {"iterations": {"created_at", "timings", "trainset_version"},  # versions count appends
                      "train_log": {"created_at", "seconds"},
                      "rollouts": {"created_at"}})


# -- the trials ---------------------------------------------------------------------------------------------
def _trials(covered_by: str | None = None):
    """Trial 0 by default; trials 1.. only with MSTAR_FAULT_TRIALS > 1. A command whose kill-and-rerun
    already runs in `make test` (`covered_by`) runs here only when MSTAR_FAULT_TRIALS is set."""
    explicit = "MSTAR_FAULT_TRIALS" in os.environ
    skip = pytest.mark.skipif(covered_by is not None and not explicit,
                              reason=f"one kill-and-rerun of this command runs in {covered_by}; "
                                     "MSTAR_FAULT_TRIALS=N runs N trials here")
    return [pytest.param(i, id=f"trial{i}", marks=skip) for i in range(max(1, TRIALS))]


@pytest.mark.parametrize("trial", _trials("tests/e2e/test_generate_resume.py"))
def test_generate_killed_then_rerun_stores_each_planned_rollout_once(generate, tmp_path, trial):
    """generate: after kill + rerun, exactly the baseline's 24 rollouts (ids, responses, verdicts, seeds)."""
    assert len(generate.want["rollouts"]) == 24
    generate.trial(tmp_path, trial)


@pytest.mark.parametrize("trial", _trials())
def test_prm_label_killed_then_rerun_matches_uninterrupted(prm_label, tmp_path, trial):
    """prm label (mc): the same continuations (stage mc) and the same step labels as the baseline, once each."""
    assert prm_label.want["step_labels"] and any(r["stage"] == "mc" for r in prm_label.want["rollouts"])
    prm_label.trial(tmp_path, trial)


@pytest.mark.parametrize("trial", _trials())
def test_prm_score_killed_then_rerun_matches_uninterrupted(prm_score, tmp_path, trial):
    """prm score: every explore rollout scored once by the PRM, with the baseline's step scores, and no row
    added or lost by the merge_inserts."""
    scored = [r for r in prm_score.want["rollouts"] if r["prm_score"] is not None]
    assert len(scored) == prm_score.done > 2 * FLUSH_ROWS
    prm_score.trial(tmp_path, trial)


@pytest.mark.parametrize("trial", _trials("tests/e2e/test_train_resume.py"))
def test_train_killed_then_resumed_has_the_uninterrupted_schedule(train, tmp_path, trial):
    """train: steps 1-12 logged once each, with the baseline's lr and loss (a resumed run recomputes from its
    last step checkpoint)."""
    assert sorted(r["step"] for r in train.want["train_log"]) == list(range(1, 13))
    train.trial(tmp_path, trial)


@pytest.mark.parametrize("trial", _trials("tests/e2e/test_evolve_kill.py"))
def test_evolve_killed_then_rerun_matches_uninterrupted(evolve, tmp_path, trial):
    """evolve --smoke: iterations, train_log (the schedule across iterations) and rollouts equal the baseline's."""
    assert len(evolve.want["iterations"]) == 3 and len(evolve.want["train_log"]) >= 2  # a schedule, not one step
    evolve.trial(tmp_path, trial)
