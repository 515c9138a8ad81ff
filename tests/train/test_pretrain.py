"""MAE pretraining as the first phase of an experiment: fine-tuning starts from the encoder,
pretraining resumes exactly, and a trial logs it."""

from __future__ import annotations

import json

import pytest
import torch

from mvit_lab import build_model
from mvit_lab.cli import main
from mvit_lab.experiment import experiment_from_dict
from mvit_lab.models.mae import load_encoder
from mvit_lab.search.trial import TrialSpec, run_trial
from mvit_lab.tracking import metric_history, runs_dataframe
from mvit_lab.train import train

TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=16,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)
PRETRAIN = dict(epochs=2, mask_ratio=0.5, decoder_dim=16, decoder_depth=1, decoder_heads=2)


def _tree(pretrain=PRETRAIN, epochs=1):
    tree = dict(name="tiny-mae", data=dict(dataset="digits"), model=dict(TINY),
                train=dict(epochs=epochs, batch_size=256, lr=0.003, warmup_epochs=0.5, seed=0))
    if pretrain is not None:
        tree["pretrain"] = dict(pretrain)
    return tree


def _strip(history):
    return [{k: v for k, v in m.items() if not k.endswith("epoch_seconds")} for m in history]


def test_pretraining_then_fine_tuning_from_the_encoder(tmp_path):
    seen = []
    exp = experiment_from_dict(_tree())
    result = train(exp, tmp_path, pretrain_callback=seen.append)
    assert [m["epoch"] for m in result.pretrain_history] == [1, 2]
    assert seen == result.pretrain_history
    first, last = result.pretrain_history
    assert last["pretrain_val_loss"] < first["pretrain_val_loss"]
    assert result.final["pretrain_epochs"] == 2
    assert result.final["pretrain_loss"] == last["pretrain_loss"]
    for name in ("encoder.pt", "pretrain_metrics.json", "pretrain_checkpoint.pt",
                 "checkpoint.pt"):
        assert (tmp_path / name).is_file()
    encoder = torch.load(tmp_path / "encoder.pt", weights_only=True)
    fresh = load_encoder(build_model(exp.model), encoder)
    assert sorted(fresh) == ["head.fc.bias", "head.fc.weight", "norm.bias", "norm.weight"]
    # the same seed from scratch starts from other weights: a different first epoch
    scratch = train(experiment_from_dict(_tree(pretrain=None)))
    assert scratch.history[0]["train_loss"] != result.history[0]["train_loss"]


def test_interrupted_pretraining_resumes_to_the_same_result(tmp_path):
    straight = train(experiment_from_dict(_tree(dict(PRETRAIN, epochs=3))))

    def stop_after_two(metrics):
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt

    exp = experiment_from_dict(_tree(dict(PRETRAIN, epochs=3)))
    with pytest.raises(KeyboardInterrupt):
        train(exp, tmp_path, pretrain_callback=stop_after_two)
    assert not (tmp_path / "encoder.pt").exists()
    resumed = train(exp, tmp_path, resume=True)
    assert _strip(resumed.pretrain_history) == _strip(straight.pretrain_history)
    assert _strip(resumed.history) == _strip(straight.history)
    # finished pretraining is not run again
    again = train(exp, tmp_path, resume=True, pretrain_callback=lambda m: pytest.fail("reran"))
    assert _strip(again.pretrain_history) == _strip(straight.pretrain_history)


@pytest.mark.parametrize("change,message", [
    (dict(model=dict(TINY, preset="mvitv2_t", mask_unit_size=None, mask_unit_attn=None)),
     "^pretrain: the model cannot run sparse MAE: model.mask_unit_size: "),
    (dict(pretrain=dict(PRETRAIN, mask_ratio=0.9)), r"^pretrain.mask_ratio: 0.9 keeps no unit"),
    (dict(pretrain=dict(PRETRAIN, mask_unit_size=[1, 8, 8])),
     r"^pretrain.mask_unit_size: \(1, 8, 8\) differs from model.mask_unit_size"),
    (dict(pretrain=dict(PRETRAIN, decoder_heads=3)), "^pretrain.decoder_heads: 3 heads"),
    (dict(pretrain=dict(PRETRAIN, ratio=0.5)), "^pretrain.ratio: unknown key"),
])
def test_bad_pretrain_sections_name_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        experiment_from_dict({**_tree(), **change})


