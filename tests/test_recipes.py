"""Each published recipe resolves to its source's values (written out here, independently of
``mvit_lab.recipes``), the file and --set win over it, and size-dependent values follow the
model."""

from __future__ import annotations

import json

import pytest

from mvit_lab.cli import main
from mvit_lab.experiment import experiment_from_dict, load_experiment
from mvit_lab.recipes import list_recipes, size_of_preset

IMAGES = dict(dataset="image_folder", root="/data/imagenet")
VIDEOS = dict(dataset="video_list", train_csv="/k/train.csv", val_csv="/k/val.csv")


def _train(recipe, preset, data=IMAGES, **train):
    return experiment_from_dict(dict(data=dict(data), model=dict(preset=preset),
                                     train=dict(recipe=recipe, **train)))


def _pretrain(recipe, preset, data=IMAGES):
    return experiment_from_dict(dict(data=dict(data), model=dict(preset=preset),
                                     pretrain=dict(recipe=recipe)))


# facebookresearch/mvit configs/MVITv2_{T,S,B}.yaml + mvit/config/defaults.py
MVITV2_IN1K = dict(epochs=300, weight_decay=0.05, lr=2.5e-4, lr_batch=256, global_batch=2048,
                   warmup_epochs=70, warmup_start_lr=1e-8, min_lr=1e-6, clip_grad=1.0,
                   rand_augment="rand-m9-n6-mstd0.5-inc1", random_erasing=0.25, mixup=0.8,
                   cutmix=1.0, mixup_switch_prob=0.5, mixup_prob=1.0, label_smoothing=0.1,
                   eval_crop_pct=0.875, interpolation="bicubic", crop_scale=(0.08, 1.0),
                   hflip=0.5, betas=(0.9, 0.999), layer_decay=None, repeated_aug=1)


@pytest.mark.parametrize(("preset", "drop_path"), [
    ("mvitv2_t", 0.1), ("mvitv2_s", 0.1), ("mvitv2_b", 0.3), ("mvitv2_l", 0.5)])
def test_mvitv2_in1k(preset, drop_path):
    exp = _train("mvitv2_in1k", preset)
    for key, value in MVITV2_IN1K.items():
        assert getattr(exp.train, key) == value, key
    assert exp.model.drop_path_rate == drop_path


@pytest.mark.parametrize(("preset", "drop_path"), [
    ("hiera_t", 0.0), ("hiera_s", 0.0), ("hiera_b", 0.2), ("hiera_b_plus", 0.2),
    ("hiera_l", 0.2), ("hiera_h", 0.3)])
def test_hiera_mae_in1k(preset, drop_path):
    p = _pretrain("hiera_mae_in1k", preset).pretrain
    assert (p.epochs, p.lr, p.lr_batch, p.global_batch, p.warmup_epochs) == (
        1600, 8e-4, 4096, 4096, 40)
    assert (p.betas, p.weight_decay, p.mask_ratio, p.norm_pix_loss) == (
        (0.9, 0.95), 0.05, 0.6, True)
    assert (p.crop_scale, p.hflip, p.drop_path_rate) == ((0.2, 1.0), 0.5, drop_path)
    assert (p.decoder_depth, p.decoder_dim, p.interpolation) == (8, 512, "bicubic")


@pytest.mark.parametrize(("preset", "lr", "epochs", "drop_path", "layer_decay"), [
    ("hiera_t", 2e-3, 300, 0.1, 0.65), ("hiera_s", 2e-3, 200, 0.1, 0.65),
    ("hiera_b", 2e-3, 100, 0.1, 0.7), ("hiera_b_plus", 1e-3, 100, 0.1, 0.7),
    ("hiera_l", 1e-3, 50, 0.1, 0.85), ("hiera_h", 1e-3, 50, 0.3, 0.85)])
def test_hiera_ft_in1k(preset, lr, epochs, drop_path, layer_decay):
    exp = _train("hiera_ft_in1k", preset)
    t = exp.train
    assert (t.lr, t.lr_batch, t.epochs, t.layer_decay, t.warmup_epochs) == (
        lr, 1024, epochs, layer_decay, 5)
    assert exp.model.drop_path_rate == drop_path
    assert (t.rand_augment, t.random_erasing, t.mixup, t.cutmix, t.label_smoothing) == (
        "rand-m9-mstd0.5-inc1", 0.25, 0.8, 1.0, 0.1)
    assert t.eval_crop_pct == pytest.approx(224 / 256) and t.interpolation == "bicubic"


# facebookresearch/SlowFast configs/Kinetics/MVIT_B_16x4_CONV.yaml, MVITv2_S_16x4.yaml
K400 = dict(epochs=200, warmup_epochs=30, warmup_start_lr=1e-6, min_lr=1e-6, weight_decay=0.05,
            lr=1e-4, lr_batch=16, global_batch=16, clip_grad=1.0,
            rand_augment="rand-m7-n4-mstd0.5-inc1", random_erasing=0.25, repeated_aug=2,
            mixup=0.8, cutmix=1.0, mixup_switch_prob=0.5, label_smoothing=0.1,
            crop_scale=(0.08, 1.0), crop_ratio=(0.75, 1.3333), no_decay_pos=False)


