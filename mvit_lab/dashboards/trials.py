"""Every trial of a sweep as one table row, and the filters of the trials table.

A row holds the trial's point, status, seed, the knobs the sweep varies, its objectives, how
long it ran, the device its costs were measured on, and its MLflow run id (the row's ``id``,
which the page's selection keeps). Values are numbers where they are numbers, so a range filter
(``>= 90``) compares numbers; a list-valued knob is shown as its JSON text.

The filters are the query that the page's table (Dash's ``DataTable``) writes from the text
typed above each column: clauses ``{column} OPERATOR value`` joined by ``&&``. The table
filters on the server (``filter_action="custom"``) through :func:`filter_trials`, so what is
highlighted, counted and exported is the same set as what the table shows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from mvit_lab.dashboards.data import Sweep
from mvit_lab.dashboards.importance import knob_value

__all__ = ["filter_trials", "parse_filter", "trial_table"]


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value if not isinstance(value, bool) else str(value).lower()
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    return json.dumps(value)


def trial_table(sweep: Sweep, times: dict[str, tuple[float | None, float | None]] | None = None,
                ) -> dict[str, Any]:
    """``columns`` (``id``, ``name``, ``type``: numeric or text, ``kind``: info, knob,
    objective or metric) and ``rows`` (dicts by column id, plus ``id``: the run id), one per
    trial in the sweep's order. ``times``: ``run_id -> (start, end)`` POSIX seconds
    (:func:`mvit_lab.dashboards.meta.run_times`) for the duration column."""
    times = times or {}
    knobs = sweep.knobs()
    objectives = [o.name for o in sweep.objectives]
    extra = [m for m in ("params",) if m not in objectives]
    columns = [dict(id="point", name="point", type="text", kind="info"),
               dict(id="status", name="status", type="text", kind="info"),
               dict(id="seed", name="seed", type="numeric", kind="info")]
    columns += [dict(id=k, name=k, type="text", kind="knob") for k in knobs]
    columns += [dict(id=o, name=f"{o} ({sweep.objective(o).sense})", type="numeric",
                     kind="objective") for o in objectives]
    columns += [dict(id=m, name=m, type="numeric", kind="metric") for m in extra]
    columns += [dict(id="duration_s", name="duration (s)", type="numeric", kind="info"),
                dict(id="device", name="device", type="text", kind="info"),
                dict(id="run_id", name="MLflow run", type="text", kind="info")]
    rows = []
    for rec in sweep.records:
        start, end = times.get(rec["run_id"], (None, None))
        seed = rec.get("seed")
        status = "truncated" if rec.get("truncated") and rec["status"] == "finished" \
            else rec["status"]
        row: dict[str, Any] = dict(
            id=rec["run_id"], run_id=rec["run_id"], point=rec.get("point") or "",
            status=status, seed=int(seed) if str(seed).isdigit() else seed,
            duration_s=round(end - start, 1) if start is not None and end is not None
            else None, device=rec.get("cost_device"))
        for knob in knobs:
            row[knob] = _cell(knob_value(rec, knob))
        for metric in (*objectives, *extra):
            row[metric] = _cell(rec.get(metric))
        rows.append(row)
    for col in columns:  # a knob whose levels are all numbers filters as a number
        if col["kind"] == "knob" and all(isinstance(r[col["id"]], (int, float)) or
                                         r[col["id"]] is None for r in rows):
            col["type"] = "numeric"
    return dict(columns=columns, rows=rows)


# operators as DataTable writes them (symbols, or words; ``s``/``i`` prefix: case), canonical
_OPERATORS = {"=": "=", "eq": "=", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", "<=": "<=",
              "le": "<=", ">": ">", "gt": ">", ">=": ">=", "ge": ">=", "contains": "contains",
              "datestartswith": "startswith"}
_CLAUSE = re.compile(r"^\{(?P<column>[^}]+)\}\s+(?P<op>[a-z]*[<>=!]+|[a-z]+)\s*(?P<value>.*)$")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1].replace("\\" + text[0], text[0])
    try:
        return float(text)
    except ValueError:
        return text


def parse_filter(query: str, columns: Sequence[str]) -> list[tuple[str, str, Any]]:
    """``{val_top1} >= 90 && {pool_mode} contains max`` -> ``[(column, op, value), ...]``.

    A clause naming no column of the table, or an operator the table cannot write, is a
    ValueError that quotes it.
    """
    clauses = []
    for part in (query or "").split(" && "):
        part = part.strip()
        if not part:
            continue
        match = _CLAUSE.match(part)
        if match is None:
            raise ValueError(f"filter: cannot read {part!r} (a clause looks like "
                             "{column} >= 90)")
        column, op = match["column"], match["op"]
        if column not in columns:
            raise ValueError(f"filter: no column {column!r} in {part!r} (columns: "
                             f"{', '.join(columns)})")
        word = op[1:] if op[:1] in ("s", "i") and op[1:] in _OPERATORS else op
        if word not in _OPERATORS:
            raise ValueError(f"filter: unknown operator {op!r} in {part!r}")
        case = "i" if op.startswith("i") or word == "contains" else "s"
        clauses.append((column, _OPERATORS[word] + ("" if case == "s" else "/i"),
                        _literal(match["value"])))
    return clauses


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        out = float(v)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _keep(cell: Any, op: str, value: Any) -> bool:
    fold = op.endswith("/i")
    op = op.removesuffix("/i")
    if op in ("contains", "startswith"):
        if cell is None:
            return False
        text, needle = str(cell), str(value if not isinstance(value, float) or
                                      not value.is_integer() else int(value))
        if fold:
            text, needle = text.lower(), needle.lower()
        return needle in text if op == "contains" else text.startswith(needle)
    a, b = _number(cell), _number(value)
    if a is None or b is None:  # text: equality only (a range on text keeps nothing)
        if op not in ("=", "!="):
            return False
        same = (str(cell).lower() == str(value).lower()) if fold else str(cell) == str(value)
        return same if op == "=" else not same
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b,
            ">=": a >= b}[op]


def filter_trials(rows: Sequence[dict[str, Any]], query: str,
                  columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows every clause of ``query`` keeps (see :func:`parse_filter`); a row without a
    value in a filtered column is dropped by every clause but ``!=``."""
    clauses = parse_filter(query, columns)
    return [r for r in rows if all(
        _keep(r.get(column), op, value) if r.get(column) is not None else op.startswith("!=")
        for column, op, value in clauses)]
