"""Checkpoints under the artifacts root (mstar_data/artifacts.py): `<artifacts>/checkpoints/<run>/it-0003/` once an iteration is trained, and
`<run>/it-0003.steps/step-000050/` every `save_every` steps while it trains.

A checkpoint is a Hugging Face model folder (safetensors + processor) plus `trainer/`: optimizer and
scheduler state, RNG states and the step. It is written into a staging folder and moved into place with the
metadata file `checkpoint.json` last (mstar_data/outputs.py): a folder without checkpoint.json is never read
as finished, and replacing a checkpoint removes only the entries it made, never a file someone put beside. Optimizer state is loaded with `weights_only=True` (no arbitrary unpickling).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

META = "checkpoint.json"


def iteration_dir(root: Path, run: str, iteration: int) -> Path:
    return root / run / f"it-{iteration:04d}"


def steps_dir(final: Path) -> Path:
    """Where the step checkpoints of the training that ends in `final` go."""
    return final.with_name(final.name + ".steps")


def is_complete(path: Path) -> bool:
    return (path / META).is_file()


def latest_step(final: Path) -> Path | None:
    d = steps_dir(final)
    done = sorted(p for p in d.glob("step-*") if is_complete(p)) if d.is_dir() else []
    return done[-1] if done else None


def save(path: Path, model, processor, optimizer, scheduler, meta: dict) -> Path:
    import torch

    from mstar_data.outputs import check_out_folder, publish_folder, staging_folder

    # A checkpoint is written only where there is nothing, or an earlier checkpoint (a retrained iteration).
    path = check_out_folder(path, marker=META, kind="checkpoint", reuse=True)
    partial = staging_folder(path)
    model.save_pretrained(partial)
    processor.save_pretrained(partial)
    state = partial / "trainer"
    state.mkdir()
    torch.save(optimizer.state_dict(), state / "optimizer.pt")
    torch.save(scheduler.state_dict(), state / "scheduler.pt")
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()[1]}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, state / "rng.pt")
    (partial / META).write_text(json.dumps(meta, indent=1, default=str))
    return publish_folder(partial, path, META)


def load_trainer_state(path: Path, optimizer, scheduler) -> dict:
    import torch

    state = path / "trainer"
    optimizer.load_state_dict(torch.load(state / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(state / "scheduler.pt", weights_only=True))
    rng = torch.load(state / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    random.setstate((3, tuple(rng["python"]), None))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((path / META).read_text())


def read_meta(path: Path) -> dict:
    return json.loads((path / META).read_text())


def has_trainer_state(path: Path) -> bool:
    return (path / "trainer" / "optimizer.pt").is_file()


def remove_step_checkpoints(final: Path) -> None:
    """After `final` is saved: remove the step checkpoints of its training, and only them. An entry of the
    `.steps` folder goes only if it is a checkpoint we wrote (it holds our metadata file) or our own staging
    folder; anything else stays, and so does the folder then."""
    from mstar_data.outputs import STAGING, _remove

    d = steps_dir(final)
    if not d.is_dir():
        return
    for p in d.iterdir():
        if p.is_dir() and p.name.startswith("step-") and is_complete(p):
            _remove(p)
        elif p.is_dir() and (p / STAGING).is_dir() and not any(c.name != STAGING for c in p.iterdir()):
            _remove(p)  # a step checkpoint a crash left half-written: only our staging folder inside
    if not any(d.iterdir()):
        d.rmdir()
