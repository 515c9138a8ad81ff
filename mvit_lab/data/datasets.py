"""Datasets: bundled digits, generated moving-digit videos, image folders and video lists.

Every dataset checks its files when it is built: a missing path or broken symlink, an empty
file, an undecodable or truncated file (``probe=True`` decodes every file; videos without it
have their packets counted), or a label outside the class list is skipped with a warning and
counted in the dataset's ``DataReport``; a dataset with no usable sample is a ``ValueError``
before any training starts. Probing results are kept in the dataset's manifest
(``manifest.py``) for later trials. A file that still fails when read is replaced by the next
sample and counted (``_loadskips.py``). Samples are uint8 pixels sized for the model by the
dataset's ``transform`` (``mvit_lab.data.transforms``): images ``[3, H, W]``, training clips
``[3, T, H, W]``, evaluation views ``[views, 3, T, H, W]``. Each dataset names the ``mean``
and ``std`` that normalise it on the device.
"""

from __future__ import annotations

import csv
import difflib
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
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
    count_frames,
    decode_video,
    load_image,
    probe_image,
    probe_video,
)
from mvit_lab.data._loadskips import LoadSkips
from mvit_lab.data.manifest import Manifest, open_manifest
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
    manifest: dict[str, Any] | None = None  # where probing was cached, files reused / probed
    inferred_classes: dict[str, Any] | None = None  # the class list came from the labels
    load_skips: LoadSkips | None = field(default=None, repr=False, compare=False)

    @property
    def usable(self) -> int:
        return sum(self._merged()[0].values())

    def _merged(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        """Per-class counts and skips, with the files that failed while loading (so far, in
        any worker) moved from the first to the second."""
        if self.load_skips is None:
            return self.per_class, self.skipped
        per_class, skipped = dict(self.per_class), {k: list(v) for k, v in self.skipped.items()}
        for entry in self.load_skips.read():
            reason = f"{entry['reason']} (found while loading)"
            skipped.setdefault(reason, []).append(entry["path"])
            if per_class.get(entry["label"]):
                per_class[entry["label"]] -= 1
        return per_class, skipped

    def skip(self, reason: str, path: str) -> None:
        log.warning("%s %s: skipping %s (%s)", self.dataset, self.split, path, reason)
        self.skipped.setdefault(reason, []).append(path)

    def to_dict(self) -> dict[str, Any]:
        per_class, skipped = self._merged()
        out = dict(dataset=self.dataset, split=self.split, classes=self.classes,
                   total=self.total, usable=sum(per_class.values()), per_class=per_class,
                   skipped=skipped)
        if self.manifest is not None:
            out["manifest"] = self.manifest
        if self.inferred_classes is not None:
            out["inferred_classes"] = self.inferred_classes
        return out

    def summary(self) -> str:
        _, merged = self._merged()
        skipped = sum(len(v) for v in merged.values())
        reasons = ", ".join(f"{len(v)} {k}" for k, v in merged.items())
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
                     if is_listed(p)]
            classes = classes or found
        else:
            classes = classes or sorted({c for _, c in files})
        self.classes = list(classes)
        self.size = size
        self.transform = transform or image_transforms(Augment(), size, self.mean).eval
        index = {c: i for i, c in enumerate(self.classes)}
        self.report = DataReport("image_folder", split, self.classes, total=len(files))
        self.samples: list[tuple[Path, int]] = []
        reasons = [_image_problem(path, label, index) for path, label in files]
        with _manifest(root, probe, self.report) as manifest:
            if manifest is not None:  # probing: decode once per dataset, then reuse
                todo = [i for i, r in enumerate(reasons) if r is None]
                checked = manifest.check_all([files[i][0] for i in todo], "decoded",
                                             probe_image, image_reason)
                for i, (reason, _) in zip(todo, checked):
                    reasons[i] = reason
        for (path, label), reason in zip(files, reasons):
            if reason:
                self.report.skip(reason, str(path))
                continue
            self.samples.append((path, index[label]))
        self.report.per_class = dict(Counter(self.classes[i] for _, i in self.samples))
        self.report.load_skips = LoadSkips(self.report.dataset, split)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """Sample ``i``, or, if its file fails to load, the next that loads (counted)."""
        return self.report.load_skips.load(i, len(self.samples), self._load,  # type: ignore
                                           self._describe)

    def _describe(self, i: int, err: BaseException) -> tuple[str, str, str]:
        path, label = self.samples[i]
        return str(path), self.classes[label], image_reason(err)

    def _load(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return self.transform(load_image(path)), label


def is_listed(path: Path) -> bool:
    """A file of an image folder: not hidden, and a file or a broken symlink (which is then
    counted as skipped rather than silently missing)."""
    return not path.name.startswith(".") and (
        path.is_file() or (path.is_symlink() and not path.exists()))


def image_reason(err: BaseException) -> str:
    """Why an image failed: Pillow refuses images over ``Image.MAX_IMAGE_PIXELS * 2`` pixels
    (a decompression bomb, or a real but huge image) before decoding them."""
    if isinstance(err, Image.DecompressionBombError):
        return "image too large (Pillow's decompression-bomb limit)"
    return "missing file" if isinstance(err, FileNotFoundError) else "undecodable image"


def _image_problem(path: Path, label: str, index: dict[str, int]) -> str | None:
    """What is wrong with a file before decoding it, if anything."""
    if label not in index:
        return "label not in the class list"
    if not path.exists():
        return "broken symlink" if path.is_symlink() else "missing file"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return "not an image suffix"
    if path.stat().st_size == 0:
        return "empty file"
    return None


@contextmanager
def _manifest(dataset: Path, probe: bool, report: DataReport) -> Iterator[Manifest | None]:
    """The dataset's manifest while probing (``None`` when nothing needs it); what it did
    goes into the report."""
    if not probe:
        yield None
        return
    with open_manifest(dataset) as manifest:
        yield manifest
        report.manifest = dict(path=str(manifest.path) if manifest.path else None,
                               reused=manifest.reused, probed=manifest.probed)


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
        if not classes:
            self.report.inferred_classes = infer_classes_warning(
                Counter(label for _, label in rows), str(csv_path))
        self.samples: list[tuple[Path, int, int]] = []  # path, label, frames
        paths = [Path(raw) if Path(raw).is_absolute() else csv_path.parent / raw
                 for raw, _ in rows]
        checked: list[tuple[str | None, int | None]] = [
            (_video_problem(path, label, index), None) for path, (_, label) in zip(paths, rows)]
        # probing decodes every frame; otherwise the packets are counted, not decoded
        level, count = ("decoded", probe_video) if probe else ("counted", count_frames)
        with _manifest(csv_path, True, self.report) as manifest:  # frame counts, always
            todo = [i for i, (r, _) in enumerate(checked) if r is None]
            probed = manifest.check_all([paths[i] for i in todo], level, count,
                                        "undecodable video")
            for i, result in zip(todo, probed):
                checked[i] = result
        for path, (_, label), (reason, frames) in zip(paths, rows, checked):
            if reason:
                self.report.skip(reason, str(path))
                continue
            self.samples.append((path, index[label], frames or 0))
        self.report.per_class = dict(Counter(self.classes[i] for _, i, _ in self.samples))
        self.report.load_skips = LoadSkips(name, split)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """Sample ``i``, or, if its file fails to load, the next that loads (counted)."""
        return self.report.load_skips.load(i, len(self.samples), self._load,  # type: ignore
                                           self._describe)

    def _describe(self, i: int, err: BaseException) -> tuple[str, str, str]:
        path, label, _ = self.samples[i]
        reason = "missing file" if isinstance(err, FileNotFoundError) else "undecodable video"
        return str(path), self.classes[label], reason

    def _load(self, i: int) -> tuple[torch.Tensor, int]:
        path, label, frames = self.samples[i]
        span = (self.clip_len - 1) * self.stride + 1
        if self.train:
            start = int(torch.randint(0, max(frames - span, 0) + 1, ()).item())
            starts = [start]
        else:
            starts = clip_starts(frames, self.clip_len, self.stride, self.num_clips)
        indices = [j for s in starts for j in clip_indices(frames, self.clip_len, self.stride, s)]
        video = decode_video(path, indices)  # [clips * T, 3, h, w] uint8
        if self.train:
            return self.transform(video), label  # type: ignore[call-arg]
        return self.transform(video, len(starts)), label  # type: ignore[call-arg]


def infer_classes_warning(counts: Counter[str], source: str) -> dict[str, Any]:
    """Warn that the class list (and so ``num_classes``) comes from the labels in ``source``,
    naming labels that look like typos: rare ones close to a label with many more samples.

    A warning, not an error: inferring the list is documented and convenient (Kinetics has
    400 classes), and rare classes are legitimate in long-tailed data; the typo check is a
    heuristic. The result goes into the data report."""
    suspects = {}
    for label, n in counts.items():
        common = [c for c, m in counts.items() if m >= max(5 * n, n + 2)]
        close = difflib.get_close_matches(label, common, n=1, cutoff=0.8)
        if close:
            suspects[label] = dict(samples=n, resembles=close[0], its_samples=counts[close[0]])
    detail = "".join(f"; {label!r} ({s['samples']} samples) looks like a typo of "
                     f"{s['resembles']!r} ({s['its_samples']})" for label, s in suspects.items())
    log.warning("data.classes is not set: %d classes taken from the labels in %s%s; list them "
                "in data.classes to pin num_classes", len(counts), source, detail)
    return dict(source=source, num_classes=len(counts), suspected_typos=suspects)


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


def _video_problem(path: Path, label: str, index: dict[str, int]) -> str | None:
    """What is wrong with a file before opening it, if anything."""
    if label not in index:
        return "label not in the class list"
    if not path.exists():
        return "broken symlink" if path.is_symlink() else "missing file"
    if path.stat().st_size == 0:
        return "empty file"
    return None


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
