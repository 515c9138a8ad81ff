"""Which figure of a timing repeats best: the most consistent window's median, or the median
of every block? Both computed from the very same blocks.

    python benchmarks/estimators.py --mode train --repeats 3   # measure, then compare
    python benchmarks/estimators.py --analyse FILE.json         # compare recorded blocks

The six architectures of ``cost_stability.py`` (pool_mode x embed_dim on the quickstart's
base), each measured ``--repeats`` times in this process against the reference model, as a
sweep's trials measure on the CPU (batch 32, 2 threads; repeats interleaved across the
architectures). Every block of every measurement is kept; each estimator turns a
measurement's blocks into one reference ratio, and the table gives how far apart one
architecture's repeats land (``|a - b| / min(a, b)`` over all pairs of repeats: median, mean,
worst). ``window`` is the figure of protocol ``blocks-v2`` (the median of the ``min_blocks``
consecutive blocks whose ratios agree best), ``all`` that of ``blocks-v3`` (the median over
every block). Writes ``benchmarks/results/estimators_<mode>.json`` and prints a markdown
table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = dict(input_size=(1, 16, 16), patch_kernel=(1, 3, 3), patch_stride=(1, 2, 2),
            patch_padding=(0, 1, 1), depths=(1, 2, 1), num_heads=1, kv_stride=(1, 2, 2),
            num_classes=10)
MIN_BLOCKS = 5  # Protocol().min_blocks


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def window(ratios: list[float]) -> float:
    """blocks-v2: the median of the most consistent ``MIN_BLOCKS`` consecutive ratios (the
    last such window on a tie)."""
    size = min(MIN_BLOCKS, len(ratios))
    starts = range(len(ratios) - size, -1, -1)
    best = min(starts, key=lambda i: (_spread(ratios[i:i + size]), -i))
    return statistics.median(ratios[best:best + size])


def every(ratios: list[float]) -> float:
    """blocks-v3: the median over every block."""
    return statistics.median(ratios)


def first(ratios: list[float]) -> float:
    """For scale: the first ``MIN_BLOCKS`` blocks alone (a fixed-length timing)."""
    return statistics.median(ratios[:MIN_BLOCKS])


ESTIMATORS = {"window (blocks-v2)": window, "all (blocks-v3)": every,
              f"first {MIN_BLOCKS} blocks": first}


def measure(mode: str, repeats: int, threads: int) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    import torch

    import mvit_lab.measure.speed as speed
    from mvit_lab.build import build_model
    from mvit_lab.measure.protocol import Protocol
    from mvit_lab.presets import get_config

    torch.set_num_threads(threads)
    captured = []
    timed = speed._timed_blocks

    def keep(steps, dev, iters, protocol):
        blocks = timed(steps, dev, iters, protocol)
        captured.append((iters, blocks))
        return blocks

    speed._timed_blocks = keep
    out = []
    for rep in range(repeats):
        for pool_mode, width in itertools.product(["conv", "max", "avg"], [16, 32]):
            cfg = get_config("mvitv2_t", pool_mode=pool_mode, embed_dim=width, **BASE)
            torch.manual_seed(0)
            began = time.perf_counter()
            r = speed.measure_throughput(build_model(cfg), batch_size=32, mode=mode,
                                         protocol=Protocol(reference=True))
            iters, blocks = captured[-1]
            out.append(dict(rep=rep, arch=f"{pool_mode},{width}", ratio=r.reference_ratio,
                            spread=r.spread, protocol=r.protocol, blocks=blocks, iters=iters,
                            seconds=time.perf_counter() - began))
            print(rep, pool_mode, width, f"ratio {r.reference_ratio:.4f}",
                  f"spread {r.spread:.3f}", f"{len(blocks)} blocks", flush=True)
    return out


def compare(records: list[dict]) -> dict[str, dict]:
    archs = sorted({r["arch"] for r in records})
    table = {}
    for name, estimate in ESTIMATORS.items():
        diffs = []
        for arch in archs:
            values = [estimate([b[1] / b[0] for b in r["blocks"]])
                      for r in records if r["arch"] == arch]
            diffs += [abs(a - b) / min(a, b) for a, b in itertools.combinations(values, 2)]
        table[name] = dict(median=statistics.median(diffs), mean=statistics.mean(diffs),
                           worst=max(diffs), pairs=len(diffs))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("infer", "train"), default="train")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--analyse", type=Path, help="recorded blocks: compare only")
    args = parser.parse_args()
    if args.analyse:
        recorded = json.loads(args.analyse.read_text())
    else:
        recorded = dict(mode=args.mode, threads=args.threads, batch=32,
                        measured_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        records=measure(args.mode, args.repeats, args.threads))
        out = ROOT / "benchmarks" / "results" / f"estimators_{args.mode}.json"
        out.write_text(json.dumps(recorded) + "\n")
    recorded["comparison"] = table = compare(recorded["records"])
    blocks = [len(r["blocks"]) for r in recorded["records"]]
    print(f"\n{recorded['mode']}: {len(recorded['records'])} measurements, "
          f"{min(blocks)}-{max(blocks)} blocks each (median {statistics.median(blocks):g})\n")
    print("| estimator | median | mean | worst | pairs |\n|---|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | {100 * row['median']:.2f}% | {100 * row['mean']:.2f}% | "
              f"{100 * row['worst']:.2f}% | {row['pairs']} |")


if __name__ == "__main__":
    main()
