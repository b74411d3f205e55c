"""Training across N processes from inside a running job: one iteration of `mstar evolve --nproc N`, or a
PRM (`mstar prm train --nproc N`, and the PRM that `mstar demo` trains on two cores).

The loop stays one process (it samples, scores and selects); for the training stage it runs

    python -m torch.distributed.run --standalone --nproc_per_node=N -m mstar_data.train.launch SPEC.json

and waits. Every rank opens the store, reads the same pinned training set (the view, its parameters and the
rollouts version the loop pinned; a PRM's step labels at the table versions the launcher read), and calls
`train_iteration` with the loop's arguments: the global batch is
split across ranks and token losses are normalised by the global count (train/ranks.py), so N processes train as
one would (tests/e2e/test_torchrun.py). Only rank 0 writes (train_log, checkpoints) and it writes the result to
RESULT.json for the loop. A killed iteration resumes from its last step checkpoint like a one-process one, under
any N, sharded (`--fsdp`) or not: the checkpoint holds whole-model state, not per-rank shards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from mstar_data.errors import MstarError
from mstar_data.progress import report
from mstar_data.train.trainer import TrainConfig, TrainResult


def train_in_ranks(nproc: int, store, *, view: str, params: dict, version: int, run: str, iteration: int,
                   policy_in: str, base_policy: str | None, cfg: TrainConfig, iterations: int, checkpoints: Path,
                   extra_meta: dict | None = None, fsdp: bool = False, progress=None) -> TrainResult:
    """One iteration of the loop: the pinned training set of `view`, trained into `checkpoints`."""
    spec = {"kind": "iteration", "fsdp": fsdp, "store": store.uri, "view": view, "params": params,
            "version": version, "run": run, "iteration": iteration, "policy_in": str(policy_in),
            "base_policy": base_policy and str(base_policy), "cfg": cfg.model_dump(mode="json"),
            "iterations": iterations, "checkpoints": str(checkpoints), "extra_meta": extra_meta or {}}
    return _run_ranks(nproc, spec, f"run '{run}' iteration {iteration}", progress)


def train_prm_in_ranks(nproc: int, store, cfg, *, fsdp: bool = False, progress=None) -> TrainResult:
    """`mstar prm train` (a PrmTrainConfig) in `nproc` processes: every rank reads the step labels at the
    table versions of now."""
    from mstar_data.prm.train import VERSIONED

    spec = {"kind": "prm", "fsdp": fsdp, "store": store.uri, "cfg": cfg.model_dump(mode="json"),
            "versions": {t: store.version(t) for t in VERSIONED}}
    return _run_ranks(nproc, spec, f"PRM {cfg.out}", progress)


def _run_ranks(nproc: int, spec: dict, what: str, progress=None) -> TrainResult:
    """Run torchrun on `spec` and wait, relaying rank 0's progress (a small file it rewrites every step) to
    `progress`. Each rank takes its share of the cores."""
    from mstar_data.train.ranks import rank_env, torchrun_command

    with tempfile.TemporaryDirectory(prefix="mstar-ranks-") as tmp:
        spec["result"] = str(Path(tmp) / "result.json")
        spec["progress"] = str(Path(tmp) / "progress.json")
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        sys.stdout.flush()
        sys.stderr.flush()
        proc = subprocess.Popen(torchrun_command(nproc, "mstar_data.train.launch", str(spec_path)), env=rank_env(nproc))
        try:
            while proc.poll() is None:
                time.sleep(0.25)
                _relay(Path(spec["progress"]), progress)
            _relay(Path(spec["progress"]), progress)
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C reaches torchrun too): let it stop its ranks
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        rc = proc.returncode
        if rc != 0 or not Path(spec["result"]).is_file():
            raise MstarError(f"{what}: training in {nproc} processes failed (torchrun exit {rc}); a rerun "
                             f"resumes from its last step checkpoint")
        out = json.loads(Path(spec["result"]).read_text())
    return TrainResult(**out)


def _relay(path: Path, progress) -> None:
    if progress is None:
        return
    try:
        task, done, total, note = json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet
        return
    report(progress, task, done, total, note)


def _progress_file(path: str):
    """Rank 0's progress: the last report, rewritten in place (atomically) for the launcher to read."""
    def write(task: str, done: int, total: int, note: str = "") -> None:
        tmp = path + ".tmp"
        Path(tmp).write_text(json.dumps([task, done, total, note]))
        os.replace(tmp, path)

    return write


def main(spec_path: str) -> None:
    from mstar_data.store import Store
    from mstar_data.train.ranks import join_from_env

    spec = json.loads(Path(spec_path).read_text())
    rank, _ = join_from_env()
    store = Store(spec["store"], create=False)
    progress = _progress_file(spec["progress"]) if rank == 0 and spec.get("progress") else None
    if spec["kind"] == "prm":
        from mstar_data.prm.train import PrmTrainConfig, train_prm

        result = train_prm(store, PrmTrainConfig(**spec["cfg"]), versions=spec["versions"], fsdp=spec["fsdp"],
                           progress=progress)
    else:
        from mstar_data.select.trainset import trainset_examples
        from mstar_data.train.trainer import train_iteration

        examples = trainset_examples(store, spec["view"], run=spec["run"], iteration=spec["iteration"],
                                     version=spec["version"], params=spec["params"])
        result = train_iteration(store, examples, run=spec["run"], iteration=spec["iteration"],
                                 policy_in=spec["policy_in"], base_policy=spec["base_policy"],
                                 cfg=TrainConfig(**spec["cfg"]), iterations=spec["iterations"],
                                 checkpoints=Path(spec["checkpoints"]), extra_meta=spec["extra_meta"],
                                 fsdp=spec["fsdp"], progress=progress)
    if rank == 0:
        out = asdict(result)
        out.pop("log", None)
        Path(spec["result"]).write_text(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 2 or "WORLD_SIZE" not in os.environ:
        sys.exit("usage: torchrun --nproc_per_node=N -m mstar_data.train.launch SPEC.json (started by the loop)")
    main(sys.argv[1])