@pytest.mark.parametrize(("recipe", "preset", "drop_path", "crops"), [
    ("mvit_k400", "mvitv1_b_16x4", 0.2, 1), ("mvitv2_k400", "mvitv2_s_16x4", 0.2, 1),
    ("mvitv2_k400", "mvitv2_b", 0.3, 1), ("mvitv2_k400", "mvitv2_l", 0.75, 3)])
def test_kinetics_recipes(recipe, preset, drop_path, crops):
    model = dict(preset=preset)
    if preset in ("mvitv2_b", "mvitv2_l"):  # image presets: make them video models
        model.update(input_size=[16, 224, 224], patch_kernel=[3, 7, 7],
                     patch_stride=[2, 4, 4], patch_padding=[1, 3, 3])
    exp = experiment_from_dict(dict(data=dict(VIDEOS), model=model,
                                    train=dict(recipe=recipe, batch_size=8)))
    for key, value in K400.items():
        assert getattr(exp.train, key) == value, key
    assert (exp.model.drop_path_rate, exp.model.head_dropout) == (drop_path, 0.5)
    assert (exp.data.stride, exp.data.eval_clips, exp.data.eval_crops) == (4, 5, crops)


def test_hiera_mae_k400():
    exp = _pretrain("hiera_mae_k400", "hiera_b_16x224", VIDEOS)
    p = exp.pretrain
    assert (p.mask_ratio, p.repeated_aug, p.betas, p.crop_scale) == (0.9, 4, (0.9, 0.95),
                                                                       (0.5, 1.0))
    assert p.lr * (256 // p.repeated_aug) / p.lr_batch == pytest.approx(1.6e-3)  # per 256 clips
    assert p.clip_grad == 0.02 and exp.data.stride == 4


def test_every_registered_recipe_is_tested_here():
    assert set(list_recipes()) == {"mvitv2_in1k", "hiera_mae_in1k", "hiera_ft_in1k",
                                   "mvit_k400", "mvitv2_k400", "hiera_mae_k400"}


def test_the_file_and_set_win_over_the_recipe(tmp_path):
    exp = _train("mvitv2_in1k", "mvitv2_t", lr=1e-3, mixup=0.0)
    assert (exp.train.lr, exp.train.mixup, exp.train.cutmix) == (1e-3, 0.0, 1.0)
    path = tmp_path / "e.yaml"
    path.write_text(json.dumps(dict(data=IMAGES, model=dict(preset="mvitv2_b",
                                                            drop_path_rate=0.05),
                                    train=dict(recipe="mvitv2_in1k"))))
    exp = load_experiment(path, ["train.epochs=3", "train.recipe_size=T"])
    assert exp.train.epochs == 3 and exp.model.drop_path_rate == 0.05  # the file's own
    assert exp.train.recipe_size == "T"


def test_size_from_preset_or_recipe_size():
    assert [size_of_preset(n) for n in ("mvitv2_s_16x4", "hiera_b_plus", "hiera_b_16x224",
                                        "mvitv1_b", "hiera_h", None, "custom")] == [
        "S", "B+", "B", "B", "H", None, None]
    exp = experiment_from_dict(dict(data=IMAGES, model=dict(preset="mvitv2_t", embed_dim=64),
                                    train=dict(recipe="hiera_ft_in1k", recipe_size="L")))
    assert (exp.train.lr, exp.train.epochs, exp.train.recipe_size) == (1e-3, 50, "L")


@pytest.mark.parametrize(("train", "model", "message"), [
    (dict(recipe="imagenet_best"), dict(preset="mvitv2_t"), "train.recipe: unknown recipe"),
    (dict(recipe="hiera_mae_in1k"), dict(preset="mvitv2_t"), "is a pretrain recipe"),
    (dict(recipe="hiera_ft_in1k"), dict(depths=[1, 1], embed_dim=16, num_heads=1,
                                        input_size=[1, 32, 32]),
     "train.recipe_size: recipe hiera_ft_in1k sets train.epochs by model size"),
    (dict(recipe="mvitv2_in1k"), dict(preset="hiera_h"), "has no model.drop_path_rate for "
                                                         "size H"),
    (dict(recipe="mvitv2_in1k", recipe_size="XL"), dict(preset="mvitv2_t"),
     "train.recipe_size: must be one of"),
])
def test_recipe_errors_name_the_key(train, model, message):
    with pytest.raises(ValueError, match=message):
        experiment_from_dict(dict(data=IMAGES, model=model, train=train))


def test_print_config_shows_the_resolved_recipe_and_does_not_train(tmp_path, capsys):
    from mvit_lab.configfile import safe_load

    path = tmp_path / "e.yaml"
    path.write_text(json.dumps(dict(data=IMAGES, model=dict(preset="mvitv2_s"),
                                    train=dict(recipe="mvitv2_in1k", batch_size=128))))
    assert main(["train", str(path), "--print-config", "--set", "train.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# train.recipe mvitv2_in1k: facebookresearch/mvit")
    tree = safe_load(out)
    assert tree["train"]["warmup_epochs"] == 70 and tree["train"]["epochs"] == 2
    assert tree["model"]["drop_path_rate"] == 0.1 and tree["train"]["batch_size"] == 128
    assert not (tmp_path / "runs").exists()
    again = experiment_from_dict(tree)  # the printed config is itself a valid experiment
    assert again.train == load_experiment(path, ["train.epochs=2"]).train
