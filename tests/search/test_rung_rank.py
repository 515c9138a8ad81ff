"""The rung order against a brute-force reading of its definition: fronts peeled from
dominance, then inside each front the epsilon-net (best first objective first, then always the
point farthest from those chosen), on objectives scaled to [0, 1]; NaN points last."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mvit_lab.search.rung_rank import rung_order, rung_positions

NAN = float("nan")


def _dominates(a, b) -> bool:  # costs: smaller is better
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _scaled_costs(points, senses):
    costs = [[(-v if s == "max" else v) for v, s in zip(p, senses)] for p in points]
    finite = [c for c in costs if not any(math.isnan(v) for v in c)]
    lows = [min(c[j] for c in finite) for j in range(len(senses))]
    highs = [max(c[j] for c in finite) for j in range(len(senses))]
    spans = [(h - lo) if h > lo else 1.0 for lo, h in zip(lows, highs)]
    return [[(v - lo) / sp for v, lo, sp in zip(c, lows, spans)] for c in costs]


def _brute_order(points, senses):
    scaled = _scaled_costs(points, senses)
    left = [i for i, c in enumerate(scaled) if not any(math.isnan(v) for v in c)]
    order = []
    while left:
        front = [i for i in left if not any(_dominates(scaled[j], scaled[i]) for j in left)]
        first = min(front, key=lambda i: (scaled[i][0], i))
        chosen, rest = [first], [i for i in front if i != first]
        while rest:
            far = max(rest, key=lambda i: (min(math.dist(scaled[i], scaled[c]) for c in chosen),
                                           -i))
            chosen.append(far)
            rest.remove(far)
        order += chosen
        left = [i for i in left if i not in front]
    return order + [i for i, c in enumerate(scaled) if any(math.isnan(v) for v in c)]


def _fronts(scaled, rows):
    rank, left, out = 0, list(rows), {}
    while left:
        front = [i for i in left if not any(_dominates(scaled[j], scaled[i]) for j in left)]
        out.update({i: rank for i in front})
        left = [i for i in left if i not in front]
        rank += 1
    return out


def _check_definition(points, senses, order):
    """The order's defining properties, exact on ties (no tie-break rounding involved)."""
    scaled = _scaled_costs(points, senses)
    nan = [any(math.isnan(v) for v in c) for c in scaled]
    assert sorted(order) == list(range(len(points)))
    n_ok = len(points) - sum(nan)
    assert [i for i in order[n_ok:]] == [i for i in range(len(points)) if nan[i]]
    rank = _fronts(scaled, [i for i in range(len(points)) if not nan[i]])
    ranks = [rank[i] for i in order[:n_ok]]
    assert ranks == sorted(ranks)  # whole fronts, best first
    for r in set(ranks):
        segment = [i for i in order[:n_ok] if rank[i] == r]
        assert scaled[segment[0]][0] == min(scaled[i][0] for i in segment)
        for k in range(1, len(segment)):
            gap = [min(math.dist(scaled[j], scaled[c]) for c in segment[:k])
                   for j in segment[k:]]
            assert gap[0] >= max(gap) - 1e-9  # the farthest from those already chosen


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(8))
def test_order_matches_brute_force_on_random_points(m, seed):
    rng = np.random.default_rng(seed * 10 + m)
    n = int(rng.integers(1, 30))
    points = rng.normal(size=(n, m)).tolist()
    senses = [str(s) for s in rng.choice(["max", "min"], size=m)]
    if seed % 3 == 0 and n > 2:  # NaN rows go last, in input order
        for i in rng.choice(n, size=max(1, n // 5), replace=False):
            points[int(i)][int(rng.integers(m))] = NAN
    assert rung_order(points, senses) == _brute_order(points, senses)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(8))
def test_order_keeps_its_definition_with_ties(m, seed):
    # small integers: duplicates and equal distances everywhere
    rng = np.random.default_rng(1000 + seed * 10 + m)
    n = int(rng.integers(2, 25))
    points = rng.integers(0, 3, size=(n, m)).astype(float).tolist()
    if seed % 2:
        points[int(rng.integers(n))][0] = NAN
    senses = [str(s) for s in rng.choice(["max", "min"], size=m)]
    _check_definition(points, senses, rung_order(points, senses))


def test_duplicates_share_a_front_and_the_copy_comes_last():
    points = [[1.0, 5.0], [1.0, 5.0], [5.0, 1.0], [3.0, 3.0]]
    # all four are non-dominated (max, max); the net takes the extremes before the copy
    assert rung_order(points, ["max", "max"]) == [2, 0, 3, 1]
    assert rung_positions(points, ["max", "max"]) == [1, 3, 0, 2]


def test_scaling_keeps_a_large_unit_from_deciding_the_net():
    # top-1 in % and GFLOPs in thousandths: without scaling the net would follow top-1 only
    points = [[99.0, 0.010], [50.0, 0.001], [98.0, 0.001001], [60.0, 0.0095]]
    order = rung_order(points, ["max", "min"])
    assert order[:2] == [0, 1]  # the best top-1, then the far end of the front


def test_linear_ranking_and_its_weights():
    points = [[90.0, 0.004], [80.0, 0.001], [95.0, 0.005], [NAN, 0.0]]
    assert rung_order(points, ["max", "min"], ranking="linear", weights=[1, 0]) == [2, 0, 1, 3]
    assert rung_order(points, ["max", "min"], ranking="linear", weights=[0, 1]) == [1, 0, 2, 3]
    with pytest.raises(ValueError, match="weights: must be 2 finite numbers"):
        rung_order(points, ["max", "min"], ranking="linear", weights=[1])
    with pytest.raises(ValueError, match="weights: only the linear ranking"):
        rung_order(points, ["max", "min"], weights=[1, 1])
    with pytest.raises(ValueError, match="ranking: must be one of nds, linear"):
        rung_order(points, ["max", "min"], ranking="crowding")


def test_edge_cases():
    assert rung_order([], ["max"]) == []
    assert rung_order([[NAN], [NAN]], ["max"]) == [0, 1]
    assert rung_order([[2.0], [3.0], [1.0]], ["max"]) == [1, 0, 2]
    assert rung_order([[2.0], [3.0], [1.0]], ["min"]) == [2, 0, 1]
