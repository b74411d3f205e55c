"""`mstar export cot`: a scripted evolve run's pinned training sets, exported as LLaMA-Factory sharegpt and as
Hugging Face parquet, checked against the loop's own training examples, LLaMA-Factory's rules and `datasets`."""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mstar_data.errors import InputError, MstarError
from mstar_data.export.cot import FEATURES, export_cot
from mstar_data.select.trainset import trainset_params
from mstar_data.export.writer import MARKER, check_sharegpt
from mstar_data.ingest.synthetic import synthetic_items
from mstar_data.ingest.writer import ingest_items
from mstar_data.inputs import select_queries
from mstar_data.loop.evolve import Evolve, LoopParts
from mstar_data.loop.recipe import resolve_recipe
from mstar_data.prompts import build_prompt
from mstar_data.sampling.engine import Completion
from mstar_data.select.trainset import trainset_examples
from mstar_data.store import Store

SHRINK = ["data.iterations=2", "data.interval=0.5", "data.val_limit=6", "sample.n=4", "eval.n=2", "eval.k=2",
          "temperature.search_every=0", "run.base_policy='base'"]


class Engine:
    """Right for half the seeds, so queries have right and wrong samples (R3V needs both)."""

    def __init__(self, gold, policy):
        self.gold, self.policy_tag = gold, policy

    def generate(self, requests):
        out = []
        for r in requests:
            gold = self.gold[(r.prompt, hashlib.sha256(r.image).hexdigest())]
            answer = gold if r.seed % 2 else str(int(gold) + 1 + r.seed % 3)
            out.append(Completion(f"I count {r.seed % 5}.\n\n# Answer\n\n{answer}", 5, "stop", [-0.1] * 5, [1] * 5))
        return out

    def release(self):
        pass


def _train(store, examples, *, run, iteration, checkpoints, **kw):
    @dataclass
    class Trained:
        checkpoint: str

    out = Path(checkpoints) / run / f"it-{iteration:04d}"
    out.mkdir(parents=True, exist_ok=True)
    return Trained(str(out))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cot")
    s = Store(str(root / "store"))
    ingest_items(s, synthetic_items(60, 4, "easy", 0.0), source="synthetic", dataset="synthetic", split="train")
    gold = {(build_prompt(q["question"], q["choices"]), q["image_sha256"]): q["answer"] for q in select_queries(s)}
    parts = LoopParts(load_engine=lambda backend, policy: Engine(gold, policy), check_models=False)
    parts.train = _train
    for run_id, extra in (("topk", []), ("r3v", ["select.view='trainset_r3v'", "select.k=1"])):
        Evolve(s, resolve_recipe("demo.toml", SHRINK + extra, run_id=run_id), parts=parts).run_all()
    # samples that land after the run must not leak into the export: it reads the pinned versions
    Evolve(s, resolve_recipe("demo.toml", SHRINK + ["data.iterations=3"], run_id="later"), parts=parts).run_all()
    return s


def _loop_examples(store, run):
    recipe = json.loads(store.dataset("runs").to_table(filter=f"run_id = '{run}'").to_pylist()[0]["recipe"])
    its = store.dataset("iterations").to_table(filter=f"run_id = '{run}' AND iteration > 0").to_pylist()
    out = {}
    for it in sorted(its, key=lambda r: r["iteration"]):
        out[it["iteration"]] = (it["n_train"], trainset_examples(
            store, recipe["select"]["view"], run=run, iteration=it["iteration"], version=it["trainset_version"],
            params=trainset_params(recipe, it["iteration"])))
    return out


