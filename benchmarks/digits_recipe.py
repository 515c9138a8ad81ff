"""With and without the augmentation recipe on little data, three seeds each way:
``experiments/digits_small_recipe.yaml``, a small MViTv2 from scratch on 10% of the digits'
training split.

    python benchmarks/digits_recipe.py [--seeds 0 1 2] [--set train.epochs=50]

"without" is the same experiment with crop, RandAugment, erasing and mixup / cutmix switched
off (label smoothing stays). Reports the final epoch's val top-1 per seed, the mean and a 95%
Student-t interval, in ``benchmarks/results/digits_recipe.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from scipy import stats

from mvit_lab.experiment import load_experiment
from mvit_lab.train import train

ROOT = Path(__file__).parents[1]
OFF = ["train.crop_scale=null", "train.rand_augment=null", "train.random_erasing=0",
       "train.mixup=0", "train.cutmix=0"]


def _interval(values: list[float]) -> list[float]:
    mean = statistics.mean(values)
    if len(values) < 2:
        return [mean, mean]
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return [mean - half, mean + half]


def _progress(label: str):
    def show(m: dict) -> None:
        if "val_top1" in m:
            print(f"  {label} epoch {m['epoch']}: val top-1 {m['val_top1']:.1f}", flush=True)

    return show


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "digits_recipe"))
    parser.add_argument("--combine", nargs="+", metavar="FILE",
                        help="no training: merge earlier results (.json files, or the "
                             "'VARIANT SEED TOP1' lines of a log) into --out")
    args = parser.parse_args()
    path = ROOT / "experiments" / "digits_small_recipe.yaml"
    runs: dict[str, list[dict]] = {"with": [], "without": []}
    for name in args.combine or []:  # seeds run in separate processes, side by side
        if name.endswith(".json"):
            for variant, rows in json.loads(Path(name).read_text())["runs"].items():
                runs[variant] += rows
            continue
        for line in Path(name).read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in runs:
                runs[parts[0]].append(dict(seed=int(parts[1]), val_top1=float(parts[2]),
                                           source=f"log {Path(name).name}"))
    if args.combine:
        args.seeds = sorted({r["seed"] for rows in runs.values() for r in rows})
    for seed in [] if args.combine else args.seeds:
        for variant in ("without", "with"):
            sets = [*args.set, f"train.seed={seed}"] + (OFF if variant == "without" else [])
            exp = load_experiment(path, sets)
            start = time.perf_counter()
            final = train(exp, callback=_progress(f"{variant} seed {seed}")).final
            runs[variant].append(dict(seed=seed, val_top1=final["val_top1"],
                                      train_loss=final["train_loss"],
                                      seconds=time.perf_counter() - start))
            print(variant, seed, f"{final['val_top1']:.2f}", flush=True)
    summary = {}
    for variant, rows in runs.items():
        top1 = [r["val_top1"] for r in rows]
        summary[variant] = dict(mean=statistics.mean(top1), interval_95=_interval(top1),
                                values=top1)
    record = dict(benchmark="digits_recipe", experiment=str(path.relative_to(ROOT)),
                  overrides=args.set, seeds=args.seeds, off=OFF, runs=runs, summary=summary)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    md = ["# Digits, 10% of the training split, small MViTv2 from scratch", "",
          "| augmentation | val top-1 per seed | mean | 95% interval |", "|---|---|---|---|"]
    for variant in ("without", "with"):
        s = summary[variant]
        md.append(f"| {variant} | " + ", ".join(f"{v:.1f}" for v in s["values"])
                  + f" | {s['mean']:.1f} | {s['interval_95'][0]:.1f} to "
                  f"{s['interval_95'][1]:.1f} |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
