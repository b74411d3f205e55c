"""The temperature search's decision: keep the current T unless another beats it beyond the sampling noise.

The sweep samples `temperature.n` responses per val query at each T of the grid (sql/temperature_sweep_by_query
gives one row per T and query). M-STAR picks the T with the best Reward-Pass@2 (Pass@K without a PRM). On
90 queries x 4 samples the best T moves around from search to search on noise alone, and a run that follows
it ends up worse than one at a fixed T. So we compare every candidate with the incumbent (the grid T nearest
the current one) by a paired bootstrap over the val queries: each resample draws queries with replacement
and takes the mean per-query difference, so what the two temperatures share (the query's difficulty) cancels.
A candidate is better when the lower end of its gain's one-sided interval, Bonferroni-corrected over the
candidates, is above `temperature.min_gain`. Among the better ones the highest mean wins; if none is better
the current T stays. docs/temperature.md says how many queries a search needs to tell 0.1 apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRIC_NAMES = {"reward_pass_2": "reward_pass_at_2", "pass_k": "pass_at_k"}


@dataclass
class TemperatureChoice:
    temperature: float                      # what the loop samples at next
    incumbent: float                        # the grid T the current one was compared at
    metric: str                             # reward_pass_at_2 or pass_at_k
    moved: bool
    rows: list[dict] = field(default_factory=list)  # per T: value, gain over the incumbent and its interval
    settings: dict = field(default_factory=dict)

    def record(self) -> dict:
        """What the iterations row keeps (metrics JSON, key `temperature_search`)."""
        return {"chosen": self.temperature, "incumbent": self.incumbent, "metric": self.metric, "moved": self.moved,
                **self.settings, "sweep": self.rows}


def choose_temperature(per_query: list[dict], current: float, *, metric: str, min_gain: float = 0.0,
                       confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> TemperatureChoice:
    """The T to sample at next, from per-(temperature, query) rows holding `metric` (0/1, None = not measured).

    `current` is kept unless a candidate's gain over it is beyond the noise (see the module docstring)."""
    temps = sorted({round(float(r["temperature"]), 4) for r in per_query})
    queries = sorted({r["query_id"] for r in per_query})
    settings = {"min_gain": min_gain, "confidence": confidence, "resamples": resamples, "seed": seed,
                "n_queries": len(queries)}
    if not temps:
        return TemperatureChoice(current, current, METRIC_NAMES.get(metric, metric), False, [], settings)
    col, row = {t: i for i, t in enumerate(temps)}, {q: i for i, q in enumerate(queries)}
    values = np.full((len(queries), len(temps)), np.nan)
    for r in per_query:
        if r[metric] is not None:
            values[row[r["query_id"]], col[round(float(r["temperature"]), 4)]] = float(r[metric])
    incumbent = min(temps, key=lambda t: (abs(t - current), t))
    inc = col[incumbent]
    # One-sided, corrected for the number of candidates compared with the incumbent (each is a chance to move
    # on noise alone).
    alpha = (1.0 - confidence) / max(1, len(temps) - 1)
    rng = np.random.default_rng(seed)
    rows = []
    for t in temps:
        c = col[t]
        both = ~np.isnan(values[:, c]) & ~np.isnan(values[:, inc])
        diff = values[both, c] - values[both, inc]
        out = {"temperature": t, "n_queries": int(both.sum()),
               "value": None if np.isnan(values[:, c]).all() else float(np.nanmean(values[:, c])),
               "gain": None, "gain_lo": None, "gain_hi": None, "better": False}
        if t != incumbent and len(diff) >= 2:
            means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
            lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
            out.update(gain=float(diff.mean()), gain_lo=float(lo), gain_hi=float(hi), better=bool(lo > min_gain))
        elif t == incumbent:
            out.update(gain=0.0, gain_lo=0.0, gain_hi=0.0)
        rows.append(out)
    better = [r for r in rows if r["better"]]
    if not better:
        return TemperatureChoice(current, incumbent, METRIC_NAMES.get(metric, metric), False, rows, settings)
    best = max(better, key=lambda r: (r["value"], -abs(r["temperature"] - current)))
    return TemperatureChoice(best["temperature"], incumbent, METRIC_NAMES.get(metric, metric), True, rows, settings)


def sweep_choice(store, recipe, iteration: int, current: float) -> TemperatureChoice:
    """Read the sweep's rollouts of `iteration` (sql/temperature_sweep_by_query) and decide. Pass@K here is over
    at most the samples the sweep drew per T (min(eval.k, temperature.n)), never over fewer than K."""
    from mstar_data.sql_views import run_read_only

    t = recipe.temperature
    k = min(recipe.eval.k, t.n)
    rows = run_read_only(store, "select * from temperature_sweep_by_query",
                         {"run": recipe.run.id, "iteration": iteration, "k": k}).to_pylist()
    # M-STAR picks by Reward-Pass@2; without a PRM (or PRM scores), by Pass@K.
    metric = "reward_pass_2" if recipe.prm.path and any(r["reward_pass_2"] is not None for r in rows) else "pass_k"
    choice = choose_temperature(rows, current, metric=metric, min_gain=t.min_gain, confidence=t.confidence,
                                resamples=t.bootstrap, seed=recipe.run.seed + iteration)
    choice.settings["k"] = k
    return choice
