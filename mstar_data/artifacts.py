"""Where model artifacts (policies, checkpoints) live: apart from the tables, because a store can be s3://.

`--artifacts DIR`, else MSTAR_ARTIFACTS, else the local store's own folder (so `<store>/checkpoints/<run>/`
and `<store>/policies/` sit beside the tables). An object store has no folder to put models in: it needs one
of the first two, and says so. The store records the absolute paths of what it wrote there (a run's
`policy_out`), so the same folder must be reachable, at the same path, by whoever reads them later.
"""

from __future__ import annotations

import os
from pathlib import Path

from mstar_data.errors import MstarError
from mstar_data.store import is_remote


def artifacts_root(store_uri: str, artifacts: str | None = None) -> Path:
    chosen = artifacts or os.environ.get("MSTAR_ARTIFACTS")
    if chosen:
        # Absolute: the paths written into the store (iterations.policy_out) must mean the same folder to a
        # later command run from another directory.
        return Path(chosen).expanduser().absolute()
    if is_remote(store_uri):
        raise MstarError(f"store {store_uri} is remote: pass --artifacts DIR (or set MSTAR_ARTIFACTS) for the "
                         f"policies and checkpoints")
    return Path(store_uri.removeprefix("file://"))


def checkpoints_dir(store_uri: str, artifacts: str | None = None) -> Path:
    return artifacts_root(store_uri, artifacts) / "checkpoints"
