"""Checkpoints under the artifacts root (mstar_data/artifacts.py): `<artifacts>/checkpoints/<run>/it-0003/` once an iteration is trained, and
`<run>/it-0003.steps/step-000050/` every `save_every` steps while it trains.

A checkpoint is a Hugging Face model folder (safetensors + processor) plus `trainer/`: optimizer and
scheduler state, RNG states and the step. It is written into a staging folder and moved into place with the
metadata file `checkpoint.json` last (mstar_data/outputs.py): a folder without checkpoint.json is never read
as finished, and replacing a checkpoint removes only the entries it made, never a file someone put beside. Optimizer state is loaded with `weights_only=True` (no arbitrary unpickling).

A damaged checkpoint (a weights or trainer-state file cut short by a full disk or a crash of the machine, a
metadata file lost or garbled) is caught before anything is loaded from it (`check`): loading it as a policy
fails with one line naming the folder and the file, and a resume skips it with a warning, sets it aside as
`broken-step-NNNNNN` (kept for inspection; its step is trained again and saved anew) and goes on from the
previous complete step checkpoint, whose state reproduces the same steps, LRs and batches.
"""

from __future__ import annotations

import json
import logging
import random
import zipfile
from pathlib import Path

from mstar_data.errors import MstarError

META = "checkpoint.json"
TRAINER_FILES = ("optimizer.pt", "scheduler.pt", "rng.pt")
BROKEN = "broken-"  # + the step folder's name: a damaged step checkpoint a resume set aside
log = logging.getLogger("mstar.checkpoint")


class CheckpointError(MstarError):
    """A checkpoint or model folder that cannot be loaded: one line naming the folder and the file."""


def iteration_dir(root: Path, run: str, iteration: int) -> Path:
    return root / run / f"it-{iteration:04d}"


def steps_dir(final: Path) -> Path:
    """Where the step checkpoints of the training that ends in `final` go."""
    return final.with_name(final.name + ".steps")


def is_complete(path: Path) -> bool:
    return (path / META).is_file()


def latest_step(final: Path) -> Path | None:
    """The newest sound step checkpoint of the training that ends in `final`. A folder holding only our
    staging folder (a save a crash cut short) is passed over; a damaged one (`check`) is passed over with a
    warning and set aside, so that the step is saved anew when training gets there again."""
    d = steps_dir(final)
    if not d.is_dir():
        return None
    for p in sorted((p for p in d.glob("step-*") if p.is_dir()), reverse=True):
        if not is_complete(p) and _only_staging(p):
            continue
        try:
            check(p, trainer=True)
            if not isinstance(read_meta(p).get("local_step"), int):
                raise CheckpointError(f"checkpoint {p}: {META} has no local_step")
        except CheckpointError as e:
            # Only a folder that carries our marks (our metadata file or trainer state) is renamed; anything
            # else in .steps is not ours to move, and is only passed over.
            ours = (p / META).exists() or (p / "trainer").is_dir()
            aside = _set_aside(p) if ours else None
            log.warning("warning: %s; skipped%s, resuming from an earlier step checkpoint", e,
                        f" and set aside as {aside.name}" if aside else "")
            continue
        return p
    return None


def _only_staging(path: Path) -> bool:
    from mstar_data.outputs import STAGING

    try:
        return all(c.name == STAGING for c in path.iterdir())
    except OSError:
        return False


def _set_aside(path: Path) -> Path | None:
    """Rename a damaged step checkpoint to `broken-<name>` (`-2`, `-3`... if taken). None: it was gone (another
    rank set it aside first) or could not be renamed."""
    for n in range(1, 100):
        target = path.with_name(BROKEN + path.name + (f"-{n}" if n > 1 else ""))
        if target.exists():
            continue
        try:
            path.rename(target)
            return target
        except OSError:
            return None
    return None


