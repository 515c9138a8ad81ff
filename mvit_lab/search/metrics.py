"""The metrics a trial reports: the one list that sweep objectives and ``pareto --objectives``
are checked against before anything runs.

A name that is not here is an objective no trial can ever report; Ray would find out only
after the first trial finished (and Optuna would then fail every trial). Metrics that only
some experiments produce say so in ``when``: ``video`` (a video dataset) or ``pretrain`` (an
experiment with a ``pretrain`` section).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["TRIAL_METRICS", "TrialMetric", "check_metric_names", "trial_metric_names"]


@dataclass(frozen=True)
class TrialMetric:
    name: str
    doc: str
    when: str = "always"  # always | video | pretrain


TRIAL_METRICS: tuple[TrialMetric, ...] = (
    TrialMetric("val_top1", "validation top-1 accuracy (%) after the last epoch"),
    TrialMetric("val_top5", "validation top-5 accuracy (%) after the last epoch"),
    TrialMetric("val_loss", "validation cross-entropy after the last epoch"),
    TrialMetric("train_loss", "mean training loss of the last epoch"),
    TrialMetric("val_top1_shuffled", "top-1 (%) with each clip's frames shuffled: how much "
                "the model uses time", "video"),
    TrialMetric("gflops", "multiply-adds per image or clip, in billions (counted before "
                "training)"),
    TrialMetric("params", "parameters of the model"),
    TrialMetric("throughput", "inference images (clips) per second on the trial's device"),
    TrialMetric("latency_ms", "inference milliseconds per batch on the trial's device"),
    TrialMetric("peak_memory_mb", "peak memory (MiB) of inference on the trial's device"),
    TrialMetric("train_throughput", "training images (clips) per second: forward, backward "
                "and optimizer step"),
    TrialMetric("train_latency_ms", "milliseconds per training step (one batch)"),
    TrialMetric("train_peak_memory_mb", "peak memory (MiB) of a training step"),
    TrialMetric("train_seconds", "wall-clock seconds of training (fine-tuning)"),
    TrialMetric("epoch_seconds", "wall-clock seconds of the last epoch"),
    TrialMetric("overhead_seconds", "seconds spent outside training and measuring"),
    TrialMetric("measure_seconds", "seconds spent getting the trial's costs (0 when cached)"),
    TrialMetric("pretrain_gflops", "multiply-adds of the sparse MAE encoder, in billions",
                "pretrain"),
    TrialMetric("encoder_gflops", "multiply-adds of the dense encoder (no head), in billions",
                "pretrain"),
    TrialMetric("pretrain_loss", "MAE training loss of the last pretraining epoch",
                "pretrain"),
    TrialMetric("pretrain_val_loss", "MAE validation loss of the last pretraining epoch",
                "pretrain"),
    TrialMetric("pretrain_seconds", "wall-clock seconds of MAE pretraining", "pretrain"),
)


def trial_metric_names(*, video: bool = True, pretrain: bool = True) -> tuple[str, ...]:
    """The names a trial of such an experiment reports (all of them by default)."""
    allowed = {"always"} | ({"video"} if video else set()) | ({"pretrain"} if pretrain else set())
    return tuple(m.name for m in TRIAL_METRICS if m.when in allowed)


def check_metric_names(names: Iterable[str], where: str, *, video: bool = True,
                       pretrain: bool = True) -> None:
    """A ValueError naming the first of ``names`` that no trial of such an experiment reports,
    and the metrics that trials do report."""
    known = trial_metric_names(video=video, pretrain=pretrain)
    for name in names:
        if name in known:
            continue
        metric = next((m for m in TRIAL_METRICS if m.name == name), None)
        if metric is not None:  # a real metric, but not of this kind of experiment
            need = "a video dataset" if metric.when == "video" else "a pretrain section"
            raise ValueError(f"{where}: {name} is reported only by experiments with {need}")
        hint = _closest(name, known)
        raise ValueError(f"{where}: no trial reports {name!r}"
                         + (f" (did you mean {hint}?)" if hint else "")
                         + f"; trials report: {', '.join(known)}")


def _closest(name: str, known: tuple[str, ...]) -> str | None:
    """The one or two closest known names (``val_top`` -> ``val_top5 or val_top1``)."""
    import difflib

    match = difflib.get_close_matches(name, known, n=2, cutoff=0.75)
    return " or ".join(match) if match else None
