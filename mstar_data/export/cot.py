"""`mstar export cot`: the training sets a run actually trained on, for other trainers.

Each iteration of an `mstar evolve` run pinned the rollouts version its training set was read from (Lance tag
`<run>.it0003`, named in `iterations.trainset_tag`). This export re-reads the run's selection view at exactly
those versions with the parameters the loop used (from the resolved recipe in `runs.recipe`), so the rows are
the examples each iteration trained on, whatever was sampled since. Two layouts:

- `sharegpt`: LLaMA-Factory's multimodal sharegpt (data.json, images/ beside it, a dataset_info.json entry);
- `parquet`: the Hugging Face layout (`messages`, `images` as `Image` features, and the plain columns), which
  `datasets.load_dataset("parquet", ...)` decodes.

Both come with a dataset card (rows, provenance: store, run, iterations, Lance versions, resolved recipe),
through the one export writer shared with `mstar export prm`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from mstar_data.errors import MstarError
from mstar_data.export.writer import (DATA_FILE, IMAGE, IMAGE_FEATURE, IMAGE_TOKEN, card_front_matter,
                                      check_export_folder, parquet_table, sharegpt_record, value, write_export,
                                      write_parquet, write_sharegpt)
from mstar_data.store.predicates import equals
from mstar_data.select.trainset import trainset_params

FORMATS = ("sharegpt", "parquet")
SCHEMA = pa.schema([("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
                    ("images", pa.list_(IMAGE)), ("prompt", pa.string()), ("completion", pa.string()),
                    ("kind", pa.string()), ("iteration", pa.int32()), ("query_id", pa.string()),
                    ("rollout_id", pa.string())])
FEATURES = {"messages": [{"role": value("string"), "content": value("string")}], "images": [IMAGE_FEATURE],
            "prompt": value("string"), "completion": value("string"), "kind": value("string"),
            "iteration": value("int32"), "query_id": value("string"), "rollout_id": value("string")}


@dataclass
class CotRow:
    iteration: int
    kind: str
    query_id: str
    rollout_id: str | None
    prompt: str
    completion: str
    image: bytes | None


@dataclass
class Pinned:
    iteration: int
    version: int
    tag: str | None
    n_train: int | None


@dataclass
class CotExportResult:
    out: str
    rows: int
    by_iteration: dict[int, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    images: int = 0


def run_recipe(store, run: str) -> dict:
    rows = store.dataset("runs").to_table(filter=equals("run_id", run)).to_pylist()
    if not rows:
        runs = sorted(store.dataset("runs").to_table(columns=["run_id"]).column("run_id").to_pylist())
        shown = ", ".join(runs[:10]) or "none yet: run `mstar evolve`"
        raise MstarError(f"--run '{run}': the store {store.uri} has no such run (runs: {shown})")
    try:
        return json.loads(rows[0]["recipe"])
    except (TypeError, ValueError) as e:
        raise MstarError(f"run '{run}': runs.recipe is not the resolved recipe as JSON (a record from an older "
                         f"release); rerun the loop to record it") from e


def pinned_trainsets(store, run: str, iterations: list[int] | None = None) -> list[Pinned]:
    rows = store.dataset("iterations").to_table(
        columns=["iteration", "trainset_version", "trainset_tag", "n_train"], filter=equals("run_id", run)).to_pylist()
    tags = store.dataset("rollouts").tags.list()
    pinned = []
    for r in sorted(rows, key=lambda r: r["iteration"]):
        if r["trainset_version"] is None or (iterations and r["iteration"] not in iterations):
            continue
        version = tags[r["trainset_tag"]]["version"] if r["trainset_tag"] in tags else r["trainset_version"]
        pinned.append(Pinned(r["iteration"], version, r["trainset_tag"], r["n_train"]))
    if iterations:
        missing = sorted(set(iterations) - {p.iteration for p in pinned})
        if missing:
            raise MstarError(f"--iteration {missing[0]}: run '{run}' has no pinned training set for it")
    if not pinned:
        raise MstarError(f"run '{run}' has no pinned training sets (iterations.trainset_version is null: no "
                         f"iteration selected a training set yet)")
    return pinned


def trainset_rows(store, view: str, run: str, p: Pinned, params: dict) -> list[CotRow]:
    """One iteration's training examples, rebuilt at its pinned version (as select/trainset.py builds them)."""
    from mstar_data.inputs import query_inputs
    from mstar_data.sql_views import load_sql_files, run_view

    if view not in load_sql_files():
        raise MstarError(f"run '{run}': recipe select.view '{view}' is not a view in sql/")
    try:
        rows = run_view(store, view, versions={"rollouts": p.version}, run=run, iteration=p.iteration,
                        **params).to_pylist()
    except Exception as e:  # a version compacted away, or a view newer than the rows it pinned
        if isinstance(e, MstarError):
            raise
        raise MstarError(f"run '{run}' iteration {p.iteration}: sql/{view}.sql cannot be read at its pinned "
                         f"rollouts version {p.version} ({str(e).splitlines()[0]})") from e
    inputs = query_inputs(store, (r["query_id"] for r in rows))
    out = []
    for r in rows:
        q = inputs[r["query_id"]]
        if "kind" in r:  # a reflection view (sql/trainset_r3v.sql): the row says how to word the example
            from mstar_data.select.r3v import example_text

            prompt, target = example_text(r, q.prompt)
            kind = r["kind"]
        else:
            prompt, target, kind = q.prompt, r["response"], "cot"
        out.append(CotRow(p.iteration, kind, r["query_id"], r.get("rollout_id"), prompt, target, q.image))
    return out


