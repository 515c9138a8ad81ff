"""2 data-parallel workers vs 1, same global batch: a small Hiera (16x16 digits, 2 stages,
width 16) trained from scratch, three seeds each way, alternating.

    python benchmarks/multiworker_digits.py [--seeds 0 1 2] [--epochs 15] [--launcher ray]

1 worker: the one-worker trial's path, ``train()`` in this process, batch 64, 1 thread.
2 workers: the multi-worker trial's path, ``train_on_workers`` (Ray Train ``TorchTrainer``,
DDP over gloo; ``--launcher spawn``: the same ``train()`` on two ``torch.multiprocessing``
ranks with a gloo group, no Ray, for machines too loaded to start Ray within its 30 s), batch
32 per worker, 1 CPU and 1 thread each (so twice the cores of the 1-worker run: on the
2-core machine these results come from, at load ~30, one epoch of
``experiments/digits_hiera.yaml`` on 2 threads took 441 s against the README's 2.9 s idle,
so 1 thread it is); global batch 64 both ways, so the same lr and the same number of
optimizer steps. Evaluation runs after the last epoch only,
so every other epoch's ``epoch_seconds`` is training alone: per-step time is the median over
those epochs of ``epoch_seconds / steps``. Writes ``benchmarks/results/multiworker_digits``
``.{json,md}``: val top-1 per seed, the mean difference, per-step medians and spreads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
GLOBAL_BATCH = 64
MODEL = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
             patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 2], embed_dim=16,
             num_heads=1, mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False],
             num_classes=10)


def _spawned(rank: int, folder: str, exp, out: str) -> None:
    import torch.distributed as dist

    from mvit_lab.train import train

    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=2)
    try:
        result = train(exp, out if rank == 0 else None)
        if rank == 0:
            Path(folder, "result.json").write_text(json.dumps(dict(
                history=result.history, final=result.final)))
    finally:
        dist.destroy_process_group()


def _spawn_train(exp, out: str):
    import torch.multiprocessing as mp

    from mvit_lab.train import TrainResult

    with tempfile.TemporaryDirectory() as folder:
        mp.start_processes(_spawned, args=(folder, exp, out), nprocs=2, start_method="spawn")
        record = json.loads(Path(folder, "result.json").read_text())
    return TrainResult(history=record["history"], final=record["final"])


def _run(variant: str, seed: int, epochs: int, launcher: str) -> dict:
    from mvit_lab.experiment import experiment_from_dict
    from mvit_lab.search.multiworker import Workers, train_on_workers
    from mvit_lab.train import train

    workers = 2 if variant == "2 workers" else 1
    exp = experiment_from_dict(dict(
        name="multiworker-digits", data=dict(dataset="digits"), model=dict(MODEL),
        train=dict(epochs=epochs, eval_every=epochs, batch_size=GLOBAL_BATCH // workers,
                   global_batch=GLOBAL_BATCH, threads=1, lr=0.004, warmup_epochs=1,
                   weight_decay=0.05, label_smoothing=0.1, seed=seed)))

    def show(m: dict) -> None:
        print(f"  {variant} seed {seed} epoch {m['epoch']}: {m['epoch_seconds']:.1f} s"
              + (f", val top-1 {m['val_top1']:.2f}" if "val_top1" in m else ""), flush=True)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        if workers == 1:
            result = train(exp, out, callback=show)
        elif launcher == "ray":
            result = train_on_workers(exp, Path(out), resume=False, callback=show,
                                      workers=Workers(2, 1.0, 0.0))
        else:
            result = _spawn_train(exp, out)
    seconds = time.perf_counter() - start
    steps = math.ceil(1438 / workers / (GLOBAL_BATCH // workers))  # the digits' train split
    per_step = [r["epoch_seconds"] / steps for r in result.history[1:-1]]
    return dict(variant=variant, seed=seed, val_top1=result.final["val_top1"],
                train_loss=result.final["train_loss"], global_batch=result.final["global_batch"],
                steps_per_epoch=steps, step_seconds=per_step,
                step_seconds_median=statistics.median(per_step), seconds=seconds,
                weights_sha256=result.final.get("weights_sha256"))


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--launcher", choices=("ray", "spawn"), default="ray")
    parser.add_argument("--combine", nargs="+", metavar="FILE",
                        help="no training: merge the runs of earlier results (seeds run in "
                             "separate processes) into --out")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "multiworker_digits"))
    args = parser.parse_args()
    if args.launcher == "ray" and not args.combine:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs = [r for name in args.combine or [] for r in json.loads(Path(name).read_text())["runs"]]
    if args.combine:
        args.seeds = sorted({r["seed"] for r in runs})
        first = json.loads(Path(args.combine[0]).read_text())
        args.epochs, args.launcher = first["epochs"], first["launcher"]
    # alternating, so the load on the machine hits both alike
    for seed in [] if args.combine else args.seeds:
        for variant in (("1 worker", "2 workers") if seed % 2 == 0
                        else ("2 workers", "1 worker")):
            runs.append(_run(variant, seed, args.epochs, args.launcher))
            print(variant, seed, f"{runs[-1]['val_top1']:.2f}",
                  f"{runs[-1]['step_seconds_median'] * 1000:.0f} ms/step", flush=True)
    ray.shutdown()
    summary = {}
    for variant in ("1 worker", "2 workers"):
        rows = [r for r in runs if r["variant"] == variant]
        steps = [s for r in rows for s in r["step_seconds"]]
        summary[variant] = dict(
            val_top1=[r["val_top1"] for r in rows],
            val_top1_mean=statistics.mean(r["val_top1"] for r in rows),
            step_ms_median=1000 * statistics.median(steps),
            step_ms_min=1000 * min(steps), step_ms_max=1000 * max(steps),
            step_ms_per_seed=[1000 * r["step_seconds_median"] for r in rows])
    diff = summary["2 workers"]["val_top1_mean"] - summary["1 worker"]["val_top1_mean"]
    by = {(r["variant"], r["seed"]): r for r in runs}
    per_seed = [by["2 workers", s]["val_top1"] - by["1 worker", s]["val_top1"]
                for s in args.seeds if ("1 worker", s) in by and ("2 workers", s) in by]
    record = dict(benchmark="multiworker_digits", model=MODEL, lr=0.004,
                  epochs=args.epochs, global_batch=GLOBAL_BATCH, seeds=args.seeds,
                  launcher=args.launcher,
                  machine=dict(cpus=os.cpu_count(), processor=platform.processor(),
                               load_average_at_end=os.getloadavg()),
                  runs=runs, summary=summary, val_top1_mean_difference=diff,
                  val_top1_difference_per_seed=per_seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    md = [f"# 2 workers vs 1, global batch {GLOBAL_BATCH}, small digits Hiera, {args.epochs} "
          "epochs", "", f"2 workers launched by {args.launcher}. 2 CPU cores shared with other "
          "work: per-step times are side by side in one process, alternating; compare them as "
          "a ratio only.",
          "", "| variant | val top-1 per seed | mean | ms/step median (min-max) |",
          "|---|---|---|---|"]
    for variant, s in summary.items():
        md.append(f"| {variant} | " + ", ".join(f"{v:.2f}" for v in s["val_top1"])
                  + f" | {s['val_top1_mean']:.2f} | {s['step_ms_median']:.0f} "
                  f"({s['step_ms_min']:.0f}-{s['step_ms_max']:.0f}) |")
    md += ["", f"Mean difference (2 workers - 1): {diff:+.2f} points; per seed: "
           + ", ".join(f"{d:+.2f}" for d in per_seed) + "."]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
