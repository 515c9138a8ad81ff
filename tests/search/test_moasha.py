"""MOASHA's decisions on scripted sequences of results: who continues, who stops where, what
is written for the trial and for a resumed sweep, and what the scheduler section accepts."""

from __future__ import annotations

import json
import pickle

import pytest
from ray.tune.schedulers import TrialScheduler

from mvit_lab.search.moasha import STATE, STOPPED, MOASHAConfig, MOASHAScheduler, parse_moasha
from mvit_lab.search.pareto import parse_objectives

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
OBJ = parse_objectives({"val_top1": "max", "gflops": "min"})


def _result(key, epoch, top1, gflops, **extra):
    return dict(trial_key=key, epoch=epoch, val_top1=top1, gflops=gflops, status="running",
                **extra)


def _sched(tmp_path=None, **cfg):
    config = MOASHAConfig(**{"grace_period": 1, "reduction_factor": 3, "max_t": 9, **cfg})
    if tmp_path is None:
        return MOASHAScheduler(config, OBJ)
    return MOASHAScheduler(config, OBJ, trials_dir=tmp_path / "trials", state_dir=tmp_path)


def test_rungs():
    assert MOASHAConfig(max_t=9).rungs(0) == [1, 3]
    assert MOASHAConfig(max_t=27).rungs(0) == [1, 3, 9]
    assert MOASHAConfig(max_t=27, brackets=2).rungs(1) == [3, 9]
    assert MOASHAConfig(grace_period=2, reduction_factor=2, max_t=16).rungs(0) == [2, 4, 8]
    with pytest.raises(ValueError, match="scheduler.brackets: bracket 2 has no rung"):
        MOASHAConfig(max_t=9, brackets=3)


def test_scripted_sequence(tmp_path):
    s = _sched(tmp_path)

    def step(key, epoch, top1, gflops, **extra):
        return s.on_trial_result(None, None, _result(key, epoch, top1, gflops, **extra))

    assert step("a", 1, 90, 0.010) == CONTINUE  # alone at rung 1: the best of one
    assert step("b", 1, 80, 0.020) == STOP  # dominated by a; 2 recorded keep 1
    assert step("c", 1, 95, 0.005) == CONTINUE  # dominates both
    # d is on the front with c, but the net takes c (the best top-1) first; 4 recorded keep 1
    assert step("d", 1, 85, 0.001) == STOP
    # e is on the front too, and the farthest from c: second of 5, and 5 keep 1
    assert step("e", 1, 70, 0.0005) == STOP
    assert step("f", 1, 99, 0.0001) == CONTINUE  # dominates everyone: first of 6 (keep 2)
    assert step("c", 2, 96, 0.005) == CONTINUE  # between rungs: no decision
    assert step("a", 3, 91, 0.010) == CONTINUE  # first at rung 3
    assert step("c", 3, 90, 0.005) == STOP  # dominated by a at rung 3; 2 keep 1
    assert step("f", 9, 10, 0.0001) == CONTINUE  # max_t: the trial ends by itself
    assert step("f", 3, 99, 0.0001) == CONTINUE  # ranked against a and c, and dominates
    assert step("b", 2, 99, 0.0) == STOP  # a stopped trial seen again (a twin, a resume)
    assert [len(r) for r in s.rungs[0]] == [6, 3]
    # no decision: a final report, a twin's, an epoch without validation, no stable key
    assert s.on_trial_result(None, None, dict(_result("g", 1, 0, 1.0), status="finished")) \
        == CONTINUE
    assert s.on_trial_result(None, None, _result("g", 1, None, 1.0)) == CONTINUE
    assert s.on_trial_result(None, None, _result(None, 1, 0, 1.0)) == CONTINUE
    assert "g" not in s.rungs[0][0]
    # a ladder step is never stopped unless asked
    assert step("h", 1, 1, 1.0, ladder_step=0) == CONTINUE
    assert len(s.rungs[0][0]) == 7  # but it is recorded
    # what the trial reads before Ray stops it
    note = json.loads((tmp_path / "trials" / "d" / STOPPED).read_text())
    assert note == dict(rung=0, milestone=1, epoch=1.0, bracket=0, place=1, of=4)
    assert not (tmp_path / "trials" / "a" / STOPPED).exists()
    assert sorted(s.stopped) == ["b", "c", "d", "e"]

    # a resumed sweep: Tune unpickles the scheduler from tuner.pkl; the rungs come from disk
    assert (tmp_path / STATE).is_file()
    restored = pickle.loads(pickle.dumps(_sched(tmp_path)))
    assert restored.on_trial_result(None, None, _result("b", 3, 99, 0.0)) == STOP
    # g is dominated by all 7 recorded at rung 1: last of 8, 8 keep 2
    assert restored.on_trial_result(None, None, _result("g", 1, 50, 0.05)) == STOP
    fresh = _sched()  # without the saved rungs g would have been the best of one
    assert fresh.on_trial_result(None, None, _result("g", 1, 50, 0.05)) == CONTINUE


