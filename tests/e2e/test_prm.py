"""The PRM through the real code paths on the tiny policy: label, train (and resume), score, evaluate, export,
and the loop using it."""

import pytest

from mstar_data.ingest.synthetic import synthetic_items
from mstar_data.ingest.writer import ingest_items
from mstar_data.inputs import select_queries
from mstar_data.prm.evaluate import EvalConfig, run_eval
from mstar_data.prm.label import LabelConfig, run_label
from mstar_data.prm.score import ScoreConfig, run_score
from mstar_data.prm.train import PrmTrainConfig, train_prm
from mstar_data.store import Store
from mstar_data.sampling.engines import load_engine
from mstar_data.sampling.generate import GenerateConfig, run_generate

TRAIN = dict(max_steps=6, batch_size=8, save_every=2, warmup_steps=1, lr=2e-3)


@pytest.fixture(scope="module")
def prm_store(bootstrapped_policy, tmp_path_factory):
    policy, _ = bootstrapped_policy
    root = tmp_path_factory.mktemp("prm")
    s = Store(str(root / "store"))
    ingest_items(s, synthetic_items(300, 1, "easy", 0.2), source="synthetic", dataset="synthetic", split="train")
    sampler = load_engine("hf", policy)
    for stage, split, nq, n in (("explore", "train", 24, 2), ("eval", "val", 12, 4)):
        ids = [q["query_id"] for q in select_queries(s, split=split, limit=nq)]
        run_generate(s, GenerateConfig(policy=policy, split=None, query_ids=ids, n=n, temperature=0.7, run="p",
                                       stage=stage, max_new_tokens=40, batch_size=48), engine=sampler)
        run_label(s, LabelConfig(policy=policy, run="p", stage=stage, m=2, temperature=0.7, max_new_tokens=40),
                  engine=sampler)
    out = root / "prm"
    train_prm(s, PrmTrainConfig(policy=policy, run="p", out=str(out), **TRAIN))
    return s, policy, str(out)


def test_labels_come_from_real_continuations(prm_store):
    s, _, _ = prm_store
    mc = s.dataset("rollouts").to_table(columns=["parent_rollout_id", "prefix_steps", "correct"],
                                        filter="stage = 'mc'").to_pylist()
    assert mc and all(m["parent_rollout_id"] and m["prefix_steps"] >= 1 and m["correct"] is not None for m in mc)
    n_parents = s.count("rollouts", "run_id = 'p' AND stage <> 'mc'")
    assert s.count("step_labels") >= n_parents  # at least one label per response


def test_trained_prm_says_how_it_reads_steps(prm_store, cli):
    from mstar_data.prm.model import prm_meta

    s, policy, out = prm_store
    meta = prm_meta(out)
    assert meta["label"] == "hard" and meta["run"] == "p" and meta["n_responses"] > 0 and meta["positive"] == "+"
    assert len(meta["id"]) == 12  # a retrained PRM in the same folder is another PRM: its scores are redone
    r = cli("prm", "score", "--prm", policy, "--run", "p", "--store", s.uri)
    assert r.rc == 1 and "not a trained PRM" in r.err and "Traceback" not in r.err


def test_prm_train_freeze_vision_keeps_the_vision_tower(prm_store, cli, tmp_path):
    import torch

    from mstar_data.models.loading import load_policy, vision_parameters
    from mstar_data.prm.model import prm_meta

    s, policy, _ = prm_store
    out = tmp_path / "frozen"
    r = cli("prm", "train", "--policy", policy, "--run", "p", "--out", out, "--max-steps", "3", "--batch-size", "8",
            "--lr", "5e-3", "--warmup-steps", "0", "--freeze-vision", "--store", s.uri)
    assert r.rc == 0, r.err
    assert prm_meta(out)["freeze_vision"] is True
    before, after = load_policy(policy).model, load_policy(out).model
    vision = {id(p) for p in vision_parameters(after)}
    names = {n for n, p in after.named_parameters() if id(p) in vision}
    b, a = dict(before.named_parameters()), dict(after.named_parameters())
    assert names and all(torch.equal(b[n], a[n]) for n in names)           # bit-identical
    assert any(not torch.equal(b[n], a[n]) for n in a if n not in names)   # the language model trained


