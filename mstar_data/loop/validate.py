"""`mstar validate` and the loops' preflight: check a recipe without running it.

For each recipe: resolve it (file, --smoke, --set) and check every field; check that each view it reads is in
sql/ and EXPLAIN it with the recipe's parameters against a store (the one given, else a temporary empty store
with the schema); count the queries of its splits (with a store); check that its model folders hold models
and that its sampling backend is installed. Every check is a row in the report with a status, so a check
that covered nothing shows as `skip` instead of passing silently.

Statuses: ok, fail, warn, skip. Without a store, model folders and the backend describe the machine a recipe
will run on, not this one: a relative path is skipped (it resolves against the artifacts root, which only a
store or --artifacts names) and a missing folder or backend is a warning. With --store (and always in the
loops' preflight) they are failures. `mstar validate` exits 1 if any check failed.
"""

from __future__ import annotations

import difflib
import importlib.util
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mstar_data.errors import MstarError

BACKEND_MODULES = {"hf": ("torch", "transformers"), "vllm": ("vllm",), "lmdeploy": ("lmdeploy",)}


@dataclass
class Check:
    kind: str         # fields / view / data / model / backend
    status: str       # ok / fail / warn / skip
    detail: str


@dataclass
class RecipeReport:
    source: str
    run_id: str | None = None
    method: str | None = None
    checks: list[Check] = field(default_factory=list)

    def add(self, kind: str, status: str, detail: str) -> None:
        self.checks.append(Check(kind, status, detail))

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def raise_first(self) -> None:
        if self.failures:
            raise MstarError(self.failures[0].detail)


def resolve_path(path: str, store_uri: str | None, artifacts: str | None = None) -> Path | None:
    """The one rule for paths in a recipe: absolute (or ~/...) as written, relative against the artifacts root
    (--artifacts, else MSTAR_ARTIFACTS, else the local store's folder). None: relative, and no root is known."""
    from mstar_data.artifacts import artifacts_root

    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if store_uri is None and artifacts is None:
        import os

        if not os.environ.get("MSTAR_ARTIFACTS"):
            return None
    return (artifacts_root(store_uri or "", artifacts) / p).absolute()


def with_resolved_paths(recipe, store_uri: str, artifacts: str | None = None):
    """The recipe a loop executes: its model paths made absolute by `resolve_path` (the run record keeps them
    as written)."""
    run = recipe.run.model_copy(update={"base_policy": str(resolve_path(recipe.run.base_policy, store_uri, artifacts))})
    update = {"run": run}
    prm = getattr(recipe, "prm", None)
    if prm is not None and prm.path:
        update["prm"] = prm.model_copy(update={"path": str(resolve_path(prm.path, store_uri, artifacts))})
    return recipe.model_copy(update=update)


def views_read(recipe) -> list[tuple[str, str, dict]]:
    """(recipe key or 'loop', view, parameters) for every sql/ view a run of `recipe` reads."""
    run = recipe.run.id
    if getattr(recipe.run, "method", "mstar") == "grpo":
        return [("loop", "grpo_advantages", {"run": run, "step": 1, "scale": recipe.grpo.scale}),
                ("loop", "grpo_dynamics", {})]
    s = recipe.select
    views = [("select.view", s.view, {"run": run, "iteration": 1, "k": s.k, "alpha": s.alpha, "seed": recipe.run.seed,
                                      "correct_only": s.correct_only, "refine_k": s.refine_k, "select_k": s.select_k}),
             ("loop", "dynamics", {"k": recipe.eval.k})]
    if recipe.temperature.search_every:
        views.append(("loop", "temperature_sweep_by_query",
                      {"run": run, "iteration": 1, "k": min(recipe.eval.k, recipe.temperature.n)}))
    return views


def explain_view(store, name: str, params: dict) -> None:
    """EXPLAIN one sql/ view with `params` bound (names, columns and types resolved; nothing is read)."""
    import duckdb

    from mstar_data.sql_views import connect, load_sql_files, views_used

    files = load_sql_files()
    f = files[name]
    select = f.render(params)
    con = connect(store, params, only=views_used(f.text, files) - {name}, query_text=f.text)
    try:
        con.sql(f"EXPLAIN {select}").fetchall()
    except duckdb.Error as e:
        raise MstarError(str(e).splitlines()[0]) from e
    finally:
        con.close()


