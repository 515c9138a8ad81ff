"""`mvit-lab measure`: a sweep's architectures re-measured on one device, written back."""

from __future__ import annotations

import json

import pytest

from mvit_lab import get_config
from mvit_lab.cli import main
from mvit_lab.search.records import cost_summary, sweep_records
from mvit_lab.search.sweep import parse_measure
from mvit_lab.tracking import Tracker, ensure_experiment, flatten_params, runs_dataframe

SMALL = dict(input_size=(1, 16, 16), patch_kernel=(1, 2, 2), patch_stride=(1, 2, 2),
             patch_padding=(0, 0, 0), depths=(1, 1), embed_dim=8,
             mask_unit_size=(1, 4, 4), mask_unit_attn=(True, False), num_classes=10)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """Three finished trials (two share an architecture: seeds) and one failed, as a sweep
    on some other machine would have logged them."""
    monkeypatch.setenv("MVIT_LAB_LOCK_DIR", str(tmp_path / "locks"))
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    ensure_experiment("remote", uri)
    tracker = Tracker(uri, "remote")
    parent = tracker.start_parent("remote", {}, {})
    narrow = get_config("hiera_t", **SMALL)
    wide = narrow.replace(embed_dim=16)
    runs = {}
    for name, cfg, seed, status in [("narrow", narrow, 0, "finished"),
                                    ("narrow", narrow, 1, "finished"),
                                    ("wide", wide, 0, "finished"),
                                    ("broken", wide, 2, "failed")]:
        run = tracker.start_child(parent, name, flatten_params(dict(model=cfg.to_dict())),
                                  dict(trial_id=f"{name}{seed}", point=name, seed=str(seed),
                                       status=status, device="Some GPU"))
        tracker.log_metrics(run, dict(val_top1=90.0, throughput=1e6), step=0)
        tracker.finish(run, "FINISHED" if status == "finished" else "FAILED")
        runs[f"{name}{seed}"] = run
    exp = tmp_path / "exp.yaml"
    exp.write_text(json.dumps(dict(
        name="remote", data=dict(dataset="digits"), model=dict(preset="hiera_t"),
        search=dict(base={}, grid=dict(embed_dim=[8, 16])), tracking=dict(uri=uri),
        measure=dict(batch=4, protocol=dict(warmup_s=0.05, block_s=0.02, min_blocks=3,
                                            max_s=1),
                     cache=str(tmp_path / "cache")))))
    return dict(uri=uri, runs=runs, exp=str(exp), tmp=tmp_path)


def test_measure_writes_one_device_s_costs_back_to_every_trial(store, capsys):
    assert main(["measure", store["exp"], "--modes", "infer", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] narrow" in out and "[2/2] wide" in out  # two distinct architectures
    assert "measured 2 architectures on" in out and "3 trial runs" in out
    runs = runs_dataframe(store["uri"], "remote").set_index("run_id")
    narrow = [runs.loc[store["runs"][k]] for k in ("narrow0", "narrow1")]
    wide = runs.loc[store["runs"]["wide0"]]
    # the new figures replaced the other machine's (1e6) as the latest values
    assert narrow[0]["metric.throughput"] == narrow[1]["metric.throughput"] < 1e6
    assert 0 < wide["metric.throughput"] < 1e6
    for row in (*narrow, wide):
        assert row["tag.cost_by"] == "mvit-lab measure" and "(1 threads)" in row["tag.device"]
        assert row["tag.cost_batch"] == "4" and row["tag.cost_protocol"].startswith("blocks")
    failed = runs.loc[store["runs"]["broken2"]]
    assert failed["metric.throughput"] == 1e6  # not a finished trial: left alone
    records = sweep_records(runs.reset_index(), ())
    assert cost_summary([r for r in records if r["status"] == "finished"]).startswith(
        "costs: measured in isolation on ")
    # again: the cache answers, nothing is timed twice
    assert main(["measure", store["exp"], "--modes", "infer", "--threads", "1"]) == 0
    assert capsys.readouterr().out.count("cached") == 2


def test_mixed_devices_on_one_axis_are_called_out():
    records = [dict(cost_device=d, cost_dtype="float32", cost_batch="32", cost_protocol="p")
               for d in ("A100", "H100")]
    assert "WARNING, 2 different measurement setups" in cost_summary(records)


def test_cpu_figures_priced_at_different_calibrations_are_called_out():
    # one node, one protocol, but the reference was calibrated again in between (a deleted
    # calibration, or another node of the same name): the two sets of figures do not compare
    def rec(infer: str, train: str) -> dict:
        return dict(cost_device="AMD EPYC (2 threads)", cost_dtype="float32", cost_batch="32",
                    cost_protocol="p", cost_infer_calibration=infer,
                    cost_train_calibration=train)

    same = cost_summary([rec("3910.12", "1022.40"), rec("3910.12", "1022.40")])
    assert same == ("costs: measured in isolation on AMD EPYC (2 threads), float32, batch 32, p,"
                    " reference calibrated at 3910/s infer and 1022/s train")
    mixed = cost_summary([rec("3910.12", "1022.40"), rec("1949.53", "496.67")])
    assert "WARNING, 2 different measurement setups" in mixed and "1950/s infer" in mixed
    # read back from a run's tags as the CLI and dashboards read them
    row = {"run_id": "r", "tag.status": "finished", "tag.cost_device": "d",
           "tag.cost_infer_calibration": "3910.12"}
    assert sweep_records([row], ())[0]["cost_infer_calibration"] == "3910.12"


@pytest.mark.parametrize(("tree", "message"), [
    (dict(batch=0), "^measure.batch: must be an integer >= 1"),
    (dict(dtype="int8"), "^measure.dtype: must be auto or one of"),
    (dict(modes=["eval"]), "^measure.modes: "),
    (dict(modes=["infer", "infer"]), "^measure.modes: "),
    (dict(protocol=dict(target_spread=0)), "^measure.protocol.target_spread: "),
    (dict(protocol=dict(blocks=3)), "^measure.protocol.blocks: unknown key"),
    (dict(speed=1), "^measure.speed: unknown key"),
])
def test_bad_measure_sections(tree, message):
    with pytest.raises(ValueError, match=message):
        parse_measure(tree)


def test_measure_defaults_and_relative_cache(tmp_path):
    out = parse_measure(dict(cache="costs"), tmp_path / "exp.yaml")
    assert out["batch"] == 32 and out["modes"] == ["infer", "train"] and out["dtype"] == "auto"
    assert out["cache"] == str((tmp_path / "costs").resolve())
