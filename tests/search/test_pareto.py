from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mvit_lab.search.pareto import (
    Objective,
    dominates,
    front_ranks,
    front_table,
    hypervolume,
    non_dominated_sort,
    pareto_front,
    parse_objectives,
)

NAN = float("nan")
FAST = settings(max_examples=60, deadline=None)


# ---- brute-force references, written from the definitions and independent of the module ----

def _better_or_equal(x: float, y: float, sense: str) -> bool:
    return x >= y if sense == "max" else x <= y


def _strictly_better(x: float, y: float, sense: str) -> bool:
    return x > y if sense == "max" else x < y


def _ref_dominates(a, b, senses) -> bool:
    if any(math.isnan(v) for v in (*a, *b)):
        return False
    return (all(_better_or_equal(x, y, s) for x, y, s in zip(a, b, senses))
            and any(_strictly_better(x, y, s) for x, y, s in zip(a, b, senses)))


def _ref_ranks(points, senses) -> list[int]:
    """Peel fronts: rank k is every unranked point no other unranked point dominates."""
    ranks = [-1] * len(points)
    left = {i for i, p in enumerate(points) if not any(math.isnan(v) for v in p)}
    rank = 0
    while left:
        front = {i for i in left
                 if not any(_ref_dominates(points[j], points[i], senses) for j in left)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def _grid_volume(points, senses, reference) -> int:
    """Count the unit cells of the integer grid lying inside the dominated region.

    A cell [c, c+1] (per axis) is inside the box between point p and the reference when, per
    axis, p <= c and c + 1 <= r for ``min`` or r <= c and c + 1 <= p for ``max``.
    """
    coords = [v for p in points for v in p if not math.isnan(v)] + list(reference)
    lo, hi = int(min(coords)), int(max(coords))
    count = 0
    for cell in itertools.product(range(lo, hi), repeat=len(senses)):
        for p in points:
            if any(math.isnan(v) for v in p):
                continue
            inside = all(
                (pk <= c and c + 1 <= r) if s == "min" else (r <= c and c + 1 <= pk)
                for pk, c, r, s in zip(p, cell, reference, senses)
            )
            if inside:
                count += 1
                break
    return count


# ---- strategies ----

@st.composite
def problems(draw, min_dims=2, max_dims=4, max_points=25, values=None, nan=True):
    dims = draw(st.integers(min_dims, max_dims))
    senses = draw(st.lists(st.sampled_from(["max", "min"]), min_size=dims, max_size=dims))
    # a few distinct values per axis so ties and duplicate points are common
    value = values if values is not None else st.sampled_from([-2.0, -0.5, 0.0, 1.0, 1.5, 3.0])
    if nan:
        value = st.one_of(value, st.just(NAN)) if draw(st.booleans()) else value
    point = st.lists(value, min_size=dims, max_size=dims)
    points = draw(st.lists(point, max_size=max_points))
    if points and draw(st.booleans()):  # exact duplicates of drawn points
        points += draw(st.lists(st.sampled_from(points), max_size=5))
    return points, senses


# ---- dominance and sorting ----

@FAST
@given(problems())
def test_non_dominated_sort_matches_brute_force(problem):
    points, senses = problem
    assert non_dominated_sort(points, senses) == _ref_ranks(points, senses)


@FAST
@given(problems())
def test_pareto_front_matches_brute_force(problem):
    points, senses = problem
    expected = [i for i, p in enumerate(points)
                if not any(math.isnan(v) for v in p)
                and not any(_ref_dominates(q, p, senses) for q in points)]
    assert pareto_front(points, senses) == expected


@FAST
@given(problems(max_points=8))
def test_dominates_matches_definition(problem):
    points, senses = problem
    for a, b in itertools.product(points, repeat=2):
        assert dominates(a, b, senses) is _ref_dominates(a, b, senses)


@FAST
@given(problems(nan=False), st.data())
def test_flipping_a_sense_and_negating_its_column_keeps_ranks(problem, data):
    points, senses = problem
    axis = data.draw(st.integers(0, len(senses) - 1))
    flipped = list(senses)
    flipped[axis] = "min" if senses[axis] == "max" else "max"
    negated = [[-v if k == axis else v for k, v in enumerate(p)] for p in points]
    assert non_dominated_sort(negated, flipped) == non_dominated_sort(points, senses)


def test_senses_change_the_front():
    points = [(1.0, 5.0), (2.0, 4.0), (3.0, 3.0), (3.0, 5.0)]
    assert pareto_front(points, ["min", "min"]) == [0, 1, 2]
    assert pareto_front(points, ["max", "max"]) == [3]
    assert pareto_front(points, ["max", "min"]) == [2]
    assert pareto_front(points, ["min", "max"]) == [0]
    assert non_dominated_sort(points, ["max", "max"]) == [1, 1, 1, 0]


def test_duplicates_share_a_rank_and_do_not_dominate_each_other():
    points = [(1.0, 1.0), (1.0, 1.0), (2.0, 2.0)]
    assert non_dominated_sort(points, ["min", "min"]) == [0, 0, 1]
    assert not dominates((1.0, 1.0), (1.0, 1.0), ["min", "min"])
    assert dominates((1.0, 1.0), (1.0, 2.0), ["min", "min"])
    assert not dominates((1.0, 2.0), (1.0, 1.0), ["min", "min"])


def test_nan_points_get_rank_minus_one_and_do_not_dominate():
    points = [(0.0, NAN), (1.0, 1.0), (2.0, 2.0), (NAN, NAN)]
    assert non_dominated_sort(points, ["min", "min"]) == [-1, 0, 1, -1]
    assert pareto_front(points, ["min", "min"]) == [1]
    assert not dominates((0.0, NAN), (5.0, 5.0), ["min", "min"])
    assert not dominates((0.0, 0.0), (NAN, 5.0), ["min", "min"])


def test_empty_and_all_nan_inputs():
    assert non_dominated_sort([], ["min"]) == []
    assert pareto_front([], ["min", "max"]) == []
    assert non_dominated_sort([(NAN, 1.0)], ["min", "min"]) == [-1]
    assert hypervolume([], ["min", "min"], (1.0, 1.0)) == 0.0


def test_single_objective_ranks_are_dense_order():
    assert non_dominated_sort([[3.0], [1.0], [2.0], [1.0]], ["min"]) == [2, 0, 1, 0]
    assert non_dominated_sort([[3.0], [1.0], [2.0], [1.0]], ["max"]) == [0, 2, 1, 2]


# ---- hypervolume ----

def test_hypervolume_hand_computed_2d():
    assert hypervolume([(1, 3), (2, 2), (3, 1)], ["min", "min"], (4, 4)) == 6.0
    # the same staircase mirrored into max senses
    assert hypervolume([(-1, -3), (-2, -2), (-3, -1)], ["max", "max"], (-4, -4)) == 6.0
    # mixed senses: maximise x, minimise y; reference (0, 4)
    assert hypervolume([(3, 1), (1, 0)], ["max", "min"], (0, 4)) == 3 * 3 + 1 * 1


def test_hypervolume_hand_computed_3d():
    assert hypervolume([(1, 1, 1)], ["min"] * 3, (2, 3, 4)) == 6.0
    # two 2x2x1 slabs of the 2x2x2 cube that overlap in a 2x1x1 bar
    points = [(0, 0, 1), (0, 1, 0)]
    assert hypervolume(points, ["min"] * 3, (2, 2, 2)) == 2 * 2 * 1 + 2 * 1 * 2 - 2 * 1 * 1


def test_hypervolume_ignores_points_not_strictly_better_than_reference():
    senses = ["min", "min"]
    base = hypervolume([(1, 1)], senses, (3, 3))
    assert base == 4.0
    assert hypervolume([(1, 1), (0, 3), (3, 0), (5, -1), (NAN, 0)], senses, (3, 3)) == base
    assert hypervolume([(3, 3)], senses, (3, 3)) == 0.0


def test_hypervolume_infinite_point_gives_infinite_volume():
    assert hypervolume([(-math.inf, 1.0)], ["min", "min"], (2.0, 2.0)) == math.inf
    assert hypervolume([(math.inf, 1.0)], ["min", "min"], (2.0, 2.0)) == 0.0


@FAST
@given(problems(min_dims=1, max_dims=4, max_points=8,
                values=st.integers(0, 4).map(float)), st.data())
def test_hypervolume_equals_grid_cell_count(problem, data):
    points, senses = problem
    reference = data.draw(st.lists(st.integers(0, 4).map(float),
                                   min_size=len(senses), max_size=len(senses)))
    assert hypervolume(points, senses, reference) == _grid_volume(points, senses, reference)


@FAST
@given(problems(min_dims=2, max_dims=4, max_points=12, nan=False), st.data())
def test_hypervolume_depends_only_on_the_front(problem, data):
    points, senses = problem
    reference = [5.0 if s == "min" else -5.0 for s in senses]
    order = data.draw(st.permutations(range(len(points))))
    front = [points[i] for i in pareto_front(points, senses)]
    volume = hypervolume(points, senses, reference)
    assert hypervolume([points[i] for i in order], senses, reference) == pytest.approx(volume)
    assert hypervolume(front, senses, reference) == pytest.approx(volume)


def test_hypervolume_3d_on_a_few_hundred_points():
    # speed is a benchmark concern, not asserted here; this checks values at sweep scale
    rng = np.random.default_rng(0)
    simplex = rng.random((300, 3))
    simplex /= simplex.sum(axis=1, keepdims=True)  # every point on the front
    assert len(pareto_front(simplex, ["min"] * 3)) == 300
    volume = hypervolume(simplex, ["min"] * 3, (1.0, 1.0, 1.0))
    cloud = hypervolume(rng.random((400, 3)), ["max"] * 3, (0.0, 0.0, 0.0))
    # the region above the simplex x + y + z = 1 inside the unit cube has volume 5/6
    assert 0.7 < volume < 5 / 6
    assert 0.8 < cloud < 1.0


# ---- objectives and validation ----

def test_parse_objectives_accepts_mapping_strings_and_objectives():
    expected = (Objective("val_top1", "max"), Objective("gflops", "min"))
    assert parse_objectives({"val_top1": "max", "gflops": "min"}) == expected
    assert parse_objectives(["val_top1:max", "gflops:min"]) == expected
    assert parse_objectives([Objective("val_top1", "max"), "gflops:min"]) == expected
    assert parse_objectives(["eval:top1:max"]) == (Objective("eval:top1", "max"),)


@pytest.mark.parametrize(("spec", "match"), [
    ({}, r"spec: needs at least one"),
    ([], r"spec: needs at least one"),
    ("val_top1:max", r"spec: must be a mapping"),
    (["val_top1"], r"spec\[0\]: must look like 'name:max'"),
    (["val_top1:max", "gflops:smallest"], r"spec\[1\]: sense: must be 'max' or 'min'"),
    ({"gflops": "minimize"}, r"spec\['gflops'\]: sense"),
    ([":max"], r"spec\[0\]: name: must be a non-empty string"),
    (["a:max", "a:min"], r"spec\[1\]: duplicate objective name 'a'"),
    ([3], r"spec\[0\]: must be a 'name:sense' string"),
])
def test_parse_objectives_rejects(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_objectives(spec)


def test_objective_validates_sense_and_name():
    with pytest.raises(ValueError, match=r"^sense: must be 'max' or 'min', got 'up'"):
        Objective("acc", "up")
    with pytest.raises(ValueError, match=r"^name:"):
        Objective("", "max")
    with pytest.raises(AttributeError):
        Objective("acc", "max").sense = "min"  # type: ignore[misc]


@pytest.mark.parametrize(("call", "match"), [
    (lambda: non_dominated_sort([(1.0, 2.0)], ["min", "low"]), r"senses\[1\]: must be 'max'"),
    (lambda: non_dominated_sort([(1.0, 2.0)], "min"), r"senses: must be a sequence"),
    (lambda: non_dominated_sort([(1.0, 2.0)], []), r"senses: needs at least one"),
    (lambda: non_dominated_sort([(1.0, 2.0, 3.0)], ["min", "min"]), r"points: must have shape"),
    (lambda: pareto_front([(1.0, 2.0), (1.0,)], ["min", "min"]), r"points:"),
    (lambda: dominates((1.0, 2.0), (1.0,), ["min", "min"]), r"b: must have 2 values"),
    (lambda: hypervolume([(1.0, 2.0)], ["min", "min"], (3.0,)), r"reference: must have 2"),
    (lambda: hypervolume([(1.0, 2.0)], ["min", "min"], (3.0, NAN)), r"reference: must be finite"),
])
def test_validation_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- records ----

OBJECTIVES = {"val_top1": "max", "gflops": "min"}


def _records():
    return [
        {"name": "a", "val_top1": 80.0, "gflops": 4.0, "status": "finished"},
        {"name": "b", "val_top1": 82.0, "gflops": 6.0, "status": "finished"},
        {"name": "c", "val_top1": 79.0, "gflops": 5.0, "status": "finished"},  # dominated by a
        {"name": "failed", "val_top1": 99.0, "gflops": 1.0, "status": "failed"},
        {"name": "pruned", "val_top1": 99.0, "gflops": 1.0, "status": "pruned"},
        {"name": "running", "val_top1": 99.0, "gflops": 1.0, "status": "running"},
        {"name": "truncated", "val_top1": 99.0, "gflops": 1.0, "status": "finished",
         "truncated": True},
        {"name": "no_gflops", "val_top1": 99.0, "status": "finished"},
        {"name": "none_top1", "val_top1": None, "gflops": 1.0, "status": "finished"},
        {"name": "nan_top1", "val_top1": NAN, "gflops": 1.0, "status": "finished"},
        {"name": "no_status", "val_top1": 81.0, "gflops": 5.0, "truncated": False},
        {"name": "d", "val_top1": 70.0, "gflops": 8.0, "status": "finished"},  # rank 2
    ]


def test_front_ranks_exclude_ineligible_records():
    ranks = front_ranks(_records(), OBJECTIVES)
    by_name = {r["name"]: rank for r, rank in zip(_records(), ranks)}
    assert by_name == {
        "a": 0, "b": 0, "c": 1, "failed": None, "pruned": None, "running": None,
        "truncated": None, "no_gflops": None, "none_top1": None, "nan_top1": None,
        "no_status": 0, "d": 2,
    }


def test_front_table_sorts_by_first_objective_best_first_and_copies():
    records = _records()
    table = front_table(records, OBJECTIVES)
    assert [(r["name"], r["rank"]) for r in table] == [("b", 0), ("no_status", 0), ("a", 0)]
    assert table[0] == {**records[1], "rank": 0}
    assert all("rank" not in r for r in records)
    # min-first objective sorts ascending
    table = front_table(records, ["gflops:min", "val_top1:max"])
    assert [r["name"] for r in table] == ["a", "no_status", "b"]


def test_front_table_max_rank_includes_later_fronts():
    table = front_table(_records(), OBJECTIVES, max_rank=2)
    assert [(r["name"], r["rank"]) for r in table] == [
        ("b", 0), ("no_status", 0), ("a", 0), ("c", 1), ("d", 2)]


def test_front_table_custom_keys():
    records = [
        {"acc": 1.0, "state": "done", "cut": False},
        {"acc": 2.0, "state": "finished", "cut": True},
        {"acc": 0.5, "state": "finished"},
    ]
    table = front_table(records, ["acc:max"], status_key="state", truncated_key="cut")
    assert [r["acc"] for r in table] == [0.5]
    assert front_ranks(records, ["acc:max"], status_key="state", truncated_key="cut") == [
        None, None, 0]


def test_front_table_ineligible_records_do_not_dominate():
    records = [
        {"acc": 90.0, "status": "failed"},
        {"acc": 50.0, "status": "finished"},
    ]
    assert [r["acc"] for r in front_table(records, {"acc": "max"})] == [50.0]
    assert front_table([], {"acc": "max"}) == []


def test_front_table_validation():
    with pytest.raises(ValueError, match=r"records\[0\]\['acc'\]: must be a number"):
        front_ranks([{"acc": "high"}], ["acc:max"])
    with pytest.raises(ValueError, match=r"records\[1\]: must be a dict"):
        front_ranks([{"acc": 1.0}, 3], ["acc:max"])
    with pytest.raises(ValueError, match=r"max_rank: must be an integer >= 0"):
        front_table([{"acc": 1.0}], ["acc:max"], max_rank=-1)
    with pytest.raises(ValueError, match=r"spec\[0\]"):
        front_table([{"acc": 1.0}], ["acc"])


# ---- issue 17: the sort at thousands of trials (blocks, the 2-D sweep, the cache) ----

def _tied_cloud(n: int, dims: int, seed: int, values=(-np.inf, -1.0, 0.0, 0.5, 2.0, np.inf)):
    """``n`` points drawn from a few values (ties, duplicates and infinities everywhere)."""
    return np.random.default_rng(seed).choice(values, size=(n, dims)).tolist()


@pytest.mark.parametrize("dims", [2, 3])
def test_the_dominance_matrix_built_in_many_small_blocks_matches_brute_force(monkeypatch,
                                                                             dims):
    import mvit_lab.search.pareto as pareto

    points = _tied_cloud(70, dims, seed=dims)
    senses = ["max", "min", "max"][:dims]
    expected = _ref_ranks(points, senses)
    assert non_dominated_sort(points, senses) == expected
    monkeypatch.setattr(pareto, "_BLOCK_ELEMENTS", 3 * 70)  # 3 rows a block, 24 blocks
    assert non_dominated_sort(points, senses) == expected
    assert len(set(expected)) > 3  # several fronts were peeled


@pytest.mark.parametrize("seed", range(4))
def test_the_two_objective_front_by_sorting_matches_brute_force(seed):
    points = [*_tied_cloud(150, 2, seed), [NAN, 1.0], [0.0, NAN]]
    for senses in (["max", "min"], ["min", "min"], ["max", "max"]):
        expected = [i for i, p in enumerate(points)
                    if not any(math.isnan(v) for v in p)
                    and not any(_ref_dominates(q, p, senses) for q in points)]
        assert pareto_front(points, senses) == expected
    assert pareto_front([], ["max", "min"]) == []
    assert pareto_front([[NAN, 1.0]], ["max", "min"]) == []


def test_front_ranks_remembered_equal_a_fresh_sort_and_follow_a_changed_record(monkeypatch):
    from collections import OrderedDict

    import mvit_lab.search.pareto as pareto

    records = [dict(acc=float(a), cost=float(c), status="finished")
               for a, (c,) in zip(range(40), _tied_cloud(40, 1, seed=7, values=(1, 2, 3)))]
    records[5]["status"] = "running"
    monkeypatch.setattr(pareto, "_SORTS", OrderedDict())  # nothing remembered from before
    sorts = []
    real = pareto.non_dominated_sort
    monkeypatch.setattr(pareto, "non_dominated_sort",
                        lambda *a: sorts.append(1) or real(*a))

    def fresh(recs):  # the definition, record by record
        ok = [i for i, r in enumerate(recs) if r["status"] == "finished"]
        ranks = _ref_ranks([[recs[i]["acc"], recs[i]["cost"]] for i in ok], ["max", "min"])
        out = [None] * len(recs)
        for i, rank in zip(ok, ranks):
            out[i] = rank
        return out

    first = front_ranks(records, ["acc:max", "cost:min"])
    assert first == fresh(records) and len(sorts) == 1
    first[0] = 99  # the caller's list is its own
    assert front_ranks(records, ["acc:max", "cost:min"]) == fresh(records)
    assert len(sorts) == 1  # the same input: remembered
    # a running trial's metrics move: the eligible points did not, nothing is sorted again
    records[5]["acc"] = 1000.0
    assert front_ranks(records, ["acc:max", "cost:min"]) == fresh(records) and len(sorts) == 1
    # a finished trial's metric changes, or the trial ends: sorted again, and right
    records[3]["acc"] = 1000.0
    assert front_ranks(records, ["acc:max", "cost:min"]) == fresh(records) and len(sorts) == 2
    records[5]["status"] = "finished"
    assert front_ranks(records, ["acc:max", "cost:min"]) == fresh(records) and len(sorts) == 3
    # the senses are part of what is remembered
    flipped = front_ranks(records, ["acc:min", "cost:min"])
    assert flipped != front_ranks(records, ["acc:max", "cost:min"]) and len(sorts) == 4
