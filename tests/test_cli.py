from __future__ import annotations

import json

import pytest

from mvit_lab import get_config, list_presets
from mvit_lab.cli import main


def test_presets_json_reports_exact_matches(capsys):
    assert main(["presets", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == list_presets()
    exact = [r for r in records if r["params_exact"]]
    assert exact and all(r["params"] == r["reference_params"] for r in exact)


def test_presets_table(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "hiera_b_16x224" in out and "51,092,560" in out and "exact" in out


def test_build_prints_stages_and_runs(capsys):
    assert main(["build", "hiera_t", "--set", "input_size=[1,64,64]", "--set",
                 "num_classes=3"]) == 0
    out = capsys.readouterr().out
    assert "mask unit 8x8" in out and "logits [1, 3]" in out


def test_build_json_and_save_round_trip(tmp_path, capsys):
    saved = tmp_path / "cfg.json"
    assert main(["build", "mvitv2_t", "--set", "input_size=[1,64,64]", "--set", "pool_mode=max",
                 "--save", str(saved), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["logits"] == [1, 1000] and record["config"]["pool_mode"] == "max"
    # the saved file is itself an architecture source that rebuilds the same config
    assert main(["build", str(saved), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["config"] == record["config"] and again["params"] == record["params"]


def test_build_example_architecture_file(capsys):
    assert main(["build", "experiments/arch/mvitv2_t_hiera_pooling.yaml", "--set",
                 "input_size=[1,64,64]", "--json"]) == 0
    cfg = json.loads(capsys.readouterr().out)["config"]
    assert cfg["mask_unit_attn"] == [True, True, False, False]
    assert cfg["depths"] == list(get_config("mvitv2_t").depths)


@pytest.mark.parametrize(("argv", "message"), [
    (["build", "mvitv2_t", "--set", "pool_mode=maxx"], "pool_mode: must be one of"),
    (["build", "hiera_t", "--set", "depths=[1,2]"], "mask_unit_attn: has 4 entries"),
    (["build", "mvitv2_t", "--set", "foo=1"], "foo: not an ArchConfig field"),
    (["build", "mvitv2_t", "--set", "embed_dim"], "expected key=value"),
    (["build", "mvitv2_t", "--set", "embed_dim=[1"], "embed_dim: cannot parse value"),
    (["build", "mvitv3"], "unknown name 'mvitv3'"),
    (["build", "missing.yaml"], "missing.yaml: no such architecture file"),
])
def test_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mvit-lab: error: ") and message in err and err.count("\n") == 1


def test_ladders_compares_ladder_sweeps_from_mlflow(tmp_path, capsys):
    """Two ladder sweeps' trials, written as the sweep writes them, printed side by side."""
    from mvit_lab.tracking import Tracker, ensure_experiment

    uri = f"sqlite:///{tmp_path}/m.db"
    exps = []
    for name, tops in (("scratch", (90.0, 85.0)), ("mae", (93.0, 94.0))):
        ensure_experiment(name, uri)
        tracker = Tracker(uri, name)
        parent = tracker.start_parent(name, {}, {})
        for step, (point, top1) in enumerate(zip(("mvitv2", "a_abs_pos"), tops)):
            run = tracker.start_child(parent, point, {}, dict(
                trial_id=f"{name}{step}", point=point, seed="0", ladder_step=str(step),
                status="finished"))
            tracker.log_metrics(run, dict(val_top1=top1, gflops=1.0, throughput=10.0), step=1)
            tracker.finish(run)
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(dict(
            name=name, data=dict(dataset="digits"), model=dict(preset="mvitv2_t"),
            search=dict(base=dict(preset="mvitv2_t"), ladder=[
                dict(name="mvitv2"), dict(name="a_abs_pos", set=dict(abs_pos="joint"))]),
            tracking=dict(uri=uri))))
        exps.append(str(path))
    assert main(["ladders", *exps]) == 0
    out = capsys.readouterr().out
    assert "| a_abs_pos | 1.000 | 85.00 ± 0.00 (1) | 94.00 ± 0.00 (1) | +9.00 |" in out
    quickstart = str(__import__("pathlib").Path(__file__).parents[1] / "experiments" /
                     "quickstart.yaml")
    assert main(["ladders", quickstart]) == 2
    assert "not a ladder" in capsys.readouterr().err
    empty = tmp_path / "empty.yaml"
    empty.write_text(open(exps[0]).read().replace('"scratch"', '"never-run"'))
    assert main(["ladders", str(empty)]) == 2
    assert "no sweep has logged to MLflow experiment 'never-run'" in capsys.readouterr().err
