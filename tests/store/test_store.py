import pyarrow as pa
import pytest

from mstar_data.errors import InputError, StoreError
from mstar_data.schema import TABLES
from mstar_data.store import Store, resolve_uri, storage_options


def _labels(n, start=0):
    return pa.Table.from_pylist([{"rollout_id": f"r{i // 3}", "step_idx": i % 3, "n_rollouts": 4,
                                  "n_correct": i % 4, "soft_label": (i % 4) / 4, "hard_label": i % 4 > 0}
                                 for i in range(start, start + n)])


def test_init_creates_every_table_once(store_uri):
    s = Store(store_uri)
    assert sorted(s.created) == sorted(TABLES)
    again = Store(store_uri)
    assert again.created == []
    assert {i.name: (i.rows, i.version) for i in again.info()} == {n: (0, 1) for n in TABLES}


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        Store(str(tmp_path / "nope"), create=False)


def test_append_is_idempotent_on_composite_key_and_rerun_writes_nothing(store_uri):
    s = Store(store_uri)
    assert s.append("step_labels", _labels(30)) == 30
    v = s.version("step_labels")
    # Overlapping batch: only the 10 new (rollout_id, step_idx) keys land.
    assert s.append("step_labels", _labels(40)) == 10
    assert s.count("step_labels") == 40
    v2 = s.version("step_labels")
    assert v2 == v + 1
    # A rerun of either batch adds nothing and does not even bump the version.
    assert s.append("step_labels", _labels(40)) == 0
    assert s.version("step_labels") == v2


def test_duplicates_inside_one_batch_keep_the_first(store_uri):
    s = Store(store_uri)
    rows = pa.concat_tables([_labels(6), _labels(6)])
    assert s.append("step_labels", rows) == 6


def test_conflicting_content_for_one_key_is_refused_before_writing(store_uri):
    s = Store(store_uri)
    rows = [{"run_id": "a", "recipe": "x = 1"}, {"run_id": "b", "recipe": "y = 2"}]
    assert s.append("runs", rows, conflict_column="recipe") == 2
    v = s.version("runs")
    with pytest.raises(InputError, match="record a: field 'run_id': already stored with different content"):
        s.append("runs", [{"run_id": "c", "recipe": "z"}, {"run_id": "a", "recipe": "changed"}],
                 conflict_column="recipe")
    assert s.version("runs") == v and s.count("runs") == 2
    with pytest.raises(InputError, match="given twice with different content"):
        s.append("runs", [{"run_id": "d", "recipe": "1"}, {"run_id": "d", "recipe": "2"}], conflict_column="recipe")


def test_update_sets_only_the_given_columns_and_never_inserts(store_uri):
    s = Store(store_uri)
    s.append("rollouts", [{"rollout_id": i, "run_id": "r", "iteration": 0, "stage": "explore", "query_id": "q",
                           "sample_idx": n, "response": f"text {i}"} for n, i in enumerate("abc")])
    n = s.update("rollouts", pa.Table.from_pylist([{"rollout_id": "b", "prm_score": 0.25, "step_scores": [0.5, 0.25]},
                                                  {"rollout_id": "zz", "prm_score": 0.9, "step_scores": [0.9]}]))
    rows = {r["rollout_id"]: r for r in s.dataset("rollouts").to_table().to_pylist()}
    assert n == 1 and set(rows) == {"a", "b", "c"}  # the unknown key was not inserted
    assert rows["b"]["prm_score"] == 0.25 and rows["b"]["step_scores"] == [0.5, 0.25]
    assert rows["b"]["response"] == "text b" and rows["b"]["sample_idx"] == 1  # other columns kept
    assert rows["a"]["prm_score"] is None


def test_compacts_when_fragments_pile_up(store_uri):
    s = Store(store_uri)
    for i in range(8):
        s.append("step_labels", _labels(3, start=3 * i))
    assert len(s.dataset("step_labels").get_fragments()) == 8
    old_version = s.version("step_labels")
    assert s.maybe_compact("step_labels", max_fragments=4)
    assert len(s.dataset("step_labels").get_fragments()) == 1
    assert s.count("step_labels") == 24
    # Older versions stay readable: training sets pin them.
    assert s.dataset("step_labels", old_version).count_rows() == 24


def test_store_uri_resolution(monkeypatch):
    monkeypatch.delenv("MSTAR_STORE", raising=False)
    assert resolve_uri(None) == "./mstar-store"
    monkeypatch.setenv("MSTAR_STORE", "/data/s")
    assert resolve_uri(None) == "/data/s"
    assert resolve_uri("s3://b/p") == "s3://b/p"


def test_aws_environment_reaches_lance():
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
           "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "us-east-2", "HOME": "/root"}
    opts = storage_options("s3://bucket/store", env)
    assert opts == {"aws_access_key_id": "k", "aws_secret_access_key": "s", "aws_endpoint": "http://127.0.0.1:9000",
                    "aws_region": "us-east-2", "allow_http": "true"}
    assert storage_options("/local/path", env) == {}


def test_scoped_append_compares_only_against_its_slice(store_uri):
    s = Store(store_uri)
    rows = [{"run_id": r, "recipe": "x"} for r in ("a", "b")]
    assert s.append("runs", rows) == 2
    assert s.append("runs", rows, where="run_id = 'a'") == 1            # 'b' is outside the slice: not seen
    assert s.append("runs", [{"run_id": "a", "recipe": "x"}], where="run_id = 'a'") == 0
    assert s.stored_keys("runs", where="run_id = 'b'").num_rows == 2
