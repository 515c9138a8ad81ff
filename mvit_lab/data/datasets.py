"""Datasets: bundled digits, generated moving-digit videos, image folders and video lists.

Every dataset checks its files when it is built (``probe=True``): a missing path, an empty
file, an undecodable or truncated file, or a label outside the class list is skipped with a
warning and counted in the dataset's ``DataReport``; a dataset with no usable sample is a
``ValueError`` before any training starts. Samples are uint8 pixels sized for the model by the
dataset's ``transform`` (``mvit_lab.data.transforms``): images ``[3, H, W]``, training clips
``[3, T, H, W]``, evaluation views ``[views, 3, T, H, W]``. Each dataset names the ``mean`` and
``std`` that normalise it on the device.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from mvit_lab.data._decode import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    clip_indices,
    clip_starts,
    decode_video,
    probe_image,
    probe_video,
)
from mvit_lab.data.transforms import Augment, VideoEval, VideoTrain, image_transforms

__all__ = ["DataReport", "DigitsDataset", "ImageFolder", "Repeated", "ShuffledFrames",
           "VideoList", "load_digits_split", "time_permutation"]

DIGITS_MEAN = DIGITS_STD = (0.5, 0.5, 0.5)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class DataReport:
    """What a dataset found: usable samples per class, and every skipped file with its reason."""

    dataset: str
    split: str
    classes: list[str]
    total: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> paths

    @property
    def usable(self) -> int:
        return sum(self.per_class.values())

    def skip(self, reason: str, path: str) -> None:
        log.warning("%s %s: skipping %s (%s)", self.dataset, self.split, path, reason)
        self.skipped.setdefault(reason, []).append(path)

    def to_dict(self) -> dict[str, Any]:
        return dict(dataset=self.dataset, split=self.split, classes=self.classes,
                    total=self.total, usable=self.usable, per_class=self.per_class,
                    skipped=self.skipped)

    def summary(self) -> str:
        skipped = sum(len(v) for v in self.skipped.values())
        reasons = ", ".join(f"{len(v)} {k}" for k, v in self.skipped.items())
        return (f"{self.dataset} {self.split}: {self.usable} of {self.total} samples usable, "
                f"{len(self.classes)} classes" + (f"; skipped {skipped}: {reasons}" if skipped
                                                  else ""))

    def require_samples(self) -> None:
        if self.usable == 0:
            raise ValueError(f"data: {self.dataset} {self.split} has no usable samples "
                             f"({self.summary()})")


# -- digits: scikit-learn's bundled 8x8 handwritten digits ----------------------------------------
def load_digits_split(val_fraction: float, seed: int) -> tuple[torch.Tensor, ...]:
    """(train images, train labels, val images, val labels): ``[N, 8, 8]`` in [0, 1], split
    stratified by class with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = round(len(idx) * val_fraction)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    train, val = torch.cat(train_idx).sort().values, torch.cat(val_idx).sort().values
    return images[train], labels[train], images[val], labels[val]


class DigitsDataset(Dataset):
    """Digits as 3-channel images, scaled up to the model's size by the transform."""

    mean, std = DIGITS_MEAN, DIGITS_STD

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: tuple[int, int],
                 split: str, transform: Any = None) -> None:
        pixels = (images * 255).round().to(torch.uint8)  # [N, 8, 8], 0..16 -> 0..255
        self.images = [Image.fromarray(p.numpy()).convert("RGB") for p in pixels]
        self.labels = labels
        self.classes = [str(c) for c in range(10)]
        self.transform = transform or image_transforms(Augment(), size, self.mean).eval
        counts = Counter(labels.tolist())
        self.report = DataReport("digits", split, self.classes, total=len(labels),
                                 per_class={str(c): counts[c] for c in range(10)})

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), int(self.labels[i])


# -- image folders: root/class_name/*.jpg|png -----------------------------------------------------
class ImageFolder(Dataset):
    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def __init__(self, root: str | Path, size: tuple[int, int], *, split: str = "train",
                 classes: list[str] | None = None, probe: bool = True,
                 files: list[tuple[Path, str]] | None = None, transform: Any = None) -> None:
        root = Path(root)
        if files is None:
            if not root.is_dir():
                raise ValueError(f"data.root: {root} is not a directory")
            found = sorted(d.name for d in root.iterdir() if d.is_dir() and
                           not d.name.startswith("."))
            files = [(p, d) for d in found for p in sorted((root / d).iterdir())
                     if p.is_file() and not p.name.startswith(".")]
            classes = classes or found
        else:
            classes = classes or sorted({c for _, c in files})
        self.classes = list(classes)
        self.size = size
        self.transform = transform or image_transforms(Augment(), size, self.mean).eval
        index = {c: i for i, c in enumerate(self.classes)}
        self.report = DataReport("image_folder", split, self.classes, total=len(files))
        self.samples: list[tuple[Path, int]] = []
        for path, label in files:
            reason = _image_problem(path, label, index, probe)
            if reason:
                self.report.skip(reason, str(path))
                continue
            self.samples.append((path, index[label]))
        self.report.per_class = dict(Counter(self.classes[i] for _, i in self.samples))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        with Image.open(path) as img:
            image = img.convert("RGB")
        return self.transform(image), label


