"""Loading a trained PRM: a model folder whose checkpoint.json says how it reads steps."""

from __future__ import annotations

from pathlib import Path

from mstar_data.errors import MstarError
from mstar_data.train import checkpoint as ckpt


def prm_meta(path: str | Path) -> dict:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise MstarError(f"--prm {path}: not a model folder (no config.json)")
    meta = ckpt.read_meta(path).get("prm") if ckpt.is_complete(path) else None
    if not meta:
        raise MstarError(f"--prm {path}: not a trained PRM (no 'prm' entry in {ckpt.META}); "
                         f"train one with `mstar prm train`")
    return meta


def prm_tag(path: str | Path) -> str:
    """What `rollouts.prm` and `prm_evals.prm` record: the folder and the id of the training that wrote it, so
    a PRM retrained into the same folder is a different PRM (its scores are recomputed, its evals new rows)."""
    return f"{path}@{prm_meta(path).get('id', 'unknown')}"


def load_prm(path: str | Path, device: str | None = None):
    from mstar_data.models.loading import load_policy

    prm_meta(path)
    return load_policy(path, device=device)
