"""Sparse MAE: encoder FLOPs at the pretraining mask ratio against the dense encoder, and
(optionally) pretraining throughput against supervised training of the same encoder.

    python benchmarks/mae.py                                  # FLOPs only (meta device, seconds)
    python benchmarks/mae.py --throughput --device cuda --batch 64 --dtype bfloat16

Writes ``benchmarks/results/mae_<device>.{json,md}``. FLOPs: every Hiera preset at Hiera's
ratios (0.6 for images, 0.9 for video), the same presets with q pooling in the first two
stage transitions only (``q_pool: 2``, how Hiera's MAE models are built), and the steps of
``hiera_ladder()`` with 8x8-token mask units (MViTv2's steps run separate-and-pad).
Throughput: one training step (forward, backward, AdamW) of the MAE with its default decoder
(8 x 512) and of the supervised model, items per second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mvit_lab import get_config, hiera_ladder, list_presets
from mvit_lab.config import ArchConfig
from mvit_lab.masking import check_sparse
from mvit_lab.measure import count_flops
from mvit_lab.measure._devices import device_name


def _configs() -> list[tuple[str, ArchConfig]]:
    out = []
    for name in list_presets():
        if name.startswith("hiera"):
            cfg = get_config(name)
            out.append((name, cfg))
            out.append((f"{name} (q_pool 2)", cfg.replace(q_pool=2)))
    for step, cfg in hiera_ladder():
        if cfg.mask_unit_size is None:
            cfg = cfg.replace(mask_unit_size=(1, 8, 8))
        out.append((f"ladder {step}", cfg))
    return out


def _step_throughput(cfg: ArchConfig, batch: int, device: str, dtype: str, iters: int,
                     mae: bool, ratio: float) -> float:
    from mvit_lab import build_model
    from mvit_lab.models.mae import MaskedAutoencoder

    dev = torch.device(device)
    model = (MaskedAutoencoder(cfg) if mae else build_model(cfg)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    shape = (batch, cfg.in_chans, *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))
    x = torch.randn(shape, device=dev)
    y = torch.randint(0, cfg.num_classes, (batch,), device=dev)
    amp = torch.autocast(dev.type, dtype=getattr(torch, dtype)) if dtype != "float32" else None

    def step() -> None:
        with amp if amp is not None else torch.autocast(dev.type, enabled=False):
            loss = (model(x, mask_ratio=ratio).loss if mae
                    else torch.nn.functional.cross_entropy(model(x).float(), y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--models", default="hiera_t,hiera_b,hiera_b_16x224",
                        help="presets for --throughput")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--video-batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = []
    for name, cfg in _configs():
        ratio = 0.6 if cfg.is_image else 0.9
        dense = count_flops(cfg)
        sparse = count_flops(cfg, mask_ratio=ratio)
        rows.append(dict(model=name, mask_ratio=ratio, dense_encoder_gflops=dense.encoder_gflops,
                         sparse_encoder_gflops=sparse.gflops,
                         fraction=sparse.gflops / dense.encoder_gflops,
                         separate_and_pad=len(check_sparse(cfg))))
        print(f"{name:34s} {dense.encoder_gflops:9.3f} -> {sparse.gflops:8.3f} GFLOPs "
              f"({100 * sparse.gflops / dense.encoder_gflops:.1f}%) at mask ratio {ratio}",
              flush=True)
    speed = []
    if args.throughput:
        for name in args.models.split(","):
            cfg = get_config(name, q_pool=2)
            batch = args.batch if cfg.is_image else args.video_batch
            ratio = 0.6 if cfg.is_image else 0.9
            row = dict(model=name, batch=batch, mask_ratio=ratio)
            for kind in ("mae", "supervised"):
                row[f"{kind}_items_per_s"] = _step_throughput(
                    cfg, batch, args.device, args.dtype, args.iters, kind == "mae", ratio)
            speed.append(row)
            print(f"{name}: MAE pretraining {row['mae_items_per_s']:.2f}/s, supervised "
                  f"{row['supervised_items_per_s']:.2f}/s (batch {batch})", flush=True)
    dev = device_name(torch.device(args.device))
    record = dict(device=dev, torch=torch.__version__, dtype=args.dtype, flops=rows,
                  throughput=speed)
    out = Path(args.out or f"benchmarks/results/mae_{args.device.split(':')[0]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Sparse MAE encoder cost: {dev}", "",
             "Encoder = stem + stages (no head). Sparse: masked mask units deleted.", "",
             "| model | mask ratio | dense encoder GFLOPs | sparse GFLOPs | fraction | "
             "separate-and-pad pools |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['mask_ratio']} | {r['dense_encoder_gflops']:.3f} | "
              f"{r['sparse_encoder_gflops']:.3f} | {100 * r['fraction']:.1f}% | "
              f"{r['separate_and_pad']} |" for r in rows]
    if speed:
        lines += ["", f"Training-step throughput ({args.device}, {args.dtype}, {args.iters} "
                      "steps after one warm-up; MAE with the 8 x 512 decoder):", "",
                  "| model | batch | MAE pretraining items/s | supervised items/s |",
                  "|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['batch']} | {r['mae_items_per_s']:.2f} | "
                  f"{r['supervised_items_per_s']:.2f} |" for r in speed]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