@pytest.mark.slow
def test_prm_train_in_two_processes_trains_as_one(prm_store, cli, tmp_path):
    """`mstar prm train --nproc 2` (torchrun, gloo): the same per-step losses and weights as one process."""
    from safetensors.torch import load_file

    from mstar_data.prm.model import prm_meta

    s, policy, _ = prm_store
    args = ["--policy", policy, "--run", "p", "--max-steps", "3", "--batch-size", "8", "--lr", "1e-4",
            "--warmup-steps", "1", "--store", s.uri]
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        r = cli("prm", "train", "--out", tmp_path / name, *extra, *args)
        assert r.rc == 0, r.err
        assert r.out.count("prm train run=p") == 1
    log = {name: sorted((x["step"], x["loss"]) for x in s.dataset("train_log").to_table().to_pylist()
                        if x["run_id"] == f"prm:{name}") for name in ("one", "two")}
    assert [x[0] for x in log["two"]] == [1, 2, 3] == [x[0] for x in log["one"]]
    assert max(abs(a[1] - b[1]) for a, b in zip(log["one"], log["two"])) < 1e-5
    w1, w2 = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("one", "two"))
    assert w1.keys() == w2.keys() and max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-5
    assert prm_meta(tmp_path / "two")["prompt"] == "question"


def test_score_fills_steps_and_is_idempotent(prm_store):
    s, _, out = prm_store
    cfg = ScoreConfig(prm=out, run="p", stage="eval")
    first = run_score(s, cfg)
    # Every response with steps is scored; one that stopped at once (EOS first: no steps) has nothing to score.
    rows = [r for r in s.dataset("rollouts").to_table(filter="run_id = 'p' AND stage = 'eval'").to_pylist()
            if r["steps"]]
    assert first.scored == len(rows) > 0
    for r in rows:
        assert len(r["step_scores"]) == len(r["steps"]) and all(0 < x < 1 for x in r["step_scores"])
        assert r["prm_score"] == pytest.approx(min(r["step_scores"])) and r["prm"].startswith(out + "@")
    version = s.version("rollouts")
    again = run_score(s, cfg)
    assert (again.scored, again.rescored, again.unchanged) == (0, 0, len(rows)) and s.version("rollouts") == version
    mean = run_score(s, cfg.model_copy(update={"aggregate": "mean"}))
    # No model pass: the stored step scores are reused. A one-step response's mean is its min (unchanged).
    multi = sum(len(r["steps"]) > 1 for r in rows)
    assert mean.scored == 0 and (mean.rescored, mean.unchanged) == (multi, len(rows) - multi) and multi > 0
    r0 = s.dataset("rollouts").to_table(filter=f"rollout_id = '{rows[0]['rollout_id']}'").to_pylist()[0]
    assert r0["prm_score"] == pytest.approx(sum(r0["step_scores"]) / len(r0["step_scores"]))
    run_score(s, cfg)  # back to min for the other tests


def test_prm_reads_the_prompt_it_was_trained_on(prm_store):
    """A PRM reads the question alone before the steps (not the policy's instruction), in training and in
    scoring alike: its checkpoint says so, and the stored scores are those of that prompt."""
    from mstar_data.inputs import query_inputs
    from mstar_data.prm.format import PRMExample, step_scores
    from mstar_data.prm.model import load_prm, prm_meta

    s, _, out = prm_store
    assert prm_meta(out)["prompt"] == "question"
    run_score(s, ScoreConfig(prm=out, run="p", stage="eval"))
    row = next(r for r in s.dataset("rollouts").to_table(filter="run_id = 'p' AND stage = 'eval'").to_pylist()
               if r["steps"])
    prm = load_prm(out)
    scores = {}
    for variant in ("question", "cot"):
        q = query_inputs(s, [row["query_id"]], variant=variant)[row["query_id"]]
        scores[variant] = step_scores(prm, [PRMExample(q.prompt, q.image, row["steps"])])[0]
    assert "step by step" not in query_inputs(s, [row["query_id"]], variant="question")[row["query_id"]].prompt
    assert row["step_scores"] == pytest.approx(scores["question"], abs=1e-5)
    assert scores["question"] != pytest.approx(scores["cot"], abs=1e-5)


