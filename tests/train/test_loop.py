from __future__ import annotations

import itertools
import json

import pytest
import torch

from mvit_lab.cli import main
from mvit_lab.experiment import experiment_from_dict
from mvit_lab.train import train
from mvit_lab.train.loop import lr_at

TINY_MODEL = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
                  patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=16,
                  mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10,
                  drop_path_rate=0.1)


def _exp(epochs=2, **train_kw):
    return experiment_from_dict(dict(
        name="tiny", data=dict(dataset="digits"), model=dict(TINY_MODEL),
        train={**dict(epochs=epochs, batch_size=128, lr=0.003, warmup_epochs=1, seed=0),
               **train_kw}))


def test_metrics_per_epoch_and_files(tmp_path):
    seen = []
    result = train(_exp(), tmp_path, callback=seen.append)
    assert [m["epoch"] for m in result.history] == [1, 2] and seen == result.history
    for key in ("train_loss", "val_loss", "val_top1", "val_top5", "lr", "epoch_seconds"):
        assert key in result.final
    assert 0 <= result.final["val_top1"] <= result.final["val_top5"] <= 100
    assert result.final["val_top1"] > 20  # two epochs already beat chance (10%)
    for name in ("checkpoint.pt", "experiment.json", "data_report.json", "metrics.json"):
        assert (tmp_path / name).is_file()
    assert json.loads((tmp_path / "metrics.json").read_text()) == result.history


def test_same_seed_same_metrics_on_cpu():
    a = train(_exp()).history
    b = train(_exp()).history
    strip = lambda h: [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in h]  # noqa: E731
    assert strip(a) == strip(b)  # exactly equal, not approximately
    c = train(_exp(seed=1)).history
    assert strip(c) != strip(a)


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    straight = train(_exp(epochs=3)).history

    def stop_after_two(metrics):
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_exp(epochs=3), tmp_path, callback=stop_after_two)
    resumed = train(_exp(epochs=3), tmp_path, resume=True).history
    assert len(resumed) == 3
    strip = lambda h: [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in h]  # noqa: E731
    assert strip(resumed) == strip(straight)


RECIPE = dict(crop_scale=[0.35, 1.0], hflip=0.5, rand_augment="rand-m9-n2-mstd0.5-inc1",
              random_erasing=0.25, mixup=0.8, cutmix=1.0, ema_decay=0.9, repeated_aug=2,
              global_batch=32, batch_size=16, lr_batch=256, layer_decay=0.8, eval_crop_pct=0.9,
              warmup_start_lr=1e-5)


def _recipe_exp(epochs):
    return experiment_from_dict(dict(
        name="tiny-recipe", data=dict(dataset="digits", train_fraction=0.1),
        model=dict(TINY_MODEL), train=dict(epochs=epochs, lr=0.003, seed=0, **RECIPE)))


def test_augmented_run_is_deterministic_and_resumes_to_the_same_result(tmp_path):
    strip = lambda h: [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in h]  # noqa: E731
    straight = train(_recipe_exp(2))
    assert straight.final["accumulation"] == 2 and straight.final["global_batch"] == 32
    assert "val_ema_top1" in straight.final
    assert strip(train(_recipe_exp(2)).history) == strip(straight.history)

    def stop_after_one(metrics):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_recipe_exp(2), tmp_path, callback=stop_after_one)
    resumed = train(_recipe_exp(2), tmp_path, resume=True).history
    assert strip(resumed) == strip(straight.history)


def test_nan_loss_stops_the_run():
    with pytest.raises(FloatingPointError, match="loss is nan"):
        train(_exp(epochs=1, lr=1e30, clip_grad=None, warmup_epochs=0))


