"""Datasets for training and evaluation, sized for the model they feed."""

from __future__ import annotations

import random
from pathlib import Path

from torch.utils.data import Dataset

from mvit_lab.config import ArchConfig
from mvit_lab.data.datasets import (
    DataReport,
    DigitsDataset,
    ImageFolder,
    ShuffledFrames,
    VideoList,
    is_listed,
    load_digits_split,
)
from mvit_lab.data.moving_digits import class_names, generate_moving_digits
from mvit_lab.experiment import DataConfig

__all__ = ["DataReport", "Datasets", "ShuffledFrames", "build_datasets",
           "generate_moving_digits"]

DEFAULT_CACHE = Path("~/.cache/mvit-lab")


class Datasets:
    """Train and val datasets, a shuffled-frames view of val for video, and their reports."""

    def __init__(self, train: Dataset, val: Dataset, classes: list[str],
                 val_shuffled: Dataset | None = None) -> None:
        self.train, self.val, self.classes, self.val_shuffled = train, val, classes, val_shuffled
        self.reports = [train.report, val.report]  # type: ignore[attr-defined]
        for report in self.reports:
            report.require_samples()

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def build_datasets(cfg: DataConfig, model: ArchConfig, seed: int = 0) -> Datasets:
    """The experiment's datasets, decoded at the model's input size."""
    t, h, w = model.input_size
    size = (h, w)
    if cfg.dataset == "digits":
        train_x, train_y, val_x, val_y = load_digits_split(cfg.val_fraction, seed)
        return Datasets(DigitsDataset(train_x, train_y, size, "train"),
                        DigitsDataset(val_x, val_y, size, "val"), [str(c) for c in range(10)])
    if cfg.dataset == "image_folder":
        return _image_folder(cfg, size, seed)
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
    train = VideoList(train_csv, size, t, train=True, classes=classes, **common)
    val = VideoList(val_csv, size, t, train=False, num_clips=cfg.eval_clips,
                    classes=train.classes, **common)
    return Datasets(train, val, train.classes, ShuffledFrames(val, seed))


def _image_folder(cfg: DataConfig, size: tuple[int, int], seed: int) -> Datasets:
    root = Path(cfg.root)  # type: ignore[arg-type]
    classes = list(cfg.classes) if cfg.classes else None
    if (root / "train").is_dir() and (root / "val").is_dir():
        train = ImageFolder(root / "train", size, split="train", classes=classes, probe=cfg.probe)
        val = ImageFolder(root / "val", size, split="val", classes=train.classes,
                          probe=cfg.probe)
        return Datasets(train, val, train.classes)
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
                        files=train_files)
    val = ImageFolder(root, size, split="val", classes=classes, probe=cfg.probe,
                      files=val_files)
    return Datasets(train, val, classes)
