"""A design_spaces sweep's populations analysed: the data behind ``mvit-lab analyse``, the
dashboard's "Design spaces" tab and the sweep's ``design_spaces.md``.

:func:`analyse_design_spaces` takes sweep records (:mod:`mvit_lab.search.records`) and
returns plain data: per space the error EDF and the complexity-normalised EDF (see
:mod:`mvit_lab.search.edf`), n / min / median / mean error, the normalised-EDF area, the KS
statistic and the area difference against the first space with bootstrap intervals, and a
bootstrapped good range (or good levels) per sampled knob. Only finished, untruncated trials
with the metric count. The error is ``100 - metric`` for a metric maximised (a top-1 in
percent), the metric itself for one minimised.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from mvit_lab.search import edf as E

MIN_N = 5  # models per space before a verdict is given

__all__ = ["analyse_design_spaces", "design_table", "error_of", "format_design_table",
           "knob_feature", "verdicts"]


def error_of(value: float, sense: str) -> float:
    """The error of a metric value: ``100 - value`` (maximised, percent), else the value."""
    return 100.0 - value if sense == "max" else value


def knob_feature(key: str, value: Any) -> tuple[str, float | str]:
    """A knob value as ``("num", number)`` or ``("cat", label)``: ``depths`` counts by its sum
    (the total depth), numbers as themselves, anything else (kernels, strides, modes) is a
    level."""
    if key == "depths" and isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "num", float(sum(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return "num", float(value)
    return "cat", value if isinstance(value, str) else json.dumps(value)


def _usable(rec: dict[str, Any], metric: str) -> bool:
    v = rec.get(metric)
    return (rec.get("status") == "finished" and not rec.get("truncated")
            and rec.get("design_space") is not None and isinstance(v, (int, float))
            and math.isfinite(v))


def analyse_design_spaces(records: list[dict[str, Any]], *, metric: str = "val_top1",
                          sense: str = "max", complexity: str = "gflops",
                          reference: str | None = None, bins: int | None = None,
                          bootstraps: int = 2000, good_bootstraps: int = E.BOOTSTRAPS,
                          seed: int = 0, order: list[str] | None = None) -> dict[str, Any]:
    """The populations of ``records`` by design space, analysed (see the module docstring).

    ``reference`` names the space whose complexity distribution the others are re-weighted
    to (default: all spaces pooled); ``bins`` the log-complexity bins (default: the square
    root of the smallest population, 2 to 10); ``order`` the spaces' order (the first is the
    one the others are compared with; default: the order they first appear in).
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if _usable(rec, metric):
            groups.setdefault(rec["design_space"], []).append(rec)
    names = [n for n in (order or []) if n in groups] + [n for n in groups
                                                         if n not in (order or [])]
    if not names:
        raise ValueError(f"{metric}: no finished design-space trial has logged it yet")
    if reference is not None and reference not in groups:
        raise ValueError(f"--reference: {reference!r} is not a design space with finished "
                         f"trials (have: {', '.join(names)})")
    err = {n: np.array([error_of(float(r[metric]), sense) for r in groups[n]]) for n in names}
    cpx = {n: np.array([float(r.get(complexity) or float("nan")) for r in groups[n]])
           for n in names}
    normalise = all(np.isfinite(c).all() and (c > 0).all() for c in cpx.values())
    ref = cpx[reference] if reference else np.concatenate([cpx[n] for n in names])
    if bins is None:
        bins = int(min(10, max(2, round(math.sqrt(min(len(v) for v in err.values()))))))
    edges = E.complexity_bins(np.concatenate([*cpx.values(), ref]), bins) if normalise else None
    all_err = np.concatenate(list(err.values()))
    lo, hi = float(all_err.min()), float(all_err.max())
    if hi <= lo:
        hi = lo + 1.0
    first = names[0]
    spaces = []
    for n in names:
        weights, coverage = E.complexity_weights(cpx[n], ref, edges) if normalise \
            else (None, None)
        x, y = E.edf(err[n])
        nx, ny = E.edf(err[n], weights) if normalise else (x, y)
        row: dict[str, Any] = dict(
            name=n, n=int(err[n].size), min=float(err[n].min()),
            median=float(np.median(err[n])), mean=float(err[n].mean()),
            area=E.edf_area(err[n], lo, hi, weights), coverage=coverage,
            edf=(x.tolist(), y.tolist()), nedf=(nx.tolist(), ny.tolist()),
            errors=err[n].tolist(), complexity=cpx[n].tolist(),
            weights=None if weights is None else weights.tolist(),
            throughput=[r.get("throughput") for r in groups[n]],
            points=[r.get("point") for r in groups[n]],
            run_ids=[r.get("run_id") for r in groups[n]], vs_first=None)
        if n != first:
            cmp = E.bootstrap_compare(
                err[first], err[n], ca=cpx[first] if normalise else None,
                cb=cpx[n] if normalise else None, reference=ref if normalise else None,
                bins=bins, lo=lo, hi=hi, n=bootstraps, seed=seed)
            row["vs_first"] = cmp
        row["knobs"] = _knobs(groups[n], err[n], good_bootstraps, seed)
        spaces.append(row)
    return dict(metric=metric, sense=sense, complexity=complexity, normalised=normalise,
                reference=reference or "all spaces pooled", bins=bins, lo=lo, hi=hi,
                first=first, spaces=spaces, bootstraps=bootstraps,
                good_bootstraps=good_bootstraps)


