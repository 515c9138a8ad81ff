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