def _view_label(key: str, name: str) -> str:
    return f"recipe {key} '{name}'" if key != "loop" else f"view {name} (read by the loop)"


def _missing_view(key: str, name: str, files) -> str | None:
    if name in files:
        return None
    near = difflib.get_close_matches(name, files, n=1)
    hint = f" (did you mean {near[0]}?)" if near else f" (views: {', '.join(sorted(files))})"
    return f"{_view_label(key, name)}: no such view in sql/{hint}"


def check_views_exist(recipe) -> None:
    """The check that needs no store (so `mstar evolve` makes it before opening one): every view the recipe
    reads is a file in sql/. Raises the first that is not."""
    from mstar_data.sql_views import load_sql_files

    files = load_sql_files()
    for key, name, _ in views_read(recipe):
        missing = _missing_view(key, name, files)
        if missing:
            raise MstarError(missing)


def _check_views(report: RecipeReport, recipe, store) -> None:
    from mstar_data.sql_views import load_sql_files

    files = load_sql_files()
    for key, name, params in views_read(recipe):
        label = _view_label(key, name)
        missing = _missing_view(key, name, files)
        if missing:
            report.add("view", "fail", missing)
            continue
        try:
            explain_view(store, name, params)
        except MstarError as e:
            report.add("view", "fail", f"{label}: EXPLAIN failed: {e}")
            continue
        report.add("view", "ok", f"{label}: in sql/, EXPLAIN ok with {len(files[name].params)} parameter(s) bound")


def _check_data(report: RecipeReport, recipe, store) -> None:
    from mstar_data.store.predicates import queries_where

    d = recipe.data
    for key in ("train_split", "val_split"):
        split = getattr(d, key)
        n = store.count("queries", queries_where(split=split, dataset=d.dataset))
        of = f" of dataset '{d.dataset}'" if d.dataset else ""
        report.add("data", "ok" if n else "fail", f"recipe data.{key} '{split}': {n} queries{of} in {store.uri}")


def _check_run_record(report: RecipeReport, recipe, store) -> None:
    from mstar_data.loop.runs import recorded

    known, problem = recorded(store, recipe)
    if problem:
        report.add("run", "fail", problem)
    else:
        report.add("run", "ok", f"run '{recipe.run.id}' " + ("was recorded with this recipe: a rerun continues it"
                                                             if known else f"is new in {store.uri}"))


def _model_folder(path: Path, prm: bool) -> str | None:
    """Why `path` is not a usable model folder, or None."""
    if not path.is_dir():
        return "no such folder"
    if not (path / "config.json").is_file():
        return "not a model folder (no config.json)"
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.safetensors.index.json")):
        return "no safetensors weights"
    if prm:
        from mstar_data.prm.model import prm_meta

        try:
            prm_meta(path)
        except MstarError as e:
            return str(e).split(": ", 1)[-1]
    return None


def _check_models(report: RecipeReport, recipe, store_uri: str | None, artifacts: str | None, strict: bool) -> None:
    paths = [("run.base_policy", recipe.run.base_policy, False)]
    prm = getattr(recipe, "prm", None)
    if prm is not None and prm.path:
        paths.append(("prm.path", prm.path, True))
    missing = "fail" if strict else "warn"
    for key, value, is_prm in paths:
        try:
            path = resolve_path(value, store_uri, artifacts)
        except MstarError as e:  # a remote store without --artifacts
            report.add("model", missing, f"recipe {key} '{value}': {e}")
            continue
        if path is None:
            report.add("model", "skip", f"recipe {key} '{value}': relative, so it resolves against the artifacts "
                                        f"root; give --store or --artifacts to look for it")
            continue
        where = "" if str(path) == value else f" (-> {path})"
        why = _model_folder(path, is_prm)
        if why is None:
            report.add("model", "ok", f"recipe {key} '{value}'{where}: a model folder")
        else:
            here = Path(value).absolute()
            hint = (f"; the working directory has one at {here}: give that absolute path"
                    if here != path and _model_folder(here, is_prm) is None else "")
            report.add("model", missing, f"recipe {key} '{value}'{where}: {why}{hint}; set it with --set {key}=PATH "
                                         f"(relative paths resolve against the artifacts root)")


