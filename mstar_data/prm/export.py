"""`mstar export prm --format trl`: step-labelled responses in TRL's stepwise-supervision layout.

One Parquet file with `prompt` (the user text), `completions` (the response's steps), `labels` (one bool per
step) and `images` (a list with the query's image, as Hugging Face `Image` structs {bytes, path}). The schema
metadata carries the `datasets` features, so `load_dataset("parquet", data_files=...)` decodes the images.
A dataset card (README.md) gives the rows, the provenance (store, run, Lance table versions) and the
labelling settings, and `mstar_export.json` marks the folder as an export. Written by the one export writer
(mstar_data/export/writer.py, shared with `mstar export cot`): `--out` into a folder that is not an export is
refused, `--force` replaces only a previous export's own files, and the folder appears whole or not at all.

TRL removed its PRMTrainer and the stepwise-supervision dataset type in 1.14; the layout stays useful as a
plain, self-describing record of step labels (to train a PRM with another trainer, e.g. a token-classification
head on the step separators, or to audit the Monte-Carlo labels), and `mstar prm train` trains on the same rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from mstar_data.errors import MstarError
from mstar_data.export.writer import (DATA_FILE, IMAGE, card_front_matter, check_export_folder,
                                      parquet_table, write_export, write_parquet)
from mstar_data.inputs import query_inputs
from mstar_data.sql_views import run_view
from mstar_data.store.predicates import jobs_of

SCHEMA = pa.schema([("prompt", pa.string()), ("completions", pa.list_(pa.string())),
                    ("labels", pa.list_(pa.bool_())), ("images", pa.list_(IMAGE)),
                    ("rollout_id", pa.string()), ("query_id", pa.string())])
FEATURES = {"prompt": {"dtype": "string", "_type": "Value"},
            "completions": [{"dtype": "string", "_type": "Value"}],
            "labels": [{"dtype": "bool", "_type": "Value"}],
            "images": [{"_type": "Image"}],
            "rollout_id": {"dtype": "string", "_type": "Value"},
            "query_id": {"dtype": "string", "_type": "Value"}}


@dataclass
class ExportResult:
    out: str
    rows: int
    steps: int
    good_steps: int


def labelling_settings(store, run: str) -> list[dict]:
    """The distinct settings of the `mstar prm label` jobs that labelled this run."""
    rows = store.dataset("jobs").to_table(columns=["args"], filter=jobs_of("prm-label", run))
    seen = []
    for a in rows.column("args").to_pylist():
        args = json.loads(a)
        s = {k: args.get(k) for k in ("labeller", "policy", "judge_model", "m", "temperature", "max_new_tokens",
                                      "stage", "backend", "seed")}
        if s not in seen:
            seen.append(s)
    return seen


def export_prm_trl(store, out: str | Path, *, run: str, split: str = "train", label: str = "hard",
                   threshold: float = 0.5, labeller: str = "mc", force: bool = False) -> ExportResult:
    if label not in ("hard", "soft"):
        raise MstarError(f"--label '{label}': expected hard or soft")
    if not 0.0 <= threshold <= 1.0:
        raise MstarError(f"--threshold {threshold}: expected a number in [0, 1]")
    out = check_export_folder(out, force=force)
    versions = {t: store.version(t) for t in ("rollouts", "step_labels", "queries")}
    rows = run_view(store, "prm_trainset", versions=versions, run=run, split=split, labeller=labeller).to_pylist()
    if not rows:
        raise MstarError(f"run '{run}' has no step-labelled responses on {split} queries by the {labeller} labeller: "
                         f"run `mstar prm label --labeller {labeller}` first")
    inputs = query_inputs(store, (r["query_id"] for r in rows))
    labels = [list(r["hard_labels"]) if label == "hard" else [y >= threshold for y in r["soft_labels"]] for r in rows]
    table = parquet_table({
        "prompt": [inputs[r["query_id"]].prompt for r in rows],
        "completions": [r["steps"] for r in rows],
        "labels": labels,
        "images": [[{"bytes": inputs[r["query_id"]].image, "path": None}] for r in rows],
        "rollout_id": [r["rollout_id"] for r in rows],
        "query_id": [r["query_id"] for r in rows],
    }, SCHEMA, FEATURES)
    result = ExportResult(str(out), table.num_rows, sum(len(x) for x in labels), sum(sum(x) for x in labels))
    card = dataset_card(store, result, run=run, split=split, label=label, threshold=threshold, versions=versions,
                        labeller=labeller)

    def write(partial):
        write_parquet(partial, table)
        (partial / "README.md").write_text(card)

    write_export(out, marker={"kind": "prm-export", "format": "trl", "run": run, "split": split, "label": label,
                              "rows": result.rows, "versions": versions}, write=write)
    return result


def dataset_card(store, r: ExportResult, *, run: str, split: str, label: str, threshold: float,
                 versions: dict[str, int], labeller: str = "mc") -> str:
    settings = [s for s in labelling_settings(store, run) if (s["labeller"] or "mc") == labeller]
    if labeller == "task":
        rule = "task: a step is good when the task's step checker finds it true of the scene (docs/prm.md)"
    elif labeller == "judge":
        rule = "judge: a step is good when the judge model answered Yes about it (docs/prm.md)"
    else:
        rule = ("hard: a step is good when at least one Monte-Carlo continuation from it reached the right answer"
                if label == "hard" else f"soft: a step is good when at least {threshold:.0%} of its continuations did")
    lines = card_front_matter(["process-reward-model", "stepwise-supervision", "mstar"]) + [
        f"# Step-labelled responses of run `{run}` (TRL stepwise supervision)",
        "",
        f"- rows: {r.rows} responses, {r.steps} labelled steps, {r.good_steps} of them good "
        f"({r.good_steps / max(r.steps, 1):.1%})",
        "- columns: `prompt` (user text), `completions` (the response's steps), `labels` (one bool per step), "
        "`images` (the query's image), plus `rollout_id` and `query_id` to trace each row back to the store",
        f"- labels ({labeller} labeller): {rule}" + (
            "; the last step is labelled by the response's own verdict, and the steps after the first step with "
            "no correct continuation are labelled bad without being rolled out" if labeller == "mc" else
            "; the steps after the first No are labelled bad without asking" if labeller == "judge" else ""),
        "",
        "## Provenance",
        "",
        f"- store: `{store.uri}`",
        f"- run: `{run}`, queries of split `{split}`",
        "- Lance table versions: " + ", ".join(f"{t} v{v}" for t, v in versions.items()),
        f"- exported: {datetime.now(timezone.utc).isoformat(timespec='seconds')} by `mstar export prm --format trl`",
        "",
        "## Labelling settings (`mstar prm label` jobs)",
        "",
    ]
    lines += [f"- {json.dumps(s)}" for s in settings] or ["- (no prm-label job recorded for this run)"]
    lines += ["", "## Loading", "", "```python", "from datasets import load_dataset", "",
              f'ds = load_dataset("parquet", data_files="{DATA_FILE}", split="train")',
              "```", ""]
    return "\n".join(lines)
