"""A model much slower than the CPU reference: how closely do repeated timings agree?

    python benchmarks/slow_model_reference.py --preset hiera_t --repeats 4 --batch 4

Times ``--preset`` ``--repeats`` times in this process against the reference model, as
``mvit-lab profile`` does on the CPU (the protocol's defaults: 30 s cap), and reports the
range of the reference ratios over the repeats and their spreads. The README's ``profile``
section quotes it. Writes ``benchmarks/results/slow_model_reference.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hiera_t")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from mvit_lab.build import build_model
    from mvit_lab.measure.protocol import Protocol
    from mvit_lab.measure.speed import measure_throughput

    torch.set_num_threads(args.threads)
    runs = []
    for i in range(args.repeats):
        torch.manual_seed(0)
        r = measure_throughput(build_model(args.preset), batch_size=args.batch,
                               protocol=Protocol(reference=True))
        runs.append(dict(ratio=r.reference_ratio, spread=r.spread, blocks=r.blocks,
                         iters=r.iters, raw_items_per_s=r.items_per_s, seconds=r.seconds,
                         protocol=r.protocol))
        print(i, f"ratio {r.reference_ratio:.5f} spread {r.spread:.3f} blocks {r.blocks}",
              flush=True)
    ratios = [x["ratio"] for x in runs]
    summary = dict(ratio_range=(max(ratios) - min(ratios)) / min(ratios),
                   median_spread=statistics.median(x["spread"] for x in runs))
    print(f"ratios within {100 * summary['ratio_range']:.1f}%, median spread "
          f"{summary['median_spread']:.3f}")
    path = ROOT / "benchmarks" / "results" / "slow_model_reference.json"
    path.write_text(json.dumps(dict(preset=args.preset, batch=args.batch, threads=args.threads,
                                    runs=runs, summary=summary), indent=1) + "\n")


if __name__ == "__main__":
    main()
