"""The one list of trial metrics: sweep objectives and ``pareto --objectives`` are checked
against it before anything runs."""

from __future__ import annotations

import pytest

from mvit_lab.search.metrics import TRIAL_METRICS, check_metric_names, trial_metric_names


def test_every_metric_is_documented_once():
    names = [m.name for m in TRIAL_METRICS]
    assert len(names) == len(set(names))
    assert all(m.doc and m.when in ("always", "video", "pretrain") for m in TRIAL_METRICS)
    # the cost metrics trials report beside accuracy, including the training-side ones
    assert {"val_top1", "gflops", "params", "throughput", "train_throughput",
            "peak_memory_mb", "train_peak_memory_mb"} <= set(names)


def test_metrics_of_an_experiment_kind():
    image = trial_metric_names(video=False, pretrain=False)
    assert "val_top1" in image and "val_top1_shuffled" not in image
    assert "pretrain_loss" not in image and "pretrain_loss" in trial_metric_names()


@pytest.mark.parametrize(("names", "kind", "message"), [
    (["val_top"], {}, r"objectives: no trial reports 'val_top' \(did you mean val_top\d or "
                      r"val_top\d\?\); trials report: val_top1, val_top5, "),
    (["val_top1", "accuracy"], {}, "no trial reports 'accuracy'; trials report: val_top1"),
    (["val_top1_shuffled"], dict(video=False), "only by experiments with a video dataset"),
    (["pretrain_loss"], dict(pretrain=False), "only by experiments with a pretrain section"),
])
def test_unknown_objectives_are_one_line_naming_the_reported_metrics(names, kind, message):
    with pytest.raises(ValueError, match=message):
        check_metric_names(names, "objectives", **kind)


def test_known_objectives_pass():
    check_metric_names(["val_top1", "gflops", "train_throughput"], "objectives",
                       video=False, pretrain=False)
