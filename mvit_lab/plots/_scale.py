"""Axis and colour-scale ranges the plots share."""

from __future__ import annotations

__all__ = ["flat_range"]


def flat_range(values: list[float]) -> tuple[float, float] | None:
    """A range for values that are all equal: 5% either side, not below 0 for values >= 0
    (plotly would draw ``v - 1 .. v + 1``: negative GFLOPs); None when they differ (plotly's
    autorange is then right)."""
    if not values or min(values) != max(values):
        return None
    v = values[0]
    pad = 0.05 * abs(v) or 1.0
    return (max(v - pad, 0.0) if v >= 0 else v - pad, v + pad)
