"""torch.compile and bf16 autocast on the CPU, side by side in one process.

    python benchmarks/compile_cpu.py                      # the committed run (about 15 min)
    python benchmarks/compile_cpu.py --models hiera_t --rounds 2 --size 64 --out /tmp/x

Three parts, written to ``<out>.json`` and ``<out>.md``:

- graph breaks (``torch._dynamo.explain`` of a training forward) per preset family at small
  sizes (MViTv1, MViTv2, Hiera, the sparse MAE), and the time dynamo took;
- per model at ``--size`` (224 by default): the compile time (the first compiled training
  step minus an eager one) and the training step (forward, cross-entropy, backward, AdamW)
  eager fp32 / compiled fp32 / eager bf16 autocast, and inference (forward under
  ``inference_mode``) fp32 / bf16;
- every variant is timed once per round, the variants in turn, so drifts in clock speed or
  load (this machine is shared) hit all of them; ratios are of the medians, with the
  per-round ratios' spread (min and max) beside them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvit_lab import build_model, get_config
from mvit_lab.config import ArchConfig
from mvit_lab.measure import count_flops

FAMILIES = {  # small members of each family: the blocks are what dynamo traces
    "mvitv1": ("mvitv1_b_16x4", dict(input_size=(4, 32, 32), embed_dim=32,
                                     depths=(1, 1, 1, 1))),
    "mvitv2": ("mvitv2_t", dict(input_size=(1, 64, 64), embed_dim=32)),
    "hiera": ("hiera_t", dict(input_size=(1, 64, 64), embed_dim=32)),
}


def _shape(cfg: ArchConfig, batch: int) -> tuple[int, ...]:
    return (batch, cfg.in_chans, *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))


def _count(model: nn.Module, *args: Any, **kwargs: Any) -> dict[str, Any]:
    from mvit_lab.train.compile import count_graph_breaks

    start = time.perf_counter()
    try:
        report = count_graph_breaks(model, *args, **kwargs)
    except Exception as err:  # recorded: one family's failure must not lose the others
        report = dict(graphs=None, graph_breaks=None, reasons=[], error=f"{type(err).__name__}: "
                      f"{err}"[:500])
    return dict(report, seconds=time.perf_counter() - start)


def graph_breaks() -> list[dict[str, Any]]:
    rows = []
    for family, (preset, kw) in FAMILIES.items():
        cfg = get_config(preset, num_classes=4, **kw)
        report = _count(build_model(cfg).train(), torch.randn(_shape(cfg, 2)))
        rows.append(dict(family=family, preset=preset, overrides=_plain(kw), **report))
        print(json.dumps(rows[-1]), flush=True)
    from mvit_lab.masking import random_keep
    from mvit_lab.models.mae import MaskedAutoencoder

    cfg = get_config("hiera_t", num_classes=4, input_size=(1, 64, 64), embed_dim=32)
    mae = MaskedAutoencoder(cfg).train()
    keep = random_keep(2, mae.num_units, 0.6, torch.Generator().manual_seed(0))
    report = _count(mae, torch.randn(_shape(cfg, 2)), keep=keep)  # keep drawn as pretrain does
    rows.append(dict(family="mae", preset="hiera_t", overrides=dict(
        input_size=[1, 64, 64], embed_dim=32), **report))
    print(json.dumps(rows[-1]), flush=True)
    return rows


def _plain(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}


def _train_step(model: nn.Module, runner: Callable, x: torch.Tensor, y: torch.Tensor,
                dtype: str) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else nullcontext()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with amp:
            logits = runner(x)
        nn.functional.cross_entropy(logits.float(), y).backward()
        opt.step()

    return step


def _infer_step(model: nn.Module, x: torch.Tensor, dtype: str) -> Callable[[], None]:
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else nullcontext()

    def step() -> None:
        with torch.inference_mode(), amp:
            model(x)

    return step


def _timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def speeds(preset: str, size: int, batch: int, rounds: int, warmup: int,
           compile: bool = True) -> dict[str, Any]:
    torch.manual_seed(0)
    cfg = get_config(preset, input_size=(1, size, size))
    x = torch.randn(_shape(cfg, batch))
    y = torch.randint(0, cfg.num_classes, (batch,))
    eager = build_model(cfg).train()
    compiled_model = build_model(cfg).train()
    compiled_model.load_state_dict(eager.state_dict())
    runner = torch.compile(compiled_model)
    infer = build_model(cfg).eval()
    steps = {
        "train_eager_fp32": _train_step(eager, eager, x, y, "float32"),
        "train_compiled_fp32": _train_step(compiled_model, runner, x, y, "float32"),
        "train_eager_bf16": _train_step(eager, eager, x, y, "bfloat16"),
        "infer_fp32": _infer_step(infer, x, "float32"),
        "infer_bf16": _infer_step(infer, x, "bfloat16"),
    }
    if not compile:
        del steps["train_compiled_fp32"]
    eager_first = _timed(steps["train_eager_fp32"])
    compile_first = _timed(steps["train_compiled_fp32"]) if compile else None  # fwd and bwd
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(_timed(step))
    medians = {k: statistics.median(v) for k, v in times.items()}

    def ratio(num: str, den: str) -> dict[str, float]:
        per_round = [a / b for a, b in zip(times[num], times[den])]
        return dict(median=medians[num] / medians[den], round_min=min(per_round),
                    round_max=max(per_round))

    compiled = {}
    if compile:
        compiled = dict(
            compile_seconds=compile_first - eager_first, first_compiled_step_s=compile_first,
            compiled_speedup=1 / ratio("train_compiled_fp32", "train_eager_fp32")["median"],
            train_compiled_over_eager=ratio("train_compiled_fp32", "train_eager_fp32"))
    return dict(
        preset=preset, input_size=[1, size, size], batch=batch, rounds=rounds,
        gflops=count_flops(cfg).gflops, **compiled,
        median_s=medians, times_s=times,
        spread={k: (max(v) - min(v)) / medians[k] for k, v in times.items()},
        train_bf16_over_fp32=ratio("train_eager_bf16", "train_eager_fp32"),
        infer_bf16_over_fp32=ratio("infer_bf16", "infer_fp32"),
    )


def _markdown(record: dict[str, Any]) -> str:
    lines = [f"# torch.compile and bf16 on the CPU ({record['device_name']}, "
             f"{record['threads']} threads, torch {record['torch']})", "",
             "| family | preset | graphs | graph breaks | dynamo s |", "|---|---|---|---|---|"]
    for r in record["graph_breaks"]:
        lines.append(f"| {r['family']} | {r['preset']} | {r['graphs']} | {r['graph_breaks']} "
                     f"| {r['seconds']:.1f} |")
    lines += ["", "Time ratios (median of rounds; min-max of the per-round ratios):", "",
              "| preset | batch | compile s | eager fp32 train s | compiled / eager train | "
              "bf16 / fp32 train | bf16 / fp32 infer |", "|---|---|---|---|---|---|---|"]
    def cell(r: dict[str, Any], key: str) -> str:
        v = r.get(key)
        if v is None:
            return "not run"
        return f"{v['median']:.2f} ({v['round_min']:.2f}-{v['round_max']:.2f})"

    for r in record["models"]:

        lines.append(f"| {r['preset']} @{r['input_size'][-1]} | {r['batch']} | "
                     f"{r.get('compile_seconds', float('nan')):.0f} | "
                     f"{r['median_s']['train_eager_fp32']:.2f} | "
                     f"{cell(r, 'train_compiled_over_eager')} | "
                     f"{cell(r, 'train_bf16_over_fp32')} | {cell(r, 'infer_bf16_over_fp32')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="hiera_t,mvitv2_t")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-breaks", action="store_true")
    parser.add_argument("--no-compile", action="store_true",
                        help="eager fp32 vs bf16 only (no compiled variant)")
    parser.add_argument("--summarize", action="store_true",
                        help="only write <out>.md from <out>.json (e.g. a run stopped early)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "compile_cpu"))
    args = parser.parse_args()
    if args.summarize:
        out = Path(args.out)
        out.with_suffix(".md").write_text(_markdown(json.loads(out.with_suffix(".json")
                                                               .read_text())))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    # compile_seconds is a cold compile only when inductor's on-disk caches start empty:
    # TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmarks/compile_cpu.py ...
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    from mvit_lab.measure._devices import device_name

    cache = Path(cache_dir())
    record: dict[str, Any] = dict(
        inductor_cache=str(cache),
        inductor_cache_files_at_start=sum(1 for _ in cache.rglob("*")) if cache.exists() else 0,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device_name=device_name(torch.device("cpu")), machine=platform.machine(),
        threads=torch.get_num_threads(), torch=torch.__version__,
        models=[])
    record["graph_breaks"] = [] if args.skip_breaks else graph_breaks()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for preset in [m for m in args.models.split(",") if m]:
        record["models"].append(speeds(preset, args.size, args.batch, args.rounds, args.warmup,
                                       compile=not args.no_compile))
        out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")  # as it goes
        print(json.dumps({k: v for k, v in record["models"][-1].items() if k != "times_s"}),
              flush=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(_markdown(record))
    print(_markdown(record))


if __name__ == "__main__":
    main()
