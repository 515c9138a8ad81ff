"""Time mvit-lab's presets against timm / torchvision / official Hiera, alternating in one process.

    python benchmarks/compare_references.py                      # CPU, fp32 (the committed run)
    python benchmarks/compare_references.py --device cuda --dtype bfloat16 --batch 64 \\
        --video-batch 8 --models mvitv2_s,mvitv2_b,mvitv2_l,hiera_b,hiera_l --ladder

Each round times mvit-lab's model and the reference on the same input, device, dtype and
batch, one after the other, so drifts in clock speed or load hit both; the ratio is taken of
the median throughputs. Writes ``<out>.json`` (device, versions, every round) and ``<out>.md``.
Needs the dev extras (timm, torchvision, hiera-transformer).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import statistics
from pathlib import Path

import torch

from mvit_lab import build_model, get_config, hiera_ladder
from mvit_lab.measure import Protocol, count_flops, measure_throughput
from mvit_lab.measure._devices import device_name

# preset -> (source, reference model name)
PAIRS = {
    "mvitv2_t": ("timm", "mvitv2_tiny"),
    "mvitv2_s": ("timm", "mvitv2_small"),
    "mvitv2_b": ("timm", "mvitv2_base"),
    "mvitv2_l": ("timm", "mvitv2_large"),
    "hiera_t": ("timm", "hiera_tiny_224"),
    "hiera_b": ("timm", "hiera_base_224"),
    "hiera_l": ("timm", "hiera_large_224"),
    "mvitv1_b_16x4": ("torchvision", "mvit_v1_b"),
    "mvitv2_s_16x4": ("torchvision", "mvit_v2_s"),
    "hiera_b_16x224": ("hiera", "hiera_base_16x224"),
}


def reference_model(source: str, name: str) -> torch.nn.Module:
    if source == "timm":
        import timm

        return timm.create_model(name, pretrained=False)
    if source == "torchvision":
        from torchvision.models import video

        return getattr(video, name)()
    import hiera

    return getattr(hiera, name)(pretrained=False)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("mvit-lab", "torch", "timm", "torchvision", "hiera-transformer"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def compare(preset: str, args: argparse.Namespace) -> dict:
    cfg = get_config(preset)
    batch = args.batch if cfg.is_image else args.video_batch
    source, ref_name = PAIRS[preset]
    ours = build_model(cfg)
    ref = reference_model(source, ref_name)
    if source == "hiera":
        ref.head.act_func = torch.nn.Identity()  # logits, as ours (the original softmaxes)
    shape = (cfg.in_chans, *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))
    gflops = count_flops(cfg).gflops
    kw = dict(batch_size=batch, device=args.device, dtype=args.dtype, mode=args.mode,
              compile=args.compile, protocol=Protocol.fixed(1, iters=args.iters, warmup=1))
    # warm both up (allocator, kernels, compilation) before any timed round
    warm = dict(kw, protocol=Protocol.fixed(1, iters=1, warmup=args.warmup))
    measure_throughput(ours, shape, **warm)
    measure_throughput(ref, shape, **warm)
    rounds = []
    for _ in range(args.rounds):
        a = measure_throughput(ours, shape, **kw)
        b = measure_throughput(ref, shape, **kw)
        rounds.append(dict(ours=a.items_per_s, reference=b.items_per_s,
                           ours_memory_mb=a.peak_memory_mb, reference_memory_mb=b.peak_memory_mb))
    ours_rate = statistics.median(r["ours"] for r in rounds)
    ref_rate = statistics.median(r["reference"] for r in rounds)
    spread = lambda xs: (max(xs) - min(xs)) / statistics.median(xs)  # noqa: E731
    peak = a.peak_tflops
    mult = 3 if args.mode == "train" else 1
    result = dict(
        preset=preset, reference=f"{source} {ref_name}", batch=batch, gflops=gflops,
        ours_items_per_s=ours_rate, reference_items_per_s=ref_rate, ratio=ours_rate / ref_rate,
        ours_spread=spread([r["ours"] for r in rounds]),
        reference_spread=spread([r["reference"] for r in rounds]),
        ours_mfu=2 * gflops * 1e9 * mult * ours_rate / (peak * 1e12),
        reference_mfu=2 * gflops * 1e9 * mult * ref_rate / (peak * 1e12),
        peak_tflops=peak, peak_source=a.peak_source,
        ours_memory_mb=max(r["ours_memory_mb"] for r in rounds),
        reference_memory_mb=max(r["reference_memory_mb"] for r in rounds),
        memory_kind=a.memory_kind, rounds=rounds,
    )
    print(f"{preset:16s} ours {ours_rate:8.2f}/s  {result['reference']:28s} {ref_rate:8.2f}/s  "
          f"ratio {result['ratio']:.3f}", flush=True)
    return result


def ladder(args: argparse.Namespace) -> list[dict]:
    rows = []
    kw = dict(batch_size=args.batch, device=args.device, dtype=args.dtype, mode=args.mode,
              compile=args.compile,
              protocol=Protocol.fixed(args.rounds, iters=args.iters, warmup=args.warmup))
    for step, cfg in hiera_ladder():
        r = measure_throughput(build_model(cfg), **kw)
        rows.append(dict(step=step, gflops=r.gflops_per_item, items_per_s=r.items_per_s,
                         spread=r.spread, mfu=r.mfu))
        print(f"{step:22s} {r.gflops_per_item:7.2f} GFLOPs  {r.items_per_s:8.2f}/s", flush=True)
    for row in rows:
        row["speedup"] = row["items_per_s"] / rows[0]["items_per_s"]
    return rows


def markdown(record: dict) -> str:
    lines = [f"# mvit-lab vs reference implementations: {record['device_name']}", "",
             f"{record['date']}; {record['mode']}, {record['dtype']}, image batch "
             f"{record['batch']}, video batch {record['video_batch']}, {record['rounds']} "
             f"alternating rounds of {record['iters']} iterations; versions: "
             + ", ".join(f"{k} {v}" for k, v in record["versions"].items()), "",
             "| preset | reference | GFLOPs | mvit-lab /s | reference /s | ratio | spread "
             "(ours / ref) | MFU (ours / ref) |", "|---|---|---|---|---|---|---|---|"]
    for r in record["results"]:
        lines.append(f"| {r['preset']} | {r['reference']} | {r['gflops']:.2f} | "
                     f"{r['ours_items_per_s']:.2f} | {r['reference_items_per_s']:.2f} | "
                     f"**{r['ratio']:.3f}** | {100 * r['ours_spread']:.1f}% / "
                     f"{100 * r['reference_spread']:.1f}% | {100 * r['ours_mfu']:.1f}% / "
                     f"{100 * r['reference_mfu']:.1f}% |")
    if record.get("ladder"):
        lines += ["", "Hiera ladder (mvit-lab only):", "",
                  "| step | GFLOPs | /s | speed-up |", "|---|---|---|---|"]
        for r in record["ladder"]:
            lines.append(f"| {r['step']} | {r['gflops']:.2f} | {r['items_per_s']:.2f} | "
                         f"{r['speedup']:.2f}x |")
    lines.append(f"\nMFU peak: {record['results'][0]['peak_tflops']:.2f} TFLOP/s "
                 f"({record['results'][0]['peak_source']})." if record["results"] else "")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--mode", default="infer", choices=["infer", "train"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--video-batch", type=int, default=1)
    parser.add_argument("--models", default="mvitv2_t,mvitv2_s,hiera_t,hiera_b")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--ladder", action="store_true", help="also time the Hiera ladder")
    parser.add_argument("--out", default=None, help="output path without suffix")
    args = parser.parse_args()
    torch.manual_seed(0)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in PAIRS]
    if unknown:
        parser.error(f"--models: no reference pair for {unknown}; known: {', '.join(PAIRS)}")
    dev = torch.device(args.device)
    record = dict(
        device=args.device, device_name=device_name(dev), dtype=args.dtype, mode=args.mode,
        batch=args.batch, video_batch=args.video_batch, rounds=args.rounds, iters=args.iters,
        compile=args.compile, threads=torch.get_num_threads(), versions=_versions(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        results=[compare(m, args) for m in models],
    )
    if args.ladder:
        record["ladder"] = ladder(args)
    out = Path(args.out or f"benchmarks/results/{dev.type}_{args.dtype}_{args.mode}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    print(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
