"""How long counting FLOPs takes, per preset (sweeps count every candidate before training).

    python benchmarks/count_flops.py     # writes benchmarks/results/count_flops.{json,md}

Each preset is counted ``--repeats`` times in one process; the first call includes one-off
import and tracing costs and is reported apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from mvit_lab import list_presets
from mvit_lab.measure import count_flops
from mvit_lab.measure._devices import device_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/count_flops")
    args = parser.parse_args()
    start = time.perf_counter()
    count_flops("hiera_t")
    first_call = time.perf_counter() - start
    rows = []
    for name in list_presets():
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            report = count_flops(name)
            times.append(time.perf_counter() - t)
        rows.append(dict(preset=name, gflops=report.gflops, params=report.params,
                         seconds_median=statistics.median(times), seconds_max=max(times)))
        print(f"{name:22s} {report.gflops:9.3f} GFLOPs  {statistics.median(times):.3f} s",
              flush=True)
    record = dict(device=device_name(torch.device("cpu")), torch=torch.__version__,
                  first_call_seconds=first_call, repeats=args.repeats, results=rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# count_flops timing: {record['device']}", "",
             f"torch {torch.__version__}; median of {args.repeats}; the first call in a process "
             f"(imports, dispatch set-up) took {first_call:.2f} s.", "",
             "| preset | GFLOPs | seconds (median) | seconds (max) |", "|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['gflops']:.3f} | {r['seconds_median']:.3f} | "
              f"{r['seconds_max']:.3f} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
