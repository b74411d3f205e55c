from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

# The longest modules (make test's --durations), longest first. Under pytest-xdist (`make test`: 2 workers,
# whole modules to a worker) they start before everything else, side by side, and the short modules fill in
# around them; in collection order, one worker could be left alone with a 3-minute test at the end.
FIRST = ("tests/e2e/test_learning.py", "tests/e2e/test_grpo_learning.py", "tests/e2e/test_prm_learning.py",
         "tests/e2e/test_evolve_kill.py", "tests/e2e/test_grpo.py", "tests/e2e/test_evolve_nproc.py",
         "tests/e2e/test_evolve_ray.py")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {m: i for i, m in enumerate(FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(FIRST)))  # stable: order kept


@dataclass
class CliResult:
    rc: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run `mstar ARGS...` in-process through the real entry point (errors, exit codes and all)."""
    from mstar_cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            rc = 0
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(rc, out, err)

    return run


@pytest.fixture
def store_uri(tmp_path):
    return str(tmp_path / "store")


@pytest.fixture(scope="session")
def shapes_store(tmp_path_factory):
    """A store with the embedded task (n=600, seed 1), shared read-only by the model tests."""
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.store import Store

    uri = str(tmp_path_factory.mktemp("shapes") / "store")
    ingest_items(Store(uri), synthetic_items(600, 1, "easy", 0.2), source="synthetic", dataset="synthetic",
                 split="train")
    return uri


@pytest.fixture(scope="session")
def bootstrapped_policy(shapes_store, tmp_path_factory):
    """The tiny default policy after a short bootstrap (a weak policy: some answers right, most wrong)."""
    from mstar_data.store import Store
    from mstar_data.models.bootstrap import BootstrapConfig, run_bootstrap

    out = tmp_path_factory.mktemp("policy") / "bootstrap"
    result = run_bootstrap(Store(shapes_store, create=False),
                           # bounded by steps, not seconds, so a loaded machine gets the same policy
                           BootstrapConfig(out=str(out), max_steps=150, max_seconds=3600, eval_every=50,
                                           eval_limit=60))
    return str(out), result


@pytest.fixture(scope="session")
def learning_store(tmp_path_factory):
    """The learning tests' store: the embedded task (n=1200, seed 1) and the bootstrap policy the demo starts
    from (held-out greedy accuracy ~30%, above the best constant answer)."""
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.models.bootstrap import BootstrapConfig, run_bootstrap
    from mstar_data.store import Store

    root = tmp_path_factory.mktemp("learning")
    s = Store(str(root / "store"))
    ingest_items(s, synthetic_items(1200, 1, "easy", 0.2), source="synthetic", dataset="synthetic", split="train")
    base = root / "store" / "policies" / "base"
    b = run_bootstrap(s, BootstrapConfig(out=str(base), max_seconds=3600))  # steps, not seconds, bound it
    assert b.accuracy > b.constant_acc  # the starting policy reads the image, a little
    return s, base
