"""What a command writes outside the store (a model folder, an export, a result file): it never deletes or
overwrites what it did not create.

A folder output carries a marker file of its own (a JSON object, written last, that also lists the entries the
output made). `--out` into a non-empty folder without that marker is refused before any work; a previous
output of the same kind is replaced only with `--force`, and only its own entries go: a file the user put
beside them stays. The new output is written into `<out>/.mstar-partial` and moved into place entry by entry
(so `--out .` works too), the marker last: a folder whose marker is missing is never read as finished.
A file output is written to a temporary file beside it and renamed over it; an existing file is replaced only
with `--force`, and only when it is the same kind of file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from mstar_data.errors import MstarError

STAGING = ".mstar-partial"
RETIRED = ".mstar-replaced-"  # + marker: a previous output being replaced (its marker set aside, not lost)
FILES_KEY = "_files"  # the marker's list of the entries the output made


def _marker_of_previous(out: Path, marker: str) -> Path | None:
    for p in (out / marker, out / (RETIRED + marker)):
        if p.is_file():
            return p
    return None


def check_out_folder(out: str | Path, *, marker: str, kind: str, force: bool = False, option: str = "--out",
                     reuse: bool = False) -> Path:
    """The absolute folder to write `kind` to, checked before any work. `reuse`: a previous output is fine
    without --force (a resumable job carries on from it)."""
    path = Path(out).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise MstarError(f"{option} {out}: is a file, not a folder; give a new or empty folder")
    if path.is_dir():
        others = sorted(p.name for p in path.iterdir() if p.name not in (STAGING, RETIRED + marker))
        if others and _marker_of_previous(path, marker) is None:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise MstarError(f"{option} {out}: folder is not empty ({shown}) and is not a previous {kind} "
                             f"(no {marker}); give a new or empty folder")
        if others and not (force or reuse):
            raise MstarError(f"{option} {out}: holds a previous {kind}; add --force to replace it")
    else:
        parent = next(p for p in path.parents if p.exists())
        if not parent.is_dir():
            raise MstarError(f"{option} {out}: {parent} is a file, not a folder")
    if not os.access(path if path.is_dir() else next(p for p in path.parents if p.exists()), os.W_OK):
        raise MstarError(f"{option} {out}: not writable")
    return path


def staging_folder(out: Path) -> Path:
    """An empty folder inside `out` to write the new output into (a leftover of a crashed run is ours)."""
    staging = Path(out) / STAGING
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def retire_marker(out: Path, marker: str) -> None:
    """Set a previous output's marker aside, so that it no longer reads as finished while its replacement is
    made (a job that skips finished outputs then redoes it); the folder still counts as ours."""
    if (Path(out) / marker).is_file():
        (Path(out) / marker).replace(Path(out) / (RETIRED + marker))


def own_entries(out: Path, marker: str) -> list[str]:
    """The entries a previous output in `out` made (from its marker)."""
    found = _marker_of_previous(Path(out), marker)
    try:
        listed = json.loads(found.read_text()).get(FILES_KEY) if found else None
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in listed or [] if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")]


def publish_folder(staging: Path, out: Path, marker: str) -> Path:
    """Move the finished output in `staging` (marker included) into `out`, replacing a previous output's own
    entries and leaving every other entry alone. The marker goes last, listing what the output made."""
    staging, out = Path(staging), Path(out)
    new = sorted(p.name for p in staging.iterdir() if p.name != marker)
    meta = json.loads((staging / marker).read_text())
    previous = set(own_entries(out, marker)) - {STAGING, marker}
    (out / marker).unlink(missing_ok=True)
    (out / (RETIRED + marker)).unlink(missing_ok=True)
    for name in sorted(previous | set(new)):
        _remove(out / name)
    for name in new:
        (staging / name).rename(out / name)
    meta[FILES_KEY] = new + [marker]
    (staging / marker).write_text(json.dumps(meta, indent=1, default=str))
    (staging / marker).rename(out / marker)
    staging.rmdir()
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_out_file(out: str | Path, *, kind: str, force: bool = False, option: str = "--out",
                   same_kind: Callable[[Path], bool] | None = None) -> Path:
    """The file to write `kind` to, checked before any work: not a folder, and an existing file only with
    --force and only when `same_kind(path)` says it is a previous output of this kind."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise MstarError(f"{option} {out}: is a folder; give a file path")
    ancestor = next(p for p in path.resolve().parents if p.exists())
    if not ancestor.is_dir():
        raise MstarError(f"{option} {out}: {ancestor} is a file, not a folder")
    if path.exists():
        if not force:
            raise MstarError(f"{option} {out}: file exists; add --force to replace it")
        if same_kind is not None and not same_kind(path):
            raise MstarError(f"{option} {out}: exists and is not a {kind}; it is left alone (choose another path)")
    return path


def write_file_atomically(out: Path, write: Callable[[Path], None]) -> Path:
    """`write(tmp)` into a temporary file beside `out`, then rename it over `out`: never a half-written file."""
    out = Path(out)
    out.resolve().parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.resolve().parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
