"""The ``replay`` section of a sweep: checked against the table before anything runs (one-line
errors naming the field), and a trial that answers from the table, epoch by epoch, through
the real trial code (MLflow run, reports, stops, resume), without counting, measuring or
training anything."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from mvit_lab.configfile import safe_load
from mvit_lab.experiment import TrainConfig, experiment_from_dict, load_experiment
from mvit_lab.search.replay import load_replay_table
from mvit_lab.search.replay_backend import ReplayedTrial, point_knobs
from mvit_lab.search.space import parse_space
from mvit_lab.search.sweep import parse_sweep
from mvit_lab.search.trial import OUTCOME, EarlyStopped, TrialSpec, run_trial, trial_id
from mvit_lab.tracking import Tracker, ensure_experiment, metric_history, runs_dataframe

ROOT = Path(__file__).parents[2]
TABLE = (ROOT / "benchmarks" / "replay" / "digits_small").resolve()
SPACE = safe_load((ROOT / "search_spaces" / "replay_digits.yaml").read_text())
OBJ = {"val_top1": "max", "gflops": "min", "throughput": "max"}
DATA = dict(dataset="digits", train_fraction=0.25)


def _tree(**changes):
    tree = dict(name="replay", data=dict(DATA), model=dict(preset="mvitv2_t"),
                train=dict(epochs=9, batch_size=64, threads=1), search=copy.deepcopy(SPACE),
                objectives=dict(OBJ), algorithm="grid", budget=dict(seeds=[0]),
                replay=dict(table=str(TABLE)))
    tree.update(changes)
    return tree


def _parse(tree):
    return parse_sweep(experiment_from_dict(tree))


def _space(**grid):
    space = copy.deepcopy(SPACE)
    space["grid"].update(grid)
    return space


def _without(key):
    space = copy.deepcopy(SPACE)
    del space["grid"][key]
    return space


def test_the_shipped_replay_experiment_checks_and_resolves_the_table():
    exp = load_experiment(ROOT / "experiments" / "replay_digits_moasha.yaml")
    sweep = parse_sweep(exp)
    assert sweep.replay == dict(table=str(TABLE), time_scale=0.0)  # relative to the file
    assert sweep.total == 16 and sweep.scheduler == "moasha"


def test_a_params_space_of_the_tables_choices_and_a_ladder_are_accepted():
    params = dict(base=dict(SPACE["base"], pool_kernel="stride"), params={
        "pool_mode": {"choice": ["conv", "max"]}, "rel_pos": {"choice": ["spatial", "none"]},
        "abs_pos": {"choice": ["none", "joint"]}, "embed_dim": {"choice": [16, 32]}})
    assert _parse(_tree(search=params, algorithm="random")).replay["table"] == str(TABLE)
    steps = [dict(name="a", set=dict(pool_mode="conv", pool_kernel="stride", rel_pos="none",
                                     abs_pos="none", depths=[1, 1, 1], embed_dim=16)),
             dict(name="b", set=dict(rel_pos="spatial"))]
    ladder = dict(base=SPACE["base"], ladder=steps)
    assert _parse(_tree(search=ladder, algorithm="ladder")).total == 2


@pytest.mark.parametrize("changes, message", [
    (dict(replay=dict(table="/nonexistent/replay")),
     "replay.table: no such folder /nonexistent/replay"),
    (dict(replay={}), r"replay.table: missing \(the folder of a replay table"),
    (dict(replay=None), "replay: needs table:"),
    (dict(replay=dict(table=str(TABLE), speed=2)), r"replay.speed: unknown key \(known: "
                                                   "table, time_scale\\)"),
    (dict(replay=dict(table=str(TABLE), time_scale=-1)),
     "replay.time_scale: must be a number >= 0"),
    (dict(search=_space(embed_dim=[16, 48])),
     r"replay.table: the search space's point pool_mode=conv,pool_kernel=stride,rel_pos="
     r"spatial,abs_pos=none,depths=1x1x1,embed_dim=48 \(.*\) is not in .*digits_small"),
    (dict(search=_space(mlp_ratio=[2.0])),
     "search: .* sets mlp_ratio, which is not a knob of the replay table"),
    (dict(search=_without("abs_pos")),
     "search.base.abs_pos: a knob of the replay table that .* does not set"),
    (dict(train=dict(epochs=12, batch_size=64)),
     "train.epochs: 12 is more than the 9 epochs recorded in .*digits_small"),
    (dict(objectives=dict(val_top1="max", train_throughput="max")),
     "objectives.train_throughput: the replay table .* has no such column"),
    (dict(budget=dict(seeds=[0, 1])),
     r"budget.seeds: the replay table holds one run per point \(seed 0\); give one seed"),
    (dict(search=dict(base=SPACE["base"], params={"mlp_ratio": {"float": [2.0, 4.0]}}),
          algorithm="tpe"), "search.params.mlp_ratio: a replay sweep can only draw"),
    (dict(search=dict(SPACE, base=dict(SPACE["base"], mlp_ratio=2.0))),
     "replay.table: .* has [0-9,]+ parameters here but [0-9,]+ in .*: the experiment's model "
     "or search.base differs"),
    (dict(resources=dict(workers=2)), "resources.workers: a replay trial trains nothing"),
])
def test_bad_replay_sections_fail_in_one_line_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message) as err:
        _parse(_tree(**changes))
    assert "\n" not in str(err.value)


def test_measure_is_reported_unused():
    sweep = _parse(_tree(measure=dict(batch=8)))
    assert any(w.startswith("measure: not used by a replay sweep") for w in sweep.warnings)


# --- the trial -------------------------------------------------------------------------------
def _points():
    return parse_space(SPACE).points()


@pytest.fixture(scope="module")
def table():
    return load_replay_table(TABLE)


def _column(table, name, index):
    return [float(v) for v in table.curves[index, :, table.metrics.index(name)]]


def test_table_rows_follow_the_spaces_points(table):
    space = parse_space(SPACE)
    for i, point in enumerate(space.points()):
        assert table.index(point_knobs(point, space, table.knobs)) == i


def test_eval_every_and_time_scale(table, tmp_path, monkeypatch):
    import time

    point = _points()[5]
    trial = ReplayedTrial(dict(table=str(TABLE), time_scale=0.01), point, parse_space(SPACE))
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    reports = []
    cfg = dataclasses.replace(TrainConfig(), epochs=5, eval_every=2)
    result = trial.train(tmp_path, cfg, reports.append)
    # validation only where a real trial evaluates: every 2nd epoch and the last
    assert [("val_top1" in r) for r in reports] == [False, True, False, True, True]
    assert all("train_loss" in r for r in reports)
    seconds = _column(table, "epoch_seconds", 5)[:5]
    assert slept == pytest.approx([0.01 * s for s in seconds])
    assert result.final["val_top1"] == _column(table, "val_top1", 5)[4]
    assert result.final["recorded_train_seconds"] == pytest.approx(sum(seconds))


def _spec(tmp_path, point, epochs=9) -> TrialSpec:
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    ensure_experiment("replay", uri)
    parent = Tracker(uri, "replay").start_parent("sweep", {}, {})
    return TrialSpec(experiment=dict(name="replay", data=dict(DATA), model=dict(
        preset="mvitv2_t"), train=dict(epochs=epochs, batch_size=64, threads=1)),
        space=SPACE, point=dataclasses.asdict(point), seed=0, tracking_uri=uri,
        mlflow_experiment="replay", parent_run_id=parent, trials_dir=str(tmp_path / "trials"),
        replay=dict(table=str(TABLE), time_scale=0.0))


@pytest.fixture
def nothing_computed(monkeypatch):
    """A replayed trial must not count, measure or train: each would raise."""
    import mvit_lab.measure
    import mvit_lab.measure.costs
    import mvit_lab.train

    def refuse(*args, **kwargs):
        raise AssertionError("a replayed trial computed something")

    for module, name in ((mvit_lab.measure, "count_flops"),
                         (mvit_lab.measure.costs, "measure_costs"), (mvit_lab.train, "train")):
        monkeypatch.setattr(module, name, refuse)


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MVIT_LAB_LOCK_DIR", str(tmp_path / "locks"))


def test_a_replayed_trial_reports_the_table_through_the_real_trial(
        table, tmp_path, nothing_computed, lock_dir):
    i = 6
    point = _points()[i]
    reports = []
    final = run_trial(_spec(tmp_path / "a", point), report=reports.append)
    epochs = [r for r in reports if r["status"] == "running"]
    assert [r["epoch"] for r in epochs] == list(range(1, 10))
    assert [r["val_top1"] for r in epochs] == _column(table, "val_top1", i)
    for key in ("gflops", "throughput", "latency_ms", "peak_memory_mb"):
        assert all(r[key] == table.costs[i][key] for r in epochs)  # from the first report on
    assert final["status"] == "finished" and final["val_top1"] == _column(table, "val_top1",
                                                                          i)[-1]
    assert final["params"] == int(table.costs[i]["params"])
    runs = runs_dataframe(f"sqlite:///{tmp_path / 'a'}/mlruns.db", "replay")
    run = runs[runs["parent_run_id"].notna()].iloc[0]
    assert run["status"] == "FINISHED" and run["tag.status"] == "finished"
    assert run["tag.cost_by"] == f"replay table {TABLE}" and run["tag.replay_point"] == str(i)
    assert run["tag.cost_device"] == "AMD EPYC (1 threads)"  # the table's recording.json
    history = metric_history(f"sqlite:///{tmp_path / 'a'}/mlruns.db", run["run_id"],
                             "val_top1")
    assert [v for _, v in history] == pytest.approx(_column(table, "val_top1", i))
    # deterministic: another store, the same reports epoch by epoch
    again = []
    run_trial(_spec(tmp_path / "b", point), report=again.append)
    assert [r for r in again if r["status"] == "running"] == epochs


def test_an_interrupted_replay_resumes_after_its_last_epoch(table, tmp_path, nothing_computed,
                                                            lock_dir):
    i = 3
    spec = _spec(tmp_path, _points()[i])

    def stop_at_4(metrics):
        if metrics.get("epoch") == 4 and metrics["status"] == "running":
            raise KeyboardInterrupt  # what Ray's stop becomes (a Ctrl-C of the sweep)

    with pytest.raises(KeyboardInterrupt):
        run_trial(spec, report=stop_at_4)
    runs = runs_dataframe(spec.tracking_uri, "replay", parent_run_id=spec.parent_run_id)
    assert runs["tag.status"].tolist() == ["interrupted"]
    reports = []
    final = run_trial(spec, report=reports.append)
    assert [r["epoch"] for r in reports if r["status"] == "running"] == [5, 6, 7, 8, 9]
    assert final["val_top1"] == _column(table, "val_top1", i)[-1]
    runs = runs_dataframe(spec.tracking_uri, "replay", parent_run_id=spec.parent_run_id)
    assert len(runs) == 1 and runs["tag.status"].tolist() == ["finished"]
    steps = [s for s, _ in metric_history(spec.tracking_uri, runs["run_id"][0], "val_top1")]
    assert steps == list(range(1, 10))  # each epoch once


def test_a_replay_stopped_at_a_rung_is_truncated_and_never_replayed_again(
        table, tmp_path, nothing_computed, lock_dir):
    i = 9
    spec = _spec(tmp_path, _points()[i])
    note = dict(rung=1, milestone=3, epoch=3, bracket=0, place=4, of=5)

    def stop_at_3(metrics):
        if metrics.get("epoch") == 3 and metrics["status"] == "running":
            raise EarlyStopped(note)

    with pytest.raises(EarlyStopped):
        run_trial(spec, report=stop_at_3)
    runs = runs_dataframe(spec.tracking_uri, "replay", parent_run_id=spec.parent_run_id)
    run = runs.iloc[0]
    assert (run["status"], run["tag.status"], run["tag.truncated"]) == ("FINISHED", "stopped",
                                                                        "true")
    assert run["metric.epoch"] == 3 and run["metric.val_top1"] == _column(table, "val_top1",
                                                                          i)[2]
    tid = trial_id(_points()[i], 0)
    assert (Path(spec.trials_dir) / tid / OUTCOME).is_file()
    again = []
    result = run_trial(spec, report=again.append)  # a later draw of the point: its outcome
    assert result["status"] == "stopped" and result["twin_of"] == tid and len(again) == 1


def test_the_cost_summary_says_the_costs_are_the_tables():
    from mvit_lab.search.records import cost_summary

    rec = dict(cost_device="AMD EPYC (1 threads)", cost_dtype="float32", cost_batch="32",
               cost_protocol="blocks-v1", cost_by=f"replay table {TABLE}")
    assert cost_summary([rec, dict(rec)]) == (
        f"costs: from the replay table {TABLE} (measured there on AMD EPYC (1 threads), "
        "float32, batch 32, blocks-v1)")
    measured = dict(rec, cost_by="trial")
    assert cost_summary([measured]).startswith("costs: measured in isolation on ")
