"""Datasets for training and evaluation, sized for the model they feed."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mvit_lab.config import ArchConfig
from mvit_lab.data.datasets import (
    DataReport,
    DigitsDataset,
    ImageFolder,
    Repeated,
    ShuffledFrames,
    VideoList,
    is_listed,
    load_digits_split,
)
from mvit_lab.data.moving_digits import class_names, generate_moving_digits
from mvit_lab.data.transforms import Augment, VideoEval, VideoTrain, image_transforms
from mvit_lab.experiment import DataConfig

__all__ = ["Augment", "DataReport", "Datasets", "Repeated", "ShuffledFrames", "build_datasets",
           "generate_moving_digits"]

DEFAULT_CACHE = Path("~/.cache/mvit-lab")


class Datasets:
    """Train and val datasets, a shuffled-frames view of val for video, and their reports."""

    def __init__(self, train: Dataset, val: Dataset, classes: list[str],
                 val_shuffled: Dataset | None = None, *, is_video: bool = False,
                 size: tuple[int, int] | None = None) -> None:
        self.train, self.val, self.classes, self.val_shuffled = train, val, classes, val_shuffled
        self.is_video, self.size = is_video, size
        self.mean: tuple[float, ...] = train.mean  # type: ignore[attr-defined]
        self.std: tuple[float, ...] = train.std  # type: ignore[attr-defined]
        self.reports = [train.report, val.report]  # type: ignore[attr-defined]
        for report in self.reports:
            report.require_samples()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def train_with(self, augment: Augment) -> Dataset:
        """The training split under another augmentation (MAE pretraining crops and flips
        only); the files are not checked again."""
        ds = copy.copy(self.train)
        ds.transform = train_transform(augment, self.size, ds.mean,  # type: ignore[attr-defined]
                                       self.is_video)
        return ds


def train_transform(augment: Augment, size: tuple[int, int] | None, mean: tuple[float, ...],
                    video: bool) -> Any:
    if size is None:
        raise ValueError("data: the datasets were built without a size")
    return VideoTrain(augment, size, mean) if video else \
        image_transforms(augment, size, mean).train


def build_datasets(cfg: DataConfig, model: ArchConfig, seed: int = 0,
                   augment: Augment | None = None) -> Datasets:
    """The experiment's datasets at the model's input size: the training split under
    ``augment`` (default: none, images resized whole), the validation split cut into its
    evaluation views."""
    t, h, w = model.input_size
    size = (h, w)
    augment = augment or Augment()
    if cfg.dataset == "digits":
        train_x, train_y, val_x, val_y = load_digits_split(cfg.val_fraction, seed)
        if cfg.train_fraction < 1.0:
            train_x, train_y = _stratified(train_x, train_y, cfg.train_fraction, seed)
        tf = image_transforms(augment, size, DigitsDataset.mean)
        return Datasets(DigitsDataset(train_x, train_y, size, "train", tf.train),
                        DigitsDataset(val_x, val_y, size, "val", tf.eval),
                        [str(c) for c in range(10)], size=size)
    if cfg.dataset == "image_folder":
        return _image_folder(cfg, size, seed, image_transforms(augment, size, ImageFolder.mean))
    if cfg.dataset == "moving_digits":
        root = generate_moving_digits(Path(cfg.root or DEFAULT_CACHE), num_train=cfg.num_train,
                                      num_val=cfg.num_val, frames=cfg.frames, seed=seed)
        train_csv, val_csv = root / "train.csv", root / "val.csv"
        classes = list(cfg.classes or class_names((0, 1, 2, 3, 4)))
        name = "moving_digits"
    else:
        train_csv, val_csv = Path(cfg.train_csv), Path(cfg.val_csv)  # type: ignore[arg-type]
        classes, name = list(cfg.classes) if cfg.classes else None, "video_list"
    common = dict(stride=cfg.stride, probe=cfg.probe, name=name)
    train = VideoList(train_csv, size, t, train=True, classes=classes,
                      transform=VideoTrain(augment, size, VideoList.mean), **common)
    views = VideoEval(size, augment.eval_crop_pct, cfg.eval_crops, augment.interpolation)
    val = VideoList(val_csv, size, t, train=False, num_clips=cfg.eval_clips,
                    classes=train.classes, transform=views, **common)
    return Datasets(train, val, train.classes, ShuffledFrames(val, seed), is_video=True,
                    size=size)


def _stratified(x: torch.Tensor, y: torch.Tensor, fraction: float,
                seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded subset with ``fraction`` of every class (at least one sample each)."""
    gen = torch.Generator().manual_seed(seed + 7)
    keep = []
    for c in y.unique().tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        keep.append(idx[:max(1, round(len(idx) * fraction))])
    order = torch.cat(keep).sort().values
    return x[order], y[order]


def _image_folder(cfg: DataConfig, size: tuple[int, int], seed: int,
                  tf: Any) -> Datasets:
    root = Path(cfg.root)  # type: ignore[arg-type]
    classes = list(cfg.classes) if cfg.classes else None
    if (root / "train").is_dir() and (root / "val").is_dir():
        train = ImageFolder(root / "train", size, split="train", classes=classes, probe=cfg.probe,
                            transform=tf.train)
        val = ImageFolder(root / "val", size, split="val", classes=train.classes,
                          probe=cfg.probe, transform=tf.eval)
        return Datasets(train, val, train.classes, size=size)
    if not root.is_dir():
        raise ValueError(f"data.root: {root} is not a directory")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    rng = random.Random(seed)
    train_files, val_files = [], []
    for c in found:  # a seeded split, stratified by class
        files = sorted(p for p in (root / c).iterdir() if is_listed(p))
        rng.shuffle(files)
        n_val = round(len(files) * cfg.val_fraction)
        val_files += [(p, c) for p in files[:n_val]]
        train_files += [(p, c) for p in files[n_val:]]
    classes = classes or found
    train = ImageFolder(root, size, split="train", classes=classes, probe=cfg.probe,
                        files=train_files, transform=tf.train)
    val = ImageFolder(root, size, split="val", classes=classes, probe=cfg.probe,
                      files=val_files, transform=tf.eval)
    return Datasets(train, val, classes, size=size)
