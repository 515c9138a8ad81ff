"""Which knobs matter for which objective: one importance per (knob, objective), as plain data.

* A sampled (Optuna) sweep: Optuna's own evaluators, fANOVA (a random forest's functional
  ANOVA, Hutter et al. 2014) and PED-ANOVA (Watanabe et al. 2023), over the sweep's finished
  trials. The study they evaluate is built in memory from the MLflow records, one
  single-objective study per objective (``optuna.create_study`` + ``add_trials``) with the
  distributions of the sweep's search space, so the sweep's own Optuna storage is never needed.
* A grid: the main effect of each factor from the ablation table
  (:func:`mvit_lab.search.tables.ablation_table`): the range of the level means, and the share of
  the objective's variance the levels explain (eta squared, SS between / SS total).
* A ladder changes knobs cumulatively, so no importance is defined.

Fewer than ``min_trials`` finished trials with an objective hide that objective's column, with
a message saying how many it would rest on.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from collections.abc import Sequence
from typing import Any

from mvit_lab.dashboards.data import DataError, Sweep
from mvit_lab.search.tables import ablation_table

__all__ = ["METHODS", "MIN_TRIALS", "distributions", "format_importance", "importance_info",
           "knob_value"]

MIN_TRIALS = 10  # below this, a forest or a Parzen estimator on the trials says little
METHODS = ("fanova", "ped_anova", "main_effect")
_NAMES = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA",
          "main_effect": "main effect (share of variance)"}
_PED_MIN_TOP = 5  # Optuna's docs: "preferable to include at least 5 trials above the quantile"


def knob_value(rec: dict[str, Any], knob: str) -> Any:
    """A record's value of ``knob`` (a model knob, or ``train.<key>``)."""
    if knob.startswith("train."):
        return (rec.get("train") or {}).get(knob[len("train."):])
    return (rec.get("model") or {}).get(knob)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def distributions(space: dict[str, Any] | None, records: Sequence[dict[str, Any]],
                  knobs: Sequence[str]) -> tuple[dict[str, Any], str]:
    """Optuna distributions of the knobs, and where they come from.

    From the search space's ``params`` when it has them (choices become categorical over
    their JSON text, so a list-valued knob is one category); otherwise from the levels the
    trials took: numbers as a float range, anything else as categories.
    """
    import optuna.distributions as od

    params = (space or {}).get("params")
    out: dict[str, Any] = {}
    if isinstance(params, dict) and params:
        from mvit_lab.search.space import parse_space

        parsed = parse_space(space).params
        for knob, dist in parsed.items():
            if dist.kind == "choice":
                out[knob] = od.CategoricalDistribution([_key(v) for v in dist.values])
            elif dist.kind == "int":
                out[knob] = od.IntDistribution(int(dist.values[0]), int(dist.values[1]))
            else:
                out[knob] = od.FloatDistribution(float(dist.values[0]), float(dist.values[1]),
                                                 log=dist.kind == "log")
        return out, "the sweep's search space"
    for knob in knobs:
        values = [knob_value(r, knob) for r in records]
        if all(_number(v) for v in values):
            lo, hi = min(values), max(values)
            if lo < hi:
                out[knob] = od.FloatDistribution(float(lo), float(hi))
            continue
        levels = sorted({_key(v) for v in values})
        if len(levels) > 1:
            out[knob] = od.CategoricalDistribution(levels)
    return out, "the levels the trials took (no search space logged)"


def _param(dist: Any, value: Any) -> Any:
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return _key(value)
    if isinstance(dist, od.IntDistribution):
        return int(value)
    return float(value)


def _study(direction: str, trials: list[tuple[dict[str, Any], float]],
           dists: dict[str, Any]) -> Any:
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per view
    try:
        study = optuna.create_study(direction=direction)
    finally:
        optuna.logging.set_verbosity(level)
    study.add_trials([optuna.trial.create_trial(params=params, distributions=dists, value=value)
                      for params, value in trials])
    return study


