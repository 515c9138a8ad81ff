"""Augmentation and evaluation views, from timm and torchvision.transforms.v2.

Everything here returns ``uint8`` pixels: images ``[3, H, W]``, clips ``[3, T, H, W]``,
evaluation views ``[views, 3, T, H, W]``. Conversion to float, normalisation, random erasing
and mixup / cutmix happen on the batch on the training device (``mvit_lab.train.batch``), as
timm's own prefetcher does; the workers only decode, crop and augment.

- Images: timm's ``create_transform`` in its uint8 (prefetcher) mode: random-resized crop,
  flip, RandAugment from a timm string; evaluation resizes by ``crop_pct`` then center-crops.
  Without a crop scale the whole image is resized to the model's size (no crop), as before.
- Video: one random draw per clip for every frame: torchvision.transforms.v2 treats a
  ``tv_tensors.Video`` as one image, so the crop and flip are shared; timm's RandAugment (PIL,
  one image at a time) is replayed with the same random state on each frame (``_SameDraw``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["Augment", "ImageTransforms", "VideoEval", "VideoTrain", "image_transforms",
           "pillow_safe"]


@dataclass(frozen=True)
class Augment:
    """What happens to a training sample in a worker, and how evaluation views are cut."""

    crop_scale: tuple[float, float] | None = None  # None: resize whole, no crop
    crop_ratio: tuple[float, float] = (0.75, 1.3333)
    short_side_jitter: tuple[int, int] | None = None  # video only: scale, then random crop
    hflip: float = 0.0
    rand_augment: str | None = None
    interpolation: str = "bilinear"
    eval_crop_pct: float | None = None  # None: resize whole

    @classmethod
    def of(cls, cfg: Any) -> Augment:
        """From a TrainConfig or PretrainConfig (the pretraining one crops and flips only)."""
        return cls(crop_scale=cfg.crop_scale,
                   crop_ratio=getattr(cfg, "crop_ratio", (0.75, 1.3333)),
                   short_side_jitter=getattr(cfg, "short_side_jitter", None),
                   hflip=cfg.hflip, rand_augment=getattr(cfg, "rand_augment", None),
                   interpolation=getattr(cfg, "interpolation", "bilinear"),
                   eval_crop_pct=getattr(cfg, "eval_crop_pct", None))


def _interp(name: str) -> v2.InterpolationMode:
    return v2.InterpolationMode.BICUBIC if name == "bicubic" else v2.InterpolationMode.BILINEAR


def _rand_augment(text: str, size: tuple[int, int], mean: tuple[float, ...],
                  interpolation: str) -> Callable[[Image.Image], Image.Image]:
    """timm's RandAugment with the hyper-parameters timm's create_transform gives it."""
    from timm.data import rand_augment_transform
    from timm.data.transforms import str_to_pil_interp

    params = dict(translate_const=int(min(size) * 0.45),
                  img_mean=tuple(min(255, round(255 * m)) for m in mean),
                  interpolation=str_to_pil_interp(interpolation))
    return pillow_safe(rand_augment_transform(text, params))


def _posterize(img: Image.Image, bits_to_keep: int, **kwargs: Any) -> Image.Image:
    if bits_to_keep <= 0:  # keep no bit: black, as Pillow < 13 gave
        return Image.new(img.mode, img.size)
    from timm.data.auto_augment import posterize

    return posterize(img, bits_to_keep, **kwargs)


def pillow_safe(transform: Any) -> Any:
    """timm's RandAugment with ``inc1`` asks Pillow to posterize to 0 bits at magnitude 10
    (reached under ``mstd``); Pillow 13 raises for that. The affected ops of ``transform`` (a
    RandAugment, or a Compose holding one) keep no bit instead, as older Pillow did."""
    from timm.data.auto_augment import RandAugment, posterize

    parts = getattr(transform, "transforms", [transform])
    for part in parts:
        if isinstance(part, RandAugment):
            for op in part.ops:
                if op.aug_fn is posterize:
                    op.aug_fn = _posterize
    return transform


# -- images ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageTransforms:
    train: Callable[[Image.Image], torch.Tensor]
    eval: Callable[[Image.Image], torch.Tensor]


def image_transforms(aug: Augment, size: tuple[int, int],
                     mean: tuple[float, ...]) -> ImageTransforms:
    """PIL image -> ``[3, H, W]`` uint8, for training and for evaluation."""
    from timm.data import create_transform

    common = dict(input_size=(3, *size), interpolation=aug.interpolation, mean=mean,
                  use_prefetcher=True)
    if aug.crop_scale is not None:
        train = pillow_safe(create_transform(
            is_training=True, scale=aug.crop_scale, ratio=aug.crop_ratio, hflip=aug.hflip,
            color_jitter=None, auto_augment=aug.rand_augment, re_prob=0.0, **common))
    else:  # the whole image at the model's size, then the flip and RandAugment if any
        steps: list[Any] = [v2.Resize(size, interpolation=_interp(aug.interpolation),
                                      antialias=True)]
        if aug.hflip:
            steps.append(v2.RandomHorizontalFlip(aug.hflip))
        if aug.rand_augment:
            steps.append(_rand_augment(aug.rand_augment, size, mean, aug.interpolation))
        steps.append(v2.PILToTensor())
        train = v2.Compose(steps)
    if aug.eval_crop_pct is not None:
        evaluate = create_transform(is_training=False, crop_pct=aug.eval_crop_pct,
                                    crop_mode="center", **common)
    else:
        evaluate = create_transform(is_training=False, crop_pct=1.0, crop_mode="squash",
                                    **common)
    return ImageTransforms(train=train, eval=evaluate)


# -- video ----------------------------------------------------------------------------------------
class _SameDraw:
    """Apply a PIL transform that draws from ``random`` / ``numpy`` to every frame with the
    same draws: the state is captured once per clip and restored before each frame."""

    def __init__(self, transform: Callable[[Image.Image], Image.Image]) -> None:
        self.transform = transform

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:  # [T, 3, H, W] uint8
        py_state, np_state = random.getstate(), np.random.get_state()
        out = []
        for frame in frames.permute(0, 2, 3, 1).numpy():  # [H, W, 3] each
            random.setstate(py_state)
            np.random.set_state(np_state)
            out.append(np.asarray(self.transform(Image.fromarray(frame))))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


class VideoTrain:
    """``[T, 3, h, w]`` uint8 frames -> ``[3, T, H, W]`` uint8, one random draw per clip:
    area crop jitter (``crop_scale`` x ``crop_ratio``, SlowFast's relative jitter) or short-side
    jitter then a random crop, or a plain resize; flip; RandAugment."""

    def __init__(self, aug: Augment, size: tuple[int, int], mean: tuple[float, ...]) -> None:
        interp = _interp(aug.interpolation)
        steps: list[Any] = []
        if aug.crop_scale is not None:
            steps.append(v2.RandomResizedCrop(size, scale=aug.crop_scale, ratio=aug.crop_ratio,
                                              interpolation=interp, antialias=True))
        elif aug.short_side_jitter is not None:
            low, high = aug.short_side_jitter
            steps += [v2.RandomShortestSize(list(range(low, high + 1)), interpolation=interp,
                                            antialias=True),
                      v2.RandomCrop(size, pad_if_needed=True)]
        else:
            steps.append(v2.Resize(size, interpolation=interp, antialias=True))
        if aug.hflip:
            steps.append(v2.RandomHorizontalFlip(aug.hflip))
        self.spatial = v2.Compose(steps)
        self.rand_augment = (_SameDraw(_rand_augment(aug.rand_augment, size, mean,
                                                     aug.interpolation))
                             if aug.rand_augment else None)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        clip = self.spatial(tv_tensors.Video(frames)).as_subclass(torch.Tensor)
        if self.rand_augment is not None:
            clip = self.rand_augment(clip)
        return clip.permute(1, 0, 2, 3).contiguous()  # [T, 3, H, W] -> [3, T, H, W]


class VideoEval:
    """``[clips * T, 3, h, w]`` uint8 -> ``[clips * crops, 3, T, H, W]`` uint8 views.

    The short side is resized to ``size / crop_pct`` and ``crops`` crops are cut: the center,
    or three spread along the long side (SlowFast's spatial views). Without ``crop_pct`` and
    with one crop, frames are resized whole to the model's size.
    """

    def __init__(self, size: tuple[int, int], crop_pct: float | None = None, crops: int = 1,
                 interpolation: str = "bilinear") -> None:
        self.size, self.crops = size, crops
        self.crop_pct = 1.0 if crop_pct is None and crops > 1 else crop_pct
        self.interp = _interp(interpolation)

    def __call__(self, frames: torch.Tensor, clips: int) -> torch.Tensor:
        h, w = self.size
        if self.crop_pct is None:
            frames = v2.functional.resize(frames, [h, w], interpolation=self.interp,
                                          antialias=True)
            views = [frames]
        else:
            fh, fw = frames.shape[-2:]  # scale so the view covers the model's size
            scale = max(h / fh, w / fw) / self.crop_pct
            frames = v2.functional.resize(frames, [max(h, math.floor(fh * scale)),
                                                   max(w, math.floor(fw * scale))],
                                          interpolation=self.interp, antialias=True)
            views = [self._crop(frames, k) for k in range(self.crops)]
        t = frames.shape[0] // clips
        out = [v[c * t:(c + 1) * t].permute(1, 0, 2, 3) for c in range(clips) for v in views]
        return torch.stack(out)  # [clips * crops, 3, T, H, W]

    def _crop(self, frames: torch.Tensor, k: int) -> torch.Tensor:
        h, w = self.size
        fh, fw = frames.shape[-2:]
        top, left = (fh - h) // 2, (fw - w) // 2
        if self.crops == 3:  # first, middle and last position along the long side
            if fw - w >= fh - h:
                left = [0, (fw - w) // 2, fw - w][k]
            else:
                top = [0, (fh - h) // 2, fh - h][k]
        return frames[..., top:top + h, left:left + w]