def test_schedule_warms_up_then_decays_to_min_lr():
    lrs = [lr_at(s, 100, 10, 1.0, 0.01) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(b <= a for a, b in itertools.pairwise(lrs[10:]))
    assert lr_at(100, 100, 10, 1.0, 0.01) == pytest.approx(0.01)


def test_video_run_reports_shuffled_frames(tmp_path):
    exp = experiment_from_dict(dict(
        name="tiny-video",
        data=dict(dataset="moving_digits", root=str(tmp_path), num_train=32, num_val=16,
                  frames=8, stride=2),
        model=dict(preset="hiera_b_16x224", input_size=[4, 32, 32], patch_kernel=[2, 8, 8],
                   patch_stride=[2, 8, 8], patch_padding=[0, 0, 0], depths=[1, 1],
                   embed_dim=16, mask_unit_size=[1, 2, 2], mask_unit_attn=[True, False],
                   num_classes=10),
        train=dict(epochs=2, batch_size=16, crop_scale=[0.5, 1.0], hflip=0.5)))
    result = train(exp)
    assert "val_top1_shuffled" in result.final
    assert "val_top1_shuffled" not in result.history[0]  # the final epoch's only, by default
    assert result.final["num_classes"] == 10


def test_train_cli_prints_a_table_and_json_last(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(dict(name="cli", data=dict(dataset="digits"),
                                    model=TINY_MODEL, train=dict(epochs=1, batch_size=256))))
    assert main(["train", str(path), "--set", "train.lr=0.004", "--out", str(tmp_path / "run"),
                 "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["epoch", "train_loss", "val_loss"]
    final = json.loads(lines[-1])
    assert set(final) >= {"val_top1", "val_top5", "params", "out_dir"}
    assert "digits train: " not in lines[-1]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 0


@pytest.mark.parametrize(("sets", "message"), [
    (["train.epoch=3"], "train.epoch: unknown key"),
    (["train.lr=-1"], "train.lr: must be > 0.0"),
    (["model.pool_mode=maxx"], "model.pool_mode: must be one of"),
    (["data.dataset=imagenet"], "data.dataset: must be one of"),
    (["optimizer.lr=1"], "optimizer: unknown section"),
    (["epochs=3"], "epochs: --set needs section.key"),
    (["model.input_size=[4,16,16]"], "model.input_size: digits is an image dataset"),
])
def test_train_cli_errors_name_the_key(tmp_path, capsys, sets, message):
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(dict(data=dict(dataset="digits"), model=TINY_MODEL)))
    argv = ["train", str(path)]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_shuffled_top1_from_one_pass_equals_the_shuffled_dataset(tmp_path):
    from torch.utils.data import DataLoader

    from mvit_lab import build_model
    from mvit_lab.data import build_datasets
    from mvit_lab.train import evaluate

    exp = experiment_from_dict(dict(
        data=dict(dataset="moving_digits", root=str(tmp_path), num_train=8, num_val=24,
                  frames=8, stride=2),
        model=dict(preset="hiera_b_16x224", input_size=[4, 32, 32], patch_kernel=[2, 8, 8],
                   patch_stride=[2, 8, 8], patch_padding=[0, 0, 0], depths=[1, 1],
                   embed_dim=16, mask_unit_size=[1, 2, 2], mask_unit_attn=[True, False],
                   num_classes=10)))
    data = build_datasets(exp.data, exp.model)
    torch.manual_seed(0)
    model = build_model(exp.model)
    cpu = torch.device("cpu")
    one_pass = evaluate(model, DataLoader(data.val, batch_size=5), cpu,
                        shuffle_seed=data.val_shuffled.seed)
    separate = evaluate(model, DataLoader(data.val_shuffled, batch_size=7), cpu)
    assert one_pass["top1_shuffled"] == separate["top1"]


@pytest.mark.slow
def test_a_mixup_cutmix_run_still_learns(tmp_path):
    # soft targets, device-side mixing and SoftTargetCrossEntropy together: a bug in any of
    # them leaves top-1 at chance (10%), which is what the tiny-data digits comparison showed
    # with the full recipe. On all of digits it learns, more slowly than without mixing
    # (measured: 22.0% after 3 epochs, 41.2% without mixing, deterministic on the CPU)
    result = train(_exp(epochs=3, mixup=0.8, cutmix=1.0, label_smoothing=0.1), tmp_path)
    assert result.history[0]["val_top1"] < result.final["val_top1"]
    assert result.final["val_top1"] > 15
