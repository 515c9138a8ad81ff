"""Moving digits: generated videos whose label needs both appearance and motion.

A handwritten digit (scikit-learn's bundled digits) slides across a dark canvas, left to right
or right to left. The label is (digit, direction), so with the frames shuffled a model can
still read the digit but not the direction: top-1 on shuffled frames shows how much it uses
time. Clips are written once as H.264 files through PyAV, with ``train.csv`` / ``val.csv``
(``path,label``) beside them, and read back through the same ``VideoList`` path as any user's
videos. Train clips use the digits' train split, val clips the val split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import av
import numpy as np
import torch

from mvit_lab.data.datasets import load_digits_split

__all__ = ["DIRECTIONS", "class_names", "generate_moving_digits"]

log = logging.getLogger(__name__)

DIRECTIONS = ("right", "left")


def class_names(digits: tuple[int, ...]) -> list[str]:
    return [f"{d}_{direction}" for d in digits for direction in DIRECTIONS]


def generate_moving_digits(root: str | Path, *, num_train: int = 1000, num_val: int = 300,
                           frames: int = 16, canvas: int = 32, glyph: int = 12,
                           digits: tuple[int, ...] = (0, 1, 2, 3, 4), seed: int = 0) -> Path:
    """Write the clips (once) under ``root/<parameters hash>/`` and return that folder."""
    params = dict(num_train=num_train, num_val=num_val, frames=frames, canvas=canvas,
                  glyph=glyph, digits=list(digits), seed=seed, version=1)
    if canvas % 2 or canvas < glyph + frames or glyph < 4:
        raise ValueError(f"data: moving digits need an even canvas >= glyph + frames "
                         f"({glyph} + {frames}), got {canvas}")
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    out = Path(root).expanduser() / f"moving_digits_{key}"
    if (out / "val.csv").is_file():
        return out
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    train_x, train_y, val_x, val_y = load_digits_split(0.2, seed)
    rng = np.random.default_rng(seed)
    for split, images, labels, n in (("train", train_x, train_y, num_train),
                                     ("val", val_x, val_y, num_val)):
        keep = torch.isin(labels, torch.tensor(digits))
        images, labels = images[keep], labels[keep]
        rows = []
        for i in range(n):
            j = int(rng.integers(len(labels)))
            direction = int(rng.integers(len(DIRECTIONS)))
            clip = _render(images[j].numpy(), direction, frames, canvas, glyph, rng)
            name = f"{split}/{i:05d}.mp4"
            (tmp / split).mkdir(exist_ok=True)
            _write_h264(tmp / name, clip)
            rows.append(f"{name},{int(labels[j])}_{DIRECTIONS[direction]}")
        (tmp / f"{split}.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (tmp / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    try:
        tmp.rename(out)  # atomic: concurrent trials either win or find the finished folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("moving digits written to %s", out)
    return out


def _render(digit: np.ndarray, direction: int, frames: int, canvas: int, glyph: int,
            rng: np.random.Generator) -> np.ndarray:
    """``[frames, canvas, canvas, 3]`` uint8: the digit moving one pixel per frame."""
    g = torch.nn.functional.interpolate(torch.from_numpy(digit)[None, None], size=(glyph, glyph),
                                        mode="bilinear", align_corners=False)[0, 0].numpy()
    travel = frames - 1
    x0 = int(rng.integers(0, canvas - glyph - travel + 1))
    y = int(rng.integers(0, canvas - glyph + 1))
    out = np.zeros((frames, canvas, canvas), dtype=np.float32)
    for t in range(frames):
        x = x0 + t if DIRECTIONS[direction] == "right" else x0 + travel - t
        out[t, y:y + glyph, x:x + glyph] = g
    video = (np.clip(out, 0, 1) * 255).astype(np.uint8)
    return np.repeat(video[..., None], 3, axis=-1)


def _write_h264(path: Path, video: np.ndarray, fps: int = 8) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast", "threads": "1"}
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
