from __future__ import annotations

import json

import pytest
import torch

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
    (["build", "mvitv2_t", "--set", "pool_mod=max"], "(did you mean 'pool_mode'?)"),
    (["build", "mvitv2_t", "--set", "dim_mul=1e308"], "dim_mul: gives stage 1 width inf"),
    (["build", "mvitv2_t", "--set", f"num_classes={2**70}"], "num_classes: must be <="),
    (["build", "mvitv2_t", "--set", "depths=[100000]"], "depths[0]: must be <= 1,024"),
    # a --set value that breaks a rule is blamed on the --set, not on the file
    (["build", "experiments/arch/mvitv2_t_hiera_pooling.yaml", "--set", "pool_mode=maxx"],
     "(from --set pool_mode=\"maxx\")"),
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
    assert "| a_abs_pos | 1.000 | 85.00 (n = 1) | 94.00 (n = 1) | +9.00 |" in out
    quickstart = str(__import__("pathlib").Path(__file__).parents[1] / "experiments" /
                     "quickstart.yaml")
    assert main(["ladders", quickstart]) == 2
    assert "not a ladder" in capsys.readouterr().err
    empty = tmp_path / "empty.yaml"
    empty.write_text(open(exps[0]).read().replace('"scratch"', '"never-run"'))
    assert main(["ladders", str(empty)]) == 2
    assert "no sweep has logged to MLflow experiment 'never-run'" in capsys.readouterr().err


def _no_compute(monkeypatch):
    """Make any model build fail loudly: the checks under test must come first."""
    import mvit_lab.cli as cli

    def refuse(*args, **kwargs):
        raise AssertionError("built a model before the check")

    monkeypatch.setattr(cli, "build_model", refuse)


@pytest.mark.parametrize("batch", ["0", "-1", "two"])
def test_build_and_profile_refuse_a_bad_batch_in_one_line(batch, capsys):
    for command in ("build", "profile"):
        with pytest.raises(SystemExit) as info:
            main([command, "mvitv2_t", "--batch", batch])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --batch: must be" in err and "Traceback" not in err


def test_build_checks_save_path_before_computing(tmp_path, monkeypatch, capsys):
    _no_compute(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("")
    for target, message in [(tmp_path, "is a directory"),
                            (blocker / "cfg.json", "is not a directory"),
                            ("/proc/mvit-lab-test.json", "cannot write there")]:
        assert main(["build", "mvitv2_t", "--save", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mvit-lab: error: --save {target}: ") and message in err
        assert err.count("\n") == 1
    assert not (tmp_path / "config.json").exists()


def test_build_refuses_what_does_not_fit_in_memory_before_building(monkeypatch, capsys):
    import mvit_lab._cli_checks as checks

    _no_compute(monkeypatch)
    monkeypatch.setattr(checks, "_available_memory", lambda: 2.0**30)  # 1 GiB free
    assert main(["build", "mvitv2_t", "--batch", "1000"]) == 2
    err = capsys.readouterr().err
    assert "at batch 1000" in err and "1.0 GiB is free" in err and err.count("\n") == 1
    assert main(["build", "mvitv2_t", "--set", "embed_dim=4096", "--set", "num_heads=1"]) == 2
    assert "weights" in capsys.readouterr().err


def test_memory_estimate_bounds_a_real_forward():
    """Weights are 4 bytes a parameter; activations cover the largest tensors and scale with
    the batch."""
    from mvit_lab import count_params
    from mvit_lab._cli_checks import memory_needed

    cfg = get_config("mvitv2_t", input_size=(1, 64, 64))
    weights, activations = memory_needed(cfg, 4, count_params(cfg))
    assert weights == 4 * count_params(cfg)
    # stage 0: 16 x 16 tokens with 96 channels, 1 head attending to 4 x 4 pooled keys; MLP 384
    assert activations >= 4 * 4 * (2 * 256 * 16 + 2 * 256 * 384)
    assert memory_needed(cfg, 8, 1)[1] == 2 * activations


def test_build_out_of_memory_in_forward_is_one_line(monkeypatch, capsys):
    import mvit_lab.cli as cli

    class Hungry(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                               "can't allocate memory: you tried to allocate 10 bytes.\nmore")

    monkeypatch.setattr(cli, "build_model", lambda cfg: Hungry())
    assert main(["build", "mvitv2_t", "--set", "input_size=[1,32,32]"]) == 2
    err = capsys.readouterr().err
    assert "out of memory" in err and "can't allocate" in err and err.count("\n") == 1


def test_build_fails_on_non_finite_logits(monkeypatch, tmp_path, capsys):
    import mvit_lab.cli as cli

    class Unstable(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 10), float("nan"))

    monkeypatch.setattr(cli, "build_model", lambda cfg: Unstable())
    saved = tmp_path / "cfg.json"
    assert main(["build", "mvitv2_t", "--set", "input_size=[1,32,32]", "--save",
                 str(saved)]) == 2
    err = capsys.readouterr().err
    assert "10 of 10 logits are not finite" in err and err.count("\n") == 1
    assert not saved.exists()  # nothing is saved for a model that does not run


def test_tiny_norm_eps_that_gives_nan_is_refused(capsys):
    """embed_dim 1 with norm_eps 1e-50 (0 in float32) gave NaN logits and exit 0."""
    assert main(["build", "mvitv2_t", "--set", "embed_dim=1", "--set", "norm_eps=1e-50",
                 "--set", "input_size=[1,32,32]"]) == 2
    assert "norm_eps: 1e-50 is 0 in float32" in capsys.readouterr().err


def test_profile_flops_only_builds_and_times_nothing(monkeypatch, capsys):
    import mvit_lab.measure as measure

    _no_compute(monkeypatch)

    def no_timing(*args, **kwargs):
        raise AssertionError("timed")

    monkeypatch.setattr(measure, "measure_throughput", no_timing)
    assert main(["profile", "mvitv2_t", "--flops-only", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["speed"] is None and out["flops"]["params"] == 24_173_320
    assert main(["profile", "mvitv2_t", "--flops-only"]) == 0
    out = capsys.readouterr().out
    assert "GFLOPs:" in out and "patch_embed" in out and "throughput" not in out