def _check_backend(report: RecipeReport, recipe, strict: bool) -> None:
    backend = recipe.sample.backend
    absent = [m for m in BACKEND_MODULES[backend] if importlib.util.find_spec(m) is None]
    if absent:
        extra = "" if backend == "hf" else f" (pip install 'mstar[{backend}]')"
        report.add("backend", "fail" if strict else "warn",
                   f"recipe sample.backend '{backend}': {', '.join(absent)} not installed{extra}")
    else:
        report.add("backend", "ok", f"recipe sample.backend '{backend}': {', '.join(BACKEND_MODULES[backend])} "
                                    f"importable")


def check_recipe(recipe, *, source: str = "recipe", store=None, artifacts: str | None = None, models: bool = True,
                 strict: bool | None = None, scratch=None) -> RecipeReport:
    """Every check of one resolved recipe. `store`: EXPLAIN against it and count its queries (else against
    `scratch`, an empty store with the schema, made here if not given). `models`: look at model folders and the
    backend. `strict`: missing ones fail (default: when a store is given)."""
    from mstar_data.loop.recipe import _flat

    strict = store is not None if strict is None else strict
    report = RecipeReport(source, recipe.run.id, getattr(recipe.run, "method", "mstar"))
    n_fields = len(_flat(recipe.model_dump(mode="json")))
    report.add("fields", "ok", f"{n_fields} fields resolved and valid (defaults, file, --smoke, --set)")
    if getattr(recipe, "temperature", None) is not None and recipe.temperature.search_every:
        grid = recipe.temperature_grid()
        if recipe.temperature.t_min > recipe.temperature.t_max:
            report.add("fields", "fail", f"recipe temperature.t_min {recipe.temperature.t_min} is above "
                                         f"temperature.t_max {recipe.temperature.t_max}")
        else:
            report.add("fields", "ok", f"temperature grid {grid[0]}..{grid[-1]}: {len(grid)} temperatures x "
                                       f"{recipe.temperature.n} samples per val query")
    if store is not None:
        _check_views(report, recipe, store)
        _check_data(report, recipe, store)
        _check_run_record(report, recipe, store)
    elif scratch is not None:
        _check_views(report, recipe, scratch)
    else:
        with scratch_store() as empty:
            _check_views(report, recipe, empty)
    if models:
        _check_models(report, recipe, None if store is None else store.uri, artifacts, strict)
        _check_backend(report, recipe, strict)
    return report


@contextmanager
def scratch_store():
    """A temporary empty store with every table of the schema (what views are EXPLAINed on without --store);
    removed after."""
    from mstar_data.store import Store

    with tempfile.TemporaryDirectory(prefix="mstar-validate-") as tmp:
        yield Store(str(Path(tmp) / "store"))


def validate_files(paths: list[str], overrides: list[str] | None = None, *, smoke: bool = False, store=None,
                   artifacts: str | None = None) -> list[RecipeReport]:
    """`mstar validate`: one report per recipe file (a file that does not resolve is one failed check)."""
    from mstar_data.loop.recipe import resolve_recipe

    reports = []
    with ExitStack() as stack:
        scratch = None if store is not None else stack.enter_context(scratch_store())
        for path in paths:
            try:
                recipe = resolve_recipe(path, overrides, smoke=smoke)
            except MstarError as e:
                report = RecipeReport(str(path))
                report.add("fields", "fail", str(e))
                reports.append(report)
                continue
            reports.append(check_recipe(recipe, source=str(path), store=store, artifacts=artifacts, scratch=scratch))
    return reports


def preflight(store, recipe, *, artifacts: str | None = None, models: bool = True) -> RecipeReport:
    """What `mstar evolve` checks before its first step: every check, failures raised (the first, one line)."""
    report = check_recipe(recipe, store=store, artifacts=artifacts, models=models, strict=True)
    report.raise_first()
    return report
