"""The replay table and backend: loading (and its errors), per-epoch answers, and whole
simulated sweeps that are deterministic for a seed and that MOASHA makes cheaper."""

from __future__ import annotations

import csv
import itertools
import json

import optuna
import pytest

from mvit_lab.search.moasha import MOASHAConfig, MOASHAScheduler
from mvit_lab.search.pareto import parse_objectives
from mvit_lab.search.replay import load_replay_table, replay_trial, simulate

OBJ = parse_objectives({"val_top1": "max", "gflops": "min"})


def _table(folder, epochs=9):
    """A synthetic table: 2 x 2 x 4 points; wider and deeper learn faster and cost more."""
    folder.mkdir(parents=True, exist_ok=True)
    points = list(itertools.product(["conv", "max"], [[1, 1, 1], [2, 2, 1]], [8, 16, 24, 32]))
    with open(folder / "points.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["point_id", "pool_mode", "depths", "embed_dim", "gflops", "params",
                    "throughput", "cost_spread", "cost_isolated"])
        for i, (pool, depths, dim) in enumerate(points):
            gflops = dim * sum(depths) / 1000
            w.writerow([i, json.dumps(pool), json.dumps(depths), dim, gflops, dim * 100,
                        1000 / gflops, "0.01", "true"])
    with open(folder / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["point_id", "epoch", "val_top1", "val_loss", "epoch_seconds"])
        for i, (pool, depths, dim) in enumerate(points):
            final = 50 + dim + 3 * sum(depths) + (4 if pool == "max" else 0)
            for e in range(1, epochs + 1):
                top1 = final * (1 - 0.5 ** e) + (i % 3)  # noise that fades with the epochs
                w.writerow([i, e, f"{top1:.2f}", f"{1 / e:.3f}", f"{0.5 + dim / 32:.2f}"])
    return folder


def test_load_and_answer(tmp_path):
    table = load_replay_table(_table(tmp_path / "t"))
    assert table.knobs == ("pool_mode", "depths", "embed_dim")
    assert len(table.points) == 16 and table.epochs == 9
    assert table.choices()["depths"] == [[1, 1, 1], [2, 2, 1]]
    i = table.index({"pool_mode": "max", "depths": [2, 2, 1], "embed_dim": 16})
    reports = list(replay_trial(table, {"pool_mode": "max", "depths": [2, 2, 1],
                                        "embed_dim": 16}))
    assert [r["epoch"] for r in reports] == [*range(1, 10), 9]
    assert [r["status"] for r in reports][-2:] == ["running", "finished"]
    assert reports[0]["gflops"] == pytest.approx(0.08)  # costs from the first report on
    assert reports[2]["val_top1"] == pytest.approx(float(table.curves[i, 2, 0]))
    assert list(replay_trial(table, table.points[i])) == reports  # deterministic
    with pytest.raises(ValueError, match="model.mlp_ratio: not a knob of this replay table"):
        table.index({"mlp_ratio": 4})
    with pytest.raises(ValueError, match="is not a point of this replay table"):
        table.index({"pool_mode": "avg", "depths": [1, 1, 1], "embed_dim": 8})
    with pytest.raises(ValueError, match=r"epoch: must be in 1..9, got 10"):
        table.result(0, 10)


def test_bad_tables_name_the_file_and_line(tmp_path):
    with pytest.raises(ValueError, match="no points.csv"):
        load_replay_table(tmp_path)
    folder = _table(tmp_path / "t")
    rows = (folder / "curves.csv").read_text().splitlines()
    (folder / "curves.csv").write_text("\n".join(r for r in rows if not r.startswith("3,4,")))
    with pytest.raises(ValueError, match="point 3 has no row for epoch 4"):
        load_replay_table(folder)
    (folder / "curves.csv").write_text("\n".join([rows[0], "x" + rows[1][1:]]))
    with pytest.raises(ValueError, match=r"curves.csv line 2 point_id: not a number: 'x'"):
        load_replay_table(folder)


def _run(table, seed, scheduler):
    return simulate(table, OBJ, optuna.samplers.RandomSampler(seed=seed), scheduler=scheduler,
                    workers=3, budget=200, reference=[0.0, 1.0])


def test_simulated_sweeps_are_deterministic_and_moasha_stops_trials(tmp_path):
    table = load_replay_table(_table(tmp_path / "t"))

    def moasha():
        return MOASHAScheduler(MOASHAConfig(max_t=9), OBJ)

    a, b = _run(table, 0, moasha()), _run(table, 0, moasha())
    assert (a.consumed, a.hypervolume, a.stopped_at) == (b.consumed, b.hypervolume,
                                                         b.stopped_at)
    assert a.stopped > 0 and set(a.stopped_at) <= {1, 3}
    plain = _run(table, 0, None)
    assert plain.stopped == 0
    # every point finished or stopped once: twins cost nothing, the budget is what was trained
    assert a.finished + a.stopped == plain.finished == 16
    assert a.consumed[-1] == 9 * a.finished + sum(e * n for e, n in a.stopped_at.items())
    assert plain.consumed[-1] == 16 * 9
    assert a.hypervolume[-1] <= plain.hypervolume[-1]
    assert a.at(0) == 0.0 and plain.at(1e9) == plain.hypervolume[-1]
