from __future__ import annotations

import numpy as np
import pytest

from mvit_lab.search.edf import (
    bootstrap_compare,
    complexity_bins,
    complexity_weights,
    edf,
    edf_area,
    edf_at,
    good_levels,
    good_range,
    ks_statistic,
)


def test_edf_by_hand():
    x, y = edf([3.0, 1.0, 2.0])
    assert x.tolist() == [1, 2, 3]
    assert y == pytest.approx([1 / 3, 2 / 3, 1])
    x, y = edf([1.0, 1.0, 2.0])  # ties: one step of 2/3
    assert x.tolist() == [1, 2] and y == pytest.approx([2 / 3, 1])
    x, y = edf([1.0, 2.0], weights=[3, 1])
    assert y == pytest.approx([0.75, 1])
    assert edf_at([1, 2, 3], [0.5, 1, 2.5, 9]) == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_complexity_weights_by_hand():
    # two log bins [1, 2) and [2, 4]; the reference puts half its mass in each
    edges = complexity_bins([1, 4], 2)
    assert edges == pytest.approx([1, 2, 4])
    w, coverage = complexity_weights([1, 1, 1, 4], [1, 4], edges)
    assert w == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2]) and coverage == 1.0
    # a population that never reaches the upper bin keeps half the reference's mass
    w, coverage = complexity_weights([1, 1.5], [1, 4], edges)
    assert w == pytest.approx([0.5, 0.5]) and coverage == 0.5


def test_normalised_edf_by_hand():
    # the three cheap models share the cheap bin's half; the one costly model gets the other
    w, _ = complexity_weights([1, 1, 1, 4], [1, 4], complexity_bins([1, 4], 2))
    _, y = edf([10, 20, 30, 40], w)
    assert y == pytest.approx([1 / 6, 2 / 6, 3 / 6, 1])
    assert edf_at([10, 20, 30, 40], [30], w) == pytest.approx([0.5])


def test_ks_and_area_by_hand():
    assert ks_statistic([1, 2, 3], [2, 3, 4]) == pytest.approx(1 / 3)
    assert ks_statistic([1, 2], [3, 4]) == 1.0
    assert ks_statistic([1, 2], [1, 2]) == 0.0
    assert ks_statistic([1, 2], [1, 2], [1, 0], [0, 1]) == 1.0  # weights move the EDFs
    assert edf_area([0, 10], 0, 10) == pytest.approx(0.5)
    assert edf_area([5], 0, 10) == pytest.approx(0.5)
    assert edf_area([0, 10], 0, 10, [3, 1]) == pytest.approx(0.75)
    assert edf_area([-5, 20], 0, 10) == pytest.approx(0.5)  # clipped to the range


def test_bootstrap_resolves_a_planted_shift_and_not_a_null():
    rng = np.random.default_rng(1)
    a, b = rng.normal(50, 5, 40), rng.normal(40, 5, 40)
    c = bootstrap_compare(a, b, lo=20, hi=70, n=300)
    assert c.area_diff > 0 and c.area_low > 0  # b has lower errors: better, resolved
    assert c.ks_low > 0.3
    same = bootstrap_compare(a, a.copy(), lo=20, hi=70, n=300)
    assert same.ks == 0 and same.area_low < 0 < same.area_high


def test_bootstrap_normalises_away_a_complexity_confound():
    # within each complexity level the spaces are equal; b just has more costly (better)
    # models. Raw EDFs differ; normalised to the pooled complexity they agree.
    rng = np.random.default_rng(0)
    ca = np.r_[np.full(60, 1.0), np.full(20, 4.0)]
    cb = np.r_[np.full(20, 1.0), np.full(60, 4.0)]
    a = np.where(ca > 2, 30.0, 60.0) + rng.normal(0, 2, 80)
    b = np.where(cb > 2, 30.0, 60.0) + rng.normal(0, 2, 80)
    raw = bootstrap_compare(a, b, lo=20, hi=70, n=200)
    norm = bootstrap_compare(a, b, ca=ca, cb=cb, reference=np.r_[ca, cb], bins=2, lo=20,
                             hi=70, n=200)
    assert raw.area_low > 0.1
    assert abs(norm.area_diff) < 0.05 and norm.area_low < 0 < norm.area_high


def test_good_range_finds_a_planted_best_range():
    rng = np.random.default_rng(0)
    values = rng.integers(1, 11, 400).astype(float)  # a knob 1..10; best models at 6..8
    errors = np.abs(values - 7) * 10 + rng.normal(0, 3, 400)
    g = good_range(errors, values, seed=0)
    assert g.median == 7 and 6 <= g.low <= 7 <= g.high <= 8
    # the range follows the plant
    moved = good_range(np.abs(values - 3) * 10 + rng.normal(0, 3, 400), values, seed=0)
    assert moved.median == 3 and 2 <= moved.low <= 3 <= moved.high <= 4


def test_good_levels_finds_a_planted_best_level():
    rng = np.random.default_rng(0)
    levels = [["conv", "max", "avg"][i] for i in rng.integers(0, 3, 300)]
    errors = [10 + rng.normal(0, 1) if lv == "max" else 20 + rng.normal(0, 1) for lv in levels]
    shares = good_levels(errors, levels, n=500)
    assert shares["max"] > 0.99 and sum(shares.values()) == pytest.approx(1)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(ValueError, match="errors: an EDF needs"):
        edf([])
    with pytest.raises(ValueError, match="weights: need 2"):
        edf([1, 2], [1, -1])
    with pytest.raises(ValueError, match="complexity: needs positive"):
        complexity_bins([0, 1], 2)
    with pytest.raises(ValueError, match="hi 1 must be above lo 1"):
        edf_area([1], 1, 1)
