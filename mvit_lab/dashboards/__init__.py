"""Pareto dashboards: a live Dash app over MLflow, and a static HTML export.

Data first (``data``: the store as plain records; ``views``, ``tables``, ``run``: what each
view shows), then rendering (:mod:`mvit_lab.plots` figures, ``layout`` pages, ``export`` HTML).
``app`` wires the pages to the store; ``mvit-lab dashboard`` serves it.
"""

from __future__ import annotations

from typing import Any

from mvit_lab.dashboards.data import DataError, StoreReader, Sweep, load_sweep, overview
from mvit_lab.dashboards.export import build_report, export_report, log_sweep_report

__all__ = ["DataError", "StoreReader", "Sweep", "build_report", "create_app", "export_report",
           "load_sweep", "log_sweep_report", "overview"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """:func:`mvit_lab.dashboards.app.create_app` (imported on use: Dash loads only here)."""
    from mvit_lab.dashboards.app import create_app as _create_app

    return _create_app(*args, **kwargs)
