"""Record a replay table: every point of a grid experiment trained to its full budget once,
with each epoch's validation metrics and the architecture's costs.

    python benchmarks/record_replay.py experiments/replay_digits.yaml --shard 0/2 &
    python benchmarks/record_replay.py experiments/replay_digits.yaml --shard 1/2 &
    wait; python benchmarks/record_replay.py experiments/replay_digits.yaml --merge

Each shard appends one JSON line per finished point to ``<out>/_shard<i>.jsonl`` (a killed
shard resumes where it stopped); ``--merge`` writes the table ``points.csv`` (one row per
point: its knobs, GFLOPs, params and the measured costs) and ``curves.csv`` (one row per point
and epoch) that :mod:`mvit_lab.search.replay` reads. Costs are measured the way sweeps measure
them (``measure_costs``: isolated under the node's device lock, which the shards' training
steps yield to), with the experiment's ``measure`` section.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import time
from pathlib import Path

from mvit_lab.experiment import load_experiment
from mvit_lab.search.space import resolve_point
from mvit_lab.search.sweep import parse_sweep

ROOT = Path(__file__).parents[1]
CURVE_KEYS = ("val_top1", "val_top5", "val_loss", "train_loss", "epoch_seconds")
COST_KEYS = ("gflops", "params", "throughput", "latency_ms", "peak_memory_mb")


def _record(exp, sweep, point, seed: int) -> dict:
    import torch

    from mvit_lab.measure import count_flops
    from mvit_lab.measure.costs import CostCache, cost_metrics, measure_costs
    from mvit_lab.measure.isolation import device_lock, training
    from mvit_lab.measure.speed import Protocol
    from mvit_lab.train import train

    model = resolve_point(sweep.space, exp.model, point)
    run = dataclasses.replace(exp, model=model,
                              train=dataclasses.replace(exp.train, seed=seed, **point.train))
    torch.set_num_threads(run.train.threads or 1)
    flops = count_flops(model)
    m = sweep.measure
    records, _ = measure_costs(model, device="cpu", dtype="float32", batch_size=m["batch"],
                               modes=tuple(m["modes"]), protocol=Protocol(**m["protocol"]),
                               cache=CostCache(m.get("cache")), lock_timeout=3600.0)
    costs = cost_metrics(records)
    first = next(iter(records.values()))
    curve: list[dict] = []
    started = time.perf_counter()
    with training(device_lock("cpu")):
        train(run, None, callback=lambda metrics: curve.append(
            {k: metrics.get(k) for k in ("epoch", *CURVE_KEYS)}))
    return dict(point=point.name, model=point.model, seed=seed, gflops=flops.gflops,
                params=flops.params, **costs, cost_device=first.device_name,
                cost_protocol=first.protocol, cost_spread=first.spread,
                cost_isolated=first.isolated, train_seconds=time.perf_counter() - started,
                curve=curve)


def _merge(out: Path, sweep, epochs: int) -> None:
    rows: dict[str, dict] = {}
    for path in sorted(out.glob("_shard*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            rows[rec["point"]] = rec
    order = [p.name for p in sweep.space.points()]
    missing = [name for name in order if name not in rows]
    if missing:
        raise SystemExit(f"{len(missing)} of {len(order)} points are not recorded yet, e.g. "
                         f"{missing[0]}")
    knobs = list(sweep.space.grid)
    with open(out / "points.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["point_id", *knobs, *COST_KEYS, "cost_spread", "cost_isolated"])
        for i, name in enumerate(order):
            rec = rows[name]
            w.writerow([i, *(json.dumps(rec["model"][k]) for k in knobs),
                        *(rec[k] for k in COST_KEYS), f"{rec['cost_spread']:.4f}",
                        str(rec["cost_isolated"]).lower()])
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["point_id", "epoch", *CURVE_KEYS])
        for i, name in enumerate(order):
            curve = rows[name]["curve"]
            if len(curve) != epochs:
                raise SystemExit(f"{name}: {len(curve)} epochs recorded, expected {epochs}")
            for e in curve:
                w.writerow([i, e["epoch"], *(f"{e[k]:.4f}" for k in CURVE_KEYS)])
    first = rows[order[0]]
    (out / "recording.json").write_text(json.dumps(dict(
        points=len(order), epochs=epochs, seed=first["seed"], cost_device=first["cost_device"],
        cost_protocol=first["cost_protocol"], cost_dtype="float32",  # as _record measures
        cost_batch=sweep.measure["batch"],
        train_seconds_total=sum(r["train_seconds"] for r in rows.values())), indent=1) + "\n")
    print(f"wrote {out}/points.csv and curves.csv: {len(order)} points x {epochs} epochs")


def _done(out: Path) -> set[str]:
    return {json.loads(line)["point"] for path in out.glob("_shard*.jsonl")
            for line in path.read_text().splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "replay" / "digits_small"))
    parser.add_argument("--shard", default="0/1", help="i/n: record every n-th point from i")
    parser.add_argument("--merge", action="store_true", help="write the CSV table and stop")
    parser.add_argument("--set", action="append", default=[], help="experiment overrides")
    parser.add_argument("--limit", type=int, default=None, help="record at most this many")
    parser.add_argument("--range", default="0:1000000", help="START:END, the point indices")
    parser.add_argument("--reverse", action="store_true", help="record the last points first")
    parser.add_argument("--only", default=None, help="a comma list of point indices")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    exp = load_experiment(args.experiment, args.set)
    sweep = parse_sweep(exp)
    if sweep.space.mode != "grid":
        raise SystemExit(f"{args.experiment}: a replay table records a grid search space")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        return _merge(out, sweep, exp.train.epochs)
    index, count = (int(x) for x in args.shard.split("/"))
    measure = dict(sweep.measure, cache=sweep.measure.get("cache") or str(out / "_cost_cache"))
    sweep = dataclasses.replace(sweep, measure=measure)
    first, last = (int(x) for x in args.range.split(":"))
    log = out / (f"_shard{index}.jsonl" if args.range == "0:1000000"
                 else f"_shard{index}of{count}_{first}-{last}.jsonl")
    only = {int(x) for x in args.only.split(",")} if args.only else None
    todo = [(i, p) for i, p in enumerate(sweep.space.points())
            if i % count == index and first <= i < last and (only is None or i in only)]
    for i, point in (todo[::-1] if args.reverse else todo)[:args.limit]:
        if point.name in _done(out):  # by any shard (shards may overlap to share the work)
            continue
        rec = _record(exp, sweep, point, sweep.seeds[0])
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"[{time.strftime('%H:%M:%S')}] {i} {point.name}: val top-1 "
              f"{rec['curve'][-1]['val_top1']:.1f}, {rec['train_seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
