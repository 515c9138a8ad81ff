"""Image training pipeline throughput at the ``mvitv2_in1k`` augmentation: ours against timm's
``create_transform`` with the same settings, one DataLoader worker each, side by side.

    python benchmarks/train_pipeline.py                  # 256 JPEGs, 5 alternating rounds

The script writes ImageNet-like JPEGs (500 x 375, quality 90, smooth content plus noise), then
times full passes over them, alternating the two pipelines round by round:

- ours: ``ImageFolder`` with ``image_transforms`` (timm's transforms in uint8 mode: random
  resized crop 0.08-1, flip, ``rand-m9-n6-mstd0.5-inc1``, bicubic), batches of uint8; the
  normalisation, random erasing (0.25) and mixup / cutmix run on the batch on the device
  (``BatchPrep``), timed separately here on the CPU.
- timm: the same files through ``create_transform(is_training=True, ...)`` with the same
  settings and random erasing 0.25 (pixel mode), which normalises and erases in the worker,
  as a timm training script without its prefetcher does.

Both pipelines get ``pillow_safe`` (timm's posterize at 0 bits fails on Pillow 13).
Writes ``benchmarks/results/train_pipeline.{json,md}``: images/s per round, medians, the
ratio of medians and its spread (min and max of the per-round ratios).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mvit_lab.data.datasets import ImageFolder
from mvit_lab.data.transforms import Augment, image_transforms, pillow_safe
from mvit_lab.experiment import TrainConfig
from mvit_lab.measure._devices import device_name
from mvit_lab.recipes import get_recipe
from mvit_lab.train.batch import BatchPrep

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def make_jpegs(root: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / f"class_{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        low = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)  # smooth shapes, upsampled
        img = Image.fromarray(low).resize((500, 375), Image.BICUBIC)
        pixels = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (375, 500, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg",
                                                                    quality=90)


class _TimmFolder(Dataset):
    def __init__(self, files: list[tuple[Path, int]], transform) -> None:
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path, label = self.files[i]
        with Image.open(path) as img:
            return self.transform(img.convert("RGB")), label


def _recipe() -> TrainConfig:
    values = {k.split(".", 1)[1]: v for k, v in get_recipe("mvitv2_in1k").values.items()
              if k.startswith("train.")}
    return TrainConfig(**values)


def _pass(loader: DataLoader) -> float:
    start = time.perf_counter()
    n = sum(len(y) for _, y in loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "train_pipeline"))
    args = parser.parse_args()
    from timm.data import create_transform

    cfg = _recipe()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_jpegs(root, args.images)
        ours_ds = ImageFolder(root, (224, 224), probe=False,
                              transform=image_transforms(Augment.of(cfg), (224, 224), MEAN).train)
        timm_tf = pillow_safe(create_transform(
            (3, 224, 224), is_training=True, scale=cfg.crop_scale, ratio=cfg.crop_ratio,
            hflip=cfg.hflip, color_jitter=None, auto_augment=cfg.rand_augment,
            interpolation=cfg.interpolation, mean=MEAN, std=STD, re_prob=cfg.random_erasing,
            re_mode="pixel", re_count=1))
        timm_ds = _TimmFolder(ours_ds.samples, timm_tf)
        loaders = {name: DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=1,
                                    persistent_workers=True, prefetch_factor=4)
                   for name, ds in (("ours", ours_ds), ("timm", timm_ds))}
        for loader in loaders.values():
            _pass(loader)  # warm-up: worker start, imports, file cache
        rounds: dict[str, list[float]] = {"ours": [], "timm": []}
        for r in range(args.rounds):
            order = ("ours", "timm") if r % 2 == 0 else ("timm", "ours")
            for name in order:
                rounds[name].append(_pass(loaders[name]))
        # the device side of ours, here on the CPU: normalise, erase, mixup / cutmix
        prep = BatchPrep(MEAN, STD, torch.device("cpu"), cfg, num_classes=1000)
        x = torch.randint(0, 256, (args.batch, 3, 224, 224), dtype=torch.uint8)
        y = torch.randint(0, 1000, (args.batch,))
        prep.train(x, y)
        start = time.perf_counter()
        for _ in range(10):
            prep.train(x, y)
        device_side = 10 * args.batch / (time.perf_counter() - start)
    ratios = [o / t for o, t in zip(rounds["ours"], rounds["timm"])]
    median = {k: statistics.median(v) for k, v in rounds.items()}
    import timm
    import torchvision

    record = dict(
        benchmark="train_pipeline", device_name=device_name(torch.device("cpu")),
        cpu=platform.processor(),
        images=args.images, image_size=[500, 375], batch=args.batch, workers=1,
        recipe="mvitv2_in1k", versions=dict(torch=torch.__version__, timm=timm.__version__,
                                            torchvision=torchvision.__version__),
        rounds=rounds, median_images_per_s=median,
        ratio_of_medians=median["ours"] / median["timm"],
        round_ratios=ratios, ratio_spread=[min(ratios), max(ratios)],
        ours_device_side_images_per_s_on_cpu=device_side)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    md = [f"# Image training pipeline, mvitv2_in1k augmentation: {record['device_name']}", "",
          f"{args.images} JPEGs of 500x375, batch {args.batch}, one DataLoader worker, "
          f"{args.rounds} alternating passes each.", "",
          "| pipeline | median images/s | rounds |", "|---|---|---|"]
    for name in ("ours", "timm"):
        md.append(f"| {name} | {median[name]:.1f} | "
                  + ", ".join(f"{v:.1f}" for v in rounds[name]) + " |")
    md += ["", f"ours / timm: {record['ratio_of_medians']:.2f} (per-round ratios "
               f"{min(ratios):.2f} to {max(ratios):.2f}).",
           f"Ours leaves normalisation, erasing and mixup to the device: on this CPU they run "
           f"at {device_side:.0f} images/s in the main process (a GPU does them in "
           f"microseconds)."]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
