"""How long a multi-worker trial's training loop waits for its checkpoint, per format.

    python benchmarks/checkpoint_save.py [--preset mvitv2_t] [--rounds 3] [--val-batches 4]

Two gloo ranks (spawned, as ``tests/train/test_distributed.py``; Ray Train's workers run the
same loop), one thread each, each holding the model and an AdamW state (one real step taken),
save the epoch's checkpoint as ``train()`` does (``Checkpointer.start`` after the last step,
validation, ``Checkpointer.commit`` before the epoch is reported), for each format in turn,
alternating, ``--rounds`` times:

- ``file``: rank 0 writes ``checkpoint.pt`` (the one-worker format);
- ``sharded``: PyTorch DCP, every rank writes its part, synchronously;
- ``sharded_async``: the same from DCP's thread, overlapping validation.

Validation is ``--val-batches`` eval forwards of batch 8 at the preset's input size. Reported
per format: the seconds the loop was blocked (start + commit; the slower rank, median and
range over rounds), validation alone, and the bytes each rank wrote. Writes
``benchmarks/results/checkpoint_save.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

ROOT = Path(__file__).parents[1]
FORMATS = (("file", "file", False), ("sharded", "sharded", False),
           ("sharded_async", "sharded", True))


def _rank(rank: int, folder: str, preset: str, rounds: int, val_batches: int) -> None:
    import torch.distributed as dist

    from mvit_lab import build_model
    from mvit_lab.presets import get_config
    from mvit_lab.train.checkpoint import Checkpointer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=2)
    torch.manual_seed(0)
    cfg = get_config(preset)
    model = build_model(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(2, 3, *cfg.input_size[1:])  # an image preset: [3, H, W]
    model(x).float().logsumexp(-1).mean().backward()
    optimizer.step()
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    gen = torch.Generator().manual_seed(0)
    val_x = torch.randn(8, 3, *cfg.input_size[1:])
    records = []
    for r in range(rounds):
        for label, fmt, async_save in FORMATS:
            out = Path(folder, f"{label}-{r}")
            out.mkdir(exist_ok=True)  # train() makes the run folder first
            saver = Checkpointer(out, fmt, async_save)
            dist.barrier()
            began = time.perf_counter()
            saver.start(0, model, optimizer, None)
            started = time.perf_counter()
            model.eval()
            with torch.no_grad():
                for _ in range(val_batches):
                    model(val_x)
            validated = time.perf_counter()
            saver.commit(model, optimizer, scaler, gen, 0, [dict(epoch=1)], None, None)
            ended = time.perf_counter()
            dist.barrier()
            mine = out.rglob(f"__{rank}_*.distcp") if fmt == "sharded" else (
                [out / "checkpoint.pt"] if rank == 0 else [])
            written = sum(p.stat().st_size for p in mine)
            records.append(dict(format=label, round=r, blocked=(started - began)
                                + (ended - validated), validation=validated - started,
                                wall=ended - began, bytes=written))
            dist.barrier()
    Path(folder, f"rank{rank}.json").write_text(json.dumps(records))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mvitv2_t")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--val-batches", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="checkpoint_save_"))
    mp.start_processes(_rank, args=(str(folder), args.preset, args.rounds, args.val_batches),
                       nprocs=2, start_method="spawn", join=True)
    ranks = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]
    rows = {}
    for label, _, _ in FORMATS:
        blocked = [max(a["blocked"], b["blocked"]) for a, b in zip(*ranks)
                   if a["format"] == label]
        val = [a["validation"] for a in ranks[0] if a["format"] == label]
        rows[label] = dict(blocked_median=statistics.median(blocked), blocked_min=min(blocked),
                           blocked_max=max(blocked), validation_median=statistics.median(val),
                           bytes_per_rank=[next(x["bytes"] for x in rank if x["format"] == label)
                                           for rank in ranks])
    result = dict(preset=args.preset, rounds=args.rounds, val_batches=args.val_batches,
                  ranks=2, threads_per_rank=1, torch=torch.__version__,
                  machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                  load_average=os.getloadavg(), formats=rows, raw=ranks)
    out = ROOT / "benchmarks" / "results" / "checkpoint_save"
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# Checkpoint saving, 2 gloo ranks, {args.preset} + AdamW state",
             "", f"torch {torch.__version__}; {result['machine']}; load average "
             f"{', '.join(f'{v:.1f}' for v in result['load_average'])}; "
             f"{args.rounds} rounds, formats alternating; validation {args.val_batches} "
             "forwards of batch 8.", "",
             "| format | loop blocked, s (median, min-max) | validation, s | MB written by "
             "rank 0 / rank 1 |", "|---|---|---|---|"]
    for label, row in rows.items():
        mb = " / ".join(f"{b / 2**20:.0f}" for b in row["bytes_per_rank"])
        lines.append(f"| {label} | {row['blocked_median']:.2f} ({row['blocked_min']:.2f}-"
                     f"{row['blocked_max']:.2f}) | {row['validation_median']:.2f} | {mb} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
