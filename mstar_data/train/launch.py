"""One iteration's training across N processes, from inside a running job (`mstar evolve --nproc N`).

The loop stays one process (it samples, scores and selects); for the training stage it runs

    python -m torch.distributed.run --standalone --nproc_per_node=N -m mstar_data.train.launch SPEC.json

and waits. Every rank opens the store, reads the same pinned training set (the view, its parameters and the
rollouts version the loop pinned), and calls `train_iteration` with the loop's arguments: the global batch is
split across ranks and token losses are normalised by the global count (train/ranks.py), so N processes train as
one would (tests/e2e/test_torchrun.py). Only rank 0 writes (train_log, checkpoints) and it writes the result to
RESULT.json for the loop. A killed iteration resumes from its last step checkpoint like a one-process one, under
any N: the checkpoint holds whole-model state, not per-rank shards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from mstar_data.errors import MstarError
from mstar_data.train.trainer import TrainConfig, TrainResult


def train_in_ranks(nproc: int, store, *, view: str, params: dict, version: int, run: str, iteration: int,
                   policy_in: str, base_policy: str | None, cfg: TrainConfig, iterations: int, checkpoints: Path,
                   extra_meta: dict | None = None) -> TrainResult:
    spec = {"store": store.uri, "view": view, "params": params, "version": version, "run": run,
            "iteration": iteration, "policy_in": str(policy_in), "base_policy": base_policy and str(base_policy),
            "cfg": cfg.model_dump(mode="json"), "iterations": iterations, "checkpoints": str(checkpoints),
            "extra_meta": extra_meta or {}}
    with tempfile.TemporaryDirectory(prefix="mstar-ranks-") as tmp:
        spec["result"] = str(Path(tmp) / "result.json")
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "--", "mstar_data.train.launch", str(spec_path)]
        sys.stdout.flush()
        sys.stderr.flush()
        rc = subprocess.run(cmd).returncode
        if rc != 0 or not Path(spec["result"]).is_file():
            raise MstarError(f"run '{run}' iteration {iteration}: training in {nproc} processes failed (torchrun "
                             f"exit {rc}); a rerun resumes from its last step checkpoint")
        out = json.loads(Path(spec["result"]).read_text())
    return TrainResult(**out)


def main(spec_path: str) -> None:
    from mstar_data.select.trainset import trainset_examples
    from mstar_data.store import Store
    from mstar_data.train.ranks import join_from_env
    from mstar_data.train.trainer import train_iteration

    spec = json.loads(Path(spec_path).read_text())
    rank, _ = join_from_env()
    store = Store(spec["store"], create=False)
    examples = trainset_examples(store, spec["view"], run=spec["run"], iteration=spec["iteration"],
                                 version=spec["version"], params=spec["params"])
    result = train_iteration(store, examples, run=spec["run"], iteration=spec["iteration"],
                             policy_in=spec["policy_in"], base_policy=spec["base_policy"],
                             cfg=TrainConfig(**spec["cfg"]), iterations=spec["iterations"],
                             checkpoints=Path(spec["checkpoints"]), extra_meta=spec["extra_meta"])
    if rank == 0:
        out = asdict(result)
        out.pop("log", None)
        Path(spec["result"]).write_text(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 2 or "WORLD_SIZE" not in os.environ:
        sys.exit("usage: torchrun --nproc_per_node=N -m mstar_data.train.launch SPEC.json (started by the loop)")
    main(sys.argv[1])