def export_cot(store, out: str | Path, *, run: str, fmt: str, iterations: list[int] | None = None,
               force: bool = False) -> CotExportResult:
    if fmt not in FORMATS:
        raise MstarError(f"--format '{fmt}': expected one of {', '.join(FORMATS)}")
    folder = check_export_folder(out, force=force)
    recipe = run_recipe(store, run)
    view = recipe.get("select", {}).get("view")
    if not view:
        raise MstarError(f"run '{run}': its recipe has no select.view (a GRPO run trains online, with no "
                         f"training set to export)")
    pinned = pinned_trainsets(store, run, iterations)
    rows = [row for p in pinned for row in trainset_rows(store, view, run, p, trainset_params(recipe, p.iteration))]
    if not rows:
        raise MstarError(f"run '{run}': its pinned training sets hold no examples")
    result = CotExportResult(str(folder), len(rows), dict(Counter(r.iteration for r in rows)),
                             dict(Counter(r.kind for r in rows)), len({r.image for r in rows if r.image}))
    versions = {"queries": store.version("queries"), "images": store.version("images")}
    card = dataset_card(store, result, run=run, fmt=fmt, view=view, pinned=pinned, recipe=recipe, versions=versions)
    marker = {"kind": "cot-export", "format": fmt, "run": run, "rows": len(rows),
              "iterations": {p.iteration: p.version for p in pinned}}

    def write(partial: Path) -> None:
        if fmt == "sharegpt":
            write_sharegpt(partial, [sharegpt_record(r.prompt, r.completion, r.image, query_id=r.query_id,
                                                     iteration=r.iteration, kind=r.kind) for r in rows],
                           name=f"mstar_{run}")
        else:
            write_parquet(partial, parquet_table({
                "messages": [[{"role": "user", "content": (IMAGE_TOKEN if r.image else "") + r.prompt},
                              {"role": "assistant", "content": r.completion}] for r in rows],
                "images": [[{"bytes": r.image, "path": None}] if r.image else [] for r in rows],
                "prompt": [r.prompt for r in rows], "completion": [r.completion for r in rows],
                "kind": [r.kind for r in rows], "iteration": [r.iteration for r in rows],
                "query_id": [r.query_id for r in rows], "rollout_id": [r.rollout_id for r in rows]},
                SCHEMA, FEATURES))
        (partial / "README.md").write_text(card)

    write_export(folder, marker=marker, write=write)
    return result


def dataset_card(store, r: CotExportResult, *, run: str, fmt: str, view: str, pinned: list[Pinned], recipe: dict,
                 versions: dict[str, int]) -> str:
    header = card_front_matter(["sft", "chain-of-thought", "vision-language", "mstar"]) if fmt == "parquet" else []
    lines = header + [
        f"# Training sets of run `{run}` ({fmt})",
        "",
        f"- rows: {r.rows} examples over {len(r.by_iteration)} iteration(s), {r.images} distinct images",
        "- by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(r.by_kind.items())),
        f"- selection view: `sql/{view}.sql`, read at each iteration's pinned rollouts version",
        "",
        "| iteration | rows | n_train recorded | rollouts version | tag |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {p.iteration} | {r.by_iteration.get(p.iteration, 0)} | {p.n_train} | {p.version} | "
              f"`{p.tag}` |" for p in pinned]
    lines += [
        "",
        "## Provenance",
        "",
        f"- store: `{store.uri}`",
        f"- run: `{run}`, iterations {', '.join(str(p.iteration) for p in pinned)}",
        "- Lance versions: rollouts as pinned above; " + ", ".join(f"{t} v{v}" for t, v in versions.items()),
        f"- exported: {datetime.now(timezone.utc).isoformat(timespec='seconds')} by `mstar export cot --format {fmt}`",
        "",
        "## Layout",
        "",
    ]
    if fmt == "sharegpt":
        lines += ["LLaMA-Factory multimodal sharegpt: `data.json` (records with `conversations` human/gpt and "
                  "`images` paths relative to this folder), `images/`, and `dataset_info.json` with the entry "
                  f"`mstar_{run}`. Train with `--dataset mstar_{run} --dataset_dir <this folder>`."]
    else:
        lines += [f"`{DATA_FILE}`: `messages` (user turn with one `<image>` placeholder, assistant target), "
                  "`images` (Hugging Face `Image` features), `prompt`, `completion`, `kind`, `iteration`, "
                  "`query_id`, `rollout_id`.", "", "```python", "from datasets import load_dataset", "",
                  f'ds = load_dataset("parquet", data_files="{DATA_FILE}", split="train")', "```"]
    lines += ["", "## Resolved recipe (`runs.recipe`)", "", "```json", json.dumps(recipe, indent=1, sort_keys=True),
              "```", ""]
    return "\n".join(lines)
