"""Figures of sweeps: plain data first (``_get_*_info``), then plotly (``_render_*``)."""

from mvit_lab.plots.pareto import plot_front

__all__ = ["plot_front"]
