"""Decoding images (Pillow) and videos (PyAV) into uint8 tensors, and checking files up front."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import get_worker_info

from mvit_lab.data._seek import decode_frames, read_index

log = logging.getLogger(__name__)

__all__ = ["clip_indices", "clip_starts", "count_frames", "decode_from_start", "decode_image",
           "decode_video", "load_image", "normalise", "probe_image", "probe_video", "resize",
           "to_clip_layout"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)
# single-channel modes wider than 8 bits (16-bit PNG / TIFF; "I" is how older Pillows and
# some TIFFs hold them)
HIGH_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
THREAD_TYPE: str | None = None  # set to force one (benchmarks); see thread_type()


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[..., C, H, W]`` float -> ``[..., C, *size]`` (bilinear, antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*lead, *out.shape[-3:])


def load_image(path: str | Path) -> Image.Image:
    """An image file as an 8-bit RGB Pillow image; 16-bit images are scaled to 8 bits (for
    transforms that take Pillow images)."""
    with Image.open(path) as img:
        if img.mode in HIGH_BIT_MODES:
            # Pillow's convert("RGB") clips these to 255: a 16-bit PNG came out white
            wide = np.asarray(img).astype(np.int64).clip(0, 65535)
            gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
            return Image.fromarray(gray).convert("RGB")  # uint8 [H, W]: mode L
        return img.convert("RGB")


def decode_image(path: str | Path) -> torch.Tensor:
    """An image file as ``[3, H, W]`` uint8 (RGB); 16-bit images are scaled to 8 bits."""
    array = np.asarray(load_image(path), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def probe_image(path: str | Path) -> None:
    """Raise if the file is not a fully decodable image."""
    with Image.open(path) as img:
        img.load()


def decode_video(path: str | Path, indices: list[int] | None = None) -> torch.Tensor:
    """Frames of a video as ``[T, 3, H, W]`` uint8 (RGB).

    ``indices`` (ascending is not required, repeats allowed) selects frames by their position
    in presentation order; indices past the end repeat the last frame (short videos). The
    frames are exactly those a decode from the first frame gives; see ``_seek.py`` for how
    only the needed stretches are decoded.
    """
    with av.open(str(path)) as container:
        stream = _video_stream(container, path)
        if indices is None:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        else:
            frames = decode_frames(container, stream, indices)
    if frames is None:  # timestamps the seek cannot trust: decode from the start
        frames = decode_from_start(path, indices)
    if not frames:
        raise ValueError(f"{path}: no decodable frames")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)  # [T, H, W, 3] -> [T, 3, H, W]


def decode_from_start(path: str | Path, indices: list[int] | None) -> list[np.ndarray]:
    """Decode from the first frame up to the last index needed (``[H, W, 3]`` uint8 each);
    the reference the seeking decode must match, and its fallback."""
    wanted = None if indices is None else set(indices)
    last = None if indices is None else max(indices)
    kept: dict[int, np.ndarray] = {}
    count = 0
    with av.open(str(path)) as container:
        stream = _video_stream(container, path)
        for frame in container.decode(stream):
            if wanted is None or count in wanted:
                kept[count] = frame.to_ndarray(format="rgb24")
            previous = frame
            count += 1
            if last is not None and count > last:
                break
    if count == 0:
        return []
    if indices is None:
        return [kept[i] for i in range(count)]
    if count - 1 not in kept:  # the last decoded frame stands in for indices past the end
        kept[count - 1] = previous.to_ndarray(format="rgb24")
    return [kept[min(i, count - 1)] for i in indices]


def count_frames(path: str | Path) -> int:
    """The number of frames of a video's first video stream, read from its packets.

    Demuxing reads the packets' timestamps without decoding (milliseconds for a Kinetics
    clip). The container's own ``frames`` field is empty for many formats (WebM, MKV) and
    ``duration * rate`` is an estimate, so neither is trusted; the packet count is checked
    against the container's count when it has one. Truncated or corrupt data is only found
    by ``probe_video``, which decodes.
    """
    with av.open(str(path)) as container:
        stream = _video_stream(container, path)
        declared = stream.frames
        index = read_index(container, stream)
    count = index.num_frames
    if count == 0:
        raise ValueError("no video packets")
    if declared and declared != count:
        log.warning("%s: the container declares %d frames, its packets hold %d; using %d",
                    path, declared, count, count)
    return count


def probe_video(path: str | Path) -> int:
    """Decode every frame (catching truncation) and return the frame count. On one thread:
    the manifest probes many files at once, one per CPU."""
    count = 0
    with av.open(str(path)) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "NONE"
        for _ in container.decode(stream):
            count += 1
    if count == 0:
        raise ValueError("no decodable frames")
    return count


def thread_type() -> str:
    """FFmpeg's threading for a decode: its own threads in the main process, none inside a
    DataLoader worker, where the workers are the parallelism (frame threads there only add
    CPU: 5-20% more per clip here, and cores x workers threads)."""
    if THREAD_TYPE is not None:
        return THREAD_TYPE
    return "AUTO" if get_worker_info() is None else "NONE"


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.VideoStream:
    if not container.streams.video:
        raise ValueError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = thread_type()
    return stream


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