def test_ladder_steps_stop_when_asked():
    s = _sched(stop_ladder=True)
    assert s.on_trial_result(None, None, _result("a", 1, 90, 0.1, ladder_step=0)) == CONTINUE
    assert s.on_trial_result(None, None, _result("b", 1, 80, 0.2, ladder_step=1)) == STOP


def test_linear_ranking_decides_by_the_weighted_mean():
    s = _sched(ranking="linear", weights=(0.0, 1.0))  # GFLOPs only
    assert s.on_trial_result(None, None, _result("a", 1, 90, 0.1)) == CONTINUE
    assert s.on_trial_result(None, None, _result("b", 1, 99, 0.2)) == STOP
    assert s.on_trial_result(None, None, _result("c", 1, 10, 0.05)) == CONTINUE


def test_more_objectives_and_nan():
    obj = parse_objectives({"val_top1": "max", "gflops": "min", "throughput": "max",
                            "peak_memory_mb": "min"})
    s = MOASHAScheduler(MOASHAConfig(max_t=9), obj)
    first = dict(trial_key="a", epoch=1, status="running", val_top1=50.0, gflops=1.0,
                 throughput=100.0, peak_memory_mb=10.0)
    assert s.on_trial_result(None, None, first) == CONTINUE
    # a diverged trial (NaN accuracy) ranks after every finite one
    assert s.on_trial_result(None, None, dict(first, trial_key="b", val_top1=float("nan"),
                                              gflops=0.1)) == STOP


def test_brackets_are_drawn_from_the_key_and_spread():
    s = _sched(max_t=27, brackets=2)
    drawn = [s.bracket(f"trial{i}") for i in range(200)]
    assert drawn == [_sched(max_t=27, brackets=2).bracket(f"trial{i}") for i in range(200)]
    # Ray's softmax over rung counts (3 and 2): e / (1 + e) = 73% in bracket 0
    assert 0.6 < drawn.count(0) / 200 < 0.85


@pytest.mark.parametrize(("tree", "message"), [
    (dict(grace_period=0), "scheduler.grace_period: must be an integer >= 1"),
    (dict(reduction_factor=1), "scheduler.reduction_factor: must be a number > 1"),
    (dict(max_t=20), r"scheduler.max_t: 20 is more than train.epochs \(9\)"),
    (dict(grace_period=9), "scheduler.grace_period: 9 leaves no rung below max_t 9"),
    (dict(ranking="crowding"), "scheduler.ranking: must be one of nds, linear"),
    (dict(ranking="linear", weights=[1]), "scheduler.weights: one number >= 0 per objective"),
    (dict(weights=[1, 1]), "scheduler.weights: only ranking: linear takes weights"),
    (dict(stop_ladder="yes"), "scheduler.stop_ladder: must be true or false"),
    (dict(eta=3), "scheduler.eta: unknown key"),
    (dict(time_attr="training_iteration"), "scheduler.time_attr: .* only 'epoch'"),
])
def test_bad_scheduler_sections(tree, message):
    with pytest.raises(ValueError, match=message):
        parse_moasha(dict(type="moasha", **tree), OBJ, 9)


def test_max_t_defaults_to_the_epochs():
    assert parse_moasha(dict(type="moasha"), OBJ, 12).max_t == 12


def _sweep_exp(tmp_path, scheduler, epochs=4):
    from mvit_lab.experiment import experiment_from_dict

    tree = dict(name="s", data=dict(dataset="digits"),
                model=dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
                           patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1],
                           embed_dim=8, mask_unit_size=[1, 4, 4],
                           mask_unit_attn=[True, False], num_classes=10),
                train=dict(epochs=epochs), search=dict(params={"embed_dim": {"choice": [8, 16]}}),
                objectives={"val_top1": "max", "gflops": "min"}, scheduler=scheduler,
                tracking=dict(uri=str(tmp_path / "mlruns.db")))
    return experiment_from_dict(tree, str(tmp_path / "exp.yaml"))


def test_the_sweep_section(tmp_path):
    from mvit_lab.search.sweep import parse_sweep

    sweep = parse_sweep(_sweep_exp(tmp_path, "moasha"))
    assert sweep.scheduler == "moasha" and sweep.moasha == MOASHAConfig(max_t=4)
    sweep = parse_sweep(_sweep_exp(tmp_path, dict(type="moasha", reduction_factor=2)))
    assert sweep.moasha.rungs(0) == [1, 2]
    with pytest.raises(ValueError, match="scheduler.type: a scheduler with settings must be "
                                         "moasha, got 'asha'"):
        parse_sweep(_sweep_exp(tmp_path, dict(type="asha")))
    with pytest.raises(ValueError, match="scheduler: must be none, asha or moasha"):
        parse_sweep(_sweep_exp(tmp_path, "hyperband"))
    with pytest.raises(ValueError, match="scheduler.grace_period: 4 leaves no rung"):
        parse_sweep(_sweep_exp(tmp_path, dict(type="moasha", grace_period=4)))