def check(path: Path, *, trainer: bool = False) -> None:
    """Raise CheckpointError (one line: the folder and the file) if the checkpoint or model folder `path` is
    damaged: a safetensors file shorter than its header says (or a shard of the index missing), a metadata
    file that is not a JSON object, a checkpoint (it has `trainer/`) without its metadata file, and with
    `trainer`: a trainer-state file missing or cut short. Cheap: reads headers and sizes, never the tensors."""
    from mstar_data.outputs import RETIRED

    path = Path(path)
    kind = "checkpoint" if (path / META).exists() or (path / "trainer").is_dir() or trainer else "model folder"

    def bad(name: str, problem: str) -> CheckpointError:
        return CheckpointError(f"{kind} {path}: {name} {problem}")

    try:
        if (path / META).exists():
            read_meta(path)
        elif trainer or ((path / "trainer").is_dir() and not (path / (RETIRED + META)).exists()):
            raise bad(META, "is missing (the checkpoint was never finished or is damaged)")
        index = path / "model.safetensors.index.json"
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text())["weight_map"].values())
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise bad(index.name, "is not a valid safetensors index") from None
            for shard in sorted(shards):
                if not (path / shard).is_file():
                    raise bad(shard, f"is missing (listed in {index.name})")
        for f in sorted(path.glob("*.safetensors")):
            _check_safetensors(f, bad)
        if trainer:
            for name in TRAINER_FILES:
                f = path / "trainer" / name
                if not f.is_file():
                    raise bad(f"trainer/{name}", "is missing")
                try:
                    with zipfile.ZipFile(f):  # torch.save's zip format: its directory is at the end
                        pass
                except (zipfile.BadZipFile, EOFError):
                    raise bad(f"trainer/{name}", f"is truncated or damaged ({f.stat().st_size} bytes)") from None
    except OSError as e:
        raise CheckpointError(f"{kind} {path}: cannot read {Path(e.filename).name if e.filename else 'a file'} "
                              f"({e.strerror or e})") from None


def _check_safetensors(f: Path, bad) -> None:
    size = f.stat().st_size
    with f.open("rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else None
        if n is None or 8 + n > size:
            raise bad(f.name, f"is truncated ({size} bytes, shorter than its header)")
        try:
            header = json.loads(fh.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, IndexError, AttributeError):
            raise bad(f.name, "has a damaged header") from None
    if 8 + n + end > size:
        raise bad(f.name, f"is truncated ({size} of {8 + n + end} bytes)")


def save(path: Path, model, processor, optimizer, scheduler, meta: dict, *, model_state: dict | None = None,
         optimizer_state: dict | None = None) -> Path:
    """`model_state`, `optimizer_state`: the whole state of a sharded model and its optimizer, gathered
    (train/fsdp.py); otherwise the model's and the optimizer's own."""
    import torch

    from mstar_data.outputs import check_out_folder, publish_folder, staging_folder

    # A checkpoint is written only where there is nothing, or an earlier checkpoint (a retrained iteration).
    path = check_out_folder(path, marker=META, kind="checkpoint", reuse=True)
    partial = staging_folder(path)
    model.save_pretrained(partial, **({} if model_state is None else {"state_dict": model_state}))
    processor.save_pretrained(partial)
    state = partial / "trainer"
    state.mkdir()
    torch.save(optimizer.state_dict() if optimizer_state is None else optimizer_state, state / "optimizer.pt")
    torch.save(scheduler.state_dict(), state / "scheduler.pt")
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()[1]}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, state / "rng.pt")
    (partial / META).write_text(json.dumps(meta, indent=1, default=str))
    return publish_folder(partial, path, META)


def load_trainer_state(path: Path, optimizer, scheduler, *, load_optimizer=None) -> dict:
    """Restore the optimizer (through `load_optimizer(state)` where given: a sharded one), the scheduler and
    the RNG states of checkpoint `path`; returns its metadata."""
    import torch

    check(path, trainer=True)
    state = path / "trainer"
    (load_optimizer or optimizer.load_state_dict)(torch.load(state / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(state / "scheduler.pt", weights_only=True))
    rng = torch.load(state / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    random.setstate((3, tuple(rng["python"]), None))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return read_meta(path)


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads((Path(path) / META).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path}: {META} is not valid JSON ({e}); the checkpoint is damaged") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: {META} is not a JSON object; the checkpoint is damaged")
    return meta


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