def test_eval_writes_one_prm_evals_row(prm_store, cli):
    s, _, out = prm_store
    row = run_eval(s, EvalConfig(prm=out, run="p"))
    assert row["n_steps"] > 0 and 0.0 <= row["step_auc"] <= 1.0
    assert row["n_queries"] == 12 and row["n_samples"] == 4
    for key in ("best_of_n", "weighted_vote", "majority_vote", "reward_pass_at_2", "random_2"):
        assert 0.0 <= row[key] <= row["pass_at_n"]
    r = cli("prm", "eval", "--prm", out, "--run", "p", "--store", s.uri)
    assert r.rc == 0 and "step AUC" in r.out and "Reward-Pass@2" in r.out
    assert s.count("prm_evals") == 1  # keyed: re-evaluating writes nothing new


def test_export_trl_loads_with_datasets(prm_store, tmp_path, cli):
    datasets = pytest.importorskip("datasets")
    s, _, _ = prm_store
    out = tmp_path / "export"
    r = cli("export", "prm", "--format", "trl", "--out", out, "--run", "p", "--store", s.uri)
    assert r.rc == 0, r.err
    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    # Every response with steps (all of them labelled); one that stopped at once (EOS first) has no steps.
    n = sum(1 for r in s.dataset("rollouts").to_table(columns=["steps"], filter="run_id = 'p' AND stage = 'explore'")
            .to_pylist() if r["steps"])
    assert len(ds) == n > 0
    ex = ds[0]
    stored = s.dataset("rollouts").to_table(filter=f"rollout_id = '{ex['rollout_id']}'").to_pylist()[0]
    assert ex["completions"] == stored["steps"] and len(ex["labels"]) == len(ex["completions"])
    assert all(isinstance(x, bool) for x in ex["labels"]) and "How many" in ex["prompt"]
    assert ex["images"][0].size == (64, 64)  # decoded to a PIL image
    card = (out / "README.md").read_text()
    assert f"{n} responses" in card and "run: `p`" in card and "rollouts v" in card and '"m": 2' in card
    bad = cli("export", "prm", "--format", "csv", "--out", tmp_path / "x", "--run", "p", "--store", s.uri)
    assert bad.rc == 1 and "--format 'csv'" in bad.err and not (tmp_path / "x").exists()
    # The task labeller's labels of the same responses, exported on their own: they are the checked truth.
    r = cli("export", "prm", "--labeller", "task", "--out", tmp_path / "t", "--run", "p", "--store", s.uri)
    assert r.rc == 1 and "by the task labeller" in r.err and not (tmp_path / "t").exists()
    assert cli("prm", "label", "--labeller", "task", "--run", "p", "--store", s.uri).rc == 0
    r = cli("export", "prm", "--labeller", "task", "--out", tmp_path / "t", "--run", "p", "--store", s.uri)
    assert r.rc == 0, r.err
    task = datasets.load_dataset("parquet", data_files=str(tmp_path / "t" / "data" / "*.parquet"), split="train")
    valid = {x["rollout_id"]: x["steps_valid"] for x in s.dataset("rollouts").to_table(
        columns=["rollout_id", "steps_valid"], filter="run_id = 'p'").to_pylist()}
    assert len(task) == n and all(ex["labels"] == valid[ex["rollout_id"]] for ex in task)
    assert "task labeller" in (tmp_path / "t" / "README.md").read_text()


