"""The order of trials at a successive-halving rung over several objectives.

MOASHA (Salinas et al., ICLR 2021 NAS workshop; Schmucker et al. 2021) ranks the objective
vectors recorded at a rung and continues the top ``1 / reduction_factor``. Two orders:

* ``"nds"`` (default): non-dominated sorting (front 0 first), and inside a front an
  epsilon-net: the point best in the first objective, then repeatedly the point farthest from
  those already chosen (Clarkson 2005). The net spreads the survivors along the front instead
  of keeping a cluster of near-identical trade-offs.
* ``"linear"``: the weighted mean of the objectives (equal weights by default).

Distances and the linear scalarisation use each objective scaled to [0, 1] over the points
being ranked (as costs: 0 is the best seen). Without scaling, an objective in large units
(top-1 in %) would decide every distance against one in small units (GFLOPs); Syne Tune's
epsilon-net uses the raw values. Ties are broken by input order, so an order is deterministic.
Points with NaN in any objective come after every other point, in input order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mvit_lab.search.pareto import _as_costs, _signs, non_dominated_sort

__all__ = ["RANKINGS", "rung_order", "rung_positions"]

RANKINGS = ("nds", "linear")


def _scaled(costs: np.ndarray) -> np.ndarray:
    """Each column scaled to [0, 1] over its finite values (a constant column becomes 0)."""
    low = np.nanmin(costs, axis=0)
    span = np.nanmax(costs, axis=0) - low
    span[~(span > 0)] = 1.0
    return (costs - low) / span


def _epsilon_net(scaled: np.ndarray) -> list[int]:
    """Indices of ``scaled`` (one front) in epsilon-net order: the point best in the first
    objective, then each time the point farthest from all chosen ones (first index on ties)."""
    n = len(scaled)
    first = int(np.lexsort((np.arange(n), scaled[:, 0]))[0])
    order = [first]
    nearest = np.linalg.norm(scaled - scaled[first], axis=1)  # distance to the chosen set
    nearest[first] = -1.0
    for _ in range(n - 1):
        pick = int(np.argmax(nearest))  # argmax returns the first maximum
        order.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(scaled - scaled[pick], axis=1))
        nearest[order] = -1.0
    return order


def rung_order(points: Sequence[Sequence[float]], senses: Sequence[str], *,
               ranking: str = "nds", weights: Sequence[float] | None = None) -> list[int]:
    """Indices of ``points`` ([N, M] objective values), best first."""
    if ranking not in RANKINGS:
        raise ValueError(f"ranking: must be one of {', '.join(RANKINGS)}, got {ranking!r}")
    signs = _signs(senses)
    costs = _as_costs(points, signs)
    m = costs.shape[1]
    valid = np.flatnonzero(~np.isnan(costs).any(axis=1))
    invalid = [int(i) for i in np.flatnonzero(np.isnan(costs).any(axis=1))]
    if not valid.size:
        return invalid
    scaled = _scaled(costs[valid])
    if ranking == "linear":
        w = np.ones(m) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (m,) or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
            raise ValueError(f"weights: must be {m} finite numbers >= 0, not all 0; got "
                             f"{weights!r}")
        score = scaled @ (w / w.sum())
        return [int(valid[i]) for i in np.lexsort((np.arange(len(valid)), score))] + invalid
    if weights is not None:
        raise ValueError("weights: only the linear ranking takes weights")
    ranks = np.asarray(non_dominated_sort(costs[valid], ["min"] * m))
    order: list[int] = []
    for rank in range(int(ranks.max()) + 1):
        members = np.flatnonzero(ranks == rank)
        order += [int(valid[members[i]]) for i in _epsilon_net(scaled[members])]
    return order + invalid


def rung_positions(points: Sequence[Sequence[float]], senses: Sequence[str], *,
                   ranking: str = "nds", weights: Sequence[float] | None = None) -> list[int]:
    """Each point's place in :func:`rung_order` (0 for the best)."""
    order = rung_order(points, senses, ranking=ranking, weights=weights)
    places = [0] * len(order)
    for place, i in enumerate(order):
        places[i] = place
    return places