def _image_problem(path: Path, label: str, index: dict[str, int], probe: bool) -> str | None:
    if label not in index:
        return "label not in the class list"
    if not path.exists():
        return "missing file"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return "not an image suffix"
    if path.stat().st_size == 0:
        return "empty file"
    if probe:
        try:
            probe_image(path)
        except Exception:  # any decoder failure means the same thing here
            return "undecodable image"
    return None


# -- video lists: a CSV of path,label (Kinetics style) --------------------------------------------
class VideoList(Dataset):
    """Clips of ``clip_len`` frames, ``stride`` apart: a random position when training,
    ``num_clips`` evenly spaced ones when evaluating, each cut into the ``VideoEval``
    transform's spatial crops (stacked, for the caller to average)."""

    mean, std = KINETICS_MEAN, KINETICS_STD

    def __init__(self, csv_path: str | Path, size: tuple[int, int], clip_len: int, *,
                 stride: int = 1, train: bool = True, num_clips: int = 1,
                 classes: list[str] | None = None, probe: bool = True,
                 split: str | None = None, name: str = "video_list",
                 transform: VideoTrain | VideoEval | None = None) -> None:
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise ValueError(f"data: video list {csv_path} does not exist")
        rows = _read_video_csv(csv_path)
        self.classes = list(classes) if classes else sorted({label for _, label in rows})
        index = {c: i for i, c in enumerate(self.classes)}
        self.size, self.clip_len, self.stride = size, clip_len, stride
        self.train, self.num_clips = train, num_clips
        self.transform = transform or (VideoTrain(Augment(), size, self.mean) if train
                                       else VideoEval(size))
        split = split or ("train" if train else "val")
        self.report = DataReport(name, split, self.classes, total=len(rows))
        self.samples: list[tuple[Path, int, int]] = []  # path, label, frames
        for raw, label in rows:
            path = Path(raw) if Path(raw).is_absolute() else csv_path.parent / raw
            reason, frames = _video_problem(path, label, index, probe)
            if reason:
                self.report.skip(reason, str(path))
                continue
            self.samples.append((path, index[label], frames))
        self.report.per_class = dict(Counter(self.classes[i] for _, i, _ in self.samples))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label, frames = self.samples[i]
        span = (self.clip_len - 1) * self.stride + 1
        if self.train:
            start = int(torch.randint(0, max(frames - span, 0) + 1, ()).item())
            starts = [start]
        else:
            starts = clip_starts(frames, self.clip_len, self.stride, self.num_clips)
        indices = [j for s in starts for j in clip_indices(frames, self.clip_len, self.stride, s)]
        video = decode_video(path, indices)  # [clips * T, 3, h, w]
        if video.dtype != torch.uint8:  # decoders before uint8 decoding gave [0, 1] floats
            video = video.mul(255).round_().to(torch.uint8)
        if self.train:
            return self.transform(video), label  # type: ignore[call-arg]
        return self.transform(video, len(starts)), label  # type: ignore[call-arg]


def _read_video_csv(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        rows = [r for r in reader if r and any(cell.strip() for cell in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    bad = [i + 1 for i, r in enumerate(rows) if len(r) < 2]
    if bad:
        raise ValueError(f"data: {path} rows {bad[:5]} do not have the columns path,label")
    return [(r[0].strip(), r[1].strip()) for r in rows]


def _video_problem(path: Path, label: str, index: dict[str, int],
                   probe: bool) -> tuple[str | None, int]:
    if label not in index:
        return "label not in the class list", 0
    if not path.exists():
        return "missing file", 0
    if path.stat().st_size == 0:
        return "empty file", 0
    if not probe:
        return None, 1_000_000  # frames unknown: clips clamp to the last decoded frame
    try:
        return None, probe_video(path)
    except Exception:  # PyAV raises several error types for broken containers
        return "undecodable video", 0


# -- repeated augmentation: k augmented copies of a sample in its batch -------------------------
class Repeated(Dataset):
    """``k`` independent draws of the base dataset's random transform per sample, stacked
    ``[k, ...]``; the training loop flattens them into the batch (SlowFast's
    ``AUG.NUM_SAMPLE``: an epoch still visits each sample once, as ``k`` views)."""

    def __init__(self, base: Dataset, k: int) -> None:
        self.base, self.k = base, k
        self.report = getattr(base, "report", None)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        views = [self.base[i] for _ in range(self.k)]
        return torch.stack([v for v, _ in views]), views[0][1]


# -- shuffled frames: how much does a model use time? (MViT, Table 9) -----------------------------
class ShuffledFrames(Dataset):
    """A video dataset with each clip's frames in a fixed random order (seeded per sample)."""

    def __init__(self, base: Dataset, seed: int = 0) -> None:
        self.base, self.seed = base, seed
        self.report = getattr(base, "report", None)
        self.classes = getattr(base, "classes", None)
        self.mean, self.std = getattr(base, "mean", None), getattr(base, "std", None)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        clip, label = self.base[i]
        return clip.index_select(-3, time_permutation(clip.shape[-3], self.seed, i)), label


def time_permutation(frames: int, seed: int, index: int) -> torch.Tensor:
    """The fixed frame order ``ShuffledFrames`` gives sample ``index``."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return torch.randperm(frames, generator=gen)
