"""What a sweep's trial records do not carry, read from the same runs frame: the parent run's
params (the resolved experiment), each run's start and end time, and the search space.

Every function takes the experiment's runs frame (:func:`mvit_lab.tracking.runs_dataframe`, or
:meth:`StoreReader.runs`, which the live app already holds), so nothing here queries MLflow
again except :func:`search_space`, which reads the parent run's ``search_space.json`` once per
sweep (cached).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from typing import Any

import pandas as pd

from mvit_lab.dashboards.data import DataError, Sweep
from mvit_lab.search.records import SPACE_ARTIFACT, unflatten

__all__ = ["parent_params", "read_runs", "run_times", "search_space", "unflatten"]

log = logging.getLogger(__name__)


def read_runs(sweep: Sweep) -> pd.DataFrame:
    """The runs frame of the sweep's experiment (one MLflow search)."""
    from mvit_lab.tracking import runs_dataframe

    try:
        return runs_dataframe(sweep.tracking_uri, sweep.experiment)
    except Exception as err:  # the store went away between two reads
        raise DataError(f"cannot read experiment {sweep.experiment!r}: {err}") from err


def parent_params(runs: pd.DataFrame, parent_run_id: str | None) -> dict[str, str]:
    """The parent run's params (``experiment.*``, as flattened strings); empty if missing."""
    if parent_run_id is None or not len(runs):
        return {}
    row = runs[runs["run_id"] == parent_run_id]
    if not len(row):
        return {}
    row = row.iloc[0]
    return {c[len("param."):]: row[c] for c in row.index
            if c.startswith("param.") and isinstance(row[c], str)}


def _seconds(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    return pd.Timestamp(value).timestamp()


def run_times(runs: pd.DataFrame, run_ids: list[str]) -> dict[str, tuple[float | None,
                                                                         float | None]]:
    """``run_id -> (start, end)`` as POSIX seconds (``end`` None while a run runs)."""
    if not len(runs):
        return {}
    rows = runs[runs["run_id"].isin(run_ids)]
    return {row["run_id"]: (_seconds(row.get("start_time")), _seconds(row.get("end_time")))
            for _, row in rows.iterrows()}


@functools.lru_cache(maxsize=64)
def _logged_space(uri: str, parent_run_id: str) -> str | None:
    from mvit_lab.tracking import load_json_artifact

    try:
        tree = load_json_artifact(uri, parent_run_id, SPACE_ARTIFACT)
    except Exception as err:  # an unreadable artifact store: fall back to the params
        log.warning("search space artifact of %s not read: %s", parent_run_id, err)
        return None
    return json.dumps(tree) if isinstance(tree, dict) else None


def search_space(sweep: Sweep, params: dict[str, str]) -> dict[str, Any] | None:
    """The sweep's search space as it ran: the parent run's ``search_space.json``, else the
    inline space in its params; None when neither is there (a space named by a file path)."""
    if sweep.parent_run_id:
        text = _logged_space(sweep.tracking_uri, sweep.parent_run_id)
        if text is not None:
            return json.loads(text)
    tree = unflatten(params, "experiment.search.")
    return tree or None
