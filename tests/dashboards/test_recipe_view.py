"""The recipe beside a sweep's numbers: published, cut short, or none."""

from __future__ import annotations

from mvit_lab.dashboards.data import load_sweep
from mvit_lab.dashboards.meta import parent_params, read_runs
from mvit_lab.dashboards.recipe_view import format_recipe, recipe_info
from mvit_lab.experiment import experiment_from_dict
from mvit_lab.tracking import flatten_params


def _params(tree):
    """The parent run's params for an experiment tree, as the sweep driver logs them."""
    return flatten_params(dict(experiment=experiment_from_dict(tree).to_dict()))


BASE = dict(name="x", data=dict(dataset="digits"), model=dict(preset="mvitv2_s"))


def test_a_published_recipe_unchanged_passes():
    info = recipe_info(_params(dict(BASE, train=dict(recipe="mvitv2_in1k"))))
    assert info["published"] and info["flag"] is None
    (train,) = info["sections"]
    assert train["recipe"] == "mvitv2_in1k" and train["epochs"] == 300
    assert train["augmentation"]["mixup"] == 0.8
    lines = format_recipe(info)
    assert lines[0].startswith("train: recipe mvitv2_in1k; 300 epochs; augmentation: ")
    assert "source: facebookresearch/mvit" in lines[0]
    assert lines[-1] == "data: dataset digits, train_fraction 1.0"


def test_cut_short_or_none_is_flagged():
    info = recipe_info(_params(dict(BASE, train=dict(recipe="mvitv2_in1k", epochs=2))))
    assert not info["published"]
    assert info["sections"][0]["departures"] == [("train.epochs", 300, 2)]
    assert info["flag"] == ("NOT a published protocol. train: departs from the published "
                            "recipe mvitv2_in1k: train.epochs 2 (published 300)")
    toy = recipe_info(_params(dict(BASE, train=dict(epochs=2))), knobs=["train.lr", "depths"])
    # no crop: its aspect ratio is not augmentation; one repeat is none
    assert toy["sections"][0]["augmentation"] == dict(label_smoothing=0.1)
    assert toy["flag"] == ("NOT a published protocol. train: not a published recipe (2 epochs, "
                           "this file's own settings); the search varies train.lr per trial")
    assert recipe_info({})["flag"] == ("the sweep's parent run logged no recipe: its protocol "
                                       "is unknown")


def test_from_a_fixture_store(fixture_store):
    sweep = load_sweep(fixture_store["uri"], "ablation")
    # the fixture's parent logs no train section
    info = recipe_info(parent_params(read_runs(sweep), sweep.parent_run_id), sweep.knobs())
    assert not info["published"] and "logged no recipe" in info["flag"]
    assert info["data"] == {}