def _optuna_importances(method: str, study: Any, n: int) -> tuple[dict[str, float], str]:
    import optuna
    from optuna.importance import (
        FanovaImportanceEvaluator,
        PedAnovaImportanceEvaluator,
        get_param_importances,
    )

    if method == "fanova":
        evaluator, note = FanovaImportanceEvaluator(seed=0), ""
    else:
        # Optuna's default quantile (0.1) keeps 2 of 20 trials: widen it to keep at least 5,
        # up to the better half
        quantile = min(0.5, max(0.1, _PED_MIN_TOP / n))
        evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
        note = f"top {quantile:.0%} of trials"
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental / few-trials warnings: the note says
            values = get_param_importances(study, evaluator=evaluator, normalize=True)
    finally:
        optuna.logging.set_verbosity(level)
    return {k: float(v) for k, v in values.items()}, note


def _main_effects(records: list[dict[str, Any]], knobs: Sequence[str],
                  objective: str) -> dict[str, dict[str, float]]:
    """Per factor: ``share`` (eta squared) and ``range`` (max - min of the level means)."""
    # ablation_table reads a factor from ``model``: lend it the train keys under their name
    lent = [dict(r, model={**(r.get("model") or {}),
                           **{f"train.{k}": v for k, v in (r.get("train") or {}).items()}})
            for r in records]
    ys = [float(r[objective]) for r in records if r.get(objective) is not None]
    grand = statistics.fmean(ys)
    total = sum((y - grand) ** 2 for y in ys)
    out = {}
    for knob in knobs:
        rows = ablation_table(lent, knob, objective)
        if len(rows) < 2:
            continue
        between = sum(r["n"] * (r["mean"] - grand) ** 2 for r in rows)
        means = [r["mean"] for r in rows]
        out[knob] = dict(share=between / total if total > 0 else 0.0,
                         range=max(means) - min(means))
    return out


def importance_info(sweep: Sweep, space: dict[str, Any] | None = None,
                    methods: Sequence[str] | None = None,
                    min_trials: int = MIN_TRIALS) -> dict[str, Any]:
    """Knob importance per objective of ``sweep``.

    Returns ``methods`` (each: ``method``, ``values`` ``{objective: {knob: importance}}``,
    ``note``), ``knobs`` (rows, most important for the first shown objective first),
    ``objectives`` (the columns shown), ``n`` (``{objective: trials it rests on}``),
    ``hidden`` (``{objective: why not shown}``), ``source`` (where the distributions come
    from) and ``message`` (why nothing is shown, else None).
    """
    if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 2:
        raise ValueError(f"min_trials: must be an integer >= 2, got {min_trials!r}")
    if sweep.mode == "ladder":
        return _empty(sweep, "a ladder changes knobs cumulatively, step after step: no knob "
                             "varies alone, so no importance is defined (see the ladder table)")
    if methods is None:
        methods = ("main_effect",) if sweep.mode == "grid" else ("fanova", "ped_anova")
    for i, method in enumerate(methods):
        if method not in METHODS:
            raise ValueError(f"methods[{i}]: unknown method {method!r} (known: "
                             f"{', '.join(METHODS)})")
    finished = sweep.finished
    knobs = sweep.knobs()
    info = _empty(sweep, None)
    if not knobs:
        info["message"] = "the sweep's trials all share one architecture and recipe: no knob"
        return info
    dists, source = distributions(space, finished, knobs) if any(
        m != "main_effect" for m in methods) else ({}, "the ablation tables")
    info["source"] = source
    for objective in sweep.objectives:
        name = objective.name
        usable = [r for r in finished if r.get(name) is not None and all(
            knob_value(r, k) is not None for k in dists)]
        info["n"][name] = len(usable)
        if len(usable) < min_trials:
            info["hidden"][name] = (f"{name}: {len(usable)} finished trial(s); importance "
                                    f"is shown from {min_trials}")
            continue
        if len({float(r[name]) for r in usable}) < 2:
            info["hidden"][name] = f"{name}: the same value in every trial"
            continue
        info["objectives"].append(name)
        direction = "maximize" if objective.sense == "max" else "minimize"
        for entry in info["methods"]:
            method = entry["method"]
            if method == "main_effect":
                effects = _main_effects(usable, knobs, name)
                entry["values"][name] = {k: e["share"] for k, e in effects.items()}
                entry.setdefault("ranges", {})[name] = {k: e["range"] for k, e in
                                                        effects.items()}
                continue
            trials = [({k: _param(d, knob_value(r, k)) for k, d in dists.items()},
                       float(r[name])) for r in usable]
            try:
                entry["values"][name], entry["note"] = _optuna_importances(
                    method, _study(direction, trials, dists), len(usable))
            except ValueError as err:  # a value outside the space's distribution
                raise DataError(f"importance of {name} in sweep {sweep.name!r}: {err}") from err
    if not info["objectives"]:
        info["message"] = ("not enough trials for knob importance: "
                           + "; ".join(info["hidden"].values()))
        return info
    first = info["objectives"][0]
    lead = info["methods"][0]["values"].get(first, {})
    seen = {k for e in info["methods"] for v in e["values"].values() for k in v}
    info["knobs"] = sorted(seen, key=lambda k: (-lead.get(k, 0.0), k))
    return info


