"""The "Design spaces" tab's data: a design_spaces sweep's populations compared (see
:mod:`mvit_lab.search.design_analysis`), or a message saying why there is nothing to compare."""

from __future__ import annotations

from typing import Any

from mvit_lab.dashboards.data import DataError, Sweep
from mvit_lab.search.design_analysis import analyse_design_spaces, design_table

__all__ = ["design_view"]


def design_view(sweep: Sweep, bootstraps: int = 2000) -> dict[str, Any]:
    """``analysis`` (plain data for the figures) and ``table`` (rows for the page) of the
    sweep's populations; a :class:`DataError` when the sweep is no design_spaces sweep or
    no trial has finished."""
    if sweep.mode != "design_spaces":
        raise DataError(f"sweep {sweep.name!r} is a {sweep.mode or 'unknown'} search: this tab "
                        "compares the populations of a design_spaces sweep (e.g. mvit-lab sweep "
                        "experiments/design_spaces_ladder.yaml)")
    objective = sweep.objectives[0]
    try:
        analysis = analyse_design_spaces(sweep.records, metric=objective.name,
                                         sense=objective.sense, bootstraps=bootstraps)
    except ValueError as err:
        raise DataError(f"sweep {sweep.name!r}: {err}") from err
    return dict(analysis=analysis, table=design_table(analysis))