def _knobs(recs: list[dict[str, Any]], errors: np.ndarray, n: int, seed: int
           ) -> dict[str, dict[str, Any]]:
    """Each knob that varies within the population: its values and good range / levels."""
    keys = sorted({k for r in recs for k in (r.get("model") or {})})
    out = {}
    for key in keys:
        raw = [(r.get("model") or {}).get(key) for r in recs]
        if len({json.dumps(v, sort_keys=True) for v in raw}) < 2:
            continue
        feats = [knob_feature(key, v) for v in raw]
        if all(kind == "num" for kind, _ in feats):
            values = [float(v) for _, v in feats]
            good = E.good_range(errors, values, n=n, seed=seed)
            out[key] = dict(kind="num", values=values, good=good,
                            label=f"{key} (sum)" if isinstance(raw[0], list) else key)
        else:
            labels = [str(knob_feature(key, v)[1]) for v in raw]
            out[key] = dict(kind="cat", values=labels, label=key,
                            good=E.good_levels(errors, labels, n=n, seed=seed))
    return out


def design_table(analysis: dict[str, Any]) -> dict[str, Any]:
    """The analysis as a table (``title``, ``columns``, ``rows`` of strings, ``note``): per
    space n, min, median, mean error, the normalised-EDF area, and the KS statistic and the
    area difference against the first space with their bootstrap intervals."""
    cpx = analysis["complexity"]
    norm = f"normalised to {analysis['reference']} ({cpx}, {analysis['bins']} log bins)" \
        if analysis["normalised"] else "not normalised (a trial lacks " + cpx + ")"
    first = analysis["first"]
    rows = []
    for s in analysis["spaces"]:
        c = s["vs_first"]
        ks = "—" if c is None else f"{c.ks:.2f} [{c.ks_low:.2f}, {c.ks_high:.2f}]"
        da = "—" if c is None else (f"{c.area_diff:+.3f} [{c.area_low:+.3f}, "
                                    f"{c.area_high:+.3f}]")
        rows.append([s["name"], str(s["n"]), f"{s['min']:.2f}", f"{s['median']:.2f}",
                     f"{s['mean']:.2f}", f"{s['area']:.3f}", ks, da])
    return dict(
        title=f"Design spaces: error = {'100 - ' if analysis['sense'] == 'max' else ''}"
              f"{analysis['metric']}",
        columns=["space", "n", "min", "median", "mean", "nEDF area", f"KS vs {first}",
                 f"area − {first}"],
        rows=rows,
        note=f"EDFs {norm}; area over errors [{analysis['lo']:.2f}, {analysis['hi']:.2f}] "
             f"(1: every model at the lowest error; larger is better); 95% intervals from "
             f"{analysis['bootstraps']} bootstraps of both populations")


def format_design_table(analysis: dict[str, Any]) -> str:
    """:func:`design_table` as markdown, its note first."""
    t = design_table(analysis)
    lines = [t["note"], "", "| " + " | ".join(t["columns"]) + " |",
             "|" + "---|" * len(t["columns"])]
    lines += ["| " + " | ".join(row) + " |" for row in t["rows"]]
    return "\n".join(lines)


def verdicts(analysis: dict[str, Any]) -> list[str]:
    """One line per space against the first: better, worse, or not resolved (the area
    difference's interval contains 0)."""
    out = []
    first = analysis["first"]
    n_first = analysis["spaces"][0]["n"]
    for s in analysis["spaces"]:
        c = s["vs_first"]
        if c is None:
            continue
        if min(n_first, s["n"]) < MIN_N:  # a bootstrap of a handful of models says nothing
            out.append(f"{s['name']} vs {first}: not compared, {s['n']} and {n_first} "
                       f"finished models (at least {MIN_N} each)")
            continue
        if c.area_low > 0:
            word = "better than"
        elif c.area_high < 0:
            word = "worse than"
        else:
            word = "not distinguishable from"
        out.append(f"{s['name']} is {word} {first}: normalised-EDF area {c.area_diff:+.3f} "
                   f"[{c.area_low:+.3f}, {c.area_high:+.3f}], KS {c.ks:.2f} "
                   f"[{c.ks_low:.2f}, {c.ks_high:.2f}]")
    return out
