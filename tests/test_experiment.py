from __future__ import annotations

import json

import pytest

from mvit_lab.cli import main
from mvit_lab.experiment import check_objectives, experiment_from_dict, load_experiment

MODEL = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
             patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=16,
             mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False])


def _write(tmp_path, **tree):
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(dict(dict(data=dict(dataset="digits"), model=MODEL), **tree)))
    return path


@pytest.mark.parametrize("name", ["../../../x", "a/b", "/tmp/x", ".hidden", "..", "a\\b",
                                  "two words"])
def test_names_are_names_not_paths(name):
    """``name: ../../../x`` wrote the run outside runs/."""
    with pytest.raises(ValueError, match=r"^name: .* is not a plain name"):
        experiment_from_dict(dict(name=name, data=dict(dataset="digits"), model=MODEL))


def test_a_name_from_the_file_name_says_so():
    with pytest.raises(ValueError, match=r"^name: 'my run' \(taken from the file name"):
        experiment_from_dict(dict(model=MODEL), "experiments/my run.yaml")


def test_plain_names_pass():
    for name in ("digits-mvitv2", "hiera_ladder.v2", "lr=1e-3+mae"):
        assert experiment_from_dict(dict(name=name, model=MODEL)).name == name


@pytest.mark.parametrize(("data", "given", "known"), [
    (dict(dataset="digits"), 5, 10),  # silently became 10
    (dict(dataset="moving_digits"), 7, 10),
    (dict(dataset="image_folder", root="x", classes=["a", "b", "c"]), 10, 3),
])
def test_an_explicit_num_classes_the_data_contradicts_is_an_error(tmp_path, data, given, known):
    model = dict(MODEL, num_classes=given)
    if data["dataset"] == "moving_digits":
        model = dict(model, preset="hiera_b_16x224", input_size=[4, 16, 16],
                     patch_kernel=[2, 2, 2], patch_stride=[2, 2, 2])
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(dict(data=data, model=model)))
    with pytest.raises(ValueError, match=rf"^model.num_classes: {given}, but .* {known} classes"):
        load_experiment(path)
    load_experiment(path, [f"model.num_classes={known}"])


def test_num_classes_left_out_follows_the_data(tmp_path):
    # the preset's 1000 is a default the head replaces, not a number the user wrote
    assert load_experiment(_write(tmp_path)).model.num_classes == 1000


def test_set_typos_suggest_keys_that_exist(tmp_path, capsys):
    path = _write(tmp_path)
    for item, message in [
        ("samples=3", "samples: --set needs section.key (did you mean 'budget.samples'?)"),
        ("train.epoch=3", "train.epoch: unknown key (did you mean 'train.epochs'"),
        ("trian.epochs=3", "trian: unknown section (did you mean 'train'?)"),
        ("model.pool_mod=max", "model.pool_mod: not an ArchConfig knob (did you mean "
                               "'pool_mode'?)"),
    ]:
        assert main(["train", str(path), "--set", item]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
        assert "train.samples" not in err and str(path) not in err  # blames the --set


def test_a_bad_set_value_blames_the_set_and_a_bad_file_value_the_file(tmp_path):
    path = _write(tmp_path, train=dict(epochs=0))
    with pytest.raises(ValueError, match=rf"^train.epochs: must be >= 1, got 0 \(in {path}\)$"):
        load_experiment(path)
    path = _write(tmp_path)
    with pytest.raises(ValueError, match=r"^train.lr: .*\(from --set train.lr=-1\)$"):
        load_experiment(path, ["train.lr=-1"])
    with pytest.raises(ValueError, match=r"^model.depths\[0\]: .*\(from --set model.depths="):
        load_experiment(path, ["model.depths=[0, 1]"])


def test_objective_errors_name_the_section_not_the_parser():
    """They read ``spec['val_top1']: sense: ...``."""
    tree = dict(data=dict(dataset="digits"), model=MODEL, objectives={"val_top1": "maxx"})
    with pytest.raises(ValueError, match=r"^objectives.val_top1: the sense must be 'max' or "
                                         r"'min', got 'maxx'$"):
        experiment_from_dict(tree)
    with pytest.raises(ValueError, match=r"^--objectives 'gflops:least': the sense must be"):
        check_objectives(["val_top1:max", "gflops:least"], "--objectives",
                         ["val_top1:max", "gflops:least"])
