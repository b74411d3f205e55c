"""What a rollout row records for auditing its reproducibility: engine, dtype, deterministic, batch_key."""

import pyarrow as pa

from mstar_data.sampling.engine import Completion, SampleRequest
from mstar_data.sampling.rollouts import Planned, RolloutContext, row
from mstar_data.schema import ROLLOUTS
from mstar_data.store import Store
from tests.datasets import image_bytes
from tests.model_families import build_family

Q = {"query_id": "q", "answer": "7", "answer_type": "integer", "choices": None, "precision": None, "unit": None}
AUDIT = ["engine", "dtype", "deterministic", "batch_key"]


def test_the_audit_columns_come_last_and_rows_carry_what_the_engine_said():
    assert ROLLOUTS.names[-4:] == AUDIT  # added late: an older store gains them as nulls
    ctx = RolloutContext("r", 0, "explore", 1.0, 8)
    c = Completion("# Answer\n\n7", 3, "stop", [-0.1] * 3, [4, 5, 2], engine="hf", dtype="bfloat16",
                   deterministic=False, batch_key="0123456789abcdef/3")
    out = row(Planned("id", Q, 0, 5), ctx, c, "pol")
    assert [out[k] for k in AUDIT] == ["hf", "bfloat16", False, "0123456789abcdef/3"]
    bare = row(Planned("id", Q, 0, 5), ctx, Completion("# Answer\n\n7", 3, "stop"), "pol")
    assert [bare[k] for k in AUDIT] == [None] * 4  # an engine that does not say


def test_an_older_store_gains_the_audit_columns_as_nulls(store_uri):
    s = Store(store_uri)
    old = pa.schema([f for f in ROLLOUTS if f.name not in AUDIT])
    s.db.drop_table("rollouts")
    s.db.create_table("rollouts", schema=old)
    s._add_missing_columns("rollouts", ROLLOUTS)
    assert s.dataset("rollouts").schema.names[-4:] == AUDIT


def test_the_hf_engine_names_itself_its_dtype_and_each_rows_batch(tmp_path):
    from mstar_data.sampling.engines.hf import HFEngine, batch_key

    eng = HFEngine(str(build_family("llava_siglip_qwen2", tmp_path / "m")), device="cpu")
    reqs = [SampleRequest(f"r{i}", "How many?", image_bytes(i, (64, 64)), 1.0, i, 3) for i in range(3)]
    out = eng.generate(reqs)
    assert {(c.engine, c.dtype, c.deterministic) for c in out} == {("hf", "float32", False)}
    assert [c.batch_key for c in out] == [f"{batch_key(['r0', 'r1', 'r2'])}/{i}" for i in range(3)]
    assert eng.generate(reqs[1:2])[0].batch_key == f"{batch_key(['r1'])}/0"


def test_deterministic_is_refused_for_engines_that_do_not_offer_it(cli, store_uri):
    Store(store_uri)
    r = cli("generate", "--policy", "nowhere", "--backend", "vllm", "--deterministic", "--store", store_uri)
    assert r.rc == 1 and r.err.strip() == "error: --deterministic: only the hf backend offers it (not vllm)"


def test_generate_deterministic_stores_what_it_did(store_uri, tmp_path):
    """`mstar generate --deterministic` on hf: fp32, torch's deterministic settings, and rows that say so."""
    import torch

    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.sampling.generate import GenerateConfig, run_generate

    s = Store(store_uri)
    ingest_items(s, synthetic_items(6, 1, "easy", 0.0), source="synthetic", dataset="synthetic", split="train")
    policy = str(build_family("llava_siglip_qwen2", tmp_path / "m"))
    before = torch.are_deterministic_algorithms_enabled()
    try:
        r = run_generate(s, GenerateConfig(policy=policy, n=2, limit=2, max_new_tokens=3, deterministic=True))
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
    rows = s.dataset("rollouts").to_table(columns=AUDIT).to_pylist()
    assert r.written == len(rows) == 4
    assert {(x["engine"], x["dtype"], x["deterministic"]) for x in rows} == {("hf", "float32", True)}
    assert len({x["batch_key"].split("/")[0] for x in rows}) == 1  # one engine call
    assert sorted(int(x["batch_key"].split("/")[1]) for x in rows) == [0, 1, 2, 3]
