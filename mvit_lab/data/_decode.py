"""Decoding images (Pillow) and videos (PyAV) into float tensors, and checking files up front."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["clip_indices", "clip_starts", "decode_image", "decode_video", "normalise",
           "probe_image", "probe_video", "resize", "to_clip_layout"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[..., C, H, W]`` float -> ``[..., C, *size]`` (bilinear, antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*lead, *out.shape[-3:])


def decode_image(path: str | Path) -> torch.Tensor:
    """An image file as ``[3, H, W]`` floats in [0, 1]."""
    with Image.open(path) as img:
        array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)


def probe_image(path: str | Path) -> None:
    """Raise if the file is not a fully decodable image."""
    with Image.open(path) as img:
        img.load()


def decode_video(path: str | Path, indices: list[int] | None = None) -> torch.Tensor:
    """Frames of a video as ``[T, 3, H, W]`` floats in [0, 1].

    ``indices`` (ascending is not required) selects frames; decoding stops after the last one
    needed. Indices past the end repeat the last frame (short videos).
    """
    wanted = None if indices is None else max(indices)
    frames = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if wanted is not None and len(frames) > wanted:
                break
    if not frames:
        raise ValueError(f"{path}: no decodable frames")
    if indices is not None:
        frames = [frames[min(i, len(frames) - 1)] for i in indices]
    array = np.stack(frames)  # [T, H, W, 3]
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255)


def probe_video(path: str | Path) -> int:
    """Decode every frame (catching truncation) and return the frame count."""
    count = 0
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        for _ in container.decode(container.streams.video[0]):
            count += 1
    if count == 0:
        raise ValueError("no decodable frames")
    return count


def clip_indices(num_frames: int, clip_len: int, stride: int, start: int) -> list[int]:
    """``clip_len`` frame indices ``start, start + stride, ...`` (past the end: the last)."""
    return [min(start + i * stride, num_frames - 1) for i in range(clip_len)]


def clip_starts(num_frames: int, clip_len: int, stride: int, num_clips: int) -> list[int]:
    """``num_clips`` evenly spaced start frames covering the video (evaluation)."""
    span = (clip_len - 1) * stride + 1
    last = max(num_frames - span, 0)
    if num_clips == 1:
        return [last // 2]
    return [round(i * last / (num_clips - 1)) for i in range(num_clips)]


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``[..., 3, H, W]`` -> normalised per channel."""
    shape = (3, 1, 1)
    return (x - torch.tensor(mean).reshape(shape)) / torch.tensor(std).reshape(shape)


def to_clip_layout(frames: torch.Tensor) -> torch.Tensor:
    """``[T, C, H, W]`` -> ``[C, T, H, W]`` (the model's video layout)."""
    return frames.permute(1, 0, 2, 3).contiguous()

