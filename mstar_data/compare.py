"""`mstar compare`: runs side by side, as the M-STAR paper's Tables 1-2 lay them out.

sql/compare_runs.sql gives one row per run (what its resolved recipe did, what it measured on val). Runs whose
resolved recipes are equal but for run.id and run.seed are one configuration measured with several seeds: they
are grouped, and each number is shown as mean ± std over the seeds (population std, as the issue's table).
The PNG draws val greedy accuracy per iteration for every run, one colour per configuration.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from mstar_data.errors import MstarError

METRICS = ("final_greedy", "best_greedy", "final_pass_at_k", "final_reward_pass_at_2", "final_faithful",
           "training_rows", "wall_s")


@dataclass
class Group:
    """One configuration: its label columns and its runs (one per seed)."""

    method: str
    selection: str
    prm: str
    temperature: str
    runs: list[dict] = field(default_factory=list)

    @property
    def seeds(self) -> list:
        return [r["seed"] for r in self.runs]

    def stat(self, key: str) -> tuple[float | None, float | None]:
        """(mean, std over seeds; None for one run); None when no run measured it."""
        vals = [r[key] for r in self.runs if r[key] is not None]
        if not vals:
            return None, None
        vals = [float(v) for v in vals]
        return statistics.fmean(vals), statistics.pstdev(vals) if len(vals) > 1 else None


def method_label(r: dict) -> str:
    if r["family"] != "mstar":
        return r["family"]
    return r["train_method"] or "-"


def selection_label(r: dict) -> str:
    view = (r["view"] or "").removeprefix("trainset_")
    if view == "top_k":
        return f"top-{r['select_k']} by PRM" if r["prm"] else f"top-{r['select_k']} (random, no PRM)"
    if view == "faithful_k":
        return f"top-{r['select_k']} by step checker"
    if view == "random_k":
        return f"random-{r['select_k']}" + (" among correct" if r["correct_only"] is not False else " incl. wrong")
    if view == "threshold":
        return f"PRM > {r['alpha']:g}"
    if view == "all_correct":
        return "all correct"
    if view == "r3v":
        return "R3V (cot + refine + select)"
    return view or "-"


def temperature_label(r: dict) -> str:
    if r["search_every"]:
        return f"search every {r['search_every']} ({r['t_min']:g}..{r['t_max']:g})"
    return "-" if r["temperature"] is None else f"static T={r['temperature']:g}"


def run_label(r: dict) -> str:
    """The run id, and how far it got when it has not measured every iteration its recipe asks for (a run still
    going, or one that stopped): its numbers are then those of its last measured iteration."""
    try:
        planned = json.loads(r["recipe"] or "{}").get("data", {}).get("iterations")
    except (ValueError, AttributeError):
        planned = None
    if isinstance(planned, int) and r["iterations"] is not None and r["iterations"] < planned:
        return f"{r['run_id']} (unfinished: {r['iterations']}/{planned})"
    return r["run_id"]


def config_key(recipe: str | None, run_id: str) -> str:
    """The resolved recipe without run.id and run.seed: equal keys differ only in seed."""
    try:
        tree = json.loads(recipe) if recipe else None
    except ValueError:
        tree = None
    if not isinstance(tree, dict):
        return f"run:{run_id}"
    run = {k: v for k, v in tree.get("run", {}).items() if k not in ("id", "seed")}
    return json.dumps({**tree, "run": run}, sort_keys=True)


def select_runs(rows: list[dict], runs: list[str] | None, prefix: str | None) -> list[dict]:
    if bool(runs) == bool(prefix):
        raise MstarError("give --runs A,B,... or --run-prefix P (one of them)")
    known = {r["run_id"]: r for r in rows}
    if runs:
        missing = [r for r in runs if r not in known]
        if missing:
            shown = ", ".join(sorted(known)[:10]) or "none yet: run `mstar evolve`"
            raise MstarError(f"--runs: run '{missing[0]}' has no iterations in the store (runs: {shown})")
        return [known[r] for r in dict.fromkeys(runs)]
    picked = [r for r in rows if r["run_id"].startswith(prefix)]
    if not picked:
        raise MstarError(f"--run-prefix '{prefix}': no run with iterations starts with it "
                         f"(runs: {', '.join(sorted(known)[:10]) or 'none'})")
    return picked


def compare_runs(store, *, runs: list[str] | None = None, prefix: str | None = None) -> list[Group]:
    from mstar_data.sql_views import run_view

    rows = select_runs(run_view(store, "compare_runs").to_pylist(), runs, prefix)
    groups: dict[str, Group] = {}
    for r in rows:
        g = groups.setdefault(config_key(r["recipe"], r["run_id"]),
                              Group(method_label(r), selection_label(r),
                                    Path(r["prm"]).name if r["prm"] else "-", temperature_label(r)))
        g.runs.append(r)
    for g in groups.values():
        g.runs.sort(key=lambda r: (r["seed"] is None, r["seed"], r["run_id"]))
    return list(groups.values())


def greedy_curves(store, run_ids: list[str]) -> dict[str, list[tuple[int, float]]]:
    from mstar_data.store.predicates import equals

    out = {}
    for run in run_ids:
        rows = store.dataset("iterations").to_table(columns=["iteration", "greedy_acc"],
                                                    filter=equals("run_id", run)).to_pylist()
        out[run] = sorted((r["iteration"], r["greedy_acc"]) for r in rows if r["greedy_acc"] is not None)
    return out


def plot_compare(groups: list[Group], curves: dict[str, list[tuple[int, float]]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mstar_data.loop.dynamics_plot import check_plot_path, save_plot

    out = check_plot_path(out)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["o-", "s--", "^:", "d-.", "v-"]
    for gi, g in enumerate(groups):
        for ri, r in enumerate(g.runs):
            pts = curves.get(r["run_id"], [])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[ri % len(styles)], color=colours[gi % len(colours)],
                    alpha=0.85, label=f"{r['run_id']} ({g.method}, {g.selection}, seed {r['seed']})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("greedy accuracy on val")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.set_title("greedy accuracy per iteration")
    fig.tight_layout()
    return save_plot(fig, out)