def _empty(sweep: Sweep, message: str | None) -> dict[str, Any]:
    methods = () if message else (("main_effect",) if sweep.mode == "grid" else
                                  ("fanova", "ped_anova"))
    return dict(methods=[dict(method=m, name=_NAMES[m], values={}, note="") for m in methods],
                knobs=[], objectives=[], n={}, hidden={}, source="", message=message)


def format_importance(info: dict[str, Any]) -> dict[str, Any]:
    """The importances as a text table: one row per knob, one column per (method, objective)."""
    methods = [m for m in info["methods"] if m["values"]]
    columns = ["knob"] + [f"{m['name']}: {o}" for m in methods for o in info["objectives"]]
    rows = [[knob] + [f"{m['values'][o].get(knob, 0.0):.2f}" for m in methods
                      for o in info["objectives"]] for knob in info["knobs"]]
    notes = [f"{o}: {info['n'][o]} finished trials" for o in info["objectives"]]
    notes += list(info["hidden"].values())
    notes += [f"{m['name']}: {m['note']}" for m in methods if m.get("note")]
    if info["source"]:
        notes.append(f"distributions from {info['source']}")
    if any(m["method"] != "main_effect" for m in methods):
        notes.append("fANOVA and PED-ANOVA columns are normalised to sum to 1")
    if any(m["method"] == "main_effect" for m in methods):
        notes.append("main effect: the share of the objective's variance that the factor's "
                     "levels explain alone (eta squared)")
    return dict(title="Knob importance per objective", columns=columns, rows=rows,
                note="; ".join(notes))


def _render_importance(info: dict[str, Any]) -> Any:
    """One panel per method: a horizontal bar per knob, one colour per objective."""
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    methods = [m for m in info["methods"] if m["values"]]
    fig = make_subplots(rows=1, cols=max(1, len(methods)), shared_yaxes=True,
                        subplot_titles=[m["name"] for m in methods] or [""])
    knobs = list(reversed(info["knobs"]))  # the most important on top
    for col, m in enumerate(methods, start=1):
        for i, objective in enumerate(info["objectives"]):
            values = m["values"].get(objective, {})
            fig.add_bar(x=[values.get(k, 0.0) for k in knobs], y=knobs, orientation="h",
                        name=f"{objective} (n = {info['n'][objective]})",
                        legendgroup=objective, showlegend=col == 1,
                        marker_color=qualitative.D3[i % len(qualitative.D3)], row=1, col=col)
        fig.update_xaxes(range=[0, 1], title_text="importance", row=1, col=col)
    fig.update_layout(barmode="group", template="plotly_white",
                      height=max(260, 60 + 40 * len(knobs) * max(1, len(info["objectives"]))),
                      title=dict(text="Knob importance per objective"),
                      legend=dict(orientation="h", yanchor="top", y=-0.15),
                      margin=dict(l=120, r=20, t=60, b=40))
    return fig