def test_sharegpt_holds_what_each_iteration_trained_on_and_passes_llama_factory_rules(runs, tmp_path):
    out = tmp_path / "sg"
    r = export_cot(runs, out, run="r3v", fmt="sharegpt")
    data = json.loads((out / "data.json").read_text())
    loop = _loop_examples(runs, "r3v")
    assert r.by_iteration == {it: n for it, (n, _) in loop.items()} and sum(r.by_iteration.values()) == len(data)
    assert set(r.by_kind) == {"cot", "refine", "select"}  # R3V's three kinds, each trained on
    for it, (_, examples) in loop.items():
        mine = [d for d in data if d["iteration"] == it]
        assert [(d["conversations"][0]["value"], d["conversations"][1]["value"]) for d in mine] == \
            [("<image>" + e.prompt, e.completion) for e in examples]
    for i, d in enumerate(data):  # LLaMA-Factory's rules, by hand as well as by the writer's checker
        turns = d["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] and len(turns) % 2 == 0
        assert sum(t["value"].count("<image>") for t in turns) == len(d["images"]) == 1
        assert (out / d["images"][0]).is_file() and not Path(d["images"][0]).is_absolute()
    select = next(d for d in data if d["kind"] == "select")
    assert "Candidate 3:" in select["conversations"][0]["value"]
    assert re.fullmatch(r"Candidate \d is correct.\n\n# Answer \S+", select["conversations"][1]["value"])
    info = json.loads((out / "dataset_info.json").read_text())
    assert info == {"mstar_r3v": {"file_name": "data.json", "formatting": "sharegpt",
                                  "columns": {"messages": "conversations", "images": "images"}}}
    card = (out / "README.md").read_text()
    assert f"rows: {len(data)} examples" in card and f"store: `{runs.uri}`" in card
    assert '"view": "trainset_r3v"' in card and "| 1 |" in card and "r3v.it0001" in card
    assert json.loads((out / MARKER).read_text())["kind"] == "cot-export"


def test_parquet_loads_with_datasets_and_decodes_the_images(runs, tmp_path):
    out = tmp_path / "pq"
    r = export_cot(runs, out, run="topk", fmt="parquet")
    table = pq.read_table(out / "data" / "train-00000-of-00001.parquet")
    assert table.num_rows == r.rows == sum(n for n, _ in _loop_examples(runs, "topk").values())
    meta = json.loads(table.schema.metadata[b"huggingface"])
    assert meta == {"info": {"features": FEATURES}}
    assert table.schema.field("images").type.value_type.names == ["bytes", "path"]
    datasets = pytest.importorskip("datasets")
    # the features are what datasets itself would derive for these columns
    expected = datasets.Features({"messages": datasets.List({"role": datasets.Value("string"),
                                                               "content": datasets.Value("string")}),
                                  "images": datasets.List(datasets.Image()), "prompt": datasets.Value("string"),
                                  "completion": datasets.Value("string"), "kind": datasets.Value("string"),
                                  "iteration": datasets.Value("int32"), "query_id": datasets.Value("string"),
                                  "rollout_id": datasets.Value("string")})
    assert datasets.Features.from_dict(FEATURES) == expected
    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    ex = ds[0]
    assert ex["images"][0].size == (64, 64)  # a decoded PIL image
    assert ex["messages"][0]["content"] == "<image>" + ex["prompt"] and ex["messages"][1]["role"] == "assistant"
    assert ex["kind"] == "cot" and ex["rollout_id"]
    assert "load_dataset" in (out / "README.md").read_text()


def test_refusals_leave_nothing_behind(runs, tmp_path, cli):
    with pytest.raises(MstarError, match="--run 'nope': .* no such run"):
        export_cot(runs, tmp_path / "a", run="nope", fmt="parquet")
    with pytest.raises(MstarError, match="--iteration 7: run 'topk' has no pinned training set"):
        export_cot(runs, tmp_path / "b", run="topk", fmt="parquet", iterations=[7])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    out = tmp_path / "c"
    assert export_cot(runs, out, run="topk", fmt="sharegpt", iterations=[2]).by_iteration.keys() == {2}
    with pytest.raises(MstarError, match="holds a previous mstar export; add --force"):
        export_cot(runs, out, run="topk", fmt="parquet")
    (out / "notes.txt").write_text("mine")
    r = export_cot(runs, out, run="topk", fmt="parquet", force=True)  # replaces only its own entries
    assert (out / "notes.txt").read_text() == "mine" and not (out / "data.json").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(["README.md", "data", MARKER, "notes.txt"])
    assert r.rows > 0
    res = cli("export", "cot", "--run", "topk", "--format", "csv", "--out", tmp_path / "d", "--store", runs.uri)
    assert res.rc == 1 and "--format 'csv'" in res.err and not (tmp_path / "d").exists()
    res = cli("export", "cot", "--run", "r3v", "--out", tmp_path / "e", "--store", runs.uri)
    assert res.rc == 0 and "select" in res.out and (tmp_path / "e" / "data.json").is_file()


def test_a_failure_while_writing_removes_the_partial_folder(runs, tmp_path, monkeypatch):
    import mstar_data.export.cot as cot

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(cot, "write_sharegpt", broken)
    with pytest.raises(OSError, match="disk full"):
        export_cot(runs, tmp_path / "x", run="topk", fmt="sharegpt")
    assert not (tmp_path / "x").exists()
    (tmp_path / "y").mkdir()
    with pytest.raises(OSError, match="disk full"):
        export_cot(runs, tmp_path / "y", run="topk", fmt="sharegpt")
    assert (tmp_path / "y").is_dir() and list((tmp_path / "y").iterdir()) == []  # a folder the user made stays


def test_the_sharegpt_checker_refuses_what_llama_factory_would_drop():
    ok = {"conversations": [{"from": "human", "value": "<image>Q"}, {"from": "gpt", "value": "A"}], "images": ["i.png"]}
    check_sharegpt(ok, source="data.json", where="q1")
    bad = [({**ok, "conversations": ok["conversations"][:1]}, "even count"),
           ({**ok, "conversations": ok["conversations"][::-1]}, "turn 0 is 'gpt'"),
           ({**ok, "images": []}, "1 '<image>' placeholder\\(s\\) for 0 image"),
           ({**ok, "conversations": [{"from": "human", "value": "<image>Q <image>"}, ok["conversations"][1]]},
            "2 '<image>'")]
    for rec, msg in bad:
        with pytest.raises(InputError, match=f"data.json: record q1: field 'conversations': .*{msg}"):
            check_sharegpt(rec, source="data.json", where="q1")


def test_compare_reads_what_the_loop_recorded(runs):
    from mstar_data.compare import compare_runs

    groups = compare_runs(runs, runs=["topk", "r3v"])
    assert [g.selection for g in groups] == ["top-2 (random, no PRM)", "R3V (cot + refine + select)"]
    for g in groups:
        its = runs.dataset("iterations").to_table(filter=f"run_id = '{g.runs[0]['run_id']}'").to_pylist()
        last = max(its, key=lambda r: r["iteration"])
        assert g.stat("final_greedy") == (pytest.approx(last["greedy_acc"]), None)
        assert g.stat("training_rows")[0] == sum(r["n_train"] or 0 for r in its) > 0
        assert g.temperature == "static T=0.7" and g.method == "continuous"