def test_prm_training_resumes_after_a_crash_on_the_same_steps(prm_store, tmp_path, monkeypatch):
    from mstar_data.train.losses import PRMStepLoss

    s, policy, _ = prm_store
    whole = train_prm(s, PrmTrainConfig(policy=policy, run="p", out=str(tmp_path / "whole"), **TRAIN))
    real, calls = PRMStepLoss.__call__, []

    def crashing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # the 5th step, after the step-4 checkpoint
            raise RuntimeError("killed")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PRMStepLoss, "__call__", crashing)
    with pytest.raises(RuntimeError, match="killed"):
        train_prm(s, PrmTrainConfig(policy=policy, run="p", out=str(tmp_path / "cut"), **TRAIN))
    monkeypatch.setattr(PRMStepLoss, "__call__", real)
    resumed = train_prm(s, PrmTrainConfig(policy=policy, run="p", out=str(tmp_path / "cut"), **TRAIN))
    assert resumed.resumed_from == 4
    log = s.dataset("train_log").to_table(filter="run_id IN ('prm:whole', 'prm:cut')").to_pylist()
    seq = {run: [(r["step"], round(r["loss"], 5), r["lr"]) for r in sorted(log, key=lambda r: r["step"])
                 if r["run_id"] == run] for run in ("prm:whole", "prm:cut")}
    assert len(seq["prm:whole"]) == whole.steps == 6 and seq["prm:cut"] == seq["prm:whole"]


def test_the_loop_ranks_and_searches_with_the_prm(prm_store, cli):
    s, policy, out = prm_store
    r = cli("evolve", "--recipe", "demo.toml", "--smoke", "--store", s.uri, "--set", f"run.base_policy='{policy}'",
            "--set", "run.id='withprm'", "--set", f"prm.path='{out}'")
    assert r.rc == 0, r.err
    its = s.dataset("iterations").to_table(filter="run_id = 'withprm'").to_pylist()
    assert len(its) == 3 and all(it["reward_pass_at_2"] is not None for it in its)
    scored = s.count("rollouts", "run_id = 'withprm' AND stage = 'temp-sweep' AND prm_score IS NOT NULL")
    assert scored == s.count("rollouts", "run_id = 'withprm' AND stage = 'temp-sweep'") > 0


def test_eval_with_the_real_policy_and_prm_reports_all_five_methods(prm_store, cli, tmp_path):
    from mstar_data.eval.policy import METHODS

    s, policy, out = prm_store
    args = ["eval", "--policy", policy, "--split", "val", "--limit", "6", "--n", "3", "--select-k", "2..3",
            "--prm", out, "--max-new-tokens", "40", "--run", "ev", "--plot", tmp_path / "k.png", "--store", s.uri]
    r = cli(*args)
    assert r.rc == 0, r.err
    rows = s.dataset("evals").to_table(filter="run_id = 'ev' AND group_by = 'all'").to_pylist()
    main = {x["method"]: x for x in rows if x["k"] == {"greedy": 1, "self-select": 3}.get(x["method"], 3)}
    assert set(main) == set(METHODS) and all(0.0 <= x["accuracy"] <= 1.0 for x in main.values())
    assert all(m in r.out for m in METHODS) and "skipped" not in r.out
    # the samples were scored by this PRM, and the picks are rows asked with the self-select prompt
    scored = s.dataset("rollouts").to_table(filter="run_id = 'ev' AND stage = 'eval' AND temperature > 0").to_pylist()
    assert len(scored) == 18 and all(x["prm"].startswith(out + "@") for x in scored)
    assert s.count("rollouts", "run_id = 'ev' AND stage = 'eval-select' AND prompt_variant = 'self-select'") == 12
    assert (tmp_path / "k.png").is_file()
    again = cli(*args)
    assert again.rc == 0 and "0 rollouts sampled, 0 evals rows written" in again.out