def test_models_without_mask_units_take_them_from_the_pretrain_section(tmp_path):
    model = dict(TINY, preset="mvitv2_t", mask_unit_size=None, mask_unit_attn=None)
    tree = {**_tree(dict(PRETRAIN, epochs=1, mask_unit_size=[1, 4, 4])), "model": model}
    exp = experiment_from_dict(tree)
    assert exp.model.mask_unit_size is None  # fine-tuned as the dense MViTv2 it is
    result = train(exp)
    assert len(result.pretrain_history) == 1 and result.final["pretrain_epochs"] == 1


def test_train_cli_prints_the_pretraining_table(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    import yaml

    path.write_text(yaml.safe_dump(_tree(dict(PRETRAIN, epochs=1))))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "MAE pretraining: 1 epochs, mask ratio 0.5" in out
    assert out.index("pretrain_val_loss") < out.index("val_top1")


def test_trial_recipe_logs_pretraining(tmp_path):
    # the experiment's own model (a cls token) cannot pretrain sparsely; the search space's
    # base, which the trial runs, can: the trial checks the model it runs
    tree = dict(_tree(dict(PRETRAIN, epochs=2)), model=dict(preset="mvitv1_b"))
    from mvit_lab.tracking import Tracker, ensure_experiment

    uri = f"sqlite:///{tmp_path}/m.db"
    ensure_experiment("mae", uri)
    parent = Tracker(uri, "mae").start_parent("mae", {}, {})
    spec = TrialSpec(experiment=tree, space=dict(base=dict(TINY), grid={"train.lr": [0.003]}),
                     point=dict(name="lr=0.003", model={}, train={"lr": 0.003}), seed=0,
                     tracking_uri=uri, mlflow_experiment="mae", parent_run_id=parent,
                     trials_dir=str(tmp_path / "trials"))
    final = run_trial(spec)
    assert final["status"] == "finished"
    assert 0 < final["pretrain_gflops"] < 0.6 * final["encoder_gflops"]
    runs = runs_dataframe(spec.tracking_uri, "mae", parent_run_id=parent)
    assert list(runs["tag.recipe"]) == ["mae"]
    run_id = runs["run_id"].iloc[0]
    losses = metric_history(spec.tracking_uri, run_id, "pretrain_val_loss")
    assert [step for step, _ in losses] == [1, 2]
    assert json.loads(json.dumps(final))["pretrain_epochs"] == 2


def test_pretraining_takes_its_own_augmentation_and_batch(tmp_path):
    from mvit_lab.data import Augment, build_datasets

    tree = _tree(dict(PRETRAIN, epochs=1, crop_scale=[0.2, 1.0], hflip=0.5, repeated_aug=2,
                      batch_size=64, global_batch=128, lr=1e-3, lr_batch=256))
    tree["data"]["train_fraction"] = 0.2
    tree["train"].update(mixup=0.8, cutmix=1.0, rand_augment="rand-m9-n2-mstd0.5-inc1")
    exp = experiment_from_dict(tree)
    data = build_datasets(exp.data, exp.model, 0, Augment.of(exp.train))
    mae_view = data.train_with(Augment.of(exp.pretrain))
    assert mae_view.transform is not data.train.transform  # crop + flip, no RandAugment
    assert "RandAugment" in repr(data.train.transform)
    assert "RandAugment" not in repr(mae_view.transform)
    result = train(exp, datasets=data)
    (epoch,) = result.pretrain_history
    assert epoch["pretrain_lr"] > 0 and epoch["pretrain_loss"] > 0
